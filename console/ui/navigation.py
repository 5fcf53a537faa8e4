"""Where the run screen's cursor goes next: the next task that needs the operator, the
next step or host whose name matches a search. Pure functions of the run (no Textual)."""

from __future__ import annotations

from collections.abc import Iterator

from console.engine.events import TaskState
from console.engine.run import Run
from console.engine.task import Task
from console.ui.widgets.dag_tree import Selection, is_fan_out

S = TaskState
NEEDS_OPERATOR = (S.FAILED, S.AWAITING_APPROVAL, S.AWAITING_OPERATOR)
"""Task states that wait for an operator's decision."""


def needs_operator(run: Run) -> list[Task]:
    """Every task waiting for the operator, in tree order."""
    return [t for t in run.tasks_in_order() if t.state in NEEDS_OPERATOR]


def _entries(run: Run) -> Iterator[Selection]:
    """Every line the tree can show, in its order: each step, then its hosts."""
    for sid in run.workflow.order():
        yield Selection(sid)
        tasks = run.tasks_of(sid)
        if is_fan_out(tasks):
            for task in tasks:
                yield Selection(sid, task.host)


def _after(entries: list[Selection], current: Selection | None) -> list[Selection]:
    """``entries`` starting after ``current``, wrapping around."""
    if current in entries:
        index = entries.index(current) + 1
        return entries[index:] + entries[:index]
    return entries


def next_needing(run: Run, current: Selection | None) -> Selection | None:
    """The next task after ``current`` that needs the operator (a step's own line for a
    one-task step, the host's line on a fan-out)."""
    waiting = {t.key for t in needs_operator(run)}
    if not waiting:
        return None
    entries = list(_entries(run))
    for entry in _after(entries, current):
        if entry.host is not None and (entry.step, entry.host) in waiting:
            return entry
        if entry.host is None and not is_fan_out(run.tasks_of(entry.step)) and any(
                key[0] == entry.step for key in waiting):
            return entry
    return None


def find(run: Run, text: str, current: Selection | None) -> Selection | None:
    """The next step (by name or id) or host whose name contains ``text`` (any case)."""
    needle = text.strip().lower()
    if not needle:
        return None
    for entry in _after(list(_entries(run)), current):
        if entry.host is not None:
            if needle in entry.host.lower():
                return entry
            continue
        step = run.workflow.steps[entry.step]
        if needle in step.name.lower() or needle in step.id.lower():
            return entry
    return None
