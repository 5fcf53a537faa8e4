"""LocalExecutor with real processes: output, exit status, errors, secrecy, tree kill."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from console.executors.base import CommandRequest, ExitStatus
from console.executors.lines import MAX_LINE
from console.executors.local import LocalExecution, LocalExecutor
from console.executors.proctree import kill_tree_sync
from console.model.workflow import LOCAL_HOST


class Output:
    """Collects on_output calls and checks every chunk is made of whole lines."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.calls = 0

    def __call__(self, stream: str, text: str) -> None:
        self.calls += 1
        self.lines[stream].extend(text.split("\n"))

    @property
    def stdout(self) -> list[str]:
        return self.lines["stdout"]

    @property
    def stderr(self) -> list[str]:
        return self.lines["stderr"]


_started: list[LocalExecution] = []


@pytest.fixture(autouse=True, params=["pidfd", "transports"])
def spawn_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on each path: pidfd + raw pipes (Linux) and asyncio's transports."""
    monkeypatch.setattr(LocalExecutor, "use_pidfd", request.param != "transports")
    return request.param


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    """Whatever a test leaves running (it failed half-way) is killed, group and all."""
    yield
    while _started:
        pid = _started.pop().pid
        if pid is not None:
            kill_tree_sync(pid, pid, grace=0.2)


async def start(script: str, output: Output | None = None, **kwargs: object) -> LocalExecution:
    request = CommandRequest(step="s", host=LOCAL_HOST, script=script, **kwargs)  # type: ignore[arg-type]
    execution = await LocalExecutor().start(request, output if output is not None else Output())
    _started.append(execution)
    return execution


async def run(script: str, **kwargs: object) -> tuple[ExitStatus, Output]:
    output = Output()
    execution = await start(script, output, **kwargs)
    status = await asyncio.wait_for(execution.wait(), 30)
    return status, output


async def wait_for_descendants(pid: int, count: int, sessions: int = 1) -> list[psutil.Process]:
    """Wait until ``pid`` has ``count`` descendants spread over ``sessions`` sessions."""
    for _ in range(500):
        children = psutil.Process(pid).children(recursive=True)
        if len(children) >= count and len(_sessions(children)) >= sessions:
            return children
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} descendants of {pid} in {sessions} sessions")


def _sessions(procs: list[psutil.Process]) -> set[int]:
    found = set()
    for proc in procs:
        try:
            found.add(os.getsid(proc.pid))
        except OSError:
            pass
    return found


def is_gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# --- output -------------------------------------------------------------------------


async def test_stdout_and_stderr_are_separate_and_ordered() -> None:
    status, out = await run("for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done")
    assert status == ExitStatus(exit_code=0)
    assert out.stdout == [f"out{i}" for i in range(1, 6)]
    assert out.stderr == [f"err{i}" for i in range(1, 6)]


async def test_final_line_without_newline_is_kept() -> None:
    status, out = await run("printf 'a\\nb'; printf 'tail' >&2")
    assert status.ok
    assert out.stdout == ["a", "b"]
    assert out.stderr == ["tail"]


async def test_invalid_utf8_is_replaced() -> None:
    _, out = await run("printf 'ok \\377\\376 end\\n'")
    assert out.stdout == ["ok \ufffd\ufffd end"]


async def test_a_3mb_line_is_not_lost() -> None:
    status, out = await run("head -c 3000000 /dev/zero | tr '\\0' x; echo; echo done")
    assert status.ok
    *pieces, last = out.stdout
    assert last == "done"
    assert all(len(piece) <= MAX_LINE for piece in pieces)
    assert "".join(pieces) == "x" * 3_000_000


async def test_100k_lines_arrive_in_order() -> None:
    status, out = await run("seq 1 100000")
    assert status.ok
    assert out.stdout == [str(i) for i in range(1, 100_001)]
    assert out.calls < 100_000  # delivered in chunks, not a call per line


async def test_wait_drains_output_of_background_children() -> None:
    status, out = await run("(sleep 0.3; echo late) & echo early")
    assert status.ok
    assert out.stdout == ["early", "late"]


# --- exit status, environment, errors ------------------------------------------------


@pytest.mark.parametrize("code", [0, 3])
async def test_exit_code(code: int) -> None:
    status, _ = await run(f"exit {code}")
    assert status == ExitStatus(exit_code=code)
    assert status.ok is (code == 0)


async def test_killed_by_a_signal() -> None:
    status, _ = await run("kill -9 $$")
    assert status == ExitStatus(exit_code=None, signal=9)


async def test_env_is_merged_over_the_parent_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BATON_PARENT", "inherited")
    monkeypatch.setenv("BATON_OVERRIDE", "parent")
    status, out = await run(
        'echo "$BATON_PARENT $BATON_OVERRIDE $BATON_NEW"; pwd',
        env={"BATON_OVERRIDE": "step", "BATON_NEW": "new"},
        cwd=str(tmp_path),
    )
    assert status.ok
    assert out.stdout == ["inherited step new", str(tmp_path.resolve())]


async def test_cwd_expands_the_home_directory() -> None:
    _, out = await run("pwd", cwd="~")
    assert out.stdout == [os.path.realpath(os.path.expanduser("~"))]


async def test_missing_cwd_is_a_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    status, out = await run("echo never", cwd=str(missing))
    assert status == ExitStatus(exit_code=None, error=f"cwd {missing} does not exist")
    assert out.calls == 0


async def test_cwd_that_is_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("")
    status, _ = await run("true", cwd=str(afile))
    assert status.error == f"cwd {afile} is not a directory"


async def test_missing_shell_is_a_one_line_error() -> None:
    status, _ = await run("true", shell="/nonexistent/zsh")
    assert status == ExitStatus(
        exit_code=None, error="cannot start /nonexistent/zsh: No such file or directory"
    )


async def test_shell_name_not_on_path() -> None:
    status, _ = await run("true", shell="no-such-shell-baton")
    assert status.error == "cannot start no-such-shell-baton: not found on PATH"


async def test_shell_that_cannot_be_executed(tmp_path: Path) -> None:
    fake = tmp_path / "fakesh"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(stat.S_IRUSR | stat.S_IWUSR)
    status, _ = await run("true", shell=str(fake))
    assert status == ExitStatus(exit_code=None, error=f"cannot start {fake}: Permission denied")


async def test_bad_env_name_is_a_one_line_error() -> None:
    status, _ = await run("true", env={"A=B": "x"})
    assert status.exit_code is None
    assert status.error is not None
    assert status.error.startswith("cannot start /bin/sh:")
    assert "\n" not in status.error


async def test_bash_is_found_on_path() -> None:
    status, out = await run('echo "${BASH_VERSION:+bash}"', shell="bash")
    assert status.ok
    assert out.stdout == ["bash"]


async def test_reading_stdin_does_not_swallow_the_script() -> None:
    status, out = await run("cat\necho after\n")
    assert status.ok
    assert out.stdout == ["after"]


# --- secrecy ---------------------------------------------------------------------------


async def test_script_never_appears_in_any_cmdline() -> None:
    marker = f"baton-fake-secret-{uuid.uuid4().hex}"
    execution = await start(f"TOKEN={marker}\nsleep 30\n")
    try:
        assert execution.pid is not None
        await wait_for_descendants(execution.pid, 1)
        shell_cmdline = psutil.Process(execution.pid).cmdline()
        assert shell_cmdline[0] == "/bin/sh"
        assert shell_cmdline[1] == "-c"  # the fixed bootstrap that reads stdin
        seen = 0
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or ())
            assert marker not in cmdline, f"secret visible in pid {proc.pid}: {cmdline}"
            seen += 1
        assert seen > 2
    finally:
        await execution.terminate(grace=1)


# --- terminate -------------------------------------------------------------------------


async def test_terminate_ends_the_whole_tree_including_setsid_children() -> None:
    execution = await start("sleep 100 & sleep 100 & setsid sleep 100 & wait")
    assert execution.pid is not None
    # One child escapes into its own session: the group alone would miss it.
    tree = await wait_for_descendants(execution.pid, 3, sessions=2)
    shell = psutil.Process(execution.pid)
    started = time.monotonic()
    await execution.terminate(grace=5)
    assert time.monotonic() - started < 3  # they all obey TERM: no waiting for the grace
    assert all(is_gone(proc) for proc in [shell, *tree])
    status = await asyncio.wait_for(execution.wait(), 5)
    assert status == ExitStatus(exit_code=None, signal=signal.SIGTERM)


async def test_terminate_kills_what_ignores_term_after_the_grace() -> None:
    execution = await start("trap '' TERM\nsleep 100\necho not reached\n")
    assert execution.pid is not None
    tree = await wait_for_descendants(execution.pid, 1)
    started = time.monotonic()
    await execution.terminate(grace=0.5)
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 3
    assert all(is_gone(proc) for proc in tree)
    status = await asyncio.wait_for(execution.wait(), 5)
    assert status.signal == signal.SIGKILL


async def test_concurrent_terminate_calls_share_one_kill() -> None:
    execution = await start("sleep 100")
    assert execution.pid is not None
    await wait_for_descendants(execution.pid, 1)
    await asyncio.gather(execution.terminate(grace=1), execution.terminate(grace=1))
    assert (await execution.wait()).signal == signal.SIGTERM


async def test_terminate_after_exit_is_a_no_op() -> None:
    execution = await start("exit 4")
    assert (await execution.wait()).exit_code == 4
    started = time.monotonic()
    await execution.terminate(grace=5)
    await execution.terminate(grace=5)
    assert time.monotonic() - started < 0.1
    assert await execution.wait() == ExitStatus(exit_code=4)


async def test_terminate_of_an_attempt_that_never_started() -> None:
    execution = await start("true", shell="/nonexistent/sh")
    await execution.terminate(grace=1)
    assert (await execution.wait()).error is not None


async def test_terminate_after_exit_still_ends_a_group_holding_the_pipes() -> None:
    execution = await start("sleep 100 &\nexit 0\n")
    assert execution.pid is not None
    pgid = execution.pid
    for _ in range(500):  # the shell exits at once; its background sleep keeps the pipes
        if any(_in_group(proc, pgid) and "sleep" in (proc.info["name"] or "")
               for proc in psutil.process_iter(["name"])):  # (a process may end meanwhile)
            break
        await asyncio.sleep(0.01)
    done = asyncio.ensure_future(execution.wait())
    await asyncio.sleep(0.2)
    assert not done.done()
    await execution.terminate(grace=1)
    assert await asyncio.wait_for(done, 5) == ExitStatus(exit_code=0)


def _in_group(proc: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(proc.pid) == pgid
    except OSError:
        return False


# --- event loops ------------------------------------------------------------------------


def test_one_event_loop_after_another() -> None:
    async def spawn() -> int | None:
        status, out = await run("echo hi")
        assert out.stdout == ["hi"]
        return status.exit_code

    # Nothing of an attempt stays bound to the loop that started the one before.
    assert asyncio.run(spawn()) == 0
    assert asyncio.run(spawn()) == 0


async def test_pidfd_path_uses_no_transport_and_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LocalExecutor, "use_pidfd", True)
    loop = asyncio.get_running_loop()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the pidfd path must not create subprocess transports")

    monkeypatch.setattr(loop, "subprocess_exec", refuse)
    before = set(threading.enumerate())  # threads of earlier tests may end meanwhile

    def started() -> set[threading.Thread]:
        return set(threading.enumerate()) - before

    executions = [await start("sleep 0.3; echo done") for _ in range(8)]
    assert started() == set()
    assert [(await e.wait()).exit_code for e in executions] == [0] * 8
    assert started() == set()


async def test_transport_path_is_really_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LocalExecutor, "use_pidfd", False)
    loop = asyncio.get_running_loop()
    calls = []
    original = loop.subprocess_exec

    async def counted(*args: object, **kwargs: object) -> object:
        calls.append(args[1:])
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "subprocess_exec", counted)
    status, output = await run("echo one; echo two >&2; exit 3")
    assert len(calls) == 1
    assert status == ExitStatus(exit_code=3)
    assert (output.stdout, output.stderr) == (["one"], ["two"])


async def test_a_shell_that_closes_its_output_early_is_still_waited_for() -> None:
    started = time.monotonic()
    status, output = await run("echo before; exec >&- 2>&-; sleep 0.3; exit 7")
    assert status == ExitStatus(exit_code=7)
    assert output.stdout == ["before"]
    assert time.monotonic() - started >= 0.3


# --- spawn: its own session, only the kept fd -----------------------------------------


def test_spawn_starts_a_session_with_only_the_kept_fd() -> None:
    from console.executors.spawn import spawn

    read, write = os.pipe()
    hold_read, hold_write = os.pipe()  # the child's stdin: it waits until this closes
    keep = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        child = spawn(["/bin/sh", "-c", "ls /proc/self/fd; exec >&- 2>&-; read x; exit 0"],
                      stdin=hold_read, stdout=write, stderr=write, env={"X": "1"},
                      cwd="/", keep_fd=keep)
        os.close(write)
        output = b""
        while chunk := os.read(read, 4096):
            output += chunk
        assert os.getsid(child.pid) == child.pid  # a session of its own
        os.close(hold_write)
        child.wait()
    finally:
        for fd in (read, hold_read, keep):
            os.close(fd)
    assert child.returncode == 0
    fds = sorted(int(fd) for fd in output.decode().split())
    assert fds == sorted({0, 1, 2, 3, keep})  # 3: the folder ls is reading
