"""A run: the tasks of one workflow execution, their states, operator actions, scheduler.

Every state change goes through :meth:`Run._set` and is published as an event; every
operator action is a method that validates its target first (raising :class:`ActionError`
and changing nothing when it does not apply) and is recorded as an :class:`ActionEvent`.

The scheduler is a single coroutine (:meth:`Run.execute`) woken whenever something
changes. Readiness is re-evaluated only for tasks whose upstream steps changed, which
keeps a pass cheap on large graphs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import getpass
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from console.engine.actions import ActionError, RunActions
from console.engine.conditions import status_functions, terminal_deps_status, terminal_steps
from console.engine.events import (
    ActionEvent,
    Event,
    LogEvent,
    ReloadEvent,
    RunEvent,
    RunState,
    TaskEvent,
    TaskState,
)
from console.engine.exclusion import HostExclusion
from console.engine.identity import note_started
from console.engine.outputs import Outputs, StepsView, TailBuffer
from console.engine.reload import diff_steps
from console.engine.rollback import (
    Rollback,
    check_rollouts,
    drive_rollback,
    execute_rollback_only,
)
from console.engine.rollout import BatchCounts, RolloutPlan
from console.engine.shown import derived_secrets, shown_command, shown_template_error
from console.engine.task import Attempt, Task
from console.engine.texts import RunTexts
from console.engine.undo_attempts import last_command
from console.executors.base import CommandRequest, Executor, ExitStatus, HostKeyAsker, Stream
from console.executors.containment import new_tag
from console.model import masking, templating
from console.model.durations import retry_delay
from console.model.rollout_rules import between_error, refuse_steps_between
from console.model.workflow import LOCAL, Host, Step, Workflow

__all__ = ["APPROVAL_REQUIRED", "ActionError", "Run", "RunOptions", "new_run_id"]

S = TaskState
_UNDO = frozenset({S.UNDOING, S.UNDONE, S.UNDO_FAILED})

Approval = Literal["wait", "auto", "fail"]

APPROVAL_REQUIRED = "approval required (use --yes)"


@dataclass
class RunOptions:
    params: dict[str, Any] = field(default_factory=dict)
    """Resolved parameter values."""
    secrets: dict[str, str] = field(default_factory=dict)
    """Resolved secret values."""
    limit: tuple[str, ...] = ()
    """Host or group names (globs allowed) that remote steps are narrowed to."""
    approval: Approval = "wait"
    """Gates and manual steps: wait for an operator, approve them (--yes), or fail them."""
    step_mode: bool = False
    start_at: str | None = None
    dry_run: bool = False
    run_id: str | None = None
    user: str | None = None
    keep_alive: bool = False
    accept_new_host_keys: bool = False
    """Trust and record unknown SSH host keys (a changed key is always refused)."""
    """Stay alive after every task has finished, so an operator can retry (the console)."""


def new_run_id(now: float | None = None) -> str:
    """Short, unique and sortable by time: base-36 milliseconds plus 4 random characters."""
    millis = int((time.time() if now is None else now) * 1000)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while millis:
        millis, rem = divmod(millis, 36)
        out = digits[rem] + out
    # os.urandom, not the secrets module: an id needs no cryptography, start-up time counts
    return out.rjust(9, "0") + "".join(digits[byte % 36] for byte in os.urandom(4))


class Run(HostExclusion, RunActions, RunTexts):
    def __init__(
        self,
        workflow: Workflow,
        options: RunOptions | None = None,
        executor_for: Callable[[Host], Executor] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        refuse_steps_between(workflow)  # it would hang (console/model/rollout_rules.py)
        self.workflow = workflow
        self.options = options or RunOptions()
        self.clock = clock
        self.id = self.options.run_id or new_run_id(clock())
        self.user = self.options.user or _login_name()
        self.state = RunState.RUNNING
        self.started: float | None = None
        self.ended: float | None = None
        self.step_mode = self.options.step_mode
        self.breakpoints: set[str] = set()
        self._secrets_changed()
        self.host_key_prompt: HostKeyAsker | None = None
        """Who answers an unknown SSH host key (the console's dialog); None refuses it."""
        self._executor_for = executor_for or self._default_executor
        self._ssh_factory: Callable[[Host], Executor] | None = None
        self._executors: dict[str, Executor] = {}
        self._subscribers: list[Callable[[Event], None]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self.started_hooks: list[Callable[[Task, Attempt], None]] = []
        """Called once an attempt's process has started (its identity is known)."""
        self._halted: str | None = None
        """Why nothing new may start (the history cannot be written); see :meth:`halt`."""
        self._interrupted = False
        self.cancelled_by: str | None = None
        """The operator who cancelled the whole run (it then ends ``cancelled``)."""
        self._interrupting: dict[tuple[str, str], str] = {}
        """Tasks stopped by :meth:`interrupt`: they end ``interrupted``, not cancelled."""
        self._executing = False
        self._restored = False
        self.removed_steps: set[str] = set()
        """Steps a reload removed from the file that stay because they had started."""
        self.changed_steps: set[str] = set()
        """Steps whose definition changed on disk after some of their tasks started."""
        self.tasks: dict[tuple[str, str], Task] = {}
        self._by_step: dict[str, list[Task]] = {}
        self._ready: dict[tuple[str, str], Task] = {}
        self._running = 0
        self._running_by_step: dict[str, int] = {}
        self._base_context: dict[str, Any] | None = None
        self.rollback: Rollback | None = None
        """The rollback of this run (SPEC section 5), once one is planned."""
        self.rollback_only = False
        self.rollouts_failed: set[str] = set()
        """Rollouts whose ``on_failure`` has acted (past their max_fail)."""
        """A rollback from history: only its undos run, nothing else is scheduled."""
        self._index(workflow)
        if self.options.start_at is not None and self.options.start_at not in workflow.steps:
            raise ValueError(f"--start-at: unknown step '{self.options.start_at}'")

    def _mask_derived(self, task: Task, sources: list[tuple[str, bool]],
                      values: list[str]) -> None:
        """Mask, from now on, what the templates of this task made of a secret (e.g.
        ``{{ secrets.pw | upper }}``) wherever it appears, as the secret itself."""
        derived = derived_secrets(sources, self._context(task), self.placeholders, values)
        new = {v for v in derived if self.masker.mask(v) != masking.MASK} - self._derived
        if new:
            self._derived |= new
            self.masker = masking.Masker([*self.options.secrets.values(), *self._derived])

    def _secrets_changed(self) -> None:
        secrets = self.options.secrets
        self._derived: set[str] = set()
        """Values the templates made out of secrets, masked like them."""
        self.masker = masking.Masker(secrets.values())
        # every declared secret: a past run or --read-only resolves none, and still shows
        # its commands with *** (a placeholder needs no value)
        self.placeholders = masking.Placeholders({*self.workflow.secrets, *secrets})
        self.secret_warnings = masking.short_secret_warnings(secrets)
        """Secrets masked only as whole words (too short): shown at run start."""

    def _index(self, workflow: Workflow) -> None:
        """(Re)build order, dependents, tasks and rollout plans; keeps existing tasks."""
        self.workflow = workflow
        self._order = workflow.order()
        self._position = {sid: i for i, sid in enumerate(self._order)}
        self._dependents: dict[str, list[str]] = {sid: [] for sid in workflow.steps}
        for step in workflow.steps.values():
            for need in step.needs:
                if need in self._dependents:
                    self._dependents[need].append(step.id)
        old = self.tasks
        self.tasks = {}
        self._by_step = {}
        for sid in self._order:
            hosts = self._hosts_for(workflow.steps[sid])
            if sid in self.removed_steps:
                hosts = [t.host for t in old.values() if t.step == sid]
            self._by_step[sid] = [old.get((sid, h)) or Task(sid, h) for h in hosts]
            for task in self._by_step[sid]:
                self.tasks[task.key] = task
            self._running_by_step.setdefault(sid, 0)
        hosts_of = {sid: [t.host for t in tasks] for sid, tasks in self._by_step.items()}
        self._rollout_of: dict[str, RolloutPlan] = {}
        self._batch_counts: dict[str, BatchCounts] = {}
        self._rollout_changed: dict[tuple[str, str], None] = {}
        for rollout in workflow.rollouts.values():
            plan = RolloutPlan.build(workflow, rollout, hosts_of)
            counts = self._batch_counts[rollout.name] = BatchCounts(plan)
            for sid in rollout.steps:
                self._rollout_of[sid] = plan
                for task in self._by_step.get(sid, ()):
                    counts.update(task.key, self._task_status(task))
        self._status: dict[str, str] = {}
        self._terminal_when = terminal_steps(workflow)
        # Per step, how many of its needs are not ``done`` / are ``bad`` by ``_status``.
        self._needs_open = dict.fromkeys(workflow.steps, 0)
        self._needs_bad = dict.fromkeys(workflow.steps, 0)
        for sid in workflow.steps:
            for dep in self._dependents[sid]:
                self._needs_open[dep] += 1
        self._dirty_steps: set[str] = set(workflow.steps)
        self._candidates: dict[tuple[str, str], Task] = dict(self.tasks)
        self._unfinished = sum(1 for t in self.tasks.values() if not t.state.finished)
        self._ready = {key: task for key, task in self._ready.items() if key in self.tasks}
        self._base_context = None

    # ------------------------------------------------------------------ queries

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` synchronously for every event; returns the unsubscriber."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def tasks_in_order(self) -> list[Task]:
        return [task for sid in self._order for task in self._by_step[sid]]

    def tasks_of(self, step: str) -> list[Task]:
        return list(self._by_step.get(step, ()))

    def step_status(self, step: str) -> str:
        """``done`` (dependents may start), ``bad`` (dependents are blocked) or ``wait``."""
        return self._compute_status(step)

    @property
    def settled(self) -> bool:
        """Nothing runs, waits for an operator, or can still start."""
        return self._unfinished == 0

    # ------------------------------------------------------------------ events

    def _emit(self, event: Event) -> None:
        for callback in self._subscribers:
            callback(event)

    def _set(self, task: Task, state: TaskState, reason: str | None = None) -> None:
        if reason is not None and self.masker:
            reason = self.masker.mask(reason)
        if task.state.finished != state.finished:
            self._unfinished += 1 if task.state.finished else -1
        task.state = state
        task.reason = reason
        if state.finished and state is not S.BLOCKED and task.started is not None:
            task.ended = self.clock()
        self._dirty_steps.add(task.step)
        if task.step in self._rollout_of:
            self._batch_counts[self._rollout_of[task.step].rollout.name].update(
                task.key, self._task_status(task))
            self._rollout_changed[task.key] = None
        if state is S.PENDING:
            self._candidates[task.key] = task
        elif task.key in self._ready:
            del self._ready[task.key]
        self._emit(TaskEvent(task.step, task.host, state, task.attempt, task.exit_code,
                             reason, self.clock()))
        self._wake.set()

    def _set_run_state(self, state: RunState) -> None:
        if state is self.state and self.started is not None:
            return
        self.state = state
        self.ended = self.clock() if state.finished else None  # a re-opened run runs on
        self._emit(RunEvent(self.id, state, self.clock()))

    def _record(self, action: str, step: str | None = None, host: str | None = None,
                reason: str | None = None) -> None:
        if reason is not None and self.masker:
            reason = self.masker.mask(reason)
        self._emit(ActionEvent(action, step, host, self.user, reason, self.clock()))

    # ------------------------------------------------------------------ setup

    def _hosts_for(self, step: Step) -> list[str]:
        names = self.workflow.resolve_targets(step.on)
        if self.options.limit:
            allowed = self._limit_hosts()
            names = tuple(n for n in names if n == LOCAL or n in allowed)
        return list(names)

    def _limit_hosts(self) -> set[str]:
        groups = self.workflow.groups()
        allowed: set[str] = set()
        for pattern in self.options.limit:
            for name in self.workflow.hosts:
                if fnmatch.fnmatchcase(name, pattern):
                    allowed.add(name)
            for group, members in groups.items():
                if fnmatch.fnmatchcase(group, pattern):
                    allowed.update(members)
        return allowed

    def _initial_states(self) -> None:
        start_at = self.options.start_at
        if start_at is None:
            return
        for sid in self.workflow.upstream(start_at):
            for task in self._by_step[sid]:
                self._set(task, S.SKIPPED, f"before --start-at {start_at}")

    # ------------------------------------------------------------------ scheduler

    async def execute(self) -> RunState:
        """Run until every task has finished (or, with keep_alive, until :meth:`close`)."""
        if self._executing:
            raise RuntimeError("run is already executing")
        self._executing = True
        self._wake = asyncio.Event()
        if self.rollback_only:
            return await execute_rollback_only(self)
        if not self._restored or self.started is None:  # a resumed run keeps its start
            self.started = self.clock()
        self._emit(RunEvent(self.id, RunState.RUNNING, self.started))
        if self._restored:
            if self.options.approval == "auto":
                for task in self.tasks.values():
                    if task.state is S.INTERRUPTED:
                        self._record("retry", task.step, task.host, "--yes")
                        self._reset(task)
        else:
            self._initial_states()
        try:
            while True:
                self._pass()
                check_rollouts(self)
                undoing = drive_rollback(self)
                if (self._closing or self._halted) and not self._running and not undoing:
                    break
                if self.settled and not self._running and not undoing:
                    final = self._final_state()
                    if not self.options.keep_alive:
                        self._set_run_state(final)
                        break
                    self._set_run_state(final)
                elif self.state.finished and not self._closing:
                    self._set_run_state(RunState.RUNNING)
                await self._wake.wait()
                self._wake.clear()
        finally:
            await self._close_executors()
        if self._interrupted:
            self._set_run_state(RunState.INTERRUPTED)
        elif self._halted:
            self._set_run_state(RunState.FAILED)
        elif not self.state.finished:
            self._set_run_state(self._final_state())
        return self.state

    def _final_state(self) -> RunState:
        if self._interrupted:
            return RunState.INTERRUPTED
        if self.cancelled_by is not None:
            return RunState.CANCELLED
        if self.rollback is not None and self.rollback.started:
            return RunState.ROLLED_BACK if self.rollback.complete else RunState.FAILED
        for task in self.tasks.values():
            if task.state in (S.CANCELLED, S.BLOCKED, S.INTERRUPTED):
                return RunState.FAILED
            if task.state is S.FAILED and not self.workflow.steps[task.step].continue_on_error:
                return RunState.FAILED
        return RunState.SUCCEEDED

    def _pass(self) -> None:
        while self._dirty_steps or self._candidates:
            dirty, self._dirty_steps = self._dirty_steps, set()
            for sid in dirty:
                self._check_max_fail(sid)
                status = self._compute_status(sid)
                old = self._status.get(sid)
                if old != status:
                    self._status[sid] = status
                    self._count_needs(sid, old, status)
                    # Unless a need turned or stopped being bad, a dependent that still
                    # waits for another need would only be told "wait" again.
                    quiet = old != "bad" and status != "bad"
                    for dep in self._dependents[sid]:
                        if quiet and self._needs_open[dep] and dep not in self._rollout_of \
                                and dep not in self._terminal_when:
                            continue
                        for task in self._by_step[dep]:
                            self._candidates[task.key] = task
            self._rollout_candidates()
            candidates, self._candidates = self._candidates, {}
            for task in sorted(candidates.values(), key=self._sort_key):
                self._evaluate(task)
        self._launch()

    def _rollout_candidates(self) -> None:
        """Per-host needs: the same host's tasks of a changed rollout task; batch barriers:
        every task of a batch whose gate (the batches before it) changed status."""
        changed, self._rollout_changed = self._rollout_changed, {}
        for key in changed:
            plan = self._rollout_of.get(key[0])
            if plan is None:
                continue
            for member in plan.rollout.steps:
                task = self.tasks.get((member, key[1]))
                if task is not None:
                    self._candidates[task.key] = task
        for counts in self._batch_counts.values():
            for batch in counts.changed_gates():
                for host in counts.plan.batches[batch]:
                    for member in counts.plan.rollout.steps:
                        task = self.tasks.get((member, host))
                        if task is not None:
                            self._candidates[task.key] = task

    def _count_needs(self, sid: str, old: str | None, new: str) -> None:
        """Keep the dependents' need counters in step with ``sid`` going ``old`` -> ``new``."""
        opened = (old == "done") - (new == "done")
        bad = (new == "bad") - (old == "bad")
        if opened or bad:
            for dep in self._dependents[sid]:
                self._needs_open[dep] += opened
                self._needs_bad[dep] += bad

    def _sort_key(self, task: Task) -> int:
        return self._position[task.step]

    def _compute_status(self, sid: str) -> str:
        step = self.workflow.steps[sid]
        tasks = self._by_step[sid]
        if sid in self._rollout_of:
            return self._rollout_step_status(step, tasks)
        failed = 0
        bad = False
        for task in tasks:
            state = task.state
            if state in _UNDO:  # taken back: never done for dependents
                bad = True
            elif not state.finished:
                return "wait"
            elif state is S.FAILED:
                failed += 1
            elif state is not S.SUCCEEDED and state is not S.SKIPPED:
                bad = True
        if bad:
            return "bad"
        if failed and not step.continue_on_error and (
            step.max_fail is None or failed > step.max_fail
        ):
            return "bad"
        return "done"

    def _rollout_step_status(self, step: Step, tasks: list[Task]) -> str:
        """A rollout step is done when its failed hosts stay within the rollout's max_fail."""
        plan = self._rollout_of[step.id]
        failed_hosts = 0
        for task in tasks:
            state = task.state
            if state in _UNDO:
                return "bad"
            if not state.finished:
                return "wait"
            if state in (S.CANCELLED, S.INTERRUPTED) or task.blocked_by_max_fail:
                return "bad"
            if state is S.FAILED or state is S.BLOCKED:
                failed_hosts += 1
        if failed_hosts and not step.continue_on_error and failed_hosts > plan.rollout.max_fail:
            return "bad"
        return "done"

    def _task_status(self, task: Task) -> str:
        state = task.state
        if state in _UNDO:
            return "bad"
        if not state.finished:
            return "wait"
        if state is S.SUCCEEDED or state is S.SKIPPED:
            return "done"
        if state is S.FAILED and self.workflow.steps[task.step].continue_on_error:
            return "done"
        return "bad"

    def _batch_status(self, plan: RolloutPlan, last: int) -> str:
        """Batches 0..last: ``wait`` while any task runs, ``bad`` past max_fail, else done."""
        return self._batch_counts[plan.rollout.name].prefix(last)

    def earlier_batches(self, plan: RolloutPlan, task: Task) -> tuple[str, str | None]:
        """The batches before ``task``'s host's: ``wait`` while any of them runs,
        ``max_fail`` (with the reason) once their failures passed the rollout's max_fail,
        else ``done``."""
        batch = plan.batch_of.get(task.host, 0)
        status = self._batch_status(plan, batch - 1) if batch else "done"
        if status == "bad":
            return "max_fail", (f"max_fail reached (rollout {plan.rollout.name}: more "
                                f"than {plan.rollout.max_fail} hosts failed)")
        return status, None

    def _deps_status(self, task: Task) -> tuple[str, str | None]:
        """``done``, ``wait``, ``bad`` or ``max_fail``, with the reason when not ready.

        Outside rollouts, when no need is ``bad`` or waiting to be re-assessed, the need
        counters answer in O(1): a finished task re-evaluates every dependent, and on a
        layered 1,000-step graph walking all their needs each time is O(width²) per layer.
        """
        step = self.workflow.steps[task.step]
        if step.id in self._terminal_when:  # failure()/always()/cancelled(): conditions.py
            return terminal_deps_status(self, task)
        plan = self._rollout_of.get(task.step)
        if plan is None and not self._needs_bad[step.id] and (
                not self._dirty_steps or self._dirty_steps.isdisjoint(step.needs)):
            return ("wait" if self._needs_open[step.id] else "done"), None
        waiting = False
        if plan is not None:
            earlier, reason = self.earlier_batches(plan, task)
            if earlier == "max_fail":
                return earlier, reason
            waiting = earlier == "wait"
        for need in step.needs:
            if need not in self.workflow.steps:
                continue  # a kept step that was removed from the file may need a gone step
            if plan is not None and need in plan.rollout.steps:
                dep = self.tasks.get((need, task.host))
                if dep is None:
                    continue
                status = self._task_status(dep)
                if status == "bad":
                    return "bad", f"needs {dep.label} ({dep.state})"
                waiting = waiting or status == "wait"
                continue
            status = self._status.get(need, "")  # "": not computed yet
            if not status or need in self._dirty_steps:
                status = self._compute_status(need)
            if status == "bad":
                return "bad", f"needs {need} ({self._describe_bad(need)})"
            if status == "wait":
                waiting = True
        return ("wait" if waiting else "done"), None

    def _describe_bad(self, sid: str) -> str:
        states = {t.state for t in self._by_step[sid]}
        for state in (S.FAILED, S.CANCELLED, S.INTERRUPTED, S.BLOCKED):
            if state in states:
                return str(state)
        return "failed"

    def _evaluate(self, task: Task) -> None:
        if self._exclusion_applies(task):
            return
        if task.state is S.BLOCKED:
            if task.blocked_by_max_fail and task.step not in self._rollout_of:
                return  # _check_max_fail releases it
            status, _ = self._deps_status(task)
            if status not in ("bad", "max_fail"):
                task.blocked_by_max_fail = False
                self._set(task, S.PENDING, None)
            return
        if task.state is not S.PENDING or task.key in self._ready:
            return
        status, reason = self._deps_status(task)
        if status == "max_fail":
            task.blocked_by_max_fail = True
            self._set(task, S.BLOCKED, reason)
        elif status == "bad":
            self._set(task, S.BLOCKED, reason)
        elif status == "done":
            self._make_ready(task)

    def _make_ready(self, task: Task) -> None:
        step = self.workflow.steps[task.step]
        if step.when:
            try:
                go = templating.evaluate(step.when, {**self._context(task),
                                                     **status_functions(self, task)})
            except templating.TemplateError as exc:
                if not self.options.dry_run:
                    self._set(task, S.FAILED, f"when: {exc}")
                    return
                # a dry run has no outputs yet: `when` is decided when the run is real
                self._dry_run(task, step, f"when: decided at run time ({exc})")
                return
            if not go:
                self._set(task, S.SKIPPED, f"when: {step.when} is false")
                return
        if self.options.dry_run:
            self._dry_run(task, step)
            return
        if step.manual:
            self._hold(task, S.AWAITING_OPERATOR)
            return
        if self._needs_approval(task, step):
            self._hold(task, S.AWAITING_APPROVAL)
            return
        self._ready[task.key] = task

    def _needs_approval(self, task: Task, step: Step) -> bool:
        return not task.approved and (
            step.gated or self.step_mode or step.id in self.breakpoints
            or self._batch_gate(task) is not None
        )

    def _batch_gate(self, task: Task) -> str | None:
        """The prompt of a rollout's pause between batches, when this task opens a batch."""
        plan = self._rollout_of.get(task.step)
        if plan is None or not plan.rollout.pause_between or task.step not in plan.entry_steps:
            return None
        batch = plan.batch_of.get(task.host, 0)
        if not batch:
            return None
        hosts = ", ".join(plan.batches[batch])
        count = len(plan.batches)
        return f"rollout {plan.rollout.name}: start batch {batch + 1}/{count} ({hosts})?"

    def _hold(self, task: Task, state: TaskState) -> None:
        """Wait for an operator, or apply the run's approval policy (--yes / no TTY)."""
        policy = self.options.approval
        if policy == "fail":
            self._set(task, S.FAILED, APPROVAL_REQUIRED)
        elif policy == "auto":
            if state is S.AWAITING_OPERATOR:
                self._record("done", task.step, task.host, "--yes")
                self._set(task, S.SUCCEEDED, "marked done (--yes)")
            else:
                self._record("approve", task.step, task.host, "--yes")
                task.approved = True
                self._ready[task.key] = task
                self._wake.set()
        else:
            self._set(task, state, self._hold_reason(task, state))

    def _hold_reason(self, task: Task, state: TaskState) -> str:
        step = self.workflow.steps[task.step]
        if state is S.AWAITING_OPERATOR:
            return "manual step: mark it done when finished"
        if step.id in self.breakpoints:
            return "breakpoint"
        if step.confirm:
            return self.step_prompt(task.step, task.host)
        if step.dangerous:
            return f"dangerous step: type '{step.id}' to approve"
        return self._batch_gate(task) or "step mode"

    def _dry_run(self, task: Task, step: Step, note: str | None = None) -> None:
        """Show what the task would do (``would run: <command>``) and skip it: nothing is
        executed. ``when`` was evaluated already (params are known)."""
        if step.manual:
            text = f"would wait for the operator: {self.step_name(task.step, task.host)}"
            reason = "dry run: would wait for the operator"
        else:
            try:
                command = self._shown(task, step)
            except templating.TemplateError:
                command = step.run or ""
            text = "would run: " + command
            reason = "dry run: would run"
        if note:
            reason = f"{reason} ({note})"
        self._emit(LogEvent(task.step, task.host, "stdout", self.masker.mask(text), self.clock()))
        self._set(task, S.SKIPPED, reason)

    def _check_max_fail(self, sid: str) -> None:
        """Stop launching hosts of a step once its failures exceed ``max_fail``."""
        step = self.workflow.steps[sid]
        if step.max_fail is None or sid in self._rollout_of:
            return
        tasks = self._by_step[sid]
        failed = sum(1 for t in tasks if t.state is S.FAILED)
        if failed > step.max_fail:
            for task in tasks:
                if task.state in (S.PENDING, S.AWAITING_APPROVAL) and task.started is None:
                    task.blocked_by_max_fail = True
                    self._set(task, S.BLOCKED, f"max_fail reached ({failed} failed)")
        else:
            for task in tasks:
                if task.state is S.BLOCKED and task.blocked_by_max_fail:
                    task.blocked_by_max_fail = False
                    self._set(task, S.PENDING, None)

    def _serial_limit(self, step: Step) -> int | None:
        if step.serial is None:
            return None
        if isinstance(step.serial, int):
            return step.serial
        percent = float(str(step.serial).rstrip("%"))
        return max(1, math.floor(len(self._by_step[step.id]) * percent / 100))

    def _launch(self) -> None:
        if self.state is RunState.PAUSED or self._closing or self._halted:
            return
        limit = self.workflow.concurrency
        if self._running >= limit or not self._ready:
            return
        for task in list(self._ready.values()):
            if self._running >= limit:
                break
            step = self.workflow.steps[task.step]
            if self._needs_approval(task, step):
                del self._ready[task.key]
                self._hold(task, S.AWAITING_APPROVAL)
                continue
            serial = self._serial_limit(step)
            if serial is not None and self._running_by_step[step.id] >= serial:
                continue
            del self._ready[task.key]
            self._start(task, step)

    # ------------------------------------------------------------------ execution

    def _start(self, task: Task, step: Step) -> None:
        task.approved = False
        task.cancel_requested = None
        self._running += 1
        self._running_by_step[step.id] += 1
        task.runner = asyncio.get_running_loop().create_task(self._run_task(task, step))

    async def _run_task(self, task: Task, step: Step) -> None:
        try:
            while True:
                retry_in = await self._attempt(task, step)
                if retry_in is None:
                    break
                try:
                    await asyncio.sleep(retry_in)
                except asyncio.CancelledError:
                    if task.state is S.RETRYING and task.key in self._interrupting:
                        self._set(task, S.INTERRUPTED, self._interrupting[task.key])
                    elif task.state is S.RETRYING:
                        self._set(task, S.CANCELLED, "cancelled while waiting to retry")
                    break
                if task.state is not S.RETRYING:
                    break
                step = self.workflow.steps.get(task.step, step)
        finally:
            self._running -= 1
            self._running_by_step[task.step] -= 1
            task.runner = None
            task.execution = None
            self._wake.set()

    async def _attempt(self, task: Task, step: Step) -> float | None:
        """Run one attempt; return the delay before an automatic retry, or None."""
        task.attempt += 1
        task.exit_code = None
        now = self.clock()
        if task.started is None or task.state is not S.RETRYING:
            task.started = now
        task.ended = None
        attempt = Attempt(task.attempt, now, self.workflow.digest)
        task.attempts.append(attempt)
        sources = [(step.run or "", True), *((v, False) for v in step.env.values()),
                   (step.cwd or "", False)]  # in the order they are rendered
        try:
            with templating.trace_values() as values:
                command = self._render(task, step)
                request = self._request(task, step, command)
            attempt.command = self._shown(task, step, command)
        except templating.TemplateError as exc:
            message = shown_template_error(exc, sources, self._context(task),
                                           self.placeholders, self.masker)
            return self._finish(task, step, attempt, None, f"template error: {message}")
        if values and self.masker:
            self._mask_derived(task, sources, values)
        attempt.tag = request.tag
        self._set(task, S.RUNNING, None)
        task.stdout_tail = TailBuffer()
        # One loop pass before launching: what subscribers scheduled for the end of this
        # pass (the store's commit of ``running``) happens before the side effect starts.
        await asyncio.sleep(0)
        if self._halted:  # that commit failed: the side effect must not start unrecorded
            return self._finish(task, step, attempt,
                                ExitStatus(None, error=f"not started: {self._halted}"), None)
        if step.poll is not None:  # a health poll: many runs, one attempt (engine/poll.py)
            from console.engine.poll import run_polls

            return self._finish(task, step, attempt,
                                *await run_polls(self, task, step, attempt, request))
        status, timed_out = await self._execute_command(task, step, request, step.timeout)
        reason = None
        if timed_out:
            reason = f"timed out after {_seconds(step.timeout or 0)}"
        return self._finish(task, step, attempt, status, reason)

    async def _execute_command(self, task: Task, step: Step, request: CommandRequest,
                               timeout: float | None,
                               sink: Callable[[Stream, str], None] | None = None,
                               ) -> tuple[ExitStatus, bool]:
        """Run the command once on its host (the step's delegate, if any); returns its
        exit status and whether ``timeout`` ended it."""
        try:
            executor = self._executor(step.command_host(task.host))
            execution = await executor.start(request, sink or self._output_sink(task))
        except Exception as exc:  # an executor that cannot start reports one line
            return ExitStatus(None, error=str(exc)), False
        task.execution = execution
        note_started(task, task.attempts[-1], execution, self.started_hooks)
        if task.cancel_requested:
            await execution.terminate()
        timed_out = False
        try:
            if timeout is None:
                status = await execution.wait()
            else:
                waiter = asyncio.ensure_future(execution.wait())
                done, _ = await asyncio.wait({waiter}, timeout=timeout)
                if not done:
                    timed_out = True
                    await execution.terminate()
                status = await waiter
        except asyncio.CancelledError:
            # the whole run is being torn down: end the process tree, then stop
            await execution.terminate()
            await asyncio.shield(asyncio.ensure_future(execution.wait()))
            raise
        return status, timed_out

    def _finish(self, task: Task, step: Step, attempt: Attempt, status: ExitStatus | None,
                reason: str | None) -> float | None:
        attempt.ended = self.clock()
        if status is not None:
            attempt.exit_code = status.exit_code
            attempt.signal = status.signal
            task.exit_code = status.exit_code
            if reason is None:
                if status.error:
                    reason = status.error
                elif status.signal:
                    reason = f"killed by signal {status.signal}"
                elif status.exit_code:
                    reason = f"exit {status.exit_code}"
        if reason is not None:  # the attempt's record is written from it too: mask it here
            reason = self.masker.mask(reason)  # (a cwd error names the rendered cwd)
        ok = status is not None and status.ok and reason is None
        tail = task.stdout_tail.value() if task.stdout_tail is not None else ""
        task.stdout_tail = None
        if task.cancel_requested:
            state = S.INTERRUPTED if task.key in self._interrupting else S.CANCELLED
            reason = self.masker.mask(task.cancel_requested)
        elif ok:
            state = S.SUCCEEDED
        elif task.auto_retries < step.retries and not self._closing \
                and not self.is_excluded(task.host):
            task.auto_retries += 1
            delay = retry_delay(step.retry_delay, step.retry_backoff, task.auto_retries)
            attempt.state, attempt.reason = S.FAILED, reason
            task.outputs = Outputs("failed", task.exit_code, tail)
            self._set(task, S.RETRYING,
                      f"{reason}; retry {task.auto_retries}/{step.retries} in {_seconds(delay)}")
            return delay
        else:
            state = S.FAILED
            if step.continue_on_error and reason:
                reason = f"{reason} (ignored: continue_on_error)"
        attempt.state, attempt.reason = state, reason
        task.outputs = Outputs(str(state), task.exit_code, tail)
        self._set(task, state, reason)
        return None

    def _default_executor(self, host: Host) -> Executor:
        """Local tasks run here; remote hosts share one SSH context (asyncssh is imported
        only when a workflow has remote steps: it costs 0.2 s)."""
        if host.is_local:
            from console.executors.local import LocalExecutor

            return LocalExecutor()
        if self._ssh_factory is None:
            from console.executors.ssh import ssh_executor_factory

            self._ssh_factory = ssh_executor_factory(
                self.workflow, accept_new_host_keys=self.options.accept_new_host_keys,
                ask_host_key=self.ask_host_key)
        return self._ssh_factory(host)

    def _executor(self, host: str) -> Executor:
        executor = self._executors.get(host)
        if executor is None:
            executor = self._executors[host] = self._executor_for(self.workflow.host(host))
        return executor

    async def _close_executors(self) -> None:
        executors, self._executors = self._executors, {}
        for executor in executors.values():
            await executor.close()

    def _output_sink(self, task: Task) -> Callable[[Stream, str], None]:
        masker = self.masker
        emit = self._emit
        clock = self.clock
        tail = task.stdout_tail
        step, host, attempt = task.step, task.host, task.attempt

        def sink(stream: Stream, text: str) -> None:
            if masker:
                text = masker.mask(text)
            if stream == "stdout" and tail is not None:
                tail.append(text)
                tail.append("\n")
            emit(LogEvent(step, host, stream, text, clock(), attempt))

        return sink

    def _request(self, task: Task, step: Step, command: str) -> CommandRequest:
        env: dict[str, str] = {}
        context = None
        for name, value in step.env.items():
            if templating.needs_render(value):
                context = context or self._context(task)
                value = templating.render_value(value, context)
            env[name] = value
        cwd = step.cwd
        if cwd and templating.needs_render(cwd):
            cwd = templating.render_value(cwd, context or self._context(task))
        host = self.workflow.host(step.command_host(task.host))
        if cwd and host.is_local:
            cwd = local_cwd(cwd, self.workflow)
        return CommandRequest(task.step, host, command, step.shell, env, cwd, tag=new_tag())

    def preview_command(self, step: str, host: str) -> str:
        """The command of ``step`` on ``host`` with secrets masked: the last attempt's, else
        rendered now. A template that reads outputs not produced yet shows its source and
        why it is not rendered yet."""
        task = self.tasks.get((step, host)) or Task(step, host)
        ran = last_command(task) if task.attempts else ""
        if ran:  # what it ran (not its undo)
            return ran
        definition = self.workflow.steps[step]
        source = definition.run or ""
        if templating.needs_render(source):
            try:
                reads = templating.analyze(source).steps
            except templating.TemplateError:
                reads = frozenset()
            waiting = sorted(sid for sid in reads
                             if all(t.outputs.status is None for t in self._by_step.get(sid, ())))
            if waiting:
                return self.masker.mask(f"{source}\n# rendered once {', '.join(waiting)} ran")
        try:
            return self._shown(task, definition)
        except templating.TemplateError as exc:
            return self.masker.mask(f"{definition.run or ''}\n# not rendered yet: {exc}")

    def _shown(self, task: Task, step: Step, rendered: str | None = None) -> str:
        """The command as shown and stored: rendered with placeholders, masked."""
        source = step.run or ""
        context = self._context(task) if templating.needs_render(source) else {}
        return shown_command(source, context, self.placeholders, self.masker, rendered)

    def _render(self, task: Task, step: Step) -> str:
        source = step.run or ""
        if not templating.needs_render(source):
            return source
        return templating.render_command(source, self._context(task))

    def _context(self, task: Task) -> dict[str, Any]:
        if self._base_context is None:
            self._base_context = {
                "params": dict(self.options.params),
                "secrets": dict(self.options.secrets),
                "run": {"id": self.id, "started": self.started},
                "workflow": {"name": self.workflow.name},
            }
        host = self.workflow.host(task.host)
        return {
            **self._base_context,
            "host": {
                "name": host.name,
                "address": host.address,
                "user": host.user or self.workflow.ssh.user or os.environ.get("USER", ""),
                "groups": list(host.groups),
                "vars": dict(host.vars),
            },
            "steps": StepsView(self.workflow.steps, task.host, self._outputs_of),
        }

    def _outputs_of(self, step: str) -> dict[str, Outputs]:
        return {t.host: t.outputs for t in self._by_step.get(step, ())}

    # ------------------------------------------------------------------ resume

    def restore(self, records: Iterable[Any]) -> list[Task]:
        """Rebuild task states from a stored run before :meth:`execute` resumes it.

        ``records`` have ``step, host, state, attempt, exit_code, reason, started, ended``
        and ``outputs`` (a mapping with status, exit_code, stdout). Finished work stays
        finished; tasks that were running become ``interrupted`` and wait for an operator
        decision (``--yes`` retries them). Returns the interrupted tasks.
        """
        interrupted: list[Task] = []
        for record in records:
            task = self.tasks.get((record.step, record.host))
            if task is None:
                continue
            state = S(record.state)
            task.attempt = record.attempt or 0
            task.exit_code = record.exit_code
            task.started, task.ended = record.started, record.ended
            outputs = record.outputs or {}
            task.outputs = Outputs(outputs.get("status"), outputs.get("exit_code"),
                                   outputs.get("stdout") or "")
            if state is S.UNDOING:  # never re-run without an operator's decision
                task.state = S.UNDO_FAILED
                task.reason = f"was undoing when baton stopped (attempt {task.attempt})"
            elif state in (S.RUNNING, S.RETRYING, S.INTERRUPTED):
                task.state = S.INTERRUPTED
                task.reason = record.reason if state is S.INTERRUPTED else (
                    f"was {state} when baton stopped (attempt {task.attempt})")
                interrupted.append(task)
            elif state.finished and state is not S.BLOCKED:
                task.state, task.reason = state, record.reason
            else:  # pending, waiting or blocked: decided again on resume
                task.state, task.reason = S.PENDING, None
        self._restored = True
        self._index(self.workflow)
        return interrupted

    # ------------------------------------------------------------------ reload

    def reload(self, workflow: Workflow) -> ReloadEvent:
        """Apply a new, valid definition to the live run (the hot-reload rules).

        Added steps join as pending. Removed steps leave unless a task of theirs started;
        then they stay, marked removed, and their unstarted tasks are skipped. Changed
        steps: tasks that have not started take the new definition; started and finished
        ones keep what they ran with (the step is marked changed) and a retry uses the new.
        """
        refused = between_error(workflow) or self._adopt_inputs(workflow)
        if refused is not None:
            return self.reload_failed(refused)
        current = {sid: step for sid, step in self.workflow.steps.items()
                   if sid not in self.removed_steps}
        diff = diff_steps(dataclasses.replace(self.workflow, steps=current), workflow)
        steps = dict(workflow.steps)
        self.removed_steps -= set(steps)
        for sid in diff.removed:
            tasks = self._by_step.get(sid, [])
            if any(_started(t) for t in tasks):
                steps[sid] = self.workflow.steps[sid]
                self.removed_steps.add(sid)
                for task in tasks:
                    if not _started(task):
                        self._set(task, S.SKIPPED, "removed from the file")
            else:
                for task in tasks:
                    self._ready.pop(task.key, None)
        for sid in diff.changed:
            for task in self._by_step.get(sid, []):
                if _started(task):
                    self.changed_steps.add(sid)
                elif task.state is not S.PENDING:
                    task.approved = False
                    self._set(task, S.PENDING, None)
                else:
                    self._ready.pop(task.key, None)
                    self._candidates[task.key] = task
        self._index(dataclasses.replace(workflow, steps=steps))
        event = ReloadEvent(list(diff.added), list(diff.changed), list(diff.removed),
                            workflow.digest, None, self.clock())
        self._emit(event)
        self._wake.set()
        return event

    def _adopt_inputs(self, workflow: Workflow) -> str | None:
        """Give params and secrets that a reload adds their values (defaults; secrets are
        resolved now). Returns why the reload must be refused, or None."""
        from console.model.params import ParamError, resolve_params
        from console.model.secrets import SecretError, resolve_secrets

        new_params = {n: p for n, p in workflow.params.items() if n not in self.options.params}
        new_secrets = {n: v for n, v in workflow.secrets.items()
                       if n not in self.options.secrets}
        try:
            params = resolve_params(new_params, {}) if new_params else {}
            base_dir = workflow.path.parent if workflow.path else None
            secrets = resolve_secrets(new_secrets, base_dir=base_dir) if new_secrets else {}
        except (ParamError, SecretError) as exc:
            where = workflow.path or "workflow"
            return f"{where}: {exc} (restart the run to set it)"
        self.options.params.update(params)
        if secrets:
            self.options.secrets.update(secrets)
            self._secrets_changed()
        return None

    def reload_failed(self, error: str) -> ReloadEvent:
        """Record that the file changed but is invalid; the run keeps its definition."""
        event = ReloadEvent([], [], [], None, self.masker.mask(error), self.clock())
        self._emit(event)
        return event

    def interrupt(self, reason: str = "stopped by Ctrl-C") -> None:
        """Ctrl-C or SIGTERM: end every running task's process tree and stop; nothing new
        starts. Unlike :meth:`close` (an operator's cancel), the run stays resumable: the
        tasks it stopped end ``interrupted`` (``reason``), the tasks that had not started
        keep their state, and the run ends ``interrupted``."""
        if self._closing:
            return
        self._interrupted = True
        self._closing = True
        self._ready.clear()
        for task in self.tasks.values():
            if task.state is S.RETRYING and task.runner is None:
                self._set(task, S.INTERRUPTED, reason)
            elif task.state in (S.RUNNING, S.RETRYING) and not task.cancel_requested:
                self._interrupting[task.key] = reason
                self._cancel_task(task, reason)
        self._wake.set()

    def halt(self, reason: str) -> None:
        """The history cannot be written: nothing new starts, the running tasks finish,
        then the run ends ``failed`` (never reported as a success)."""
        if self._halted is None:
            self._halted = reason
            self._ready.clear()
            self._wake.set()

    def close(self) -> None:
        """Stop scheduling; cancel what runs or waits. ``execute`` returns when it is over.
        After :meth:`interrupt` it changes nothing more (the run stays resumable)."""
        if self._interrupted:
            self._wake.set()
            return
        self._closing = True
        self._ready.clear()
        for task in self.tasks.values():
            if task.state in (S.RUNNING, S.RETRYING):
                self._cancel_task(task, "run cancelled")
            elif task.state in (S.PENDING, S.AWAITING_APPROVAL, S.AWAITING_OPERATOR):
                self._set(task, S.CANCELLED, "run cancelled")
        self._wake.set()


def local_cwd(cwd: str, workflow: Workflow) -> str:
    """A local task's ``cwd``: ``~`` expanded; a relative one is relative to the workflow
    file's folder (as ``file`` secrets and inventories are), not to baton's own working
    directory. A remote host's ``cwd`` is left to the remote shell (relative to its home)."""
    path = os.path.expanduser(cwd)
    if os.path.isabs(path) or workflow.path is None:
        return path
    return os.path.join(os.path.dirname(os.path.abspath(workflow.path)), path)


def _started(task: Task) -> bool:
    """The task ran (or runs) at least once, or an operator settled it."""
    return bool(task.attempts) or task.state in (S.SUCCEEDED, S.FAILED, S.SKIPPED,
                                                 S.CANCELLED, S.INTERRUPTED)


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry, no LOGNAME: still record something
        return str(os.getuid())
