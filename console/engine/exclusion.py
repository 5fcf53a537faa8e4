"""Exclude a host from a run (console key ``x``; SPEC section 3).

Every pending, blocked or held task of the host (awaiting approval, awaiting the operator,
waiting out a retry delay) is skipped with reason ``host excluded``, and so is any of its
tasks that would become pending later in the run: later rollout steps, a retry-downstream
that resets it, a step added by a reload. A task of the host that is running finishes what
it started but is not retried automatically; an operator's retry, approve or done on the
host is refused. Tasks that already finished keep their state. The action is recorded like
every other (time, user, reason) and survives a resume (:func:`restore_exclusions`).

The functions here are handed the run's core; ``Run.exclude_host`` is the action, the
scheduler calls :func:`skip_if_excluded` before a task goes on, and the task actions pass
their targets through :func:`refuse_excluded`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from console.engine.core import RunCore
from console.engine.errors import ActionError
from console.engine.events import ActionEvent, TaskState
from console.engine.outputs import Outputs
from console.engine.task import Task

S = TaskState

EXCLUDED = "host excluded"
"""The reason on every task skipped because its host was excluded."""

EXCLUDABLE = frozenset({S.PENDING, S.BLOCKED, S.AWAITING_APPROVAL, S.AWAITING_OPERATOR,
                        S.RETRYING})
"""Task states an exclusion skips: pending, blocked, or held (approval, operator, retry)."""

REVIVING = frozenset({"retry", "retry_downstream", "approve", "done"})
"""Task actions that would make a task of an excluded host run: refused."""


def exclude_host(run: RunCore, host: str, user: str | None = None,
                 reason: str | None = None) -> list[Task]:
    """Take ``host`` out of ``run``; returns the tasks skipped now."""
    if run.state.finished and not run.options.keep_alive:
        raise ActionError("cannot exclude host: the run has ended")
    tasks = [t for t in run.tasks_in_order() if t.host == host]
    if not tasks:
        raise ActionError(f"cannot exclude host '{host}': no task of this run runs on it")
    excluded = run.excluded_hosts
    if host in excluded:
        raise ActionError(f"cannot exclude host '{host}': it is already excluded")
    if reason is not None and run.masker:
        reason = run.masker.mask(reason)
    excluded[host] = reason
    run.emit(ActionEvent("exclude_host", None, host, user or run.user, reason, run.clock()))
    skipped = [t for t in tasks if t.state in EXCLUDABLE]
    for task in skipped:
        _skip_excluded(run, task)
    run.wake.set()
    return skipped


def _skip_excluded(run: RunCore, task: Task) -> None:
    if task.state is S.RETRYING and task.attempt_loop is not None:
        task.attempt_loop.cancel()  # the loop leaves a task that is no longer retrying alone
    task.blocked_by_max_fail = False
    task.approved = False
    task.outputs = Outputs("skipped", task.exit_code, task.outputs.stdout)
    run.set_state(task, S.SKIPPED, EXCLUDED)


def skip_if_excluded(run: RunCore, task: Task) -> bool:
    """The scheduler's check before a pending or blocked task goes on: skip it when its
    host is excluded (returns True when it did)."""
    if task.host in run.excluded_hosts and task.state in (S.PENDING, S.BLOCKED):
        _skip_excluded(run, task)
        return True
    return False


def refuse_excluded(run: RunCore, action: str, tasks: list[Task]) -> list[Task]:
    """The targets of a task action that may go on: an action that would make a task of
    an excluded host (or one gone from the file) run leaves it out, and is refused when
    nothing is left."""
    excluded = run.excluded_hosts
    departed = run.departed_hosts
    if action not in REVIVING or not (excluded or departed):
        return tasks
    kept = [t for t in tasks if t.host not in excluded and t.host not in departed]
    if not kept:
        label, host = tasks[0].label, tasks[0].host
        why = ("is no longer in the workflow file" if host in departed
               else "is excluded from this run")
        raise ActionError(f"cannot {action.replace('_', ' ')} '{label}': host '{host}' {why}")
    return kept


def restore_exclusions(run: RunCore, actions: Iterable[Any]) -> None:
    """Excluded hosts of a stored run (its ``exclude_host`` actions), before it resumes."""
    excluded = run.excluded_hosts
    for action in actions:
        if action.action == "exclude_host" and action.host:
            excluded[action.host] = action.reason
