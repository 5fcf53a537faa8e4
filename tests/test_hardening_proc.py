"""Issue 11 (hardening), process and state items: the script fd (4), containment of
what a step starts (8), leftovers after a crash (9), history failures (10), the log cap
(11), the state directory (13, 16) and concurrent runs of one workflow (17)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest
from conftest import REPO, baton, baton_env, write_workflow

from console.executors.base import CommandRequest
from console.executors.local import LocalExecutor
from console.executors.ssh import SSHExecutor
from console.model.workflow import LOCAL_HOST
from tests import sshd
from tests.sshd import Fleet


def _alive_with(marker: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line holds ``marker``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if marker in " ".join(proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def _kill_all(marker: str) -> None:
    for proc in _alive_with(marker):
        try:
            proc.kill()
        except psutil.Error:
            pass


def _wait_until(predicate: object, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def _sleep_value() -> str:
    """A sleep duration no other test uses, to find exactly this test's processes."""
    return f"3{uuid.uuid4().int % 100000:05d}.5"


# --- 4: the script fd ------------------------------------------------------------------


class _Out:
    def __init__(self) -> None:
        self.text: list[str] = []

    def __call__(self, stream: str, text: str) -> None:
        self.text.append(text)


READ_EVERY_FD = (r"""# {marker}
for f in /proc/$$/fd/* /proc/self/fd/*; do [ -p "$f" ] || cat "$f" 2>/dev/null; done
sh -c 'for f in /proc/$PPID/fd/* /proc/$$/fd/*; do [ -p "$f" ] || cat "$f"; done' 2>/dev/null
for f in /proc/$$/fd/*; do [ -p "$f" ] && timeout 1 cat "$f" </dev/null 2>/dev/null; done
cat 2>/dev/null
echo end
""" + "# padding\n" * 4000 + "# {marker} at the end, beyond any shell's first read\n")
"""Reads every descriptor of the shell and of a child, and stdin; the script holds a
marker at both ends (a shell reading its script as it goes has not read the end yet)."""


@pytest.mark.parametrize("shell", ["/bin/sh", "bash"])
@pytest.mark.parametrize("use_pidfd", [True, False])
async def test_4_no_process_of_the_step_can_read_the_script(
        shell: str, use_pidfd: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LocalExecutor, "use_pidfd", use_pidfd)
    marker = f"secret-{uuid.uuid4().hex}"
    out = _Out()
    request = CommandRequest("s", LOCAL_HOST, READ_EVERY_FD.format(marker=marker), shell=shell)
    execution = await LocalExecutor().start(request, out)
    status = await asyncio.wait_for(execution.wait(), 30)
    text = "\n".join(out.text)
    assert status.ok, text
    assert "end" in text
    assert marker not in text


async def test_4_stdin_of_the_step_is_empty_and_the_script_runs_whole() -> None:
    out = _Out()
    script = "read x || echo no-input\n" + "".join(f"echo line{i}\n" for i in range(3000))
    execution = await LocalExecutor().start(CommandRequest("s", LOCAL_HOST, script), out)
    assert (await asyncio.wait_for(execution.wait(), 30)).ok
    lines = "\n".join(out.text).split("\n")
    assert lines[0] == "no-input"
    assert lines[-1] == "line2999" and len(lines) == 3001


# --- 8: containment ----------------------------------------------------------------------


def _daemon_workflow(tmp_path: Path, sleep: str, extra: str = "") -> Path:
    run = (f"setsid sh -c '(trap \\\"\\\" TERM; sleep {sleep}; echo y) &'; "
           f"sleep {float(sleep) + 1}")
    return write_workflow(tmp_path, f"""
        [workflow]
        name = "daemon"

        [steps.a]
        run = "{run}"
        {extra}
    """)


def test_8_timeout_ends_a_double_forked_daemon_holding_the_pipes(tmp_path: Path) -> None:
    sleep = _sleep_value()
    path = _daemon_workflow(tmp_path, sleep, 'timeout = "1s"')
    try:
        started = time.monotonic()
        result = baton("run", path, "--headless", "--no-history", timeout=60)
        elapsed = time.monotonic() - started
        assert result.returncode == 1, result.stderr
        assert "timed out after 1s" in result.stdout
        assert elapsed < 20  # TERM, 5 s grace, KILL: not the daemon's 5 minutes
        assert _wait_until(lambda: not _alive_with(sleep), 5), "the daemon survived"
    finally:
        _kill_all(sleep)


def test_8_ctrl_c_ends_a_double_forked_daemon(tmp_path: Path) -> None:
    sleep = _sleep_value()
    path = _daemon_workflow(tmp_path, sleep)
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "run", str(path),
                             "--headless", "--no-history"], env=baton_env(), cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_until(lambda: len(_alive_with(sleep)) >= 1, 20)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 130, err
        assert _wait_until(lambda: not _alive_with(sleep), 5), "the daemon survived"
    finally:
        proc.kill()
        _kill_all(sleep)


def test_8_leftover_holding_the_pipes_is_named_and_ended_with_the_run(tmp_path: Path) -> None:
    sleep = _sleep_value()
    path = write_workflow(tmp_path, f"""
        [workflow]
        name = "leftover"

        [steps.a]
        run = "setsid sh -c 'sleep {sleep} &'; echo started"

        [steps.b]
        needs = ["a"]
        run = "sleep 1; echo b"
    """)
    try:
        started = time.monotonic()
        result = baton("run", path, "--headless", "--no-history", timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert time.monotonic() - started < 15
        assert "still running after the step's shell exited" in result.stdout
        assert "(sleep)" in result.stdout
        assert _wait_until(lambda: not _alive_with(sleep), 5), "the leftover survived"
    finally:
        _kill_all(sleep)


# --- 4 and 8 over SSH --------------------------------------------------------------------

sshd_fleet = sshd.sshd_fleet


@pytest.fixture
async def remote(sshd_fleet: Fleet) -> AsyncIterator[SSHExecutor]:
    from console.model.workflow import Host

    server = sshd_fleet.servers[0]
    host = Host(name="web1", address=server.address, port=server.port, user="root",
                identity=str(sshd_fleet.client_key), known_hosts=str(sshd_fleet.known_hosts))
    executor = SSHExecutor(host, ssh_config=[], connect_timeout=5.0)
    yield executor
    await executor.close()


@pytest.mark.parametrize("shell", ["/bin/sh", "bash"])
async def test_4_remote_no_process_of_the_step_can_read_the_script(
        remote: SSHExecutor, shell: str) -> None:
    marker = f"secret-{uuid.uuid4().hex}"
    out = _Out()
    request = CommandRequest("s", remote.host, READ_EVERY_FD.format(marker=marker), shell=shell)
    execution = await remote.start(request, out)
    status = await asyncio.wait_for(execution.wait(), 30)
    text = "\n".join(out.text)
    assert status.ok, text
    assert "end" in text
    assert marker not in text


async def test_8_remote_terminate_ends_a_daemon_that_left_the_session(
        remote: SSHExecutor) -> None:
    sleep = _sleep_value()
    script = f"setsid sh -c '(trap \"\" TERM; sleep {sleep}; echo y) &'; sleep 306"
    execution = await remote.start(CommandRequest("s", remote.host, script), _Out())
    try:
        for _ in range(100):
            if _alive_with(sleep):
                break
            await asyncio.sleep(0.1)
        assert _alive_with(sleep)
        started = time.monotonic()
        await asyncio.wait_for(execution.terminate(grace=0.5), 20)
        status = await asyncio.wait_for(execution.wait(), 10)
        assert time.monotonic() - started < 10
        assert status.signal in (15, 9), status
        for _ in range(50):
            if not _alive_with(sleep):
                break
            await asyncio.sleep(0.1)
        assert not _alive_with(sleep), "the daemon survived"
    finally:
        _kill_all(sleep)


async def test_8_remote_leftover_is_named_and_the_task_ends(remote: SSHExecutor) -> None:
    sleep = _sleep_value()
    out = _Out()
    script = f"setsid sh -c 'sleep {sleep} &'; echo started"
    execution = await remote.start(CommandRequest("s", remote.host, script), out)
    try:
        status = await asyncio.wait_for(execution.wait(), 15)
        assert status.ok
        text = "\n".join(out.text)
        assert "still running after the step's shell exited" in text and "(sleep)" in text
        assert _alive_with(sleep)
        await remote.close()  # the run ends: the session's EXIT trap ends the leftovers
        for _ in range(50):
            if not _alive_with(sleep):
                break
            await asyncio.sleep(0.1)
        assert not _alive_with(sleep), "the leftover survived the run"
    finally:
        _kill_all(sleep)
