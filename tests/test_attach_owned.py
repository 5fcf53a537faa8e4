"""Issue 15: a run resumed from the console's history screen is owned by a runner (the
app's RunOwner), as `baton run FILE` is; the console shows it through its client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from console.engine.events import RunState, TaskState
from console.runner.attach_app import AttachedRunScreen
from console.runner.mirror import RemoteRun
from console.runner.owned import RunnerOwner
from console.store import Store
from tests.conftest import REPO, baton_env
from tests.history_helpers import flow_file, history_app
from tests.ui_helpers import SIZE, until


async def test_resume_from_the_history_screen_is_owned_by_a_runner(tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    path = flow_file(tmp_path, "killed.toml", textwrap.dedent(f'''
        [workflow]
        name = "killed"
        [steps.first]
        run = "echo first >> {side}"
        [steps.slow]
        needs = ["first"]
        run = "echo slow >> {side}; sleep 30"
        [steps.after]
        needs = ["slow"]
        run = "echo after >> {side}"
    ''').lstrip())
    with Store.open(tmp_path / "home") as store:
        proc = subprocess.Popen(
            [sys.executable, "-m", "console.cli", "run", str(path), "--headless", "--json"],
            cwd=REPO, env=baton_env({"BATON_HOME": str(store.home)}),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if '"step":"slow"' in line.replace(" ", "") and '"running"' in line:
                break
        proc.kill()
        proc.wait()
        [summary] = store.runs()
        app, _ = history_app(path, store, start=False)
        app.owner = RunnerOwner(store.home)
        runner_pid = None
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: app.screen.is_mounted and app.screen is not app.screen_stack[0],
                        timeout=15)
            app.resume_run(summary.id)  # what the history screen's resume asks for
            await until(lambda: isinstance(app.screen, AttachedRunScreen), timeout=30)
            screen = app.screen
            remote = screen.run
            assert isinstance(remote, RemoteRun) and remote.id == summary.id
            runner_pid = remote.owner_pid
            assert runner_pid is not None and runner_pid != os.getpid()
            await until(lambda: remote.tasks[("slow", "local")].state
                        is TaskState.INTERRUPTED, timeout=15)
            remote.skip("slow", "local", "killed")  # through the runner
            await until(lambda: remote.state is RunState.SUCCEEDED, timeout=30)
            await pilot.press("q")
            await until(lambda: app.return_code is not None, timeout=15)
        assert app.return_code == 0
        stored = store.load(summary.id)
        assert stored.run.state == "succeeded"
        assert [w for w in side.read_text().split() if w != "slow"] == ["first", "after"]
        if runner_pid is not None:
            try:
                os.kill(runner_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


async def test_esc_on_a_folder_run_detaches_and_goes_back_to_the_folder(
        tmp_path: Path) -> None:
    """A run opened from the folder view is a runner's: Esc asks detach / cancel / stay;
    detach goes back to the folder (the console stays) and the run goes on."""
    from console.runner.attach_app import DetachModal
    from console.runner.commands import live_ids
    from console.ui.app import BatonApp
    from console.ui.screens.folder import FolderScreen

    folder = tmp_path / "flows"
    folder.mkdir()
    stop = tmp_path / "stop"
    (folder / "wait.toml").write_text(
        '[workflow]\nname = "Folder wait"\n[steps.wait]\n'
        f'run = "while [ ! -e {stop} ]; do sleep 0.05; done"\n')
    home = tmp_path / "home"
    with Store.open(home) as store:
        app = BatonApp(folder, store=store, owner=RunnerOwner(home),
                       config_file=tmp_path / "c.toml")
        pid = None
        try:
            async with app.run_test(size=SIZE) as pilot:
                await until(lambda: isinstance(app.screen, FolderScreen))
                await pilot.press("enter")
                await until(lambda: isinstance(app.screen, AttachedRunScreen), timeout=30)
                remote = app.screen.run
                assert isinstance(remote, RemoteRun)
                pid = remote.owner_pid
                await until(lambda: remote.tasks[("wait", "local")].state
                            is TaskState.RUNNING, timeout=15)
                await pilot.press("escape")
                await until(lambda: isinstance(app.screen, DetachModal))
                await pilot.press("enter")  # detach
                await until(lambda: isinstance(app.screen, FolderScreen), timeout=10)
                assert app.return_code is None  # the console stays
                assert live_ids(home) == {remote.id}  # the run goes on in its runner
                await pilot.press("q")
                await until(lambda: app.return_code is not None)
            assert app.return_code == 0
        finally:
            stop.touch()
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _run_until(args: list[str], home: Path, text: str) -> None:
    """Start ``baton ARGS --headless --json``, kill it once its output holds ``text``
    (a JSON line is printed only once the history holds it)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", *args, "--headless", "--json"],
        cwd=REPO, env=baton_env({"BATON_HOME": str(home)}),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if text in line:
                break
        else:
            raise AssertionError(f"baton {' '.join(args)} ended before printing {text!r}")
    finally:
        proc.kill()
        proc.wait()


async def test_a_resumed_runners_console_shows_the_log_from_before_the_resume(
        tmp_path: Path) -> None:
    """A step printed, baton died, a resume retried it, it printed and baton died again;
    resumed from the history screen through a runner, the console's log of the step holds
    both attempts' output, the second after its separator, as the in-process resume
    replays it (the operator sees what the step wrote before the crash)."""
    count = tmp_path / "count"
    path = flow_file(tmp_path, "twice.toml", textwrap.dedent(f'''
        [workflow]
        name = "twice"
        [steps.slow]
        run = "n=$(( $(cat {count} 2>/dev/null || echo 0) + 1 )); echo $n > {count}; for i in 1 2 3; do echo run $n line $i; done; sleep 30"
    ''').lstrip())  # noqa: E501
    home = tmp_path / "home"
    with Store.open(home) as store:
        _run_until(["run", str(path)], home, "run 1 line 3")
        [summary] = store.runs()
        _run_until(["resume", summary.id, "--yes"], home, "run 2 line 3")
        async with _resumed_through_a_runner(path, store, summary.id) as screen:
            log = screen.session.task_log("slow", "local")
            want = ["run 1 line 1", "run 1 line 2", "run 1 line 3", "── attempt 2 ──",
                    "run 2 line 1", "run 2 line 2", "run 2 line 3"]
            await until(lambda: [x.text for x in log.lines()] == want, timeout=15)
            assert [x.stream for x in log.lines()][3] == "meta"
            assert screen.run.tasks[("slow", "local")].state is TaskState.INTERRUPTED
            assert count.read_text().strip() == "2"  # shown, not re-run


async def test_a_resumed_runners_console_shows_the_timeline_from_before_the_resume(
        tmp_path: Path) -> None:
    """A note and an approval through a runner, then kill -9; resumed from the history
    screen through a runner, the console's timeline starts with exactly what the
    in-process resume shows (task changes, the actions with their user and reason), and
    a console attached later (`baton attach`) shows the same."""
    from console.launch import Frontend, view_stored
    from console.runner import protocol as p
    from console.runner.client import connect
    from console.runner.daemon import spawn
    from console.runner.mirror import open_remote
    from console.store.replay import stored_events
    from console.ui.session import RunSession

    path = flow_file(tmp_path, "gated.toml", textwrap.dedent('''
        [workflow]
        name = "gated"
        [steps.gate]
        run = "echo approved"
        confirm = true
        [steps.slow]
        needs = ["gate"]
        run = "echo slow; sleep 30"
    ''').lstrip())
    home = tmp_path / "home"
    first = spawn([str(path)], home)
    client = await connect(first.socket)
    gate = {t["step"]: t for t in client.snapshot()["tasks"]}["gate"]
    if gate["state"] != "awaiting_approval":
        async for m in client.events():
            if m.get("type") == "task" and m["state"] == "awaiting_approval":
                break
    assert (await client.act(p.Action("note", reason="db on-call paged"))).ok
    assert (await client.act(p.Action("approve", "gate"))).ok
    async for m in client.events():
        if m.get("type") == "task" and m["step"] == "slow" and m["state"] == "running":
            break
    await client.close()
    os.kill(first.pid, signal.SIGKILL)
    _wait_gone(first.pid)
    me = p.user_name(os.getuid())

    with Store.open(home) as store:
        [summary] = store.runs()
        store.mark_interrupted(summary.id)  # as the in-process resume does first
        stored = store.load(summary.id)
        shown = RunSession(view_stored(stored, Frontend.console()))
        for event in stored_events(stored, {}):
            shown.on_event(event)
        want = _entries(shown)
        assert ("note", me, "db on-call paged") in want
        assert ("action", me, "approve gate") in want
        assert ("task", "", "gate awaiting approval: Run step 'gate'?") in want
        async with _resumed_through_a_runner(path, store, summary.id) as screen:
            await _shows(screen.session, want)
            late = await open_remote(screen.run.socket, read_only=True)
            session = RunSession(late)
            execute = asyncio.get_running_loop().create_task(late.execute())
            await _shows(session, want)
            late.detach()
            await asyncio.wait_for(execute, 10)



@contextlib.asynccontextmanager
async def _resumed_through_a_runner(path: Path, store: Store,
                                    run_id: str) -> AsyncIterator[AttachedRunScreen]:
    """The history screen's resume of ``run_id``, owned by a runner: the console's screen
    on it (the runner is killed afterwards)."""
    app, _ = history_app(path, store, start=False)
    app.owner = RunnerOwner(store.home)
    runner_pid = None
    try:
        async with app.run_test(size=SIZE):
            await until(lambda: app.screen.is_mounted
                        and app.screen is not app.screen_stack[0], timeout=15)
            app.resume_run(run_id)
            await until(lambda: isinstance(app.screen, AttachedRunScreen), timeout=30)
            screen = app.screen
            assert isinstance(screen, AttachedRunScreen) and isinstance(screen.run, RemoteRun)
            runner_pid = screen.run.owner_pid
            yield screen
    finally:
        if runner_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(runner_pid, signal.SIGKILL)


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Until ``pid`` is gone (reaped when it is our child: spawn's Popen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} still alive")


def _entries(session: Any) -> list[tuple[str, str, str]]:
    return [(e.kind, e.user, e.text) for e in session.timeline]


async def _shows(session: Any, want: list[tuple[str, str, str]]) -> None:
    """The session's timeline starts with ``want`` (within 15 s)."""
    with contextlib.suppress(TimeoutError):
        await until(lambda: _entries(session)[:len(want)] == want, timeout=15)
    assert _entries(session)[:len(want)] == want


async def test_a_late_console_shows_the_timeline_the_first_one_saw_live(
        tmp_path: Path) -> None:
    """Issue 15: two consoles on one runner (the war room). The second attaches after a
    step succeeded, the gate waits and a note was made; once the gate is approved its
    timeline is the first console's entry for entry (task changes, the note once)."""
    from console.runner.daemon import spawn
    from console.runner.mirror import open_remote
    from console.ui.session import RunSession

    path = flow_file(tmp_path, "war.toml", textwrap.dedent('''
        [workflow]
        name = "war room"
        [steps.check]
        run = "echo checked"
        [steps.gate]
        needs = ["check"]
        run = "echo approved"
        confirm = true
        [steps.deploy]
        needs = ["gate"]
        run = "echo deploying; sleep 30"
    ''').lstrip())
    spawned = spawn([str(path)], tmp_path / "home")
    executing: list[asyncio.Task[RunState]] = []
    try:
        first = await open_remote(spawned.socket)
        first_session = RunSession(first)
        executing.append(asyncio.get_running_loop().create_task(first.execute()))
        await until(lambda: first.tasks[("gate", "local")].state
                    is TaskState.AWAITING_APPROVAL, timeout=15)
        first.note("checking the first step")
        await until(lambda: any(e.kind == "note" for e in first_session.timeline), timeout=10)
        late = await open_remote(spawned.socket)
        late_session = RunSession(late)
        executing.append(asyncio.get_running_loop().create_task(late.execute()))
        late.approve("gate")
        for run in (first, late):
            await until(lambda run=run: run.tasks[("deploy", "local")].state
                        is TaskState.RUNNING, timeout=15)
        await asyncio.sleep(0.2)  # a straggler would show in one timeline only
        want = _entries(first_session)
        assert [e for e in want if e[0] == "note"] == \
            [("note", first.user, "checking the first step")]
        assert any(e[0] == "task" and "check" in e[2] for e in want), want
        assert _entries(late_session) == want
        first.detach()
        late.detach()
        await asyncio.wait_for(asyncio.gather(*executing), 10)
    finally:
        for task in executing:
            task.cancel()
        with contextlib.suppress(ProcessLookupError):
            os.kill(spawned.pid, signal.SIGKILL)
        _wait_gone(spawned.pid)
