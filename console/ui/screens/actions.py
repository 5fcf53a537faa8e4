"""Which console actions change the run. Whether a task action applies to the selection
is the engine's answer (:meth:`console.engine.run.Run.allowed`), so the footer, the
palette and the Run never disagree."""

from __future__ import annotations

TASK_ACTIONS: dict[str, str] = {
    "approve": "approve",
    "deny": "deny",
    "done": "done",
    "retry": "retry",
    "retry_downstream": "retry_downstream",
    "skip": "skip",
    "mark_succeeded": "mark_succeeded",
    "mark_failed": "mark_failed",
    "cancel_task": "cancel",
}
"""Console action -> the engine's name of that task action."""

OPERATOR_ACTIONS = frozenset({*TASK_ACTIONS, "pause", "breakpoint", "step_mode", "note", "start",
                              "exclude_host"})
"""Actions that change the run: none of them is allowed with --read-only."""
