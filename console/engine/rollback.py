"""Rollback (SPEC section 5): a planner over the run's graph and the runner of its undos.

:func:`plan_rollback` turns a scope (one task, one step, a step and everything downstream,
the whole run) into a :class:`RollbackPlan`: every task in scope that changed something
(``succeeded``, or ``failed`` after it started when its step sets ``undo_on_failure``) and
whose step has ``undo``, with the undo command rendered per host as ``run`` commands are
shown (secrets masked), plus "nothing to undo" rows for the tasks in scope without ``undo``.

Order is not a list but a rule checked as undos finish (:meth:`RollbackPlan.ready`):

- the reverse of the dependency order: an undo waits for the undos of every step
  downstream of its own; a failed undo holds back only those on its own host;
- inside a rollout the dependency is per host (deploy@web1 before drain@web1) and the
  newest batch goes first: an undo waits until every undo of a later batch has finished;
- anything else runs in parallel, within the workflow's ``concurrency``.

:class:`Rollback` runs a plan through the run's own executor path (``delegate`` honoured),
each undo recorded as an attempt of its task (``undoing`` -> ``undone`` | ``undo_failed``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from console.engine.errors import ActionError
from console.engine.events import RunEvent, RunState, TaskState
from console.engine.shown import shown_command
from console.engine.task import Attempt, Task, task_label
from console.model import templating

if TYPE_CHECKING:
    from console.engine.run import Run

S = TaskState

UNDOABLE = (S.SUCCEEDED, S.UNDO_FAILED)
"""Task states whose undo a plan includes (a failed undo may be tried again)."""


@dataclass(frozen=True)
class RollbackScope:
    """What to take back: ``step`` (every host, or ``host`` only), with ``downstream`` also
    every step downstream of it; ``host`` alone: every task of that host; neither: the run."""

    step: str | None = None
    host: str | None = None
    downstream: bool = False
    rollout: str | None = None
    """Every task of this rollout's steps (a rollout's ``on_failure = "rollback"``)."""

    def to_json(self) -> str:
        data: dict[str, Any] = {"step": self.step, "host": self.host,
                                "downstream": self.downstream}
        if self.rollout is not None:
            data["rollout"] = self.rollout
        return json.dumps(data, sort_keys=True)

    def describe(self) -> str:
        if self.rollout is not None:
            return f"every host rollout {self.rollout} touched"
        if self.step is None:
            return "whole run" if self.host is None else f"every task of host {self.host}"
        what = f"step {self.step}" if self.host is None else \
            f"task {task_label(self.step, self.host)}"
        return what + (" and everything downstream" if self.downstream else "")


@dataclass
class UndoEntry:
    step: str
    host: str
    command: str | None
    """The undo command as shown (secrets masked); None: nothing to undo."""
    why: str
    """What the task did: ``succeeded`` or ``failed (undo_on_failure)``."""
    rollout: str | None = None
    batch: int | None = None
    state: str = "planned"
    """``planned``, ``undoing``, ``undone``, ``undo_failed`` or ``skipped``."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.step, self.host)

    @property
    def label(self) -> str:
        return task_label(self.step, self.host)

    @property
    def settled(self) -> bool:
        """Later undos of this host may go (undone or skipped)."""
        return self.state in ("undone", "skipped")

    @property
    def over(self) -> bool:
        """No longer runs (later batches' undos of other hosts may go)."""
        return self.state in ("undone", "skipped", "undo_failed")


@dataclass
class RollbackPlan:
    scope: RollbackScope
    entries: list[UndoEntry]
    """The undos, in an order that honours the rules (the order they are shown in)."""
    nothing: list[UndoEntry] = field(default_factory=list)
    """Tasks in scope without ``undo``."""
    _after: dict[str, list[str]] = field(default_factory=dict)
    """Step -> the steps downstream of it whose undos go first (different rollouts)."""
    _host_after: dict[str, list[str]] = field(default_factory=dict)
    """Step -> downstream steps of its own rollout (per host)."""
    _by_key: dict[tuple[str, str], UndoEntry] | None = None
    _open_steps: dict[str, int] = field(default_factory=dict)
    """Step -> its undos not over yet."""
    _open_batches: dict[tuple[str, int], int] = field(default_factory=dict)
    """(rollout, batch) -> its undos not over yet."""

    def entry(self, step: str, host: str) -> UndoEntry | None:
        self._index()
        assert self._by_key is not None
        return self._by_key.get((step, host))

    @property
    def complete(self) -> bool:
        return all(e.settled for e in self.entries)

    def mark(self, entry: UndoEntry, state: str) -> None:
        """``entry`` is now ``state``; keeps the counters :meth:`ready` reads."""
        self._index()
        was, entry.state = entry.over, state
        if was != entry.over:
            change = -1 if entry.over else 1
            self._open_steps[entry.step] += change
            if entry.rollout is not None:
                batch = (entry.rollout, entry.batch or 0)
                self._open_batches[batch] += change

    def _index(self) -> None:
        if self._by_key is not None:
            return
        self._by_key = {e.key: e for e in self.entries}
        self._open_steps = {}
        self._open_batches = {}
        for e in self.entries:
            self._open_steps[e.step] = self._open_steps.get(e.step, 0) + (not e.over)
            if e.rollout is not None:
                batch = (e.rollout, e.batch or 0)
                self._open_batches[batch] = self._open_batches.get(batch, 0) + (not e.over)

    def ready(self, entry: UndoEntry) -> bool:
        """May ``entry`` start now (every undo that must come first is over)?"""
        self._index()
        assert self._by_key is not None
        for later in self._after.get(entry.step, ()):
            if self._open_steps.get(later):
                return False
            other = self._by_key.get((later, entry.host))
            if other is not None and not other.settled:
                return False
        for later in self._host_after.get(entry.step, ()):
            other = self._by_key.get((later, entry.host))
            if other is not None and not other.settled:
                return False
        if entry.rollout is not None and entry.batch is not None:
            for (rollout, batch), count in self._open_batches.items():
                if count and rollout == entry.rollout and batch > entry.batch:
                    return False
        return True

    def lines(self) -> list[str]:
        """The plan as shown to the operator before it runs (and in the timeline)."""
        out = [f"Rollback plan ({self.scope.describe()}): {len(self.entries)} undo"
               f"{'' if len(self.entries) == 1 else 's'}"]
        for number, e in enumerate(self.entries, 1):
            batch = "" if e.batch is None else f" [batch {e.batch + 1}]"
            out.append(f"{number:>3}. {e.label}{batch} ({e.why}): {e.command}")
        for e in self.nothing:
            out.append(f"   - {e.label}: nothing to undo")
        return out


def scope_steps(run: Run, scope: RollbackScope) -> list[str]:
    """The steps a scope covers, in dependency order."""
    if scope.rollout is not None:
        members = set(run.workflow.rollouts[scope.rollout].steps)
        return [sid for sid in run._order if sid in members]
    if scope.step is None:
        return list(run._order)
    chosen = {scope.step}
    if scope.downstream:
        stack = [scope.step]
        while stack:
            for dep in run._dependents.get(stack.pop(), ()):
                if dep not in chosen:
                    chosen.add(dep)
                    stack.append(dep)
    return [sid for sid in run._order if sid in chosen]


def _downstream(run: Run, sid: str) -> set[str]:
    seen: set[str] = set()
    stack = [sid]
    while stack:
        for dep in run._dependents.get(stack.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


def _undoable(run: Run, task: Task) -> str | None:
    step = run.workflow.steps[task.step]
    if task.state in UNDOABLE:
        return "succeeded" if task.state is S.SUCCEEDED else "undo failed before"
    if task.state is S.FAILED and step.undo_on_failure and _command_started(task):
        return "failed (undo_on_failure)"
    return None


def _command_started(task: Task) -> bool:
    """Did a command of this task start (a failure before it, e.g. a template error or a
    denied gate, changed nothing)? Attempts carry their tag once the command is handed to
    the executor; a task restored from history has only its exit code and reason."""
    if task.attempts:
        return any(a.tag and not (a.reason or "").startswith("not started")
                   for a in task.attempts)
    reason = task.reason or ""
    return task.exit_code is not None or (
        task.started is not None and not reason.startswith(("template error", "denied by",
                                                            "approval required")))


def plan_rollback(run: Run, scope: RollbackScope | None = None) -> RollbackPlan:
    """The undos of ``scope`` (default: the whole run), rendered and ordered."""
    scope = scope or RollbackScope()
    if scope.step is not None and scope.step not in run.workflow.steps:
        raise ValueError(f"unknown step '{scope.step}'")
    if scope.host is not None and not any(t.host == scope.host for t in run.tasks.values()):
        raise ValueError(f"no task of this run runs on host '{scope.host}'")
    steps = scope_steps(run, scope)
    entries: list[UndoEntry] = []
    nothing: list[UndoEntry] = []
    for sid in steps:
        step = run.workflow.steps[sid]
        plan = run._rollout_of.get(sid)
        for task in run.tasks_of(sid):
            if scope.host is not None and task.host != scope.host:
                continue
            why = _undoable(run, task)
            if why is None:
                continue
            entry = UndoEntry(sid, task.host, None, why)
            if plan is not None:
                entry.rollout = plan.rollout.name
                entry.batch = plan.batch_of.get(task.host)
            if step.undo is None:
                nothing.append(entry)
                continue
            entry.command = shown_undo(run, task)
            entries.append(entry)
    result = RollbackPlan(scope, entries, nothing)
    in_plan = {e.step for e in entries}
    for sid in in_plan:
        mine = run._rollout_of.get(sid)
        for later in _downstream(run, sid) & in_plan:
            other = run._rollout_of.get(later)
            same = mine is not None and other is not None and \
                mine.rollout.name == other.rollout.name
            (result._host_after if same else result._after).setdefault(sid, []).append(later)
    entries.sort(key=lambda e: _display_key(run, e))
    return result


def _display_key(run: Run, e: UndoEntry) -> tuple[int, int, int, str]:
    """Downstream first; inside a rollout newest batch first, then per host in reverse."""
    plan = run._rollout_of.get(e.step)
    position = run._position[e.step]
    if plan is None:
        return (-position, 0, 0, e.host)
    top = max(run._position[s] for s in plan.rollout.steps if s in run._position)
    return (-top, -(e.batch or 0), -position, e.host)


def shown_undo(run: Run, task: Task) -> str:
    """The undo command of ``task`` as shown and stored (secrets masked)."""
    source = run.workflow.steps[task.step].undo or ""
    try:
        context = run._context(task) if templating.needs_render(source) else {}
        return shown_command(source, context, run.placeholders, run.masker)
    except templating.TemplateError as exc:
        return run.masker.mask(f"{source}\n# not rendered: {exc}")


class Rollback:
    """Runs a plan: undos launched as the order rule allows, within ``concurrency``.

    ``automatic``: started by a rollout's ``on_failure = "rollback"`` (no approval)."""

    def __init__(self, run: Run, plan: RollbackPlan | RollbackScope, *,
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
        return self.run._wake if self.run.rollback_only else self._event

    def poke(self) -> None:
        self._event.set()
        self.run._wake.set()

    def announce(self) -> None:
        """Record the ``rollback`` action (its scope as JSON) and the plan in the log."""
        run = self.run
        reason = self.plan.scope.to_json()
        if self.automatic:
            reason = json.dumps({**json.loads(reason), "automatic": True}, sort_keys=True)
        run._record("rollback", self.plan.scope.step, self.plan.scope.host, reason)
        run._record("note", None, None, "\n".join(self.plan.lines()))

    async def execute(self) -> bool:
        """Run every undo the rule lets go; returns whether the plan is complete. Stops
        when nothing can go on (an ``undo_failed`` holds the rest back) unless the run
        stays alive for an operator (the console), who retries or skips it."""
        run = self.run
        if not self.started:
            self.started = True
            self.announce()
            self._hold_downstream()
        while True:
            self._launch()
            if run._closing:
                await self._stop()
            if not self._running and (self.complete or run._closing
                                      or not run.options.keep_alive):
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
            steps |= _downstream(run, sid)
        reason = f"held: rollback of {self.plan.scope.describe()}"
        for sid in steps:
            for task in run.tasks_of(sid):
                if task.state in (S.PENDING, S.AWAITING_APPROVAL, S.AWAITING_OPERATOR) \
                        and task.runner is None:
                    run._set(task, S.BLOCKED, reason)

    async def _stop(self) -> None:
        """Ctrl-C or a cancelled run: end the undos that run (they end ``undo_failed``)."""
        reason = "interrupted" if self.run._interrupted else "cancelled"
        for key in list(self._running):
            task = self.run.tasks[key]
            if task.cancel_requested is None:
                task.cancel_requested = reason
                if task.execution is not None:
                    await task.execution.terminate()

    def _launch(self) -> None:
        run = self.run
        if run._closing or run._halted or run.state is RunState.PAUSED:
            return
        # what the scheduler still runs beside a live rollback shares the same limit
        limit = max(1, run.workflow.concurrency - run._running)
        for entry in self.plan.entries:
            if len(self._running) >= limit:
                break
            if entry.state != "planned" or not self.plan.ready(entry):
                continue
            self.plan.mark(entry, "undoing")
            self._running[entry.key] = asyncio.get_running_loop().create_task(
                self._undo(entry))

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
                command = templating.render_command(source, run._context(task)) \
                    if templating.needs_render(source) else source
                request = run._request(task, step, command)
                attempt.command = shown_command(source, run._context(task), run.placeholders,
                                                run.masker, command)
            except templating.TemplateError as exc:
                reason = f"template error: {run.masker.mask(exc.message)}"
            if reason is None:
                attempt.tag = request.tag
                run._set(task, S.UNDOING, "rollback")
                await asyncio.sleep(0)  # the store commits ``undoing`` before the side effect
                status, timed_out = await run._execute_command(task, step, request,
                                                               step.timeout)
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
            run._set(task, state, reason)
        finally:
            task.execution = None
            task.cancel_requested = None
            self._running.pop(entry.key, None)
            self.poke()

    # ------------------------------------------------------------------ operator

    def retry(self, step: str, host: str) -> None:
        """Try a failed undo again."""
        entry = self._failed(step, host)
        self.run._record("retry_undo", step, host, None)
        self.plan.mark(entry, "planned")
        self.poke()

    def skip(self, step: str, host: str, reason: str | None = None) -> None:
        """Give up a failed undo: the undos it held back may go (the task stays undo_failed,
        its reason ``undo skipped by …``)."""
        entry = self._failed(step, host)
        run = self.run
        run._record("skip_undo", step, host, reason)
        self.plan.mark(entry, "skipped")
        # the task keeps undo_failed (what it did may still be in place: never ``done`` for
        # its dependents); the reason says the operator let the rollback go on
        text = f"undo skipped by {run.user}" + (f": {reason}" if reason else "")
        run._set(run.tasks[entry.key], S.UNDO_FAILED, text)
        self.poke()

    def _failed(self, step: str, host: str) -> UndoEntry:

        entry = self.plan.entry(step, host)
        if entry is None or entry.state != "undo_failed":
            raise ActionError(f"{task_label(step, host)}: no failed undo to act on")
        return entry


def rollback_refusal(run: Run) -> str | None:
    """Why a rollback cannot start on this live run now, or None."""
    if not run._executing or run._closing or (run.state.finished
                                              and not run.options.keep_alive):
        return f"the run is not live here: use baton rollback {run.id}"
    job = run.rollback.job if run.rollback is not None else None
    if job is not None and not job.done():
        return "a rollback is already going on"
    if run.rollback is not None and run.rollback.job is None:
        return "a rollback is about to start"
    return None


def start_rollback(run: Run, plan: RollbackPlan) -> None:
    """The operator approved ``plan`` on a live run (the console's ``u``): the scheduler
    starts it at once, beside whatever still runs."""

    why = rollback_refusal(run)
    if why is not None:
        raise ActionError(f"cannot roll back: {why}")
    if not plan.entries:
        raise ActionError("cannot roll back: nothing to undo")
    run.rollback = Rollback(run, plan)
    run._wake.set()


def failed_undos(run: Run, step: str, host: str | None) -> list[UndoEntry]:
    """The failed undos of the run's rollback that ``step`` (on ``host``) names."""
    rollback = run.rollback
    if rollback is None or rollback._plan is None:
        return []
    return [e for e in rollback.plan.entries if e.step == step and e.state == "undo_failed"
            and (host is None or e.host == host)]


def undo_action(run: Run, action: str, step: str, host: str | None,
                reason: str | None = None) -> bool:
    """An operator's retry or skip on a failed undo acts on the rollback (True), not on
    the task's forward run; False when the target has no failed undo."""
    entries = failed_undos(run, step, host)
    assert run.rollback is not None or not entries
    for entry in entries:
        if action == "retry":
            run.rollback.retry(entry.step, entry.host)  # type: ignore[union-attr]
        else:
            run.rollback.skip(entry.step, entry.host, reason)  # type: ignore[union-attr]
    return bool(entries)


def plan_payload(plan: RollbackPlan) -> dict[str, Any]:
    """The plan as JSON (``baton rollback --json`` prints it before running)."""
    return {"type": "rollback_plan", "scope": json.loads(plan.scope.to_json()),
            "undo": [{"step": e.step, "host": e.host, "command": e.command,
                      "batch": e.batch} for e in plan.entries],
            "nothing_to_undo": [{"step": e.step, "host": e.host} for e in plan.nothing]}


async def execute_rollback_only(run: Run) -> RunState:
    """``baton rollback``: the run's rollback and nothing else; it ends ``rolled_back``
    when every planned undo is undone or skipped."""
    rollback = run.rollback
    assert rollback is not None
    if run.started is None:
        run.started = run.clock()
    run.state = RunState.RUNNING
    run._emit(RunEvent(run.id, RunState.RUNNING, run.clock()))
    try:
        complete = await rollback.execute()
    finally:
        await run._close_executors()
    if run._interrupted:
        final = RunState.INTERRUPTED
    else:
        final = RunState.ROLLED_BACK if complete else RunState.FAILED
    run._set_run_state(final)
    return final


def drive_rollback(run: Run) -> bool:
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
        rollback.job = asyncio.get_running_loop().create_task(rollback.execute())
        rollback.job.add_done_callback(lambda _: run._wake.set())
        return True
    if rollback.job.done():
        return False
    rollback._event.set()
    return True


def check_rollouts(run: Run) -> None:
    """A rollout past its ``max_fail`` acts on its ``on_failure``, once: ``pause`` pauses
    the run (the reason recorded), ``rollback`` plans the undo of every host it touched,
    run as soon as its hosts have stopped (no approval). ``stop`` is the scheduler's own."""
    for name, counts in run._batch_counts.items():
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
                run._record("note", None, None, f"{why}: no console to resume the run, "
                                                f"so it stops as on_failure = stop would")
            elif run.state is RunState.RUNNING:
                run._record("pause", None, None, why)
                run._set_run_state(RunState.PAUSED)
        elif run.rollback is None:
            run._record("note", None, None, why)
            run.rollback = Rollback(run, RollbackScope(rollout=name), automatic=True)


async def roll_back(run: Run, plan: RollbackPlan) -> RunState:
    """Run ``plan`` on a run that is not executing (finished, or rebuilt from history)."""
    run.rollback = Rollback(run, plan)
    run.rollback_only = True
    return await execute_rollback_only(run)
