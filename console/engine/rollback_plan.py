"""Rollback plans (SPEC section 5): a planner over the run's graph.

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

:mod:`console.engine.rollback` runs a plan.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from console.engine.core import RunCore
from console.engine.events import TaskState
from console.engine.shown import shown_command
from console.engine.task import Task, task_label
from console.model import templating

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


def scope_steps(run: RunCore, scope: RollbackScope) -> list[str]:
    """The steps a scope covers, in dependency order."""
    if scope.rollout is not None:
        members = set(run.workflow.rollouts[scope.rollout].steps)
        return [sid for sid in run.graph.order if sid in members]
    if scope.step is None:
        return list(run.graph.order)
    chosen = {scope.step}
    if scope.downstream:
        chosen |= run.graph.downstream(scope.step)
    return [sid for sid in run.graph.order if sid in chosen]


def _undoable(run: RunCore, task: Task) -> str | None:
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


def plan_rollback(run: RunCore, scope: RollbackScope | None = None) -> RollbackPlan:
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
        plan = run.graph.rollout_of.get(sid)
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
        mine = run.graph.rollout_of.get(sid)
        for later in run.graph.downstream(sid) & in_plan:
            other = run.graph.rollout_of.get(later)
            same = mine is not None and other is not None and \
                mine.rollout.name == other.rollout.name
            (result._host_after if same else result._after).setdefault(sid, []).append(later)
    entries.sort(key=lambda e: _display_key(run, e))
    return result


def _display_key(run: RunCore, e: UndoEntry) -> tuple[int, int, int, str]:
    """Downstream first; inside a rollout newest batch first, then per host in reverse."""
    plan = run.graph.rollout_of.get(e.step)
    position = run.graph.position[e.step]
    if plan is None:
        return (-position, 0, 0, e.host)
    top = max(run.graph.position[s] for s in plan.rollout.steps if s in run.graph.position)
    return (-top, -(e.batch or 0), -position, e.host)


def shown_undo(run: RunCore, task: Task) -> str:
    """The undo command of ``task`` as shown and stored (secrets masked)."""
    source = run.workflow.steps[task.step].undo or ""
    try:
        context = run.context(task) if templating.needs_render(source) else {}
        return shown_command(source, context, run.placeholders, run.masker)
    except templating.TemplateError as exc:
        return run.masker.mask(f"{source}\n# not rendered: {exc}")


def plan_payload(plan: RollbackPlan) -> dict[str, Any]:
    """The plan as JSON (``baton rollback --json`` prints it before running)."""
    return {"type": "rollback_plan", "scope": json.loads(plan.scope.to_json()),
            "undo": [{"step": e.step, "host": e.host, "command": e.command,
                      "batch": e.batch} for e in plan.entries],
            "nothing_to_undo": [{"step": e.step, "host": e.host} for e in plan.nothing]}
