"""Status functions in ``when``, given their values by a run (SPEC section 1).

- ``success()``: every need of the task is done (the default condition).
- ``failure()``: some task of this run failed (``continue_on_error`` failures, which do not
  fail the run, do not count).
- ``always()``: true.
- ``cancelled()``: some task of this run was cancelled, or the run is being cancelled.

A step whose ``when`` calls ``failure()``, ``always()`` or ``cancelled()`` waits until every
need is *terminal* (done, failed, blocked, skipped or cancelled), not only done, and is never
``blocked`` by a failed need: :func:`terminal_deps_status` answers for it where
the scheduler asks for ordinary steps. A rollout's batch barrier still applies: hosts of a
later batch are not launched past the rollout's ``max_fail``. An ``interrupted`` need (the
run stopped while it ran) is not terminal: it waits for an operator's retry or skip, and
the step is ``blocked`` by it meanwhile, so a resumed run still ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from console.engine.events import TaskState
from console.model.conditions import waits_for_terminal
from console.model.workflow import Workflow

if TYPE_CHECKING:
    from console.engine.run import Run
    from console.engine.task import Task

S = TaskState


def terminal_steps(workflow: Workflow) -> set[str]:
    """Steps evaluated once their needs are terminal (their ``when`` calls a status
    function other than ``success()``)."""
    return {sid for sid, step in workflow.steps.items() if waits_for_terminal(step.when)}


def _need_tasks(run: Run, task: Task, need: str) -> list[Task]:
    """The tasks of ``need`` that ``task`` waits for: the same host inside a rollout."""
    plan = run._rollout_of.get(task.step)
    if plan is not None and need in plan.rollout.steps:
        dep = run.tasks.get((need, task.host))
        return [dep] if dep is not None else []
    return run.tasks_of(need)


def terminal_deps_status(run: Run, task: Task) -> tuple[str, str | None]:
    """``done`` once every need of ``task`` is terminal, else ``wait``; ``max_fail`` when a
    rollout's earlier batches went past its ``max_fail`` (this host is not launched)."""
    step = run.workflow.steps[task.step]
    plan = run._rollout_of.get(task.step)
    waiting = False
    if plan is not None:
        earlier, reason = run.earlier_batches(plan, task)
        if earlier == "max_fail":
            return earlier, reason
        waiting = earlier == "wait"
    for need in step.needs:
        if need not in run.workflow.steps:
            continue
        for dep in _need_tasks(run, task, need):
            if dep.state is S.INTERRUPTED:  # not terminal: it waits for an operator decision
                return "bad", f"needs {dep.label} (interrupted)"
            if not dep.state.finished:
                waiting = True
    return ("wait" if waiting else "done"), None


def status_functions(run: Run, task: Task) -> dict[str, Callable[[], bool]]:
    """The callables a ``when`` expression of ``task`` sees."""

    def success() -> bool:
        plan = run._rollout_of.get(task.step)
        for need in run.workflow.steps[task.step].needs:
            if need not in run.workflow.steps:
                continue
            if plan is not None and need in plan.rollout.steps:
                dep = run.tasks.get((need, task.host))
                if dep is not None and run._task_status(dep) != "done":
                    return False
            elif run.step_status(need) != "done":
                return False
        return True

    def failure() -> bool:
        steps = run.workflow.steps
        return any(t.state is S.FAILED and not steps[t.step].continue_on_error
                   for t in run.tasks.values())

    def always() -> bool:
        return True

    def cancelled() -> bool:
        return run._closing or any(t.state is S.CANCELLED for t in run.tasks.values())

    return {"success": success, "failure": failure, "always": always, "cancelled": cancelled}
