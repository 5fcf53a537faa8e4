"""The rollback plan dialog (``u``): each undo command per host, in order, secrets masked,
and the tasks with nothing to undo; approve (y, Enter) or cancel (Esc)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Label, Static

from console.engine.rollback import RollbackPlan, RollbackScope, plan_rollback
from console.engine.run import Run
from console.sanitize import sanitize
from console.ui.screens.modals import _Dialog


def rollback_plan(run: Run, step: str | None, host: str | None,
                  downstream: bool) -> RollbackPlan | str:
    """The plan rolling back ``step`` (on ``host``; with what is downstream of it), or the
    whole run (``step`` None); a string says why there is nothing to approve."""
    scope = RollbackScope(step, host if step is not None else None,
                          downstream and step is not None)
    try:
        plan = plan_rollback(run, scope)
    except ValueError as exc:
        return str(exc)
    if not plan.entries:
        return f"nothing to undo in {scope.describe()}"
    return plan


class RollbackModal(_Dialog):
    """Dismisses with "rollback" when approved, None otherwise."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "choose('rollback')", "Roll back", id="rollback.yes"),
    ]

    def __init__(self, plan: RollbackPlan) -> None:
        super().__init__(classes="dialog-screen")
        self.plan = plan

    def compose(self) -> ComposeResult:
        title, *lines = self.plan.lines()
        with Vertical(classes="dialog", id="rollback-dialog"):
            yield Label(sanitize(title), classes="dialog-title")
            yield Static("Undone in this order (a number waits for those above it that it "
                         "depends on; the rest run in parallel):")
            yield VerticalScroll(*(Static(sanitize(line), classes="dialog-command")
                                   for line in lines), classes="dialog-commands")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Roll back (y)", variant="error", id="rollback")
                yield Button("Cancel (esc)", id="cancel")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None if event.button.id == "cancel" else event.button.id)
