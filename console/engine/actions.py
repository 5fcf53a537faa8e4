"""Operator actions on a run: each validates its target, records itself, then acts.

:class:`RunActions` is the run's core (with its texts and rollback slot) plus the actions;
:class:`console.engine.run.Run` is one. Actions change tasks only through
:meth:`RunCore.set_state` and ask the scheduler (``self.scheduler``) what holds a task.
An action that does not apply raises :class:`ActionError` and changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from console.engine import exclusion
from console.engine.errors import ActionError
from console.engine.events import RunState, TaskState
from console.engine.outputs import Outputs
from console.engine.rollback import RollbackRun, failed_undos, undo_action
from console.engine.scheduler import Scheduler
from console.engine.task import Task
from console.engine.texts import RunTexts
from console.executors.base import Execution

S = TaskState


class RunActions(RollbackRun, RunTexts):
    """pause/resume, approve/deny, done, retry, retry-downstream, skip, mark, cancel,
    exclude a host, breakpoints, step mode and notes."""

    scheduler: Scheduler
    """Set by :class:`console.engine.run.Run`: what holds a task, what is ready."""

    def allowed(self, action: str, step: str, host: str | None = None) -> bool:
        """Whether the task action would apply now (what a console offers the operator)."""
        try:
            self._targets(action, step, host)
        except ActionError:
            return False
        return True

    def refusal(self, action: str, step: str, host: str | None = None) -> str | None:
        """Why the task action would not apply now (the ActionError's message), or None."""
        if action in ("retry", "skip") and failed_undos(self, step, host):
            return None
        try:
            self._targets(action, step, host)
        except ActionError as exc:
            return str(exc)
        return None

    def set_params(self, params: dict[str, Any]) -> None:
        """Replace the resolved params before the run starts (the console's params form)."""
        if self.started is not None:
            raise ActionError("cannot change params: the run has started")
        self.options.params = dict(params)
        self._base_context = None

    def answer_quit(self, cancel: bool) -> None:
        """The operator, quitting while the run is live, chose to cancel the run or to stay:
        recorded either way as a ``quit`` action. Cancelled, the run ends ``cancelled``
        once the caller has closed it (:meth:`close`)."""
        if self.state.finished:
            raise ActionError(f"cannot quit: the run has already {self.state}")
        self.emit_action("quit", None, None, "cancel the run" if cancel else "stay")
        if cancel:
            self.cancelled_by = self.user

    def _targets(self, action: str, step: str, host: str | None) -> list[Task]:
        if self.state.finished and not self.options.keep_alive:
            raise ActionError(f"cannot {_verb(action)}: the run has ended")
        if step not in self.workflow.steps:
            raise ActionError(f"cannot {_verb(action)}: unknown step '{step}'")
        tasks = self.graph.by_step[step]
        if host is not None:
            tasks = [t for t in tasks if t.host == host]
            if not tasks:
                raise ActionError(f"cannot {_verb(action)}: step '{step}' has no task on "
                                  f"host '{host}'")
        allowed = APPLIES[action]
        chosen = [t for t in tasks if t.state in allowed]
        if not chosen:
            states = ", ".join(sorted({str(t.state) for t in tasks})) or "no tasks"
            label = step if host is None else f"{step}@{host}"
            raise ActionError(f"cannot {_verb(action)} '{label}': it is {states}")
        return exclusion.refuse_excluded(self, action, chosen)

    def pause(self) -> None:
        if self.state is not RunState.RUNNING:
            raise ActionError(f"cannot pause: the run is {self.state}")
        self.emit_action("pause")
        self.set_run_state(RunState.PAUSED)

    def resume(self) -> None:
        if self.state is not RunState.PAUSED:
            raise ActionError(f"cannot resume: the run is {self.state}")
        self.emit_action("resume")
        self.set_run_state(RunState.RUNNING)
        self.wake.set()

    def approve(self, step: str, host: str | None = None) -> None:
        tasks = self._targets("approve", step, host)
        self.emit_action("approve", step, host)
        for task in tasks:
            task.approved = True
            self.set_state(task, S.PENDING, "approved")
            self.agenda.ready[task.key] = task

    def deny(self, step: str, host: str | None = None, reason: str | None = None) -> None:
        tasks = self._targets("deny", step, host)
        self.emit_action("deny", step, host, reason)
        for task in tasks:
            self.set_state(task, S.FAILED, self._by("denied", reason))

    def done(self, step: str, host: str | None = None) -> None:
        tasks = self._targets("done", step, host)
        self.emit_action("done", step, host)
        for task in tasks:
            task.outputs = Outputs("succeeded", None, "")
            self.set_state(task, S.SUCCEEDED, f"marked done by {self.user}")

    def retry(self, step: str, host: str | None = None) -> None:
        if undo_action(self, "retry", step, host):
            return
        tasks = self._targets("retry", step, host)
        self.emit_action("retry", step, host)
        for task in tasks:
            self._reset(task)

    def retry_downstream(self, step: str, host: str | None = None) -> None:
        tasks = self._targets("retry_downstream", step, host)
        downstream = [t for sid in self.workflow.downstream(step) for t in self.graph.by_step[sid]]
        busy = [t for t in downstream if t.state in (S.RUNNING, S.RETRYING)]
        if busy:
            raise ActionError(f"cannot retry downstream of '{step}': {busy[0].label} is "
                              f"{busy[0].state} (cancel it first)")
        self.emit_action("retry_downstream", step, host)
        for task in [*tasks, *sorted(downstream, key=self.graph.sort_key)]:
            self._reset(task)

    def _by(self, verb: str, reason: str | None) -> str:
        """The reason shown on a task an operator changed: who, and why when given."""
        return f"{verb} by {self.user}: {reason}" if reason else f"{verb} by {self.user}"

    def _reset(self, task: Task) -> None:
        self.refused_host_keys = {r for r in self.refused_host_keys if r[0] != task.host}
        task.auto_retries = 0
        task.approved = False
        task.blocked_by_max_fail = False
        task.exit_code = None
        task.started = None
        task.ended = None
        self.set_state(task, S.PENDING, None)

    def skip(self, step: str, host: str | None = None, reason: str | None = None) -> None:
        if undo_action(self, "skip", step, host, reason):
            return
        tasks = self._targets("skip", step, host)
        self.emit_action("skip", step, host, reason)
        for task in tasks:
            if task.state is S.RETRYING and task.attempt_loop is not None:
                task.attempt_loop.cancel()
            task.blocked_by_max_fail = False
            task.outputs = Outputs("skipped", task.exit_code, task.outputs.stdout)
            self.set_state(task, S.SKIPPED, self._by("skipped", reason))

    def mark_succeeded(self, step: str, host: str | None = None, reason: str | None = None) -> None:
        tasks = self._targets("mark_succeeded", step, host)
        self.emit_action("mark_succeeded", step, host, reason)
        for task in tasks:
            task.blocked_by_max_fail = False
            task.outputs = Outputs("succeeded", task.exit_code, task.outputs.stdout)
            self.set_state(task, S.SUCCEEDED,
                      self._by("marked succeeded", reason))

    def mark_failed(self, step: str, host: str | None = None, reason: str | None = None) -> None:
        tasks = self._targets("mark_failed", step, host)
        self.emit_action("mark_failed", step, host, reason)
        for task in tasks:
            task.outputs = Outputs("failed", task.exit_code, task.outputs.stdout)
            self.set_state(task, S.FAILED,
                      self._by("marked failed", reason))

    def cancel(self, step: str, host: str | None = None, reason: str | None = None) -> None:
        tasks = self._targets("cancel", step, host)
        self.emit_action("cancel", step, host, reason)
        for task in tasks:
            self._cancel_task(task, self._by("cancelled", reason) if reason
                              else "cancelled by operator")

    def _cancel_task(self, task: Task, reason: str) -> None:
        if task.state is S.RUNNING:
            task.cancel_requested = reason
            if task.execution is not None:
                self.spawn(_terminate(task.execution))
            # its attempt loop records the cancelled state once the process tree is gone
        elif task.state is S.RETRYING:
            if task.attempt_loop is not None:
                task.attempt_loop.cancel()
            else:
                self.set_state(task, S.CANCELLED, reason)
        else:
            self.set_state(task, S.CANCELLED, reason)

    def exclude_host(self, host: str, user: str | None = None,
                     reason: str | None = None) -> list[Task]:
        """Take ``host`` out of this run; returns the tasks skipped now (exclusion.py)."""
        return exclusion.exclude_host(self, host, user, reason)

    def toggle_breakpoint(self, step: str) -> bool:
        """Hold the step before it starts; returns whether the breakpoint is now set."""
        if step not in self.workflow.steps:
            raise ActionError(f"cannot toggle breakpoint: unknown step '{step}'")
        on = step not in self.breakpoints
        if on:
            self.breakpoints.add(step)
        else:
            self.breakpoints.discard(step)
        self.emit_action("breakpoint", step, None, "on" if on else "off")
        if not on:
            self._release_holds(self.graph.by_step[step])
        self.wake.set()
        return on

    def toggle_step_mode(self) -> bool:
        self.step_mode = not self.step_mode
        self.emit_action("step_mode", None, None, "on" if self.step_mode else "off")
        if not self.step_mode:
            self._release_holds(t for tasks in self.graph.by_step.values() for t in tasks)
        self.wake.set()
        return self.step_mode

    def _release_holds(self, tasks: Iterable[Task]) -> None:
        """Tasks awaiting approval only because of step mode or a breakpoint that is now
        off go on at once; a gate, a dangerous step or a rollout's batch pause still holds
        (its reason is brought up to date)."""
        for task in sorted(tasks, key=self.graph.sort_key):
            if task.state is not S.AWAITING_APPROVAL:
                continue
            if self.scheduler.needs_approval(task, self.workflow.steps[task.step]):
                reason = self.scheduler.hold_reason(task, S.AWAITING_APPROVAL)
                if reason != task.reason:
                    self.set_state(task, S.AWAITING_APPROVAL, reason)
                continue
            self.set_state(task, S.PENDING, None)
            self.agenda.ready[task.key] = task

    def note(self, text: str, step: str | None = None, host: str | None = None) -> None:
        if not text.strip():
            raise ActionError("cannot add note: the note is empty")
        if step is not None and step not in self.workflow.steps:
            raise ActionError(f"cannot add note: unknown step '{step}'")
        self.emit_action("note", step, host, text.strip())


APPLIES: dict[str, frozenset[TaskState]] = {
    "approve": frozenset({S.AWAITING_APPROVAL}),
    "deny": frozenset({S.AWAITING_APPROVAL}),
    "done": frozenset({S.AWAITING_OPERATOR}),
    "retry": frozenset({S.FAILED, S.CANCELLED, S.INTERRUPTED}),
    "retry_downstream": frozenset({S.FAILED, S.CANCELLED, S.INTERRUPTED, S.SUCCEEDED,
                                   S.SKIPPED}),
    "skip": frozenset({S.PENDING, S.AWAITING_APPROVAL, S.AWAITING_OPERATOR, S.BLOCKED,
                       S.FAILED, S.CANCELLED, S.INTERRUPTED, S.RETRYING}),
    "mark_succeeded": frozenset({S.FAILED, S.CANCELLED, S.INTERRUPTED, S.BLOCKED,
                                 S.AWAITING_OPERATOR}),
    "mark_failed": frozenset({S.SUCCEEDED, S.SKIPPED, S.INTERRUPTED, S.AWAITING_OPERATOR}),
    "cancel": frozenset({S.RUNNING, S.RETRYING, S.AWAITING_APPROVAL, S.AWAITING_OPERATOR}),
}
"""Task action -> the task states it applies to (at least one target must be in them)."""


async def _terminate(execution: Execution) -> None:
    """End a cancelled task's process tree. A terminate that fails (a lost connection)
    leaves the task running for the operator to see and cancel again; it never ends the
    run's task group."""
    with contextlib.suppress(Exception):
        await execution.terminate()


def _verb(action: str) -> str:
    return action.replace("_", " ")
