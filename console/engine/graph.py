"""The graph of a run: its steps in order, who needs whom, the tasks of each step, the need
counters and the rollout batches (Dagu's ``plan.go``).

:class:`RunGraph` is rebuilt by :meth:`RunGraph.build` whenever the definition changes (a
reload, a restore); the tasks that already exist are kept, so their states survive. It
holds no scheduling decisions: :mod:`console.engine.scheduler` reads and updates the need
counters as the steps' statuses change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set

from console.engine.rollout import BatchCounts, RolloutPlan
from console.engine.status import StepStatus, rollout_step_status, step_status, task_status
from console.engine.task import Task, has_run
from console.model.conditions import waits_for_terminal
from console.model.workflow import Workflow

__all__ = ["RunGraph"]


class RunGraph:
    """Order, dependents, tasks per step, need counters and rollout plans of one run."""

    def __init__(self, workflow: Workflow, by_step: dict[str, list[Task]]) -> None:
        self.workflow = workflow
        self.order = workflow.order()
        self.position = {sid: i for i, sid in enumerate(self.order)}
        self.dependents: dict[str, list[str]] = {sid: [] for sid in workflow.steps}
        for step in workflow.steps.values():
            for need in step.needs:
                if need in self.dependents:
                    self.dependents[need].append(step.id)
        self.by_step = by_step
        self.tasks: dict[tuple[str, str], Task] = {
            task.key: task for sid in self.order for task in by_step[sid]}
        hosts_of = {sid: [t.host for t in tasks] for sid, tasks in by_step.items()}
        self.rollout_of: dict[str, RolloutPlan] = {}
        self.batch_counts: dict[str, BatchCounts] = {}
        for rollout in workflow.rollouts.values():
            plan = RolloutPlan.build(workflow, rollout, hosts_of)
            counts = self.batch_counts[rollout.name] = BatchCounts(plan)
            for sid in rollout.steps:
                self.rollout_of[sid] = plan
                for task in by_step.get(sid, ()):
                    counts.update(task.key, self.task_status(task))
        self.terminal_when = {sid for sid, step in workflow.steps.items()
                              if waits_for_terminal(step.when)}
        """Steps evaluated once their needs are terminal (their ``when`` calls a status
        function other than ``success()``; console/engine/conditions.py)."""
        # Per step, how many of its needs are not ``done`` / are ``bad`` (the scheduler's
        # statuses): outside rollouts they answer "are this task's needs met" in O(1).
        self.needs_open = dict.fromkeys(workflow.steps, 0)
        self.needs_bad = dict.fromkeys(workflow.steps, 0)
        for sid in workflow.steps:
            for dep in self.dependents[sid]:
                self.needs_open[dep] += 1

    @classmethod
    def build(cls, workflow: Workflow, limit: Sequence[str],
              old: Mapping[tuple[str, str], Task], removed_steps: set[str],
              departed: Set[str] = frozenset()) -> RunGraph:
        """The graph of ``workflow``, keeping the tasks of ``old`` that still exist (a step
        in ``removed_steps`` keeps exactly the hosts it had). A task that ran stays on a
        host its step no longer targets; a ``departed`` host (gone from the file, kept in
        ``workflow.hosts`` for the tasks that ran there) is targeted by no step."""
        by_step: dict[str, list[Task]] = {}
        ran: dict[str, list[str]] = {}
        for task in old.values():
            if has_run(task):
                ran.setdefault(task.step, []).append(task.host)
        for sid in workflow.order():
            hosts = [h for h in workflow.hosts_for(workflow.steps[sid], limit)
                     if h not in departed]
            if sid in removed_steps:
                hosts = [t.host for t in old.values() if t.step == sid]
            else:
                targeted = set(hosts)
                hosts += [h for h in ran.get(sid, ()) if h not in targeted]
            by_step[sid] = [old.get((sid, h)) or Task(sid, h) for h in hosts]
        return cls(workflow, by_step)

    # ------------------------------------------------------------------ queries

    def tasks_in_order(self) -> list[Task]:
        return [task for sid in self.order for task in self.by_step[sid]]

    def tasks_of(self, step: str) -> list[Task]:
        return list(self.by_step.get(step, ()))

    def sort_key(self, task: Task) -> int:
        return self.position[task.step]

    def downstream(self, sid: str) -> set[str]:
        """Every step that needs ``sid``, directly or not."""
        seen: set[str] = set()
        stack = [sid]
        while stack:
            for dep in self.dependents.get(stack.pop(), ()):
                if dep not in seen:
                    seen.add(dep)
                    stack.append(dep)
        return seen

    def task_status(self, task: Task) -> StepStatus:
        return task_status(task, self.workflow.steps[task.step])

    def step_status(self, sid: str) -> StepStatus:
        """``sid`` as its dependents see it, computed from its tasks now."""
        step = self.workflow.steps[sid]
        plan = self.rollout_of.get(sid)
        if plan is not None:
            return rollout_step_status(step, self.by_step[sid], plan.rollout.max_fail)
        return step_status(step, self.by_step[sid])

    def need_tasks(self, task: Task, need: str) -> list[Task]:
        """The tasks of ``need`` that ``task`` waits for: the same host inside a rollout."""
        plan = self.rollout_of.get(task.step)
        if plan is not None and need in plan.rollout.steps:
            dep = self.tasks.get((need, task.host))
            return [dep] if dep is not None else []
        return self.tasks_of(need)

    def earlier_batches(self, plan: RolloutPlan, task: Task) -> tuple[StepStatus, str | None]:
        """The batches before ``task``'s host's: ``wait`` while any of them runs,
        ``max_fail`` (with the reason) once their failures passed the rollout's max_fail,
        else ``done``."""
        batch = plan.batch_of.get(task.host, 0)
        if not batch:
            return StepStatus.DONE, None
        status = self.batch_counts[plan.rollout.name].prefix(batch - 1)
        if status is StepStatus.BAD:
            return StepStatus.MAX_FAIL, (f"max_fail reached (rollout {plan.rollout.name}: "
                                         f"more than {plan.rollout.max_fail} hosts failed)")
        return status, None

    # ------------------------------------------------------------------ need counters

    def count_needs(self, sid: str, old: StepStatus | None, new: StepStatus) -> None:
        """Keep the dependents' need counters in step with ``sid`` going ``old`` -> ``new``."""
        opened = (old is StepStatus.DONE) - (new is StepStatus.DONE)
        bad = (new is StepStatus.BAD) - (old is StepStatus.BAD)
        if opened or bad:
            for dep in self.dependents[sid]:
                self.needs_open[dep] += opened
                self.needs_bad[dep] += bad
