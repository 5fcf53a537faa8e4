"""Record who an attempt's process is, once it has started.

The tag (``BATON_ATTEMPT``) is chosen before the start and is durable with the task's
``running`` state; the shell's pid, start time and session id are known only after the
start. Together they let a resume after a crash find what an interrupted attempt left
running (:mod:`console.executors.leftovers`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from console.engine.task import Attempt, Task
from console.executors.containment import identity


def note_started(task: Task, attempt: Attempt, execution: Any,
                 hooks: Iterable[Callable[[Task, Attempt], None]]) -> None:
    """Fill ``attempt``'s process identity from ``execution`` and tell ``hooks``."""
    pid = getattr(execution, "pid", None)
    if isinstance(pid, int) and pid > 0:
        attempt.pid = pid
        found = identity(pid)
        if found is not None:
            attempt.pid_start, attempt.sid = found
    for hook in hooks:
        hook(task, attempt)
