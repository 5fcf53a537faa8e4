"""The console and the run history (issue 5, item 5): console runs are recorded (an
operator action is committed before the console shows its effect), the folder view shows
each workflow's last run, the history view opens a past run read-only or resumes an
interrupted one, a notice names an interrupted run, and ``o`` pages a task's full log."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import REPO, baton, baton_env
from rich.console import Console
from textual.widgets import Static

from console.engine.events import ActionEvent, RunState, TaskState
from console.store import Store
from console.ui.app import BatonApp
from console.ui.screens.folder import FolderScreen
from console.ui.screens.history_screen import HistoryScreen
from console.ui.screens.modals import GateModal
from console.ui.screens.run_screen import RunScreen
from console.ui.screens.timeline_screen import TimelineScreen
from console.ui.widgets.log_pane import LogPane
from console.ui.widgets.step_detail import StepDetail
from tests.fakes import ScriptedWorld
from tests.history_helpers import FLOW, flow_file, history_app, record_run
from tests.ui_helpers import SIZE, T0, select, until

S = TaskState


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def text_of(renderable: object) -> str:
    console = Console(width=400, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "home") as opened:
        yield opened


async def run_screen_of(app: BatonApp, *, stored: bool = False) -> RunScreen:
    def find() -> RunScreen | None:
        return next((s for s in reversed(app.screen_stack)
                     if isinstance(s, RunScreen) and s.stored is stored), None)

    await until(find, timeout=15)  # rebuilt from the store in worker threads
    screen = find()
    assert screen is not None
    return screen


def notices(app: BatonApp) -> list[str]:
    """Every notification the app shows from now on."""
    seen: list[str] = []
    notify = app.notify

    def spy(message: str, **kwargs: object) -> None:
        seen.append(message)
        notify(message, **kwargs)  # type: ignore[arg-type]

    app.notify = spy  # type: ignore[method-assign]
    return seen


def actions_in_db(store: Store, run_id: str) -> list[tuple[str, str | None, str]]:
    """Read the actions table through a second connection: what is committed."""
    with sqlite3.connect(store.db_path) as db:
        return list(db.execute("SELECT action, step, user FROM actions WHERE run_id = ? "
                               "ORDER BY id", (run_id,)))


# ---------------------------------------------------------------------------- recording


async def test_console_run_is_recorded_and_an_action_is_durable_before_it_shows(tmp_path, store):
    path = flow_file(tmp_path)
    app, world = history_app(path, store, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen_of(app)
        await until(lambda: screen.run.tasks[("ship", "local")].state is S.AWAITING_APPROVAL)
        assert [r.id for r in store.runs()] == ["r7k2m9x1"]
        await select(pilot, screen, "ship")
        await pilot.press("a")
        assert isinstance(app.screen, GateModal)
        assert actions_in_db(store, "r7k2m9x1") == []
        await pilot.press("a")  # approve in the modal
        # committed by the time the key press returns, before any repaint of the effect
        assert actions_in_db(store, "r7k2m9x1") == [("approve", "ship", "alice")]
        await until(lambda: screen.run.tasks[("ship", "local")].state is S.RUNNING)
        world.release("ship")
        await until(lambda: screen.run.state is RunState.SUCCEEDED)
        await pilot.press("q")
        await until(lambda: app.return_code is not None)
    assert app.return_code == 0
    [summary] = store.runs(workflow=str(path))
    assert (summary.id, summary.state, summary.user) == ("r7k2m9x1", "succeeded", "alice")
    stored = store.load("r7k2m9x1")
    assert [(a.action, a.step, a.user) for a in stored.actions] == [("approve", "ship", "alice")]
    assert {t.step: t.state for t in stored.tasks} == {
        "build": "succeeded", "ship": "succeeded", "check": "succeeded"}
    assert store.read_log("r7k2m9x1", "build", "local", 1) == (
        "compiling\nwarning: cache cold\nbuilt\n")
    assert not store.is_live("r7k2m9x1")  # the console let go of the run when it quit


async def test_folder_view_shows_the_last_run_of_each_workflow(tmp_path, store):
    folder = tmp_path / "flows"
    folder.mkdir()
    release = flow_file(folder)
    flow_file(folder, "other.toml", FLOW.replace('"Release"', '"Other"'))
    await record_run(store, release, "r0000old1", started=T0 - 7200)
    await record_run(store, release, "r0000new1", started=T0 - 180, stop_at="ship")
    store.mark_interrupted("r0000new1")
    app, _ = history_app(folder, store)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: isinstance(app.screen, FolderScreen))
        table = app.screen.query_one("DataTable")
        await until(lambda: "interrupted" in str(table.get_cell(str(release), "last")))
        assert str(table.get_cell(str(release), "last")) == "! interrupted 3m ago"
        assert str(table.get_cell(str(folder / "other.toml"), "last")) == "—"
        await pilot.press("h")  # the history of the highlighted workflow (other.toml)
        assert isinstance(app.screen, HistoryScreen)
        assert app.screen.path == (folder / "other.toml").resolve()


# ---------------------------------------------------------------------------- history


async def test_history_lists_runs_and_opens_one_read_only(tmp_path, store):
    path = flow_file(tmp_path)
    await record_run(store, path, "r0000aaa1", started=T0 - 3600)
    await record_run(store, path, "r0000bbb1", started=T0 - 600, stop_at="ship")
    app, world = history_app(path, store, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await run_screen_of(app)
        await pilot.press("h")
        assert isinstance(app.screen, HistoryScreen)
        history = app.screen
        await until(lambda: len(history.runs) == 2)
        assert [(r.id, r.state, r.summary.user) for r in history.runs] == [
            ("r0000bbb1", "interrupted", "bob"), ("r0000aaa1", "succeeded", "bob")]
        await pilot.press("down", "enter")  # the succeeded one
        past = await run_screen_of(app, stored=True)
        assert past.run.id == "r0000aaa1" and past.read_only
        assert {k[0]: t.state for k, t in past.run.tasks.items()} == {
            "build": S.SUCCEEDED, "ship": S.SUCCEEDED, "check": S.SUCCEEDED}
        await select(pilot, past, "build")
        lines = [line.text for line in past.query_one(LogPane).view.shown_lines()]
        assert lines == ["compiling", "warning: cache cold", "built"]
        facts = text_of(past.query_one(StepDetail).query_one("#facts", Static).content)
        assert f"log: {store.home}/logs/r0000aaa1/build@local.1.log" in facts
        entries = [e.text for e in past.session.timeline]
        assert "build succeeded" in entries and entries[-1] == "run succeeded"
        seen: list[ActionEvent] = []
        past.run.subscribe(lambda e: seen.append(e) if isinstance(e, ActionEvent) else None)
        for key in "gpaDdrRsSFcbt":
            await pilot.press(key)
            assert app.screen is past, key
        await pilot.pause(0.05)
        assert seen == [] and world.records == [] and not past.started
        await pilot.press("l")
        assert isinstance(app.screen, TimelineScreen)
        await pilot.press("escape", "q")
        assert app.screen is history  # q in a past run goes back to the list
    assert store.load("r0000aaa1").run.state == "succeeded"


async def test_past_run_of_a_dead_owner_shows_its_running_tasks_interrupted(tmp_path, store):
    path = flow_file(tmp_path)
    await record_run(store, path, "r0000ccc1", started=T0, stop_at="ship")
    app, _ = history_app(path, store, resume="r0000ccc1", read_only=True)
    async with app.run_test(size=SIZE):
        past = await run_screen_of(app, stored=True)
        # its owner is gone (the lock is free): shown as it really is, interrupted, and
        # read-only changes nothing else
        assert past.run.tasks[("ship", "local")].state is S.INTERRUPTED
        assert past.run.state is RunState.INTERRUPTED
    assert store.load("r0000ccc1").run.state == "interrupted"


# ---------------------------------------------------------------------------- resume


async def test_resume_from_history_finishes_without_rerunning_finished_work(tmp_path, store):
    path = flow_file(tmp_path)
    await record_run(store, path, "r0000ddd1", started=T0 - 60, stop_at="ship")
    world = ScriptedWorld()
    world.release("ship")
    app, _ = history_app(path, store, start=False, world=world)
    shown = notices(app)
    async with app.run_test(size=SIZE) as pilot:
        await run_screen_of(app)
        await until(lambda: any("interrupted" in text for text in shown))
        assert "run r0000ddd1 was interrupted at 2024-11-26 " in shown[0]
        assert shown[0].endswith("— press h to see it / resume it")
        await pilot.press("h")
        history = app.screen
        assert isinstance(history, HistoryScreen)
        await until(lambda: len(history.runs) == 1)
        await pilot.press("r")
        resumed = await until_resumed(app, "r0000ddd1")
        ship = resumed.run.tasks[("ship", "local")]
        assert ship.state is S.INTERRUPTED  # waits for a decision, never re-run silently
        assert world.records == []
        await select(pilot, resumed, "ship")
        await pilot.press("r")  # retry: its gate asks again
        await until(lambda: ship.state is S.AWAITING_APPROVAL)
        await pilot.press("a", "a")
        await until(lambda: resumed.run.state is RunState.SUCCEEDED)
        assert world.order() == ["ship", "check"]  # build finished before: not re-run
        await pilot.press("q")
        await until(lambda: app.return_code is not None)
    stored = store.load("r0000ddd1")
    assert stored.run.state == "succeeded"
    assert [(a.action, a.step, a.user) for a in stored.actions] == [
        ("approve", "ship", "bob"),  # before the crash
        ("retry", "ship", "alice"), ("approve", "ship", "alice")]
    assert [a.number for a in stored.attempts_of("ship", "local")] == [1, 2]
    assert [a.number for a in stored.attempts_of("build", "local")] == [1]


async def test_console_resume_continues_with_the_last_reloaded_definition(tmp_path, store):
    from tests.history_helpers import record_reloaded

    path = tmp_path / "reloaded.toml"
    await record_reloaded(store, path, "r0000rel02")
    world = ScriptedWorld()
    app, _ = history_app(path.resolve(), store, resume="r0000rel02", world=world)
    async with app.run_test(size=SIZE) as pilot:
        resumed = await until_resumed(app, "r0000rel02")
        assert resumed.run.workflow.steps["ship"].run == "echo shipping v4"
        await until(lambda: resumed.run.tasks[("ship", "local")].state is S.AWAITING_APPROVAL)
        await select(pilot, resumed, "ship")
        resumed.run.approve("ship")
        await until(lambda: resumed.run.state is RunState.SUCCEEDED)
        assert [r.script for r in world.records] == ["echo shipping v4"]


async def test_console_resume_with_yes_reruns_interrupted_tasks(tmp_path, store):
    path = flow_file(tmp_path)
    await record_run(store, path, "r0000yes01", started=T0 - 60, stop_at="ship")
    world = ScriptedWorld()
    world.release("ship")
    app, _ = history_app(path, store, resume="r0000yes01", world=world, yes=True)
    async with app.run_test(size=SIZE):
        resumed = await until_resumed(app, "r0000yes01")
        await until(lambda: resumed.run.state is RunState.SUCCEEDED)
        assert world.order() == ["ship", "check"]  # build finished before: not re-run
    actions = [(a.action, a.step, a.reason) for a in store.load("r0000yes01").actions]
    assert ("retry", "ship", "--yes") in actions


async def until_resumed(app: BatonApp, run_id: str) -> RunScreen:
    await until(lambda: isinstance(app.screen, RunScreen) and app.screen.run.id == run_id
                and app.screen.started, timeout=15)
    assert isinstance(app.screen, RunScreen)
    return app.screen


async def test_resume_is_refused_while_this_consoles_run_has_running_tasks(tmp_path, store):
    path = flow_file(tmp_path)
    await record_run(store, path, "r0000fff1", started=T0 - 60, stop_at="ship")
    app, world = history_app(path, store, start=True)
    shown = notices(app)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen_of(app)
        await until(lambda: screen.run.tasks[("ship", "local")].state is S.AWAITING_APPROVAL)
        screen.run.approve("ship")
        await until(lambda: screen.run.tasks[("ship", "local")].state is S.RUNNING)
        await pilot.press("h")
        history = app.screen
        assert isinstance(history, HistoryScreen)
        await until(lambda: len(history.runs) == 2)  # this console's run, live, and the other
        assert [(r.id, r.live) for r in history.runs] == [
            ("r7k2m9x1", True), ("r0000fff1", False)]
        await pilot.press("down", "r")
        await until(lambda: any("has running tasks" in text for text in shown))
        assert app.screen is history and screen.run.tasks[("ship", "local")].state is S.RUNNING
        world.release("ship")
    assert store.load("r0000fff1").run.state == "interrupted"


async def test_resume_of_a_run_killed_with_sigkill(tmp_path, store):
    """A real headless runner, SIGKILLed while a step runs; the console resumes it."""
    side = tmp_path / "side.txt"
    path = flow_file(tmp_path, "killed.toml", textwrap.dedent(f'''
        [workflow]
        name = "killed"
        [steps.first]
        run = "echo first >> {side}"
        [steps.slow]
        needs = ["first"]
        run = "echo slow >> {side}; sleep 5"
        [steps.after]
        needs = ["slow"]
        run = "echo after >> {side}"
    ''').lstrip())
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "run", str(path), "--headless", "--json"],
        cwd=REPO, env=baton_env({"BATON_HOME": str(store.home)}), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"step":"slow"' in line.replace(" ", "") and '"running"' in line:
            break
    proc.kill()
    proc.wait()
    [summary] = store.runs()
    app, _ = history_app(path, store, resume=summary.id)
    app.executor_for = None  # the real local executor
    async with app.run_test(size=SIZE) as pilot:
        resumed = await until_resumed(app, summary.id)
        assert resumed.run.tasks[("slow", "local")].state is S.INTERRUPTED
        await select(pilot, resumed, "slow")
        await pilot.press("s")  # skip it (a reason prompt), then after runs
        await pilot.press(*"killed", "enter")
        await until(lambda: resumed.run.state is RunState.SUCCEEDED, timeout=20)
        await pilot.press("q")
        await until(lambda: app.return_code is not None)
    # first ran once, before the kill, and was not re-run; slow may have started or not
    # when the runner died (running is recorded before the command starts); it was skipped
    assert [w for w in side.read_text().split() if w != "slow"] == ["first", "after"]
    assert store.load(summary.id).run.state == "succeeded"


async def test_a_live_run_cannot_be_resumed(tmp_path, store):
    path = flow_file(tmp_path)
    await record_run(store, path, "r0000eee1", started=T0, stop_at="ship")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from console.store import acquire_run_lock; "
         f"lock = acquire_run_lock('r0000eee1', {str(store.home)!r}); print('held', "
         "flush=True); sys.stdin.read()"],
        cwd=REPO, env=baton_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        app, world = history_app(path, store, start=False)
        shown = notices(app)
        async with app.run_test(size=SIZE) as pilot:
            await run_screen_of(app)
            await pilot.press("h")
            history = app.screen
            assert isinstance(history, HistoryScreen)
            await until(lambda: len(history.runs) == 1)
            assert history.runs[0].live and not history.check_action("resume", ())
            app.resume_run("r0000eee1")  # what `baton resume` would do from the console
            await until(lambda: any("is live in process" in text for text in shown))
            assert app.screen is history and world.records == []
        # the command line refuses before the console starts
        result = baton("resume", "r0000eee1", env={"BATON_HOME": str(store.home)})
        assert result.returncode == 2
        assert "run r0000eee1 is live in process" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        holder.communicate("")


# ---------------------------------------------------------------------------- logs


async def test_o_opens_the_full_log_in_pager(tmp_path, store, monkeypatch):
    copy = tmp_path / "paged.txt"
    pager = tmp_path / "pager.sh"
    pager.write_text(f'#!/bin/sh\ncp "$1" {copy}\n')
    pager.chmod(0o755)
    monkeypatch.setenv("PAGER", str(pager))
    path = flow_file(tmp_path)
    app, _ = history_app(path, store, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen_of(app)
        await until(lambda: screen.run.tasks[("ship", "local")].state is S.AWAITING_APPROVAL)
        await select(pilot, screen, "build")
        await pilot.press("o")
        await until(copy.exists)
        assert copy.read_text() == "compiling\nwarning: cache cold\nbuilt\n"
        assert copy.read_text() == store.read_log("r7k2m9x1", "build", "local", 1)
        shown = notices(app)
        await select(pilot, screen, "check")  # has not run: nothing to page
        await pilot.press("o")
        await until(lambda: shown == ["no log on disk for this task yet"])


async def test_store_error_is_one_line_before_the_console_starts(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "history.sqlite").write_text("this is not a database" * 100)
    result = baton(str(tmp_path), env={"BATON_HOME": str(home)})
    assert result.returncode == 2
    assert result.stderr.startswith("baton: ") and "not a valid baton database" in result.stderr
    assert result.stderr.count("\n") == 1


# ---------------------------------------------------------------------------- snapshots
# Stored as SVG under snapshots/test_ui_history/ with the fixture of test_ui_snapshots.py
# (frozen clock, fixed run ids and user, UTC, 120x36, no cursor blink).


@pytest.fixture
def snapshot(snapshot):  # the top-level snapshots/ folder, like tests/test_ui_snapshots.py
    from tests.test_ui_snapshots import _SnapshotsAtTopLevel

    return _SnapshotsAtTopLevel(snapshot)


def test_history_view(snap_compare, tmp_path, store):
    path = flow_file(tmp_path)
    asyncio.run(record_run(store, path, "r0000aaa1", started=T0 - 86_400))
    asyncio.run(record_run(store, path, "r0000bbb1", started=T0 - 3_600, stop_at="ship"))
    app, _ = history_app(path, store, start=False)

    async def before(pilot):
        await run_screen_of(app)
        await pilot.press("h")
        await until(lambda: isinstance(app.screen, HistoryScreen) and len(app.screen.runs) == 2)
        app.clear_notifications()  # the interrupted notice has its own scene
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_interrupted_notice(snap_compare, tmp_path, store):
    path = flow_file(tmp_path)
    asyncio.run(record_run(store, path, "r0000bbb1", started=T0 - 3_600, stop_at="ship"))
    app, _ = history_app(path, store, start=False)
    shown = notices(app)

    async def before(pilot):
        await run_screen_of(app)
        await until(lambda: shown)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)
