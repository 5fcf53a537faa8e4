"""Issue 15: an attached console that loses its connection to the runner shows a banner
and reconnects (retrying while the runner lives); the banner goes once it is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from console.engine.run import Run, RunOptions
from console.model.loader import load_workflow
from console.runner.attach_app import AttachApp, AttachedRunScreen, ConnectionBanner
from console.runner.server import RunServer
from console.store import acquire_run_lock

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
    lock = acquire_run_lock(run.id, home)  # as a runner holds it: the run is alive
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
        lock.release()


async def test_a_runner_that_let_go_of_its_run_is_interrupted(tmp_path: Path) -> None:
    """The runner's process may still exist (a zombie nobody reaps: its console, the
    parent, went away) but no longer holds the run's lock: the run is interrupted, the
    banner says so, no endless reconnecting."""
    path = tmp_path / "wf.toml"
    path.write_text(HELD)
    home = tmp_path / "home"
    run = Run(load_workflow(path), RunOptions(run_id="reconnect2", keep_alive=True))
    lock = acquire_run_lock(run.id, home)
    server = RunServer(run, home)
    socket = await server.start()
    executing = asyncio.create_task(run.execute())
    app = AttachApp(socket)
    try:
        async with app.run_test(size=(120, 36)):
            await _until(lambda: isinstance(app.screen, AttachedRunScreen)
                         and app.screen.is_mounted)
            screen = app.screen
            banner = screen.query_one(ConnectionBanner)
            await _until(lambda: screen.run.tasks[("gate", "local")].state
                         == "awaiting_approval")
            lock.release()  # the process let go of the run (as a dead one does)
            await server.close()
            await _until(lambda: screen.run.state == "interrupted")
            assert banner.display and "is interrupted" in str(banner.render())
            assert f"baton resume {run.id}" in str(banner.render())
    finally:
        run.close()
        await asyncio.wait_for(executing, 10)
        await server.close()
