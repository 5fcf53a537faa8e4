"""Readiness and launch (Dagu's ``runner.go``): which tasks may start, which wait, which
are blocked, and starting the ready ones within ``concurrency`` and ``serial``.

A pass re-evaluates only what changed: a task state change marks its step dirty
(:meth:`RunCore.set_state`); a dirty step's :class:`StepStatus` is recomputed and, when it
changed, the need counters of its dependents (:class:`RunGraph`) are updated and only the
tasks of dependent steps are examined again. Held tasks (gates, manual steps, step mode,
breakpoints, a rollout's pause between batches) wait for an operator or follow the run's
approval policy.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from console.engine.conditions import status_functions, terminal_deps_status
from console.engine.events import LogEvent, RunState, TaskState
from console.engine.exclusion import skip_if_excluded
from console.engine.status import StepStatus, describe_bad
from console.engine.task import Task
from console.engine.texts import RunTexts
from console.model import templating
from console.model.workflow import Step

__all__ = ["APPROVAL_REQUIRED", "Scheduler", "StepStatus"]

S = TaskState
WAIT, DONE, BAD, MAX_FAIL = (StepStatus.WAIT, StepStatus.DONE, StepStatus.BAD,
                             StepStatus.MAX_FAIL)

APPROVAL_REQUIRED = "approval required (use --yes)"


class Scheduler:
    """Handed the run (its state, graph and texts) and ``start``, which launches a task."""

    def __init__(self, run: RunTexts, start: Callable[[Task, Step], None]) -> None:
        self.run = run
        self.start = start

    def run_pass(self) -> None:
        """Re-assess what changed since the last pass, then launch what is ready."""
        run, agenda = self.run, self.run.agenda
        while agenda.dirty_steps or agenda.candidates:
            graph = run.graph
            dirty, agenda.dirty_steps = agenda.dirty_steps, set()
            for sid in dirty:
                self._check_max_fail(sid)
                status = graph.step_status(sid)
                old = agenda.status.get(sid)
                if old != status:
                    agenda.status[sid] = status
                    graph.count_needs(sid, old, status)
                    # Unless a need turned or stopped being bad, a dependent that still
                    # waits for another need would only be told "wait" again.
                    quiet = old is not BAD and status is not BAD
                    for dep in graph.dependents[sid]:
                        if quiet and graph.needs_open[dep] and dep not in graph.rollout_of \
                                and dep not in graph.terminal_when:
                            continue
                        for task in graph.by_step[dep]:
                            agenda.candidates[task.key] = task
            self._rollout_candidates()
            candidates, agenda.candidates = agenda.candidates, {}
            for task in sorted(candidates.values(), key=graph.sort_key):
                self._evaluate(task)
        self._launch()

    def _rollout_candidates(self) -> None:
        """Per-host needs: the same host's tasks of a changed rollout task; batch barriers:
        every task of a batch whose gate (the batches before it) changed status."""
        graph, agenda = self.run.graph, self.run.agenda
        changed, agenda.rollout_changed = agenda.rollout_changed, {}
        for key in changed:
            plan = graph.rollout_of.get(key[0])
            if plan is None:
                continue
            for member in plan.rollout.steps:
                task = graph.tasks.get((member, key[1]))
                if task is not None:
                    agenda.candidates[task.key] = task
        for counts in graph.batch_counts.values():
            for batch in counts.changed_gates():
                for host in counts.plan.batches[batch]:
                    for member in counts.plan.rollout.steps:
                        task = graph.tasks.get((member, host))
                        if task is not None:
                            agenda.candidates[task.key] = task

    def deps_status(self, task: Task) -> tuple[StepStatus, str | None]:
        """``done``, ``wait``, ``bad`` or ``max_fail``, with the reason when not ready.

        Outside rollouts, when no need is ``bad`` or waiting to be re-assessed, the need
        counters answer in O(1): a finished task re-evaluates every dependent, and on a
        layered 1,000-step graph walking all their needs each time is O(width²) per layer.
        """
        graph, agenda = self.run.graph, self.run.agenda
        step = graph.workflow.steps[task.step]
        if step.id in graph.terminal_when:  # failure()/always()/cancelled(): conditions.py
            return terminal_deps_status(graph, task)
        plan = graph.rollout_of.get(task.step)
        dirty = agenda.dirty_steps
        if plan is None and not graph.needs_bad[step.id] and (
                not dirty or dirty.isdisjoint(step.needs)):
            return (WAIT if graph.needs_open[step.id] else DONE), None
        waiting = False
        if plan is not None:
            earlier, reason = graph.earlier_batches(plan, task)
            if earlier is MAX_FAIL:
                return earlier, reason
            waiting = earlier is WAIT
        for need in step.needs:
            if need not in graph.workflow.steps:
                continue  # a kept step that was removed from the file may need a gone step
            if plan is not None and need in plan.rollout.steps:
                dep = graph.tasks.get((need, task.host))
                if dep is None:
                    continue
                status = graph.task_status(dep)
                if status is BAD:
                    return BAD, f"needs {dep.label} ({dep.state})"
                waiting = waiting or status is WAIT
                continue
            known = agenda.status.get(need)  # None: not computed yet
            status = graph.step_status(need) if known is None or need in dirty else known
            if status is BAD:
                return BAD, f"needs {need} ({describe_bad(graph.by_step[need])})"
            if status is WAIT:
                waiting = True
        return (WAIT if waiting else DONE), None

    def _evaluate(self, task: Task) -> None:
        run = self.run
        if skip_if_excluded(run, task):
            return
        if task.state is S.BLOCKED:
            if task.blocked_by_max_fail and task.step not in run.graph.rollout_of:
                return  # _check_max_fail releases it
            status, _ = self.deps_status(task)
            if status is not BAD and status is not MAX_FAIL:
                task.blocked_by_max_fail = False
                run.set_state(task, S.PENDING, None)
            return
        if task.state is not S.PENDING or task.key in run.agenda.ready:
            return
        status, reason = self.deps_status(task)
        if status is MAX_FAIL:
            task.blocked_by_max_fail = True
            run.set_state(task, S.BLOCKED, reason)
        elif status is BAD:
            run.set_state(task, S.BLOCKED, reason)
        elif status is DONE:
            self._make_ready(task)

    def _make_ready(self, task: Task) -> None:
        run = self.run
        step = run.workflow.steps[task.step]
        if step.when:
            try:
                go = templating.evaluate(step.when, {**run.context(task),
                                                     **status_functions(run, task)})
            except templating.TemplateError as exc:
                if not run.options.dry_run:
                    run.set_state(task, S.FAILED, f"when: {exc}")
                    return
                # a dry run has no outputs yet: `when` is decided when the run is real
                self._dry_run(task, step, f"when: decided at run time ({exc})")
                return
            if not go:
                run.set_state(task, S.SKIPPED, f"when: {step.when} is false")
                return
        if run.options.dry_run:
            self._dry_run(task, step)
            return
        if step.manual:
            self.hold(task, S.AWAITING_OPERATOR)
            return
        if self.needs_approval(task, step):
            self.hold(task, S.AWAITING_APPROVAL)
            return
        run.agenda.ready[task.key] = task

    def needs_approval(self, task: Task, step: Step) -> bool:
        run = self.run
        return not task.approved and (
            step.gated or run.step_mode or step.id in run.breakpoints
            or self._batch_gate(task) is not None
        )

    def _batch_gate(self, task: Task) -> str | None:
        """The prompt of a rollout's pause between batches, when this task opens a batch."""
        plan = self.run.graph.rollout_of.get(task.step)
        if plan is None or not plan.rollout.pause_between or task.step not in plan.entry_steps:
            return None
        batch = plan.batch_of.get(task.host, 0)
        if not batch:
            return None
        hosts = ", ".join(plan.batches[batch])
        count = len(plan.batches)
        return f"rollout {plan.rollout.name}: start batch {batch + 1}/{count} ({hosts})?"

    def hold(self, task: Task, state: TaskState) -> None:
        """Wait for an operator, or apply the run's approval policy (--yes / no TTY)."""
        run = self.run
        policy = run.options.approval
        if policy == "fail":
            run.set_state(task, S.FAILED, APPROVAL_REQUIRED)
        elif policy == "auto":
            if state is S.AWAITING_OPERATOR:
                run.emit_action("done", task.step, task.host, "--yes")
                run.set_state(task, S.SUCCEEDED, "marked done (--yes)")
            else:
                run.emit_action("approve", task.step, task.host, "--yes")
                task.approved = True
                run.agenda.ready[task.key] = task
                run.wake.set()
        else:
            run.set_state(task, state, self.hold_reason(task, state))

    def hold_reason(self, task: Task, state: TaskState) -> str:
        run = self.run
        step = run.workflow.steps[task.step]
        if state is S.AWAITING_OPERATOR:
            return "manual step: mark it done when finished"
        if step.id in run.breakpoints:
            return "breakpoint"
        if step.confirm:
            return run.step_prompt(task.step, task.host)
        if step.dangerous:
            return f"dangerous step: type '{step.id}' to approve"
        return self._batch_gate(task) or "step mode"

    def _dry_run(self, task: Task, step: Step, note: str | None = None) -> None:
        """Show what the task would do (``would run: <command>``) and skip it: nothing is
        executed. ``when`` was evaluated already (params are known)."""
        run = self.run
        if step.manual:
            text = f"would wait for the operator: {run.step_name(task.step, task.host)}"
            reason = "dry run: would wait for the operator"
        else:
            try:
                command = run.shown(task, step)
            except templating.TemplateError:
                command = step.run or ""
            text = "would run: " + command
            reason = "dry run: would run"
        if note:
            reason = f"{reason} ({note})"
        run.emit(LogEvent(task.step, task.host, "stdout", run.masker.mask(text), run.clock()))
        run.set_state(task, S.SKIPPED, reason)

    def _check_max_fail(self, sid: str) -> None:
        """Stop launching hosts of a step once its failures exceed ``max_fail``."""
        run = self.run
        step = run.workflow.steps[sid]
        if step.max_fail is None or sid in run.graph.rollout_of:
            return
        tasks = run.graph.by_step[sid]
        failed = sum(1 for t in tasks if t.state is S.FAILED)
        if failed > step.max_fail:
            for task in tasks:
                if task.state in (S.PENDING, S.AWAITING_APPROVAL) and task.started is None:
                    task.blocked_by_max_fail = True
                    run.set_state(task, S.BLOCKED, f"max_fail reached ({failed} failed)")
        else:
            for task in tasks:
                if task.state is S.BLOCKED and task.blocked_by_max_fail:
                    task.blocked_by_max_fail = False
                    run.set_state(task, S.PENDING, None)

    def _serial_limit(self, step: Step) -> int | None:
        if step.serial is None:
            return None
        if isinstance(step.serial, int):
            return step.serial
        percent = float(str(step.serial).rstrip("%"))
        return max(1, math.floor(len(self.run.graph.by_step[step.id]) * percent / 100))

    def _launch(self) -> None:
        run, agenda = self.run, self.run.agenda
        if run.state is RunState.PAUSED or run.closing or run.halted:
            return
        limit = run.workflow.concurrency
        if agenda.running >= limit or not agenda.ready:
            return
        for task in list(agenda.ready.values()):
            if agenda.running >= limit:
                break
            step = run.workflow.steps[task.step]
            if self.needs_approval(task, step):
                del agenda.ready[task.key]
                self.hold(task, S.AWAITING_APPROVAL)
                continue
            serial = self._serial_limit(step)
            if serial is not None and agenda.running_by_step[step.id] >= serial:
                continue
            del agenda.ready[task.key]
            self.start(task, step)
