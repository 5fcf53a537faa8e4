"""Snapshot scenes of the rollback in the console (issue 13): the plan dialog, and a tree
with undoing, undone and undo_failed tasks. Same determinism as tests/test_ui_snapshots.py."""

from __future__ import annotations

from console.engine.events import TaskState
from tests.test_ui_rollback import ROLLOUT
from tests.test_ui_snapshots import _deterministic, frame, snapshot  # noqa: F401 (fixtures)
from tests.ui_helpers import SIZE, T0, FrozenClock, make_app, run_screen, select, until

S = TaskState

# web2's undo of deploy fails; web1's drain undo holds until the operator acts
UNDO_FAILS = ROLLOUT.replace('undo = "echo undo deploy {{ host.name }}"',
                             'undo = "echo undo deploy\\n'
                             '{{ (\'exit 5\' if host.name == \'web2\' else \'\') | raw }}\\n'
                             '{{ (\'hold undo\' if host.name == \'web1\' else \'\') | raw }}"')


def test_rollback_plan_dialog(snap_compare, tmp_path):
    clock = FrozenClock()
    app, _world = make_app(tmp_path, ROLLOUT, name="rollout.toml", clock=clock, start=True)

    async def before(pilot):
        screen = await run_screen(app)
        run = screen.run
        await until(lambda: run.tasks[("deploy", "web3")].state is S.FAILED
                    and run.state.finished)
        clock.now = T0 + 42
        await select(pilot, screen, "deploy")
        await pilot.press("ctrl+u")
        await frame(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_tree_with_undo_states(snap_compare, tmp_path):
    clock = FrozenClock()
    app, _world = make_app(tmp_path, UNDO_FAILS, name="rollout.toml", clock=clock, start=True)

    async def before(pilot):
        screen = await run_screen(app)
        run = screen.run
        await until(lambda: run.tasks[("deploy", "web3")].state is S.FAILED
                    and run.state.finished)
        await pilot.press("ctrl+u", "y")
        await until(lambda: run.tasks[("deploy", "web2")].state is S.UNDO_FAILED
                    and run.tasks[("deploy", "web1")].state is S.UNDOING
                    and run.tasks[("drain", "web3")].state is S.UNDONE)
        clock.now = T0 + 42
        await select(pilot, screen, "deploy", "web2")
        await frame(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)
