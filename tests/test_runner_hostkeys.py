"""Issue 15: a runner forwards an unknown SSH host key question to its attached consoles
(docs/attach-protocol.md, host key questions); an operator answers in the console's
dialog as for an in-process run; every other console is told and its dialog closes. With
no console attached the rule is today's: refused. Against a real sshd (tests/sshd.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from console.runner.client import SocketClient, connect
from console.runner.daemon import Spawned, spawn
from tests.sshd import Fleet, SSHServer
from tests.ui_helpers import SIZE, until


def _workflow(tmp_path: Path, fleet: Fleet, server: SSHServer, first: str = "true") -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(f'''
[workflow]
name = "Runner host keys"
[ssh]
user = "root"
identity = "{fleet.client_key}"
known_hosts = "{tmp_path / 'kh' / 'known_hosts'}"
connect_timeout = "5s"
[hosts.lone]
address = "{server.address}"
port = {server.port}
[steps.first]
run = "{first}"
[steps.hello]
needs = ["first"]
on = "lone"
run = "echo hello over ssh"
''', encoding="utf-8")
    return path


@pytest.fixture
def runners(baton_home: Path) -> Iterator[Callable[..., Spawned]]:
    started: list[Spawned] = []

    def start(path: Path) -> Spawned:
        spawned = spawn([str(path)], baton_home)
        started.append(spawned)
        return spawned

    yield start
    for spawned in started:
        try:
            os.kill(spawned.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def _next(client: SocketClient, test: Callable[[dict[str, Any]], bool],
                timeout: float = 20.0) -> dict[str, Any]:
    async def wait() -> dict[str, Any]:
        async for message in client.events():
            if test(message):
                return message
        raise AssertionError("the connection ended")
    return await asyncio.wait_for(wait(), timeout)


def _task(step: str, state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("type") == "task" and m["step"] == step and m["state"] == state


async def test_the_console_answers_a_runners_host_key_question(
        tmp_path: Path, sshd_fleet: Fleet, lone_sshd: SSHServer,
        runners: Callable[..., Spawned]) -> None:
    from console.runner.attach_app import AttachApp
    from console.ui.screens.hostkey import HostKeyModal

    path = _workflow(tmp_path, sshd_fleet, lone_sshd)
    known = tmp_path / "kh" / "known_hosts"
    spawned = runners(path)
    other = await connect(spawned.socket, host_keys=True)  # a second console's client
    app = AttachApp(spawned.socket)
    async with app.run_test(size=SIZE) as pilot:
        asked = await _next(other, lambda m: m.get("type") == "host_key")
        assert (asked["host"], asked["label"], asked["key_type"]) == (
            "lone", f"[{lone_sshd.address}]:{lone_sshd.port}", "ssh-ed25519")
        assert asked["fingerprint"].startswith("SHA256:")
        assert asked["known_hosts"] == str(known)
        await until(lambda: isinstance(app.screen, HostKeyModal), timeout=20)
        assert app.screen.question.fingerprint == asked["fingerprint"]
        assert not known.exists()  # nothing recorded before the operator answers
        await pilot.press("t")
        told = await _next(other, lambda m: m.get("type") == "host_key_answered")
        assert told["id"] == asked["id"] and told["trust"] is True
        trusted = await _next(other, lambda m: m.get("action") == "trust_host_key")
        assert trusted["host"] == "lone" and asked["fingerprint"] in trusted["reason"]
        await _next(other, _task("hello", "succeeded"))
        assert known.read_text() == lone_sshd.host_key_line()
        remote = app.remote
        assert remote is not None
        await until(lambda: remote.tasks[("hello", "lone")].state == "succeeded")
        remote.detach()
        app.exit()
    await other.close()


async def test_another_console_answers_and_this_dialog_closes(
        tmp_path: Path, sshd_fleet: Fleet, lone_sshd: SSHServer,
        runners: Callable[..., Spawned]) -> None:
    from console.runner.attach_app import AttachApp
    from console.ui.screens.hostkey import HostKeyModal

    spawned = runners(_workflow(tmp_path, sshd_fleet, lone_sshd))
    other = await connect(spawned.socket, host_keys=True)
    app = AttachApp(spawned.socket)
    async with app.run_test(size=SIZE):
        asked = await _next(other, lambda m: m.get("type") == "host_key")
        await until(lambda: isinstance(app.screen, HostKeyModal), timeout=20)
        await other.answer_host_key(asked["id"], False)  # refused in the other console
        await until(lambda: not isinstance(app.screen, HostKeyModal), timeout=10)
        await _next(other, _task("hello", "failed"))
        assert not (tmp_path / "kh" / "known_hosts").exists()
        assert app.remote is not None
        app.remote.detach()
        app.exit()
    await other.close()


async def test_with_no_console_attached_the_key_is_refused(
        tmp_path: Path, sshd_fleet: Fleet, lone_sshd: SSHServer,
        runners: Callable[..., Spawned]) -> None:
    """The console that started the runner detached before the SSH step: nobody to ask,
    refused at once (no question waits), as a run without a dialog always was."""
    go = tmp_path / "go"
    spawned = runners(_workflow(tmp_path, sshd_fleet, lone_sshd,
                                first=f"while [ ! -e {go} ]; do sleep 0.05; done"))
    console = await connect(spawned.socket, host_keys=True)
    assert [t["state"] for t in console.snapshot()["tasks"]] != ["succeeded"] * 2
    await console.close()  # detached
    watcher = await connect(spawned.socket, read_only=True)  # watches, cannot answer
    go.touch()
    start = time.monotonic()
    failed = await _next(watcher, _task("hello", "failed"))
    assert time.monotonic() - start < 15
    assert "host key" in (failed["reason"] or "").lower(), failed
    assert not (tmp_path / "kh" / "known_hosts").exists()
    await watcher.close()
