"""Issue 13 (item 8, a remaining gap): after a rollback the detail pane shows the task's own
command as its command, and the undo command with its attempts apart."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text

from console.engine.events import RunState, TaskState
from console.ui.widgets.step_detail import StepDetail
from tests.test_ui_rollback import ROLLOUT
from tests.ui_helpers import SIZE, make_app, run_screen, select, until

S = TaskState


def detail_text(detail: StepDetail) -> str:
    facts = detail._facts()
    parts = facts.renderables if isinstance(facts, Group) else [facts]
    return "\n".join(p.plain for p in parts if isinstance(p, Text))


async def test_detail_pane_keeps_the_command_apart_from_the_undo(tmp_path):
    app, _world = make_app(tmp_path, ROLLOUT, name="rollout.toml", start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        run = screen.run
        await until(lambda: run.state is RunState.FAILED)
        await select(pilot, screen, "deploy")
        await pilot.press("ctrl+u", "y")  # roll the whole run back
        await until(lambda: run.state is RunState.ROLLED_BACK)
        await select(pilot, screen, "deploy", "web1")
        await pilot.pause()
        text = detail_text(screen.query_one(StepDetail))
        lines = text.splitlines()
        command = lines.index("command:")
        assert lines[command + 1].strip() == "echo deployed"  # the task's own command
        assert "undo: echo undo deploy web1" in lines
        own = text[text.index("command:"):text.index("undo attempts:")]
        undo = text[text.index("undo attempts:"):]
        assert "#1 web1 succeeded" in " ".join(own.split())
        assert "undone" not in own
        assert "#2 web1 undone" in " ".join(undo.split())
        # a step over several hosts: every host's own command, never an undo
        await select(pilot, screen, "drain")
        await pilot.pause()
        text = detail_text(screen.query_one(StepDetail))
        assert "echo drain" in text and "undo drain" not in text.split("undo:")[0]
        assert "undo attempts:" in text
