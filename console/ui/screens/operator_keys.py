"""The run screen's keys that change the run: pause, approve/deny, done, retry, skip,
mark, cancel, exclude a host, roll back, step mode, notes. Each calls the Run's public
method, asking first for a reason or a confirmation where the key needs one; an
:class:`ActionError` becomes a notification and changes nothing.

:class:`OperatorKeys` is mixed into :class:`~console.ui.screens.run_screen.RunScreen`; it
knows the screen only as the :class:`OperatorView` protocol (nothing here imports the
screen).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from textual.app import App
from textual.notifications import SeverityLevel

from console.engine.events import RunState, TaskState
from console.engine.run import ActionError
from console.ui.screens.modals import TextPrompt, approval_dialog
from console.ui.screens.refusals import RunView, why_refused
from console.ui.screens.rollback_dialog import RollbackModal, rollback_plan
from console.ui.screens.run_keys import REASON_PROMPTS


class OperatorView(RunView, Protocol):
    """What the operator keys use of the run screen."""

    @property
    def app(self) -> App[Any]: ...

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None: ...

    def after_action(self) -> None:
        """Draw what the action changed, at once."""

    # the mixin's own, called from one another
    def act(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bool: ...

    def ask(self, title: str, placeholder: str, required: bool,
            then: Callable[[str], object], action: str | None = None) -> None: ...

    def with_reason(self, action: str, call: Callable[..., Any]) -> None: ...

    def action_deny(self) -> None: ...

    def action_rollback(self, downstream: bool = False, whole: bool = False) -> None: ...


class OperatorKeys:
    """``action_*`` of the keys that change the run (a mixin of the run screen)."""

    def act(self: OperatorView, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Call a Run action; an ActionError becomes a notification."""
        try:
            result = fn(*args, **kwargs)
        except ActionError as exc:
            self.notify(str(exc), severity="error")
            return False
        self.after_action()
        if isinstance(result, bool):
            return result
        return True

    def ask(self: OperatorView, title: str, placeholder: str, required: bool,
            then: Callable[[str], object], action: str | None = None) -> None:
        """A reason or note prompt; only for an action that applies now (``action``)."""
        if action is not None:
            why = why_refused(self, action)
            if why is not None:
                self.notify(why, severity="warning")
                return

        def answered(text: object) -> None:
            if isinstance(text, str):
                then(text)

        self.app.push_screen(TextPrompt(title, placeholder, required=required), answered)

    def with_reason(self: OperatorView, action: str, call: Callable[..., Any]) -> None:
        """A task action that asks for a reason first (:data:`REASON_PROMPTS`)."""
        step, host = _target(self)
        title, required = REASON_PROMPTS[action]
        label = step if host is None or host == "local" else f"{step}@{host}"
        self.ask(title.format(label), "reason", required,
                 lambda reason: self.act(call, step, host,
                                         reason if required else reason or None), action)

    def action_pause(self: OperatorView) -> None:
        self.act(self.run.resume if self.run.state is RunState.PAUSED else self.run.pause)

    def action_approve(self: OperatorView) -> None:
        step_id, host = _target(self)
        waiting = [t for t in self.selected_tasks() if t.state is TaskState.AWAITING_APPROVAL]
        if not waiting:
            self.act(self.run.approve, step_id, host)  # reports why it does not apply
            return

        def answered(choice: object) -> None:
            if choice == "approve":
                self.act(self.run.approve, step_id, host)
            elif choice == "deny":
                self.action_deny()

        self.app.push_screen(approval_dialog(self.run, step_id, host, waiting), answered)

    def action_deny(self: OperatorView) -> None:
        self.with_reason("deny", self.run.deny)

    def action_done(self: OperatorView) -> None:
        self.act(self.run.done, *_target(self))

    def action_retry(self: OperatorView) -> None:
        self.act(self.run.retry, *_target(self))

    def action_retry_downstream(self: OperatorView) -> None:
        self.act(self.run.retry_downstream, *_target(self))

    def action_skip(self: OperatorView) -> None:
        self.with_reason("skip", self.run.skip)

    def action_mark_succeeded(self: OperatorView) -> None:
        self.with_reason("mark_succeeded", self.run.mark_succeeded)

    def action_mark_failed(self: OperatorView) -> None:
        self.with_reason("mark_failed", self.run.mark_failed)

    def action_cancel_task(self: OperatorView) -> None:
        self.with_reason("cancel_task", self.run.cancel)

    def action_exclude_host(self: OperatorView) -> None:
        host = self.selected_host()
        if host is None:
            self.notify("select a task of the host to exclude", severity="warning")
            return
        self.ask(f"Exclude host '{host}' from this run", "reason (optional)", False,
                 lambda reason: self.act(self.run.exclude_host, host, None, reason or None),
                 action="exclude_host")

    def action_rollback(self: OperatorView, downstream: bool = False, whole: bool = False) -> None:
        from console.engine.rollback import start_rollback

        why = why_refused(self, "rollback")
        if why is not None:
            self.notify(why, severity="warning")
            return
        selection = None if whole else self.selection
        plan = rollback_plan(self.run, selection.step if selection is not None else None,
                             selection.host if selection is not None else None, downstream)
        if isinstance(plan, str):
            self.notify(plan, severity="warning")
            return

        def answered(choice: object) -> None:
            if choice == "rollback":
                self.act(start_rollback, self.run, plan)

        self.app.push_screen(RollbackModal(plan), answered)

    def action_rollback_downstream(self: OperatorView) -> None:
        self.action_rollback(downstream=True)

    def action_rollback_run(self: OperatorView) -> None:
        self.action_rollback(whole=True)

    def action_step_mode(self: OperatorView) -> None:
        on = self.run.toggle_step_mode()
        self.after_action()
        self.notify(f"step mode {'on: every task needs approval' if on else 'off'}")

    def action_note(self: OperatorView) -> None:
        selection = self.selection
        step = selection.step if selection else None
        host = selection.host if selection else None
        title = f"Note on '{step}'" if step else "Note"
        self.ask(title, "what happened", True,
                 lambda text: self.act(self.run.note, text, step, host))


def _target(view: RunView) -> tuple[str, str | None]:
    selection = view.selection
    assert selection is not None
    return selection.step, selection.host
