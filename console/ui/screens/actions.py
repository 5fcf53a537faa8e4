"""Which operator actions apply to which task states (mirrors the engine's validation,
so the footer and palette only offer what the Run would accept)."""

from __future__ import annotations

from console.engine.events import TaskState

S = TaskState

APPLIES: dict[str, frozenset[TaskState]] = {
    "approve": frozenset({S.AWAITING_APPROVAL}),
    "deny": frozenset({S.AWAITING_APPROVAL}),
    "done": frozenset({S.AWAITING_OPERATOR}),
    "retry": frozenset({S.FAILED, S.CANCELLED, S.INTERRUPTED}),
    "retry_downstream": frozenset({S.FAILED, S.CANCELLED, S.INTERRUPTED, S.SUCCEEDED,
                                   S.SKIPPED}),
    "skip": frozenset({S.PENDING, S.AWAITING_APPROVAL, S.AWAITING_OPERATOR, S.BLOCKED,
                       S.FAILED, S.CANCELLED, S.INTERRUPTED, S.RETRYING}),
    "mark_succeeded": frozenset({S.FAILED, S.CANCELLED, S.INTERRUPTED, S.BLOCKED,
                                 S.AWAITING_OPERATOR}),
    "mark_failed": frozenset({S.SUCCEEDED, S.SKIPPED, S.INTERRUPTED, S.AWAITING_OPERATOR}),
    "cancel_task": frozenset({S.RUNNING, S.RETRYING, S.AWAITING_APPROVAL,
                              S.AWAITING_OPERATOR}),
}
"""Action -> the task states it applies to (at least one selected task must be in them)."""

OPERATOR_ACTIONS = frozenset({*APPLIES, "pause", "breakpoint", "step_mode", "note", "start"})
"""Actions that change the run: none of them is allowed with --read-only."""
