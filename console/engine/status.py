"""What a step or a task means for the steps that need it: :class:`StepStatus`.

A leaf of the engine (the graph, the rollout counters and the scheduler all read it):
pure functions of task states and the step's definition, no run state.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from console.engine.events import TaskState
from console.engine.task import Task
from console.model.workflow import Step

S = TaskState


class StepStatus(enum.StrEnum):
    """A need as its dependents see it."""

    WAIT = "wait"
    """Some task of it has not finished: dependents wait."""
    DONE = "done"
    """Finished within its failure allowance: dependents may start."""
    BAD = "bad"
    """Failed beyond its allowance, cancelled, interrupted or taken back: dependents are
    blocked."""
    MAX_FAIL = "max_fail"
    """A rollout's earlier batches went past its ``max_fail``: this host is not launched."""


W, D, B = StepStatus.WAIT, StepStatus.DONE, StepStatus.BAD


def task_status(task: Task, step: Step) -> StepStatus:
    """One task as a per-host need (inside a rollout) or as a rollout's batch member."""
    state = task.state
    if state.undo:
        return B
    if not state.finished:
        return W
    if state is S.SUCCEEDED or state is S.SKIPPED:
        return D
    if state is S.FAILED and step.continue_on_error:
        return D
    return B


def step_status(step: Step, tasks: Iterable[Task]) -> StepStatus:
    """A step outside rollouts: done when its failed hosts stay within its ``max_fail``."""
    failed = 0
    bad = False
    for task in tasks:
        state = task.state
        if state.undo:  # taken back: never done for dependents
            bad = True
        elif not state.finished:
            return W
        elif state is S.FAILED:
            failed += 1
        elif state is not S.SUCCEEDED and state is not S.SKIPPED:
            bad = True
    if bad:
        return B
    if failed and not step.continue_on_error and (
        step.max_fail is None or failed > step.max_fail
    ):
        return B
    return D


def rollout_step_status(step: Step, tasks: Iterable[Task], max_fail: int) -> StepStatus:
    """A rollout step is done when its failed hosts stay within the rollout's max_fail."""
    failed_hosts = 0
    for task in tasks:
        state = task.state
        if state.undo:
            return B
        if not state.finished:
            return W
        if state in (S.CANCELLED, S.INTERRUPTED) or task.blocked_by_max_fail:
            return B
        if state is S.FAILED or state is S.BLOCKED:
            failed_hosts += 1
    if failed_hosts and not step.continue_on_error and failed_hosts > max_fail:
        return B
    return D


def describe_bad(tasks: Iterable[Task]) -> str:
    """Why a ``bad`` step is bad, in one word (the blocked dependents' reason)."""
    states = {t.state for t in tasks}
    for state in (S.FAILED, S.CANCELLED, S.INTERRUPTED, S.BLOCKED):
        if state in states:
            return str(state)
    return "failed"
