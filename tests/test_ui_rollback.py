"""The console's `u` (issue 13 items 2, 8): the plan of undo commands in a dialog, approved,
then the undos shown with their own states in the tree."""

from __future__ import annotations

from console.engine.events import RunState, TaskState
from console.ui.format import ICONS, state_variable
from console.ui.screens.rollback_dialog import RollbackModal
from console.ui.screens.run_screen import RunScreen
from tests.ui_helpers import SIZE, make_app, run_screen, select, until

S = TaskState

ROLLOUT = """
[workflow]
name = "Rollout to take back"

[hosts.web1]
groups = ["web"]
[hosts.web2]
groups = ["web"]
[hosts.web3]
groups = ["web"]

[steps.drain]
on = "web"
run = "echo drain"
undo = "echo undo drain {{ host.name }}"

[steps.deploy]
on = "web"
needs = ["drain"]
run = "{{ ('exit 1' if host.name == 'web3' else 'echo deployed') | raw }}"
undo = "echo undo deploy {{ host.name }}"

[steps.report]
needs = ["deploy"]
run = "echo report"

[rollouts.web]
steps = ["drain", "deploy"]
serial = 2
"""


async def test_u_shows_the_plan_and_rolls_back_after_approval(tmp_path):
    app, world = make_app(tmp_path, ROLLOUT, name="rollout.toml", start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        run = screen.run
        await until(lambda: run.tasks[("deploy", "web3")].state is S.FAILED
                    and run.state is RunState.FAILED)
        await select(pilot, screen, "deploy")
        await pilot.press("u", "escape")  # cancelled: nothing runs
        assert isinstance(app.screen, RunScreen)
        assert not [r for r in world.records if "undo" in r.script]
        await pilot.press("ctrl+u")  # the whole run
        assert isinstance(app.screen, RollbackModal)
        shown = "\n".join(str(w.render()) for w in app.screen.query(".dialog-command"))
        assert "1. drain@web3 [batch 2] (succeeded): echo undo drain web3" in shown
        assert "2. deploy@web1 [batch 1] (succeeded): echo undo deploy web1" in shown
        assert "report" not in shown  # blocked: not in the plan
        await pilot.press("y")
        await until(lambda: run.state is RunState.ROLLED_BACK)
        assert run.tasks[("drain", "web1")].state is S.UNDONE
        assert run.tasks[("deploy", "web3")].state is S.FAILED
        assert run.tasks[("report", "local")].state is S.BLOCKED  # never goes forward again
        assert not world.starts("report")
        undone = [r.script for r in sorted(world.records, key=lambda r: r.start_seq)
                  if "undo" in r.script]
        assert undone[0] == "echo undo drain web3"  # newest batch first
        assert any(e.text.startswith("rollback") for e in screen.session.timeline
                   if e.kind == "action")
        assert ICONS[S.UNDONE] != ICONS[S.SUCCEEDED]
        assert state_variable(S.UNDONE) == "state-undo"
