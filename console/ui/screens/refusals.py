"""Why a run-screen key does nothing: the one line a refused action notifies.

:meth:`RunScreen.check_action` decides what applies (footer, palette and keys agree);
when the operator presses the key of an action that does not apply, the screen shows the
reason from here instead of doing nothing silently. Task actions take the engine's own
answer (:meth:`console.engine.run.Run.refusal`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from textual import events
from textual.binding import Binding
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widgets import Input

from console.engine.run import Run
from console.engine.task import Task
from console.ui.screens.run_keys import OPERATOR_ACTIONS, TASK_ACTIONS
from console.ui.widgets.dag_tree import Selection

READ_ONLY = "read-only: this console watches the run and changes nothing"


class RunView(Protocol):
    """What the refusals read of the run screen."""

    run: Run
    read_only: bool

    @property
    def started(self) -> bool: ...

    @property
    def has_history(self) -> bool: ...

    @property
    def selection(self) -> Selection | None: ...

    def selected_tasks(self) -> list[Task]: ...

    def selected_host(self) -> str | None: ...

    def needs_operator(self) -> list[Task]: ...


def keymap(app: Any) -> dict[str, str]:
    """The user's ``[keys]`` overrides (binding id -> keys) the app applied, if any."""
    overrides: dict[str, str] = getattr(app, "keymap_overrides", {})
    return overrides


def bound_action(node: DOMNode, key: str) -> str | None:
    """The action ``key`` is bound to on ``node`` (the user's ``[keys]`` applied)."""
    overrides = keymap(node.app)
    for binding in node.BINDINGS:
        if isinstance(binding, Binding):
            keys = overrides.get(binding.id or "", binding.key)
            if key in (k.strip() for k in keys.split(",")):
                return binding.action
    return None


def why_refused(screen: RunView, action: str) -> str | None:
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
        if not screen.has_history:
            return "this run is not recorded: there is no log file to open"
        if len(screen.selected_tasks()) != 1:
            return "select one host of the step to open its log"
    return None


def refuse_key(screen: Screen[Any], event: events.Key,
               why_not: Callable[[str], str | None]) -> None:
    """A key of ``screen`` whose action does not apply (``why_not(action)`` says why) shows
    the reason (it would otherwise do nothing, and what the operator types next would land
    there as more keys); a focused widget's own binding of the key wins."""
    if isinstance(screen.focused, Input):
        return
    action = bound_action(screen, event.key)
    if action is None:
        return
    node = screen.focused
    while node is not None and node is not screen:
        own = bound_action(node, event.key)
        if own is not None and node.check_action(own, ()):
            return
        node = node.parent  # type: ignore[assignment]
    why = why_not(action)
    if why is not None:
        event.stop()
        event.prevent_default()
        screen.notify(why, severity="warning")
