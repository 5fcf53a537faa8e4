"""How states, durations and markers look: icons, theme variable names, short text."""

from __future__ import annotations

from collections.abc import Iterable

from console.engine.events import RunState, TaskState
from console.model.durations import COMPACT, format_duration

S = TaskState

ICONS: dict[TaskState, str] = {
    S.PENDING: "○",
    S.AWAITING_APPROVAL: "◇",
    S.AWAITING_OPERATOR: "◆",
    S.RUNNING: "▶",
    S.RETRYING: "↻",
    S.SUCCEEDED: "✔",
    S.FAILED: "✘",
    S.SKIPPED: "↷",
    S.CANCELLED: "⊘",
    S.BLOCKED: "■",
    S.INTERRUPTED: "!",
    S.UNDOING: "↺",
    S.UNDONE: "↶",
    S.UNDO_FAILED: "↯",
}

_VARIABLE: dict[TaskState, str] = {
    S.PENDING: "state-pending",
    S.AWAITING_APPROVAL: "state-awaiting",
    S.AWAITING_OPERATOR: "state-awaiting",
    S.RUNNING: "state-running",
    S.RETRYING: "state-retrying",
    S.SUCCEEDED: "state-succeeded",
    S.FAILED: "state-failed",
    S.SKIPPED: "state-skipped",
    S.CANCELLED: "state-cancelled",
    S.BLOCKED: "state-blocked",
    S.INTERRUPTED: "state-interrupted",
    S.UNDOING: "state-undo",
    S.UNDONE: "state-undo",
    S.UNDO_FAILED: "state-failed",
}

_RUN_VARIABLE: dict[RunState, str] = {
    RunState.RUNNING: "state-running",
    RunState.PAUSED: "state-awaiting",
    RunState.SUCCEEDED: "state-succeeded",
    RunState.FAILED: "state-failed",
    RunState.CANCELLED: "state-cancelled",
    RunState.INTERRUPTED: "state-interrupted",
    RunState.ROLLED_BACK: "state-undo",
}

# The state shown for a step with several tasks: the first one present in this order.
_STEP_PRIORITY = (S.RUNNING, S.RETRYING, S.UNDOING, S.UNDO_FAILED, S.AWAITING_APPROVAL,
                  S.AWAITING_OPERATOR, S.FAILED, S.INTERRUPTED, S.CANCELLED, S.BLOCKED,
                  S.PENDING, S.SUCCEEDED, S.UNDONE, S.SKIPPED)


def state_variable(state: TaskState) -> str:
    return _VARIABLE[state]


def run_state_variable(state: RunState) -> str:
    return _RUN_VARIABLE[state]


def step_state(states: Iterable[TaskState]) -> TaskState:
    """One state summarising the tasks of a step (``pending`` for a step with no tasks)."""
    present = set(states)
    return next((s for s in _STEP_PRIORITY if s in present), S.PENDING)


def label(state: TaskState) -> str:
    """``awaiting_approval`` -> ``awaiting approval``."""
    return str(state).replace("_", " ")


def duration(seconds: float | None) -> str:
    """Compact: ``0.4s``, ``12s``, ``3m05s``, ``1h02m``; empty for unknown."""
    return format_duration(seconds, COMPACT)


def clock_time(seconds: float | None) -> str:
    """Elapsed time for the header: ``00:01:23``."""
    if seconds is None:
        return "--:--:--"
    whole = int(max(0.0, seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"
