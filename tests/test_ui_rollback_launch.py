"""Issue 13 (item 2, a remaining gap): `baton rollback RUN` opens the console by default
(SPEC sections 2 and 5): the rebuilt past run with the plan dialog `u` shows for the
requested scope; approved, the rollback runs in the console and is recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from console.engine.events import RunState, TaskState
from console.engine.rollback import RollbackScope, plan_rollback
from console.engine.run import Run, RunOptions
from console.launch import Frontend, rebuild_for_rollback
from console.model.loader import load_workflow
from console.store import Store
from console.store.replay import read_logs, stored_events
from console.ui.app import BatonApp, LaunchOptions
from console.ui.rollback_launch import RollbackLaunch
from console.ui.screens.rollback_dialog import RollbackModal
from console.ui.screens.run_screen import RunScreen
from console.ui.system import SystemStats, fixed_sampler
from tests.fakes import ScriptedWorld
from tests.ui_helpers import SIZE, FrozenClock, until

S = TaskState

FLOW = """
[workflow]
name = "Take back"

[hosts.web1]
groups = ["web"]
[hosts.web2]
groups = ["web"]

[steps.drain]
on = "web"
run = "echo drain"
undo = "echo undo drain {{ host.name }}"

[steps.deploy]
on = "web"
needs = ["drain"]
run = "echo deploy"
undo = "echo undo deploy {{ host.name }}"
"""


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "home") as opened:
        yield opened


async def _past_run(tmp_path: Path, store: Store) -> str:
    path = tmp_path / "take-back.toml"
    path.write_text(FLOW, encoding="utf-8")
    run = Run(load_workflow(path), RunOptions(run_id="r0000rb01", user="bob",
                                              approval="auto"),
              executor_for=ScriptedWorld().factory(), clock=FrozenClock())
    with store.record(run):
        assert await asyncio.wait_for(run.execute(), 10) == RunState.SUCCEEDED
    return run.id


def _console(store: Store, run_id: str, scope: RollbackScope, world: ScriptedWorld,
             tmp_path: Path, *, approved: bool = False) -> tuple[BatonApp, Run]:
    """What console_rollback builds, on the scripted executor."""
    stored = store.load(run_id)
    run = rebuild_for_rollback(stored, Frontend.console(user="alice", executor_for=world.factory(),
                                                        clock=FrozenClock()))
    plan = plan_rollback(run, scope)
    past = list(stored_events(stored, read_logs(store, stored)))
    launch = LaunchOptions(user="alice",
                           rollback=RollbackLaunch(run, plan, past, approved=approved))
    app = BatonApp(tmp_path, launch, executor_for=world.factory(), clock=FrozenClock(),
                   sampler=fixed_sampler(SystemStats(12.0, 43.0, (0.5, 0.4, 0.3))),
                   config_file=tmp_path / "config.toml", blink=False, store=store)
    return app, run


async def test_rollback_opens_the_console_with_the_plan_and_runs_it_when_approved(
        tmp_path: Path, store: Store):
    run_id = await _past_run(tmp_path, store)
    world = ScriptedWorld()
    app, run = _console(store, run_id, RollbackScope("deploy", None, False), world, tmp_path)
    with store.acquire_run_lock(run_id):  # as the command holds it
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: isinstance(app.screen, RollbackModal))
            shown = "\n".join(str(w.render()) for w in app.screen.query(".dialog-command"))
            assert "echo undo deploy web1" in shown and "echo undo deploy web2" in shown
            assert "undo drain" not in shown  # the requested scope: deploy only
            assert world.records == []  # nothing before approval
            screen = app.screen_stack[-2]
            assert isinstance(screen, RunScreen) and screen.run is run
            await pilot.press("y")
            await until(lambda: run.state is RunState.ROLLED_BACK)
            assert sorted(r.script for r in world.records) == [
                "echo undo deploy web1", "echo undo deploy web2"]
            assert run.tasks[("drain", "web1")].state is S.SUCCEEDED
            await pilot.press("q")
            await until(lambda: app.return_code is not None)
    stored = store.load(run_id)
    assert stored.run.state == "rolled_back"
    assert [(a.action, a.user) for a in stored.actions if a.action == "rollback"] == [
        ("rollback", "alice")]


async def test_a_refused_plan_undoes_nothing(tmp_path: Path, store: Store):
    run_id = await _past_run(tmp_path, store)
    world = ScriptedWorld()
    app, run = _console(store, run_id, RollbackScope(None, None, False), world, tmp_path)
    with store.acquire_run_lock(run_id):
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: isinstance(app.screen, RollbackModal))
            await pilot.press("escape")
            await until(lambda: isinstance(app.screen, RunScreen))
            await pilot.pause(0.1)
            assert world.records == []
            assert not run.executing
    assert store.load(run_id).run.state == "succeeded"
