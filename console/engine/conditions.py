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

from console.engine.core import RunCore
from console.engine.events import TaskState
from console.engine.graph import RunGraph
from console.engine.status import StepStatus
from console.engine.task import Task

S = TaskState


def terminal_deps_status(graph: RunGraph, task: Task) -> tuple[StepStatus, str | None]:
    """``done`` once every need of ``task`` is terminal, else ``wait``; ``max_fail`` when a
    rollout's earlier batches went past its ``max_fail`` (this host is not launched)."""
    step = graph.workflow.steps[task.step]
    plan = graph.rollout_of.get(task.step)
    waiting = False
    if plan is not None:
        earlier, reason = graph.earlier_batches(plan, task)
        if earlier is StepStatus.MAX_FAIL:
            return earlier, reason
        waiting = earlier is StepStatus.WAIT
    for need in step.needs:
        if need not in graph.workflow.steps:
            continue
        for dep in graph.need_tasks(task, need):
            if dep.state is S.INTERRUPTED:  # not terminal: it waits for an operator decision
                return StepStatus.BAD, f"needs {dep.label} (interrupted)"
            if not dep.state.finished:
                waiting = True
    return (StepStatus.WAIT if waiting else StepStatus.DONE), None


def status_functions(run: RunCore, task: Task) -> dict[str, Callable[[], bool]]:
    """The callables a ``when`` expression of ``task`` sees."""
    graph = run.graph

    def success() -> bool:
        plan = graph.rollout_of.get(task.step)
        for need in graph.workflow.steps[task.step].needs:
            if need not in graph.workflow.steps:
                continue
            if plan is not None and need in plan.rollout.steps:
                dep = graph.tasks.get((need, task.host))
                if dep is not None and graph.task_status(dep) is not StepStatus.DONE:
                    return False
            elif graph.step_status(need) is not StepStatus.DONE:
                return False
        return True

    def failure() -> bool:
        steps = graph.workflow.steps
        return any(t.state is S.FAILED and not steps[t.step].continue_on_error
                   for t in graph.tasks.values())

    def always() -> bool:
        return True

    def cancelled() -> bool:
        return run.closing or any(t.state is S.CANCELLED for t in graph.tasks.values())

    return {"success": success, "failure": failure, "always": always, "cancelled": cancelled}
