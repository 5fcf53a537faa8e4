"""A run: the tasks of one workflow execution, their states, events and operator actions.

:class:`Run` is a thin facade. Its state and events are :class:`~console.engine.core.RunCore`
(every task state change goes through :meth:`~console.engine.core.RunCore.set_state` and
is published as an event); the operator actions are
:class:`~console.engine.actions.RunActions` (each validates its target first, raising
:class:`ActionError` and changing nothing when it does not apply, and is recorded as an
:class:`~console.engine.events.ActionEvent`). The work is done by parts handed the run:

- :mod:`console.engine.graph`: order, dependents, tasks per step, need counters, batches;
- :mod:`console.engine.scheduler`: readiness and launch, a pass per wake-up;
- :mod:`console.engine.attempt`: one task's attempts (render, request, timeout, finish);
- :mod:`console.engine.rollback`: the rollback beside the scheduler, or alone.

:meth:`Run.execute` is a single coroutine woken whenever something changes; it owns every
task's attempt loop in an :class:`asyncio.TaskGroup`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

from console.engine.actions import RunActions
from console.engine.attempt import Attempts
from console.engine.core import Approval, RunOptions, new_run_id
from console.engine.diff import diff_steps
from console.engine.errors import ActionError
from console.engine.events import ReloadEvent, RunEvent, RunState, TaskState
from console.engine.outputs import Outputs
from console.engine.rollback import check_rollouts, drive_rollback, execute_rollback_only
from console.engine.scheduler import APPROVAL_REQUIRED, Scheduler, StepStatus
from console.engine.task import Task, has_run
from console.executors.base import Executor
from console.model.rollout_rules import between_error
from console.model.workflow import LOCAL, Host, Workflow

__all__ = ["APPROVAL_REQUIRED", "ActionError", "Approval", "Run", "RunOptions", "StepStatus",
           "new_run_id"]

S = TaskState


class Run(RunActions):
    def __init__(
        self,
        workflow: Workflow,
        options: RunOptions | None = None,
        executor_for: Callable[[Host], Executor] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(workflow, options, executor_for, clock)
        self.attempts = Attempts(self, self.spawn)
        self.scheduler = Scheduler(self, self.attempts.start)
        if self.options.start_at is not None and self.options.start_at not in workflow.steps:
            raise ValueError(f"--start-at: unknown step '{self.options.start_at}'")

    def _initial_states(self) -> None:
        start_at = self.options.start_at
        if start_at is None:
            return
        for sid in self.workflow.upstream(start_at):
            for task in self.graph.by_step[sid]:
                self.set_state(task, S.SKIPPED, f"before --start-at {start_at}")

    # ------------------------------------------------------------------ execute

    async def execute(self) -> RunState:
        """Run until every task has finished (or, with keep_alive, until :meth:`close`)."""
        if self.executing:
            raise RuntimeError("run is already executing")
        self.executing = True
        self.wake = asyncio.Event()
        if self.rollback_only:
            return await execute_rollback_only(self)
        if not self.restored or self.started is None:  # a resumed run keeps its start
            self.started = self.clock()
        self.emit(RunEvent(self.id, RunState.RUNNING, self.started))
        if self.restored:
            if self.options.approval == "auto":
                for task in self.tasks.values():
                    if task.state is S.INTERRUPTED:
                        self.emit_action("retry", task.step, task.host, "--yes")
                        self._reset(task)
        else:
            self._initial_states()
        try:
            async with asyncio.TaskGroup() as self.group:
                await self._schedule()
        except BaseExceptionGroup as errors:  # one error (a subscriber's, say): as raised
            if len(errors.exceptions) == 1:
                raise errors.exceptions[0] from None
            raise
        finally:
            self.group = None
            await self.close_executors()
        if self.interrupted:
            self.set_run_state(RunState.INTERRUPTED)
        elif self.halted:
            self.set_run_state(RunState.FAILED)
        elif not self.state.finished:
            self.set_run_state(self._final_state())
        return self.state

    async def _schedule(self) -> None:
        """Pass after pass until nothing runs and nothing more can start (or the run is
        closed, halted or interrupted and what runs has stopped)."""
        agenda = self.agenda
        while True:
            self.scheduler.run_pass()
            check_rollouts(self)
            undoing = drive_rollback(self)
            if (self.closing or self.halted) and not agenda.running and not undoing:
                break
            if self.settled and not agenda.running and not undoing:
                final = self._final_state()
                if not self.options.keep_alive:
                    self.set_run_state(final)
                    break
                self.set_run_state(final)
            elif self.state.finished and not self.closing:
                self.set_run_state(RunState.RUNNING)
            await self.wake.wait()
            self.wake.clear()

    def _final_state(self) -> RunState:
        if self.interrupted:
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

    # ------------------------------------------------------------------ history

    def restore(self, records: Iterable[Any]) -> list[Task]:
        """Rebuild task states from a stored run before :meth:`execute` resumes it.

        ``records`` have ``step, host, state, attempt, exit_code, reason, started, ended``
        and ``outputs`` (a mapping with status, exit_code, stdout). Finished work stays
        finished; tasks that were running become ``interrupted`` and wait for an operator
        decision (``--yes`` retries them). Returns the interrupted tasks.
        """
        interrupted: list[Task] = []
        restored: list[tuple[Task, TaskState, str | None]] = []
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
                restored.append((task, S.UNDO_FAILED,
                                 f"was undoing when baton stopped (attempt {task.attempt})"))
            elif state in (S.RUNNING, S.RETRYING, S.INTERRUPTED):
                restored.append((task, S.INTERRUPTED, record.reason if state is S.INTERRUPTED
                                 else f"was {state} when baton stopped (attempt {task.attempt})"))
                interrupted.append(task)
            elif state.finished and state is not S.BLOCKED:
                restored.append((task, state, record.reason))
            else:  # pending, waiting or blocked: decided again on resume
                restored.append((task, S.PENDING, None))
        self.restored = True
        self._restore_states(restored)
        return interrupted

    def restore_as_recorded(self, records: Iterable[Any], *, only_pending: bool = False
                            ) -> None:
        """Give tasks exactly the state and reason the history holds (``records`` have
        ``step, host, state, reason``): a run looked at or rolled back, not resumed
        (:meth:`restore` turns running tasks into interrupted ones and re-decides the
        waiting ones). ``only_pending``: only the tasks :meth:`restore` left pending whose
        record says otherwise (what was not decided stays as it was)."""
        restored: list[tuple[Task, TaskState, str | None]] = []
        for record in records:
            task = self.tasks.get((record.step, record.host))
            if task is None or (only_pending and (task.state is not S.PENDING
                                                  or record.state == "pending")):
                continue
            restored.append((task, S(record.state), record.reason))
        self._restore_states(restored)

    def _restore_states(self, states: Iterable[tuple[Task, TaskState, str | None]]) -> None:
        """States read from the history, set without events (they are the history), then
        every step is re-assessed: the one place outside :meth:`set_state` that sets them."""
        for task, state, reason in states:
            task.state, task.reason = state, reason
        self.reindex(self.workflow)

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
        ready, candidates = self.agenda.ready, self.agenda.candidates
        for sid in diff.removed:
            tasks = self.graph.tasks_of(sid)
            if any(has_run(t) for t in tasks):
                steps[sid] = self.workflow.steps[sid]
                self.removed_steps.add(sid)
                for task in tasks:
                    if not has_run(task):
                        self.set_state(task, S.SKIPPED, "removed from the file")
            else:
                for task in tasks:
                    ready.pop(task.key, None)
        for sid in diff.changed:
            for task in self.graph.tasks_of(sid):
                if has_run(task):
                    self.changed_steps.add(sid)
                elif task.state is not S.PENDING:
                    task.approved = False
                    self.set_state(task, S.PENDING, None)
                else:
                    ready.pop(task.key, None)
                    candidates[task.key] = task
        self.departed_hosts = {t.host for t in self.graph.tasks.values()
                               if t.host != LOCAL and t.host not in workflow.hosts and has_run(t)}
        hosts = {**workflow.hosts, **{h: self.workflow.hosts[h] for h in self.departed_hosts}}
        self.redefine_hosts(workflow)
        self.reindex(dataclasses.replace(workflow, steps=steps, hosts=hosts))
        event = ReloadEvent(list(diff.added), list(diff.changed), list(diff.removed),
                            workflow.digest, None, self.clock())
        self.emit(event)
        self.wake.set()
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
        self.emit(event)
        return event

    # ------------------------------------------------------------------ stop

    def interrupt(self, reason: str = "stopped by Ctrl-C") -> None:
        """Ctrl-C or SIGTERM: end every running task's process tree and stop; nothing new
        starts. Unlike :meth:`close` (an operator's cancel), the run stays resumable: the
        tasks it stopped end ``interrupted`` (``reason``), the tasks that had not started
        keep their state, and the run ends ``interrupted``."""
        if self.closing:
            return
        self.interrupted = True
        self.closing = True
        self.agenda.ready.clear()
        for task in self.tasks.values():
            if task.state is S.RETRYING and task.attempt_loop is None:
                self.set_state(task, S.INTERRUPTED, reason)
            elif task.state in (S.RUNNING, S.RETRYING) and not task.cancel_requested:
                self.interrupting[task.key] = reason
                self._cancel_task(task, reason)
        self.wake.set()

    def halt(self, reason: str) -> None:
        """The history cannot be written: nothing new starts, the running tasks finish,
        then the run ends ``failed`` (never reported as a success)."""
        if self.halted is None:
            self.halted = reason
            self.agenda.ready.clear()
            self.wake.set()

    def close(self) -> None:
        """Stop scheduling; cancel what runs or waits. ``execute`` returns when it is over.
        After :meth:`interrupt` it changes nothing more (the run stays resumable)."""
        if self.interrupted:
            self.wake.set()
            return
        self.closing = True
        self.agenda.ready.clear()
        for task in self.tasks.values():
            if task.state in (S.RUNNING, S.RETRYING):
                self._cancel_task(task, "run cancelled")
            elif task.state in (S.PENDING, S.AWAITING_APPROVAL, S.AWAITING_OPERATOR):
                self.set_state(task, S.CANCELLED, "run cancelled")
        self.wake.set()
