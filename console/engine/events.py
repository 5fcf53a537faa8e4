"""Events: every state change of a run, published to subscribers (printer, store, console).

Log output travels as :class:`LogEvent` chunks of one or more complete lines so that a
flood of output costs one event per read, not one per line. ``to_dicts`` expands to the
per-line JSON objects of SPEC section 4.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal


class TaskState(enum.StrEnum):
    PENDING = "pending"
    AWAITING_APPROVAL = "awaiting_approval"
    AWAITING_OPERATOR = "awaiting_operator"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"
    INTERRUPTED = "interrupted"
    UNDOING = "undoing"
    """A rollback runs this task's ``undo`` (SPEC section 5)."""
    UNDONE = "undone"
    UNDO_FAILED = "undo_failed"

    @property
    def finished(self) -> bool:
        """No further progress without an operator action."""
        return self in _FINISHED

    @property
    def undo(self) -> bool:
        """A rollback's state: never ``done`` for dependents (what it did is taken back)."""
        return self in _UNDO

    @property
    def active(self) -> bool:
        """Holds an executor slot or a timer."""
        return self in (TaskState.RUNNING, TaskState.RETRYING)

    @property
    def waiting(self) -> bool:
        """Waits for an operator decision."""
        return self in (TaskState.AWAITING_APPROVAL, TaskState.AWAITING_OPERATOR)


_FINISHED = frozenset(
    {
        TaskState.SUCCEEDED,
        TaskState.FAILED,
        TaskState.SKIPPED,
        TaskState.CANCELLED,
        TaskState.BLOCKED,
        TaskState.INTERRUPTED,
        TaskState.UNDONE,
        TaskState.UNDO_FAILED,
    }
)


_UNDO = frozenset({TaskState.UNDOING, TaskState.UNDONE, TaskState.UNDO_FAILED})


class RunState(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    ROLLED_BACK = "rolled_back"
    """A rollback finished: every planned undo is undone or skipped (exit code 1)."""

    @property
    def finished(self) -> bool:
        return self not in (RunState.RUNNING, RunState.PAUSED)


@dataclass(slots=True)
class RunEvent:
    run_id: str
    state: RunState
    time: float
    type: Literal["run"] = field(default="run", init=False)

    def to_dicts(self) -> list[dict[str, Any]]:
        return [{"type": "run", "run_id": self.run_id, "state": str(self.state), "time": self.time}]


@dataclass(slots=True)
class TaskEvent:
    step: str
    host: str
    state: TaskState
    attempt: int
    exit_code: int | None
    reason: str | None
    time: float
    type: Literal["task"] = field(default="task", init=False)

    def to_dicts(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "task",
                "step": self.step,
                "host": self.host,
                "state": str(self.state),
                "attempt": self.attempt,
                "exit_code": self.exit_code,
                "reason": self.reason,
                "time": self.time,
            }
        ]


@dataclass(slots=True)
class LogEvent:
    """One or more complete output lines of a task's current attempt, already masked."""

    step: str
    host: str
    stream: Literal["stdout", "stderr"]
    text: str
    """Lines joined by "\\n", without a trailing newline."""
    time: float
    attempt: int = 1
    type: Literal["log"] = field(default="log", init=False)

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    def to_dicts(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "log",
                "step": self.step,
                "host": self.host,
                "stream": self.stream,
                "line": line,
                "time": self.time,
            }
            for line in self.lines
        ]


@dataclass(slots=True)
class ActionEvent:
    """An operator action (or a note), recorded with who did it and why."""

    action: str
    step: str | None
    host: str | None
    user: str
    reason: str | None
    time: float
    type: Literal["action"] = field(default="action", init=False)

    def to_dicts(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "action",
                "action": self.action,
                "step": self.step,
                "host": self.host,
                "user": self.user,
                "reason": self.reason,
                "time": self.time,
            }
        ]


@dataclass(slots=True)
class ReloadEvent:
    """The workflow file changed: the diff applied to the live run, or why it was refused."""

    added: list[str]
    changed: list[str]
    removed: list[str]
    digest: str | None
    """Hash of the definition now in force (None when the new text was refused)."""
    error: str | None
    """``FILE:LINE: message`` when the new text is invalid; the run keeps the old one."""
    time: float
    type: Literal["reload"] = field(default="reload", init=False)

    def to_dicts(self) -> list[dict[str, Any]]:
        if self.error is not None:
            return [{"type": "reload", "error": self.error}]
        return [{"type": "reload", "added": self.added, "changed": self.changed,
                 "removed": self.removed}]


Event = RunEvent | TaskEvent | LogEvent | ActionEvent | ReloadEvent
