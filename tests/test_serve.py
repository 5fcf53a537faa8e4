"""`baton serve` (issue 15): the page over HTTP, a console behind the websocket, read-only
without the token printed by --control, acting with it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

aiohttp = pytest.importorskip("aiohttp")
pytest.importorskip("textual_serve")

from console.runner.daemon import Spawned, spawn  # noqa: E402
from console.runner.protocol import user_name  # noqa: E402
from tests.conftest import baton_env  # noqa: E402
from tests.test_runner import GATED  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path, baton_home: Path) -> Iterator[tuple[Spawned, str, str]]:
    flow = tmp_path / "wf.toml"
    flow.write_text(GATED)
    spawned = spawn([str(flow)], baton_home)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "console", "serve", spawned.run_id,
                             "--control", "--port", str(port)], env=baton_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"serving run {spawned.run_id} on http://127.0.0.1:{port}/" in first, first
        token = proc.stdout.readline().strip().rsplit("token=", 1)[1]
        assert "ssh -L" in proc.stdout.readline()
        deadline = time.monotonic() + 10
        while True:  # the lines come just before the port listens
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "baton serve never listened"
                time.sleep(0.05)
        yield spawned, f"http://127.0.0.1:{port}", token
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.kill(spawned.pid, signal.SIGKILL)


def _actions(home: Path, run_id: str) -> list[tuple[str, str]]:
    db = sqlite3.connect(home / "history.sqlite")
    try:
        return db.execute("SELECT action, user FROM actions WHERE run_id = ?",
                          (run_id,)).fetchall()
    finally:
        db.close()


async def _console(session: object, url: str) -> object:
    """Open the websocket, wait until the console has drawn a while, return it."""
    ws = await session.ws_connect(url + "?width=120&height=36")  # type: ignore[attr-defined]
    received = 0
    deadline = time.monotonic() + 15
    while received < 20_000 and time.monotonic() < deadline:  # a full first frame
        message = await asyncio.wait_for(ws.receive(), 15)
        if message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
            received += len(message.data)
        elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            raise AssertionError("the console's websocket closed")
    assert received >= 20_000, received
    await asyncio.sleep(0.5)
    return ws


async def test_serve_page_websocket_and_control_token(served: tuple[Spawned, str, str],
                                                      baton_home: Path) -> None:
    spawned, base, token = served
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/") as page:
            assert page.status == 200
            html = await page.text()
        assert f'data-session-websocket-url="ws://{base[7:]}/ws"' in html
        async with session.get(base + f"/?token={token}") as page:
            assert f"/ws/{token}\"" in await page.text()
        async with session.get(base + "/ws/not-the-token") as refused:
            assert refused.status == 403

        # without the token: a console that watches; its `p` (pause) is refused
        watcher = await _console(session, base + "/ws")
        await watcher.send_json(["stdin", "p"])  # type: ignore[attr-defined]
        await asyncio.sleep(1.5)
        assert [a for a, _ in _actions(baton_home, spawned.run_id)] == []
        await watcher.close()  # type: ignore[attr-defined]

        # with the token: the same key pauses the run, attributed to the user
        controller = await _console(session, base + f"/ws/{token}")
        await controller.send_json(["stdin", "p"])  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while not any(a == "pause" for a, _ in _actions(baton_home, spawned.run_id)):
            assert time.monotonic() < deadline, "the pause never reached the run"
            await asyncio.sleep(0.1)
        assert [u for a, u in _actions(baton_home, spawned.run_id) if a == "pause"] == [
            user_name(os.getuid())]
        await controller.close()  # type: ignore[attr-defined]
