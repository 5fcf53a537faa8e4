"""Which attempts of a task ran its command and which ran its ``undo``.

A rollback runs a task's undo as further attempts of the same task (numbered after the
last run of its command; SPEC section 5), so "the last attempt" is not the task's command
once it was rolled back. An undo attempt is one whose state is a rollback state
(``undoing``, ``undone``, ``undo_failed``), or the last one while the task is ``undoing``
(its state is set when it ends)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from console.engine.events import TaskState

if TYPE_CHECKING:
    from console.engine.task import Attempt, Task


def is_undo_attempt(task: Task, attempt: Attempt) -> bool:
    state = attempt.state
    if state is not None:
        return TaskState(state).undo
    return task.state is TaskState.UNDOING and bool(task.attempts) \
        and attempt is task.attempts[-1]


def command_attempts(task: Task) -> list[Attempt]:
    """The attempts that ran the task's own command, oldest first."""
    return [a for a in task.attempts if not is_undo_attempt(task, a)]


def undo_attempts(task: Task) -> list[Attempt]:
    """The attempts that ran its undo, oldest first."""
    return [a for a in task.attempts if is_undo_attempt(task, a)]


def last_command(task: Task) -> str:
    """The command the task's newest run of its own command ran ("" if none)."""
    for attempt in reversed(task.attempts):
        if attempt.command and not is_undo_attempt(task, attempt):
            return attempt.command
    return ""
