"""Issue 15: an attached console that loses its connection to the runner shows a banner
and reconnects (retrying while the runner lives); the banner goes once it is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from console.engine.run import Run, RunOptions
from console.model.loader import load_workflow
from console.runner.attach_app import AttachApp, AttachedRunScreen, ConnectionBanner
from console.runner.server import RunServer

HELD = """
[workflow]
name = "reconnect demo"

[steps.gate]
run = "echo approved"
confirm = true
"""


async def _until(test, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not test():
        assert loop.time() < deadline, "condition never met"
        await asyncio.sleep(0.02)


async def test_a_lost_connection_shows_a_banner_and_reconnects(tmp_path: Path) -> None:
    path = tmp_path / "wf.toml"
    path.write_text(HELD)
    home = tmp_path / "home"
    run = Run(load_workflow(path), RunOptions(run_id="reconnect1", keep_alive=True))
    server = RunServer(run, home)
    socket = await server.start()
    executing = asyncio.create_task(run.execute())
    app = AttachApp(socket)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await _until(lambda: isinstance(app.screen, AttachedRunScreen)
                         and app.screen.is_mounted)
            screen = app.screen
            banner = screen.query_one(ConnectionBanner)
            await _until(lambda: screen.run.tasks[("gate", "local")].state
                         == "awaiting_approval")
            assert not banner.display

            await server.close()  # the runner's side of the socket goes away
            await _until(lambda: banner.display)
            assert "connection to the runner lost" in str(banner.render())
            await asyncio.sleep(0.5)  # a few failed attempts: still retrying, not interrupted
            assert banner.display and screen.run.state == "running"

            server = RunServer(run, home)  # back (as a restarted server would be)
            await server.start()
            await _until(lambda: not banner.display)
            screen.run.approve("gate", "local")  # the new connection carries actions
            await _until(lambda: run.tasks[("gate", "local")].state == "succeeded")
            await _until(lambda: screen.run.tasks[("gate", "local")].state == "succeeded")
            await pilot.pause()
            screen.run.detach()
    finally:
        run.close()
        await asyncio.wait_for(executing, 10)
        await server.close()
