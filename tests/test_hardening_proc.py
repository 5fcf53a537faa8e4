"""Issue 11 (hardening), process and state items: the script fd (4), containment of
what a step starts (8), leftovers after a crash (9), history failures (10), the log cap
(11), the state directory (13, 16) and concurrent runs of one workflow (17)."""

from __future__ import annotations

import asyncio
import json
import os
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
from hypothesis import given, settings
from hypothesis import strategies as st

from console.executors.base import GRACE_ENV, CommandRequest
from console.executors.local import LocalExecutor
from console.executors.ssh import SSHExecutor
from console.model.workflow import LOCAL_HOST
from console.store import Store, StoreError
from console.store.logs import LogFiles
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


READ_EVERY_FD_SHORT = r"""# {marker}
for f in /proc/$$/fd/* /proc/self/fd/*; do [ -p "$f" ] || cat "$f" 2>/dev/null; done
sh -c 'for f in /proc/$PPID/fd/* /proc/$$/fd/*; do [ -p "$f" ] || cat "$f"; done' 2>/dev/null
cat 2>/dev/null
echo end"""
"""Under the short-script size: read by the shell's own ``read``."""

READ_EVERY_FD = (r"""# {marker}
for f in /proc/$$/fd/* /proc/self/fd/*; do [ -p "$f" ] || cat "$f" 2>/dev/null; done
sh -c 'for f in /proc/$PPID/fd/* /proc/$$/fd/*; do [ -p "$f" ] || cat "$f"; done' 2>/dev/null
for f in /proc/$$/fd/*; do [ -p "$f" ] && timeout 1 cat "$f" </dev/null 2>/dev/null; done
cat 2>/dev/null
echo end
""" + "# padding\n" * 4000 + "# {marker} at the end, beyond any shell's first read\n")
"""Reads every descriptor of the shell and of a child, and stdin; the script holds a
marker at both ends (a shell reading its script as it goes has not read the end yet)."""


@pytest.mark.parametrize("script", [READ_EVERY_FD, READ_EVERY_FD_SHORT], ids=["long", "short"])
@pytest.mark.parametrize("shell", ["/bin/sh", "bash"])
@pytest.mark.parametrize("use_pidfd", [True, False])
async def test_4_no_process_of_the_step_can_read_the_script(
        shell: str, use_pidfd: bool, script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LocalExecutor, "use_pidfd", use_pidfd)
    marker = f"secret-{uuid.uuid4().hex}"
    out = _Out()
    request = CommandRequest("s", LOCAL_HOST, script.format(marker=marker), shell=shell)
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


EXACT = ("printf '%s|\\n' '  lead' 'back\\slash' 'tab\there' \"dq \\\"x\\\"\"\n"
         "cat <<'EOF'\n  a \\ b\nEOF\n"
         "printf 'no newline at the end\\n'")
"""Leading blanks, backslashes, a heredoc and no final newline survive the hand-over."""


@pytest.mark.parametrize("pad", [0, 2000], ids=["short", "long"])
@pytest.mark.parametrize("shell", ["/bin/sh", "bash"])
async def test_4_the_script_reaches_the_shell_byte_for_byte(shell: str, pad: int) -> None:
    out = _Out()
    script = "#" * pad + "\n" + EXACT
    execution = await LocalExecutor().start(CommandRequest("s", LOCAL_HOST, script,
                                                           shell=shell), out)
    assert (await asyncio.wait_for(execution.wait(), 30)).ok
    assert "\n".join(out.text).split("\n") == [
        "  lead|", "back\\slash|", "tab\there|", 'dq "x"|', "  a \\ b",
        "no newline at the end"]


# --- 8: containment ----------------------------------------------------------------------


SHORT_GRACE = {GRACE_ENV: "1"}
"""The daemon ignores TERM: the run KILLs it after the grace, 1 s here instead of 5."""


def test_the_kill_grace_is_5_s_unless_the_environment_sets_a_usable_one() -> None:
    def grace(value: str | None) -> str:
        env = baton_env()
        env.pop(GRACE_ENV, None)
        if value is not None:
            env[GRACE_ENV] = value
        return subprocess.run(
            [sys.executable, "-c", "from console.executors.base import GRACE_SECONDS as g;"
             "print(g)"], env=env, cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.strip()

    assert [grace(v) for v in (None, "1", "0.5", "0", "x", "-1", "nan", "inf", "601")] == [
        "5.0", "1.0", "0.5", "0.0", "5.0", "5.0", "5.0", "5.0", "5.0"]


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
        result = baton("run", path, "--headless", "--no-history", timeout=60,
                       env=SHORT_GRACE)
        elapsed = time.monotonic() - started
        assert result.returncode == 1, result.stderr
        assert "timed out after 1s" in result.stdout
        assert elapsed < 20  # TERM, the grace, KILL: not the daemon's 5 minutes
        assert _wait_until(lambda: not _alive_with(sleep), 5), "the daemon survived"
    finally:
        _kill_all(sleep)


def test_8_ctrl_c_ends_a_double_forked_daemon(tmp_path: Path) -> None:
    sleep = _sleep_value()
    path = _daemon_workflow(tmp_path, sleep)
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "run", str(path),
                             "--headless", "--no-history"], env=baton_env(SHORT_GRACE),
                            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
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



@pytest.fixture
async def remote(sshd_fleet: Fleet) -> AsyncIterator[SSHExecutor]:
    from console.model.workflow import Host

    server = sshd_fleet.servers[0]
    host = Host(name="web1", address=server.address, port=server.port, user="root",
                identity=str(sshd_fleet.client_key), known_hosts=str(sshd_fleet.known_hosts))
    executor = SSHExecutor(host, ssh_config=[], connect_timeout=5.0)
    yield executor
    await executor.close()


@pytest.mark.parametrize("script", [READ_EVERY_FD, READ_EVERY_FD_SHORT], ids=["long", "short"])
@pytest.mark.parametrize("shell", ["/bin/sh", "bash"])
async def test_4_remote_no_process_of_the_step_can_read_the_script(
        remote: SSHExecutor, shell: str, script: str) -> None:
    marker = f"secret-{uuid.uuid4().hex}"
    out = _Out()
    request = CommandRequest("s", remote.host, script.format(marker=marker), shell=shell)
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


# --- 13: the state directory ---------------------------------------------------------------


OK_FLOW = """
    [workflow]
    name = "ok"

    [steps.a]
    run = "echo hello"
"""


def test_13_a_planted_probe_link_is_not_written_through(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    target = tmp_path / "precious"
    target.write_text("keep me")
    (home / f".write-test-{os.getpid()}").symlink_to(target)
    Store.open(home).close()
    assert target.read_text() == "keep me"
    assert not os.path.lexists(home / f".write-test-{os.getpid()}")


@pytest.mark.parametrize("name", ["history.sqlite", "history.sqlite-wal"])
def test_13_a_planted_database_link_is_refused(tmp_path: Path, name: str) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    target = tmp_path / "precious"
    target.write_text("keep me")
    target.chmod(0o644)
    (home / name).symlink_to(target)
    with pytest.raises(StoreError, match="symbolic link") as caught:
        Store.open(home)
    assert str(home / name) in str(caught.value)
    assert target.read_text() == "keep me"
    assert target.stat().st_mode & 0o777 == 0o644


def test_13_a_planted_log_link_is_not_written_through(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "logs").mkdir(parents=True, mode=0o700)
    home.chmod(0o700)
    target = tmp_path / "elsewhere"
    target.mkdir()
    (home / "logs" / "r1").symlink_to(target)
    from console.store.logs import LogFiles

    files = LogFiles(home, "r1")
    with pytest.raises(StoreError, match="symbolic link"):
        files.write("a", "local", 1, "secret output\n")
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("where", ["home", "logs", "locks"])
def test_13_loose_modes_are_refused_with_the_fix(tmp_path: Path, where: str) -> None:
    home = tmp_path / "home"
    path = write_workflow(tmp_path, OK_FLOW)
    assert baton("run", path, "--headless", env={"BATON_HOME": str(home)}).returncode == 0
    folder = home if where == "home" else home / where
    folder.chmod(0o777)
    for args in (["run", path, "--headless"], ["runs"]):
        result = baton(*args, env={"BATON_HOME": str(home)})
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1
        assert str(folder) in result.stderr and f"chmod 700 {folder}" in result.stderr
    assert folder.stat().st_mode & 0o777 == 0o777  # refused, not silently changed


def test_13_a_home_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a folder away")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.chown(home, 12345, 12345)
    result = baton("runs", env={"BATON_HOME": str(home)})
    assert result.returncode == 2
    assert f"{home} is owned by uid 12345" in result.stderr and "chown" in result.stderr


# --- 16: reading history needs no write access ----------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> object:
    mount = tmp_path / "mnt"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs",
                           str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> None:
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


@pytest.mark.parametrize("how", ["full", "read-only"])
def test_16_runs_and_show_work_on_a_full_or_read_only_home(
        tmp_path: Path, small_tmpfs: Path, how: str) -> None:
    home = small_tmpfs / "home"
    path = write_workflow(tmp_path, OK_FLOW)
    result = baton("run", path, "--headless", env={"BATON_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    listed = baton("runs", "--json", env={"BATON_HOME": str(home)})
    run_id = listed.stdout.split('"id": "')[1].split('"')[0]
    if how == "full":
        _fill(small_tmpfs)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    runs = baton("runs", env={"BATON_HOME": str(home)})
    assert runs.returncode == 0, runs.stderr
    assert run_id in runs.stdout
    shown = baton("show", run_id, "--json", env={"BATON_HOME": str(home)})
    assert shown.returncode == 0, shown.stderr
    assert '"succeeded"' in shown.stdout


# --- 11: per-attempt log cap -----------------------------------------------------------------



@settings(max_examples=60, deadline=None)
@given(lines=st.lists(st.text(alphabet="abcxyz 0123", max_size=300), min_size=1, max_size=150),
       cuts=st.lists(st.integers(1, 4000), min_size=1, max_size=40),
       limit=st.sampled_from([4096, 5000, 9000]))
def test_11_the_log_keeps_head_and_tail_and_says_what_was_dropped(
        tmp_path_factory: pytest.TempPathFactory, lines: list[str], cuts: list[int],
        limit: int) -> None:
    home = tmp_path_factory.mktemp("home")
    home.chmod(0o700)
    text = "".join(f"{i}:{line}\n" for i, line in enumerate(lines))
    files = LogFiles(home, "r", limit)
    at = 0
    for size in cuts * (len(text) // sum(cuts) + 1):
        if at >= len(text):
            break
        files.write("a", "local", 1, text[at : at + size])
        at += size
    files.close()
    log = (home / "logs" / "r" / "a@local.1.log").read_text()
    if "[baton: " not in log:
        assert log == text and len(text) <= limit
        return
    head, _, rest = log.partition("[baton: ")
    note, _, tail = rest.partition("]\n")
    dropped = int(note.split()[0])
    assert text.startswith(head) and text.endswith(tail)
    assert len(head) + dropped + len(tail) == len(text)
    assert len(head) + len(tail) <= limit
    assert head == "" or head.endswith("\n")
    assert tail == "" or text[len(text) - len(tail) - 1] == "\n"  # whole lines
    assert "bytes of output dropped here" in note
    assert not (home / "logs" / "r" / "a@local.1.log.tail").exists()


def test_11_log_limit_caps_a_flooding_step(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = write_workflow(tmp_path, """
        [workflow]
        name = "flood"
        log_limit = "64KiB"

        [steps.a]
        run = "seq 1 200000"
    """)
    result = baton("run", path, "--headless", "--json", env={"BATON_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    logs = list((home / "logs").rglob("a@local.1.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert len(text) < 64 * 1024 + 200
    assert text.startswith("1\n2\n3\n") and text.endswith("199999\n200000\n")
    assert "bytes of output dropped here" in text


def test_11_log_limit_is_checked(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, """
        [workflow]
        name = "bad"
        log_limit = "lots"

        [steps.a]
        run = "true"
    """)
    result = baton("check", path)
    assert result.returncode == 1
    assert f"{path}:3:" in result.stdout and "log_limit" in result.stdout


# --- 10: a history that cannot be written ------------------------------------------------------


@pytest.mark.parametrize("mode", ["human", "json"])
def test_10_a_full_home_stops_the_run_and_never_reports_success(
        tmp_path: Path, small_tmpfs: Path, mode: str) -> None:
    home = small_tmpfs / "home"
    side = tmp_path / "side"
    path = write_workflow(tmp_path, f"""
        [workflow]
        name = "full"

        [steps.a]
        run = "echo a >> {side}; seq 1 400000"

        [steps.b]
        needs = ["a"]
        run = "echo b >> {side}"
    """)
    args = ["run", path, "--headless", *(["--json"] if mode == "json" else [])]
    result = baton(*args, env={"BATON_HOME": str(home)}, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "No space left on device" in result.stderr
    assert "error" in result.stderr and "not reported as a success" in result.stderr
    assert "succeeded" not in result.stdout  # neither the task nor the run
    assert side.read_text().split() == ["a"]  # b never started
    # the log says it was cut, not silently
    assert "cannot write the log" in result.stderr
    # space comes back: a resume re-runs only what was not reported done
    for log in (home / "logs").rglob("*.log"):
        log.unlink()
    listed = baton("runs", "--json", env={"BATON_HOME": str(home)})
    assert listed.returncode == 0, listed.stderr
    assert '"state": "succeeded"' not in listed.stdout


def test_10_success_printed_is_never_re_run(tmp_path: Path, small_tmpfs: Path) -> None:
    home = small_tmpfs / "home"
    side = tmp_path / "side"
    path = write_workflow(tmp_path, f"""
        [workflow]
        name = "full later"

        [steps.a]
        run = "echo a >> {side}"

        [steps.b]
        needs = ["a"]
        run = "echo b >> {side}; seq 1 400000"

        [steps.c]
        needs = ["b"]
        run = "echo c >> {side}"
    """)
    result = baton("run", path, "--headless", "--json", env={"BATON_HOME": str(home)},
                   timeout=120)
    assert result.returncode == 2, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    printed = {e["step"] for e in events if e["type"] == "task" and e["state"] == "succeeded"}
    assert "succeeded" not in result.stderr  # nor in the summary
    assert "c" not in side.read_text().split()
    for log in (home / "logs").rglob("*.log"):
        log.unlink()
    assert "a" in printed  # it succeeded before the disk filled up
    listed = baton("runs", "--json", env={"BATON_HOME": str(home)})
    run_id = listed.stdout.split('"id": "')[1].split('"')[0]
    again = baton("resume", run_id, "--headless", "--yes", env={"BATON_HOME": str(home)},
                  timeout=120)
    ran = side.read_text().split()
    for step in printed:
        assert ran.count(step) == 1, (step, ran, again.stdout)


# --- 17: two live runs of one workflow ---------------------------------------------------------


def _start_holding(path: Path, home: Path, gate: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "run", str(path),
                             "--headless", "--yes"], env=baton_env({"BATON_HOME": str(home)}),
                            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert _wait_until(lambda: gate.exists(), 30), "the first run did not start"
    return proc


@pytest.mark.parametrize("exclusive", [False, True])
def test_17_a_second_live_run_is_warned_or_refused(tmp_path: Path, exclusive: bool) -> None:
    home = tmp_path / "home"
    gate, go = tmp_path / "started", tmp_path / "go"
    path = write_workflow(tmp_path, f"""
        [workflow]
        name = "once"
        exclusive = {str(exclusive).lower()}

        [steps.a]
        run = "echo x >> {gate}; while [ ! -e {go} ]; do sleep 0.05; done; echo y >> {tmp_path}/ran"
    """)
    first = _start_holding(path, home, gate)
    try:
        listed = baton("runs", "--json", env={"BATON_HOME": str(home)})
        first_id = json.loads(listed.stdout.splitlines()[0])["id"]
        second = subprocess.Popen([sys.executable, "-m", "console.cli", "run", str(path),
                                   "--headless", "--yes"],
                                  env=baton_env({"BATON_HOME": str(home)}), cwd=REPO,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        if exclusive:
            _, err = second.communicate(timeout=30)
            assert second.returncode == 2, err
            assert err.count("\n") == 1 and first_id in err and "exclusive" in err
        else:  # both run: the second's step starts while the first still holds
            assert _wait_until(lambda: gate.read_text().count("x") == 2, 60)
            go.touch()
            _, err = second.communicate(timeout=30)
            assert second.returncode == 0, err
            assert "warning" in err and first_id in err and "live" in err
        go.touch()
        assert first.wait(timeout=30) == 0
    finally:
        go.touch()
        first.kill()
    assert (tmp_path / "ran").read_text().count("y") == (1 if exclusive else 2)
    # once the first is over, an exclusive workflow runs again
    if exclusive:
        again = baton("run", path, "--headless", "--yes", env={"BATON_HOME": str(home)})
        assert again.returncode == 0 and "warning" not in again.stderr


# --- 9: what a killed baton left running ----------------------------------------------------


def test_9_resume_reports_and_ends_leftovers_before_re_running(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sleep, daemon = _sleep_value(), _sleep_value()
    mark = tmp_path / "mark"
    path = write_workflow(tmp_path, f"""
        [workflow]
        name = "crash"

        [steps.a]
        run = '''
        if [ -e {mark} ]; then
          pgrep -f "sleep {sleep}|sleep {daemon}" >/dev/null && echo LEFTOVER-STILL-THERE
          echo second
        else
          touch {mark}
          setsid sh -c 'sleep {daemon} &'
          sleep {sleep}
        fi
        '''
    """)
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "run", str(path),
                             "--headless", "--yes"], env=baton_env({"BATON_HOME": str(home)}),
                            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert _wait_until(lambda: _alive_with(sleep) and _alive_with(daemon), 30)
        time.sleep(0.3)  # the identity row is committed with the pass after the start
        proc.kill()
        proc.wait()
        assert _alive_with(sleep) and _alive_with(daemon)  # survived baton: the bug
        listed = baton("runs", "--json", env={"BATON_HOME": str(home)})
        run_id = json.loads(listed.stdout.splitlines()[0])["id"]
        result = baton("resume", run_id, "--headless", "--yes",
                       env={"BATON_HOME": str(home)}, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "attempt 1 of a was interrupted but left processes running" in result.stderr
        assert "(sleep)" in result.stderr and "ended them" in result.stderr
        assert "second" in result.stdout and "LEFTOVER-STILL-THERE" not in result.stdout
        assert not _alive_with(sleep) and not _alive_with(daemon)
    finally:
        proc.kill()
        _kill_all(sleep)
        _kill_all(daemon)


def test_9_a_leftover_ended_is_not_waited_for_until_its_parent_reaps_it() -> None:
    """An ended leftover is a zombie until its parent (for an orphan: init, which may take
    seconds) reaps it; it has ended. Waiting for the reaping cost the whole grace on every
    resume that ended a leftover (2 s; 10 here), as psutil.wait_procs waited."""
    from console.executors.leftovers import Leftover, end_local

    # `sleep 60` becomes the parent of the leftover and never reaps it
    parent = subprocess.Popen(["sh", "-c", "sleep 30 & echo $!; exec sleep 60"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        leftover = psutil.Process(int(parent.stdout.readline()))
        assert _wait_until(lambda: psutil.Process(parent.pid).cmdline() == ["sleep", "60"],
                           10)  # the shell (which would reap it) is gone
        started = time.monotonic()
        survivors = end_local([Leftover("s", "local", 1, "tag", [leftover.pid])], grace=10)
        took = time.monotonic() - started
        assert survivors == []
        assert leftover.status() == psutil.STATUS_ZOMBIE  # ended, not reaped
        assert took < 5, f"ending it took {took:.1f} s"
    finally:
        parent.kill()
        parent.wait()


def test_9_the_attempt_identity_is_stored(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = write_workflow(tmp_path, OK_FLOW)
    assert baton("run", path, "--headless", env={"BATON_HOME": str(home)}).returncode == 0
    with Store.open(home) as store:
        rows = store._db.execute("SELECT step, host, number, tag, pid, started, sid "
                                 "FROM processes").fetchall()
    assert len(rows) == 1
    step, host, number, tag, pid, started, sid = rows[0]
    assert (step, host, number) == ("a", "local", 1)
    assert len(tag) == 16 and pid > 0 and started > 0 and sid == pid


async def test_9_remote_leftovers_are_found_and_ended_by_tag(sshd_fleet: Fleet) -> None:
    import asyncssh

    from console.executors.leftovers import handle_remote
    from console.executors.ssh import ssh_executor_factory
    from console.model.workflow import Host, Workflow

    server = sshd_fleet.servers[0]
    host = Host(name="web1", address=server.address, port=server.port, user="root",
                identity=str(sshd_fleet.client_key), known_hosts=str(sshd_fleet.known_hosts))
    workflow = Workflow(name="remote crash", hosts={"web1": host})
    sleep, tag = _sleep_value(), uuid.uuid4().hex[:16]
    async with asyncssh.connect(server.address, port=server.port, username="root",
                                client_keys=[str(sshd_fleet.client_key)], config=[],
                                known_hosts=str(sshd_fleet.known_hosts)) as conn:
        # what a killed baton leaves on a host: a tagged process outside any session of ours
        await conn.run(f"BATON_ATTEMPT={tag} setsid sleep {sleep} </dev/null >/dev/null 2>&1 &")
    try:
        assert _wait_until(lambda: bool(_alive_with(sleep)), 10)
        rows = [("a", "web1", 1, tag, None, None, None)]
        factory = ssh_executor_factory(workflow, ssh_config=[], connect_timeout=5.0)
        found, problems = await handle_remote(workflow, rows, end=False, executor_for=factory)
        assert problems == [] and len(found) == 1 and "(sleep)" in found[0].names
        assert _alive_with(sleep)  # finding ends nothing
        found, problems = await handle_remote(workflow, rows, end=True, executor_for=factory)
        assert problems == [] and len(found) == 1
        assert _wait_until(lambda: not _alive_with(sleep), 5)
    finally:
        _kill_all(sleep)


@pytest.mark.parametrize("ignores_term", [False, True])
def test_9_the_remote_end_script_waits_only_as_long_as_the_leftovers_live(
        ignores_term: bool) -> None:
    """The script that ends a remote attempt's leftovers (run here by the local sh, as a
    host's shell runs it): TERM, then KILL for what is still running after 2 s; a leftover
    that ends at the TERM is not waited for (a fixed 2.5 s wait did)."""
    from console.executors.leftovers import REMOTE_SCRIPT

    tag = uuid.uuid4().hex[:16]
    trap = "trap '' TERM; " if ignores_term else ""
    leftover = subprocess.Popen(["sh", "-c", f"{trap}sleep 30; sleep 30"],
                                env={**os.environ, "BATON_ATTEMPT": tag},
                                start_new_session=True)
    try:
        assert _wait_until(lambda: len(psutil.Process(leftover.pid).children()) == 1, 10)
        started = time.monotonic()
        ended = subprocess.run(["sh", "-c", f"T={tag}; E=1\n{REMOTE_SCRIPT}"],
                               capture_output=True, text=True, timeout=30)
        took = time.monotonic() - started
        assert ended.returncode == 0, ended.stderr
        assert [line.split()[0] for line in ended.stdout.splitlines()] == ["left", "left"]
        assert leftover.wait(timeout=5) == (-signal.SIGKILL if ignores_term else -signal.SIGTERM)
        if ignores_term:
            assert took >= 2, f"KILLed after {took:.1f} s, before the grace"
        else:
            assert took < 2, f"ending it took {took:.1f} s"  # it waited 2.5 s
    finally:
        leftover.kill()
        leftover.wait()


def test_9_console_resume_asks_before_ending_leftovers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sleep = _sleep_value()
    path = write_workflow(tmp_path, f"""
        [workflow]
        name = "crash console"

        [steps.a]
        run = "sleep {sleep}"
    """)
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "run", str(path),
                             "--headless", "--yes"], env=baton_env({"BATON_HOME": str(home)}),
                            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert _wait_until(lambda: bool(_alive_with(sleep)), 30)
        time.sleep(0.3)
        proc.kill()
        proc.wait()
        listed = baton("runs", "--json", env={"BATON_HOME": str(home)})
        run_id = json.loads(listed.stdout.splitlines()[0])["id"]
        primary, secondary = os.openpty()
        try:
            child = subprocess.Popen([sys.executable, "-m", "console.cli", "resume", run_id],
                                     env=baton_env({"BATON_HOME": str(home)}), cwd=REPO,
                                     stdin=secondary, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
            os.write(primary, b"n\n")
            _, err = child.communicate(timeout=60)
        finally:
            os.close(primary)
            os.close(secondary)
        assert child.returncode == 2, err
        assert "attempt 1 of a was interrupted but left processes running" in err
        assert "End them before resuming? [y/N]" in err and "resume refused" in err
        assert _alive_with(sleep)  # the operator said no: nothing was ended
    finally:
        proc.kill()
        _kill_all(sleep)


# --- 10 in the console -----------------------------------------------------------------------


async def test_10_console_shows_a_banner_and_starts_nothing_new(tmp_path: Path) -> None:
    from console.engine.events import RunState, TaskState
    from console.ui.screens.run_screen import RunScreen
    from console.ui.widgets.banner import HistoryBanner
    from tests.history_helpers import flow_file, history_app
    from tests.ui_helpers import SIZE, until

    with Store.open(tmp_path / "home") as store:
        app, world = history_app(flow_file(tmp_path), store, start=True)
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: isinstance(app.screen, RunScreen), timeout=15)
            screen = app.screen
            assert isinstance(screen, RunScreen)
            ship = screen.run.tasks[("ship", "local")]
            await until(lambda: ship.state is TaskState.AWAITING_APPROVAL, timeout=15)
            banner = screen.query_one(HistoryBanner)
            assert not banner.display
            store._db.close()  # the history can no longer be written
            screen.run.approve("ship")  # the operator's approval cannot be recorded
            await pilot.pause()
            await until(lambda: banner.display, timeout=10)
            await until(lambda: screen.run.state is RunState.FAILED, timeout=10)
            assert "history not written" in str(banner.render())
            assert "ship" not in world.order()  # nothing new started
            assert ship.state is not TaskState.SUCCEEDED
