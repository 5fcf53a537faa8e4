"""Rollback (SPEC section 5): running a plan of :mod:`console.engine.rollback_plan`.

:class:`Rollback` runs a plan through the run's own command path (``delegate`` honoured),
each undo recorded as an attempt of its task (``undoing`` -> ``undone`` | ``undo_failed``),
beside the scheduler of a live run (:func:`drive_rollback`, called after each pass) or
alone for ``baton rollback`` (:func:`roll_back`). :class:`RollbackRun` is the run's core
with its rollback slot; :class:`console.engine.run.Run` is one.
"""

from __future__ import annotations

import asyncio
import json

from console.engine.command import execute_command, request
from console.engine.core import RunCore
from console.engine.errors import ActionError
from console.engine.events import RunEvent, RunState, TaskState
from console.engine.rollback_plan import (
    UNDOABLE,
    RollbackPlan,
    RollbackScope,
    UndoEntry,
    plan_payload,
    plan_rollback,
    shown_undo,
)
from console.engine.shown import shown_command
from console.engine.task import Attempt, task_label
from console.model import templating

__all__ = ["UNDOABLE", "Rollback", "RollbackPlan", "RollbackRun", "RollbackScope",
           "UndoEntry", "check_rollouts", "drive_rollback", "execute_rollback_only",
           "failed_undos", "plan_payload", "plan_rollback", "roll_back", "rollback_refusal",
           "shown_undo", "start_rollback", "undo_action"]

S = TaskState


class RollbackRun(RunCore):
    """A run that can be rolled back: the slot of its rollback."""

    rollback: Rollback | None = None
    """The rollback of this run (SPEC section 5), once one is planned."""
    rollback_only: bool = False
    """A rollback from history: only its undos run, nothing else is scheduled."""


class Rollback:
    """Runs a plan: undos launched as the order rule allows, within ``concurrency``.

    ``automatic``: started by a rollout's ``on_failure = "rollback"`` (no approval)."""

    def __init__(self, run: RollbackRun, plan: RollbackPlan | RollbackScope, *,
                 automatic: bool = False) -> None:
        self.run = run
        self._plan = plan if isinstance(plan, RollbackPlan) else None
        self.scope = plan.scope if isinstance(plan, RollbackPlan) else plan
        self.automatic = automatic
        self.started = False
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.job: asyncio.Task[bool] | None = None
        """The rollback running beside the scheduler of a live run (kept here)."""
        self._event = asyncio.Event()
        self._asking = 0
        """Questions about failed undos put to a headless operator, not answered yet."""

    def asking(self) -> None:
        """A headless operator is asked about a failed undo: the rollback waits for the
        answer (a retry or skip) instead of stopping, as it waits in the console."""
        self._asking += 1

    def answered(self) -> None:
        """The question is answered (a retry or skip is already applied; otherwise the
        rollback stops when nothing else can go on)."""
        self._asking = max(0, self._asking - 1)
        self.poke()

    @property
    def plan(self) -> RollbackPlan:
        """Planned when first asked (an automatic rollback plans once its hosts stopped)."""
        if self._plan is None:
            self._plan = plan_rollback(self.run, self.scope)
        return self._plan

    @property
    def complete(self) -> bool:
        return self.plan.complete

    @property
    def _wake(self) -> asyncio.Event:
        """Beside a live scheduler the rollback has its own event (the scheduler pokes it);
        alone (``baton rollback``) it wakes with the run's."""
        return self.run.wake if self.run.rollback_only else self._event

    def poke(self) -> None:
        self._event.set()
        self.run.wake.set()

    def announce(self) -> None:
        """Record the ``rollback`` action (its scope as JSON) and the plan in the log."""
        run = self.run
        reason = self.plan.scope.to_json()
        if self.automatic:
            reason = json.dumps({**json.loads(reason), "automatic": True}, sort_keys=True)
        run.emit_action("rollback", self.plan.scope.step, self.plan.scope.host, reason)
        run.emit_action("note", None, None, "\n".join(self.plan.lines()))

    async def execute(self) -> bool:
        """Run every undo the rule lets go; returns whether the plan is complete. Stops
        when nothing can go on (an ``undo_failed`` holds the rest back) unless the run
        stays alive for an operator (the console), or an operator is being asked (headless
        on a terminal), who retries or skips it."""
        run = self.run
        if not self.started:
            self.started = True
            self.announce()
            self._hold_downstream()
        while True:
            self._launch()
            if run.closing:
                await self._stop()
            if not self._running and (self.complete or run.closing or (
                    not run.options.keep_alive and not self._asking)):
                break
            self._wake.clear()
            await self._wake.wait()
        if self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
        return self.complete

    def _hold_downstream(self) -> None:
        """What has not started in the steps taken back, or downstream of them, never
        starts now (a gate waiting there cannot be approved into a half-undone state)."""
        run = self.run
        steps = {e.step for e in self.plan.entries}
        for sid in list(steps):
            steps |= run.graph.downstream(sid)
        reason = f"held: rollback of {self.plan.scope.describe()}"
        for sid in steps:
            for task in run.tasks_of(sid):
                if task.state in (S.PENDING, S.AWAITING_APPROVAL, S.AWAITING_OPERATOR) \
                        and task.attempt_loop is None:
                    run.set_state(task, S.BLOCKED, reason)

    async def _stop(self) -> None:
        """Ctrl-C or a cancelled run: end the undos that run (they end ``undo_failed``)."""
        reason = "interrupted" if self.run.interrupted else "cancelled"
        for key in list(self._running):
            task = self.run.tasks[key]
            if task.cancel_requested is None:
                task.cancel_requested = reason
                if task.execution is not None:
                    await task.execution.terminate()

    def _launch(self) -> None:
        run = self.run
        if run.closing or run.halted or run.state is RunState.PAUSED:
            return
        # what the scheduler still runs beside a live rollback shares the same limit
        limit = max(1, run.workflow.concurrency - run.agenda.running)
        for entry in self.plan.entries:
            if len(self._running) >= limit:
                break
            if entry.state != "planned" or not self.plan.ready(entry):
                continue
            self.plan.mark(entry, "undoing")
            self._running[entry.key] = run.spawn(self._undo(entry))  # owned by the run

    async def _undo(self, entry: UndoEntry) -> None:
        run = self.run
        task = run.tasks[entry.key]
        step = run.workflow.steps[entry.step]
        try:
            task.attempt += 1
            task.exit_code = None
            attempt = Attempt(task.attempt, run.clock(), run.workflow.digest)
            task.attempts.append(attempt)
            task.started, task.ended = attempt.started, None
            reason: str | None = None
            status = None
            try:
                source = step.undo or ""
                command = templating.render_command(source, run.context(task)) \
                    if templating.needs_render(source) else source
                req = request(run, task, step, command)
                attempt.command = shown_command(source, run.context(task), run.placeholders,
                                                run.masker, command)
            except templating.TemplateError as exc:
                reason = f"template error: {run.masker.mask(exc.message)}"
            if reason is None:
                attempt.tag = req.tag
                run.set_state(task, S.UNDOING, "rollback")
                await asyncio.sleep(0)  # the store commits ``undoing`` before the side effect
                status, timed_out = await execute_command(run, task, step, req, step.timeout)
                if timed_out:
                    reason = f"timed out after {step.timeout:g}s"
                elif status.error:
                    reason = status.error
                elif status.signal:
                    reason = f"killed by signal {status.signal}"
                elif status.exit_code:
                    reason = f"exit {status.exit_code}"
                if task.cancel_requested:
                    reason = f"undo {task.cancel_requested}"
            attempt.ended = run.clock()
            if status is not None:
                attempt.exit_code = task.exit_code = status.exit_code
                attempt.signal = status.signal
            ok = reason is None
            state = S.UNDONE if ok else S.UNDO_FAILED
            attempt.state, attempt.reason = state, reason
            self.plan.mark(entry, str(state))
            run.set_state(task, state, reason)
        finally:
            task.execution = None
            task.cancel_requested = None
            self._running.pop(entry.key, None)
            self.poke()

    # ------------------------------------------------------------------ operator

    def retry(self, step: str, host: str) -> None:
        """Try a failed undo again."""
        entry = self._failed(step, host)
        self.run.emit_action("retry_undo", step, host, None)
        self.plan.mark(entry, "planned")
        self.poke()

    def skip(self, step: str, host: str, reason: str | None = None) -> None:
        """Give up a failed undo: the undos it held back may go (the task stays undo_failed,
        its reason ``undo skipped by …``)."""
        entry = self._failed(step, host)
        run = self.run
        run.emit_action("skip_undo", step, host, reason)
        self.plan.mark(entry, "skipped")
        # the task keeps undo_failed (what it did may still be in place: never ``done`` for
        # its dependents); the reason says the operator let the rollback go on
        text = f"undo skipped by {run.user}" + (f": {reason}" if reason else "")
        run.set_state(run.tasks[entry.key], S.UNDO_FAILED, text)
        self.poke()

    def _failed(self, step: str, host: str) -> UndoEntry:

        entry = self.plan.entry(step, host)
        if entry is None or entry.state != "undo_failed":
            raise ActionError(f"{task_label(step, host)}: no failed undo to act on")
        return entry


def rollback_refusal(run: RollbackRun) -> str | None:
    """Why a rollback cannot start on this live run now, or None."""
    if not run.executing or run.closing or (run.state.finished
                                              and not run.options.keep_alive):
        return f"the run is not live here: use baton rollback {run.id}"
    job = run.rollback.job if run.rollback is not None else None
    if job is not None and not job.done():
        return "a rollback is already going on"
    if run.rollback is not None and run.rollback.job is None:
        return "a rollback is about to start"
    return None


def start_rollback(run: RollbackRun, plan: RollbackPlan) -> None:
    """The operator approved ``plan`` on a live run (the console's ``u``): the scheduler
    starts it at once, beside whatever still runs."""

    why = rollback_refusal(run)
    if why is not None:
        raise ActionError(f"cannot roll back: {why}")
    if not plan.entries:
        raise ActionError("cannot roll back: nothing to undo")
    run.rollback = Rollback(run, plan)
    run.wake.set()


def failed_undos(run: RollbackRun, step: str, host: str | None) -> list[UndoEntry]:
    """The failed undos of the run's rollback that ``step`` (on ``host``) names."""
    rollback = run.rollback
    if rollback is None or rollback._plan is None:
        return []
    return [e for e in rollback.plan.entries if e.step == step and e.state == "undo_failed"
            and (host is None or e.host == host)]


def undo_action(run: RollbackRun, action: str, step: str, host: str | None,
                reason: str | None = None) -> bool:
    """An operator's retry or skip on a failed undo acts on the rollback (True), not on
    the task's forward run; False when the target has no failed undo."""
    rollback = run.rollback
    entries = failed_undos(run, step, host)
    if rollback is None or not entries:
        return False
    for entry in entries:
        if action == "retry":
            rollback.retry(entry.step, entry.host)
        else:
            rollback.skip(entry.step, entry.host, reason)
    return True


async def execute_rollback_only(run: RollbackRun) -> RunState:
    """``baton rollback``: the run's rollback and nothing else; it ends ``rolled_back``
    when every planned undo is undone or skipped."""
    rollback = run.rollback
    assert rollback is not None
    if run.started is None:
        run.started = run.clock()
    run.state = RunState.RUNNING
    run.emit(RunEvent(run.id, RunState.RUNNING, run.clock()))
    try:
        complete = await rollback.execute()
    finally:
        await run.close_executors()
    if run.interrupted:
        final = RunState.INTERRUPTED
    else:
        final = RunState.ROLLED_BACK if complete else RunState.FAILED
    run.set_run_state(final)
    return final


def drive_rollback(run: RollbackRun) -> bool:
    """Called by the scheduler of a live run after each pass: starts its rollback once it
    may go (an automatic one when no host of its rollout is still running) and wakes it.
    Returns whether a rollback is still going on."""
    rollback = run.rollback
    if rollback is None:
        return False
    if rollback.job is None:
        if rollback.automatic and rollback.scope.rollout is not None:
            steps = run.workflow.rollouts[rollback.scope.rollout].steps
            if any(not t.state.finished for sid in steps for t in run.tasks_of(sid)):
                return True
        rollback.job = run.spawn(rollback.execute())
        rollback.job.add_done_callback(lambda _: run.wake.set())
        return True
    if rollback.job.done():
        return False
    rollback._event.set()
    return True


def check_rollouts(run: RollbackRun) -> None:
    """A rollout past its ``max_fail`` acts on its ``on_failure``, once: ``pause`` pauses
    the run (the reason recorded), ``rollback`` plans the undo of every host it touched,
    run as soon as its hosts have stopped (no approval). ``stop`` is the scheduler's own."""
    for name, counts in run.graph.batch_counts.items():
        rollout = counts.plan.rollout
        if rollout.on_failure == "stop" or name in run.rollouts_failed:
            continue
        if sum(counts.failed) <= rollout.max_fail:
            continue
        run.rollouts_failed.add(name)
        failed = len({t.host for sid in rollout.steps for t in run.tasks_of(sid)
                      if t.state is S.FAILED})
        why = (f"rollout {name}: {failed} failed host{'' if failed == 1 else 's'}, "
               f"max_fail = {rollout.max_fail}; on_failure = {rollout.on_failure}")
        if rollout.on_failure == "pause":
            if not run.options.keep_alive:  # headless: nobody could resume it
                run.emit_action("note", None, None, f"{why}: no console to resume the run, "
                                                f"so it stops as on_failure = stop would")
            elif run.state is RunState.RUNNING:
                run.emit_action("pause", None, None, why)
                run.set_run_state(RunState.PAUSED)
        elif run.rollback is None:
            run.emit_action("note", None, None, why)
            run.rollback = Rollback(run, RollbackScope(rollout=name), automatic=True)


async def roll_back(run: RollbackRun, plan: RollbackPlan) -> RunState:
    """Run ``plan`` on a run that is not executing (finished, or rebuilt from history)."""
    run.rollback = Rollback(run, plan)
    run.rollback_only = True
    return await execute_rollback_only(run)
