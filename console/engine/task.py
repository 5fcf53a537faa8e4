"""A task is one step on one host in one run; an attempt is one execution of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from console.engine.events import TaskState
from console.engine.outputs import Outputs, TailBuffer

if TYPE_CHECKING:  # annotations only: `baton runs`/`show` read labels without asyncio
    import asyncio

    from console.executors.base import Execution


def task_label(step: str, host: str) -> str:
    """``step`` for a local task, ``step@host`` for a remote one (logs, events, reports)."""
    return step if host == "local" else f"{step}@{host}"


@dataclass
class Attempt:
    number: int
    started: float
    digest: str
    """Hash of the workflow definition this attempt ran with."""
    command: str = ""
    """The rendered command, secrets masked."""
    ended: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    state: TaskState | None = None
    reason: str | None = None
    tag: str = ""
    """Put in the environment of every process of the attempt (BATON_ATTEMPT)."""
    pid: int | None = None
    """The shell's pid once started (locally; the remote process group over SSH)."""
    pid_start: float | None = None
    """The shell's start time (clock ticks since boot): tells a reused pid apart."""
    sid: int | None = None
    """The shell's session id."""

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


@dataclass(eq=False)
class Task:
    step: str
    host: str
    state: TaskState = TaskState.PENDING
    attempt: int = 0
    exit_code: int | None = None
    reason: str | None = None
    started: float | None = None
    ended: float | None = None
    attempts: list[Attempt] = field(default_factory=list)
    outputs: Outputs = field(default_factory=Outputs)
    approved: bool = False
    """An operator approved the gate for the next start."""
    blocked_by_max_fail: bool = False
    auto_retries: int = 0
    """Automatic retries used since the last operator action on this task."""
    # live execution state, not part of the record
    execution: Execution | None = field(default=None, repr=False)
    attempt_loop: asyncio.Task[None] | None = field(default=None, repr=False)
    """The asyncio task running this task's attempts and retry waits (engine/attempt.py)."""
    cancel_requested: str | None = field(default=None, repr=False)
    """Why the running attempt is being cancelled."""
    stdout_tail: TailBuffer | None = field(default=None, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.step, self.host)

    @property
    def label(self) -> str:
        return task_label(self.step, self.host)

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        if self.ended is None:
            return None
        return self.ended - self.started


def has_run(task: Task) -> bool:
    """The task ran (or runs) at least once, or an operator settled it: a reload keeps it."""
    return bool(task.attempts) or task.state in (
        TaskState.SUCCEEDED, TaskState.FAILED, TaskState.SKIPPED, TaskState.CANCELLED,
        TaskState.INTERRUPTED)
