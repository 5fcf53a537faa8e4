"""Why a run-screen key does nothing: the one line a refused action notifies.

:meth:`RunScreen.check_action` decides what applies (footer, palette and keys agree);
when the operator presses the key of an action that does not apply, the screen shows the
reason from here instead of doing nothing silently. Task actions take the engine's own
answer (:meth:`console.engine.run.Run.refusal`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.dom import DOMNode

from console.ui.screens.actions import OPERATOR_ACTIONS, TASK_ACTIONS

if TYPE_CHECKING:
    from console.ui.screens.run_screen import RunScreen

READ_ONLY = "read-only: this console watches the run and changes nothing"


def bound_action(node: DOMNode, key: str) -> str | None:
    """The action ``key`` is bound to on ``node`` (the user's ``[keys]`` applied)."""
    overrides: dict[str, str] = getattr(node.app, "keymap_overrides", {})
    for binding in node.BINDINGS:
        if isinstance(binding, Binding):
            keys = overrides.get(binding.id or "", binding.key)
            if key in (k.strip() for k in keys.split(",")):
                return binding.action
    return None


def why_refused(screen: RunScreen, action: str) -> str | None:
    """The reason ``action`` does not apply on ``screen`` now, or None when it does."""
    run = screen.run
    if screen.read_only and action in OPERATOR_ACTIONS:
        return READ_ONLY
    if action == "start":
        return None if not screen.started else "the run has already started"
    if action == "pause":
        if not screen.started:
            return "the run has not started yet: press g to start it"
        return f"cannot pause: the run has {run.state}" if run.state.finished else None
    task_action = TASK_ACTIONS.get(action)
    if task_action is not None:
        if not screen.started:
            return "the run has not started yet: press g to start it"
        selection = screen.selection
        if selection is None:
            return "select a step first"
        return run.refusal(task_action, selection.step, selection.host)
    if action == "exclude_host":
        if not screen.started:
            return "the run has not started yet: press g to start it"
        host = screen.selected_host()
        if host is None:
            return "select a task of a remote host to exclude it"
        if run.is_excluded(host):
            return f"host {host} is already excluded"
        if run.state.finished and not run.options.keep_alive:
            return f"the run has {run.state}"
    if action in ("rollback", "rollback_downstream", "rollback_run"):
        if not screen.started:
            return "the run has not started yet: press g to start it"
        from console.engine.rollback import rollback_refusal

        why = rollback_refusal(run)
        if why is not None:
            return why
        if action != "rollback_run" and screen.selection is None:
            return "select a step first"
    if action == "next_attention" and not screen.needs_operator():
        return "no task needs the operator"
    if action == "breakpoint" and screen.selection is None:
        return "select a step first"
    if action == "open_log":
        if screen.baton.history is None:
            return "this run is not recorded: there is no log file to open"
        if len(screen.selected_tasks()) != 1:
            return "select one host of the step to open its log"
    return None
