"""The console's side of the run history (nothing here imports Textual).

:class:`History` wraps the store for one console: recorders and run locks live on the UI
thread (a recorder commits an operator action before the engine call returns); reads and
maintenance (``runs``, ``load``, ``mark_interrupted``) run one at a time in a worker
thread on a second connection, so the UI loop never waits on SQLite and never shares a
transaction with a recorder.

:func:`console.launch.rebuild` turns a :class:`StoredRun` back into a :class:`Run`.
:func:`replay` feeds a stored run's events and log files into a console session, so the
timeline and log panes show its past.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from console.engine.events import (
    Event,
    RunState,
)
from console.engine.run import Run
from console.store import LiveRunError, Recorder, RunLock, RunSummary, Store, StoreError
from console.store.concurrent import WorkflowClaim, claim_workflow

T = TypeVar("T")


class HistoryError(Exception):
    """The store refuses to record a run (it must not start); the message is one line."""

# ---------------------------------------------------------------------------- the store


class History:
    """One console's access to the store (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.recorders: dict[str, Recorder] = {}
        self.locks: dict[str, RunLock] = {}
        self.claims: dict[str, WorkflowClaim] = {}
        """Per live run: its claim on the workflow (an exclusive workflow's lock)."""
        self._reader: Store | None = None
        self._turn: asyncio.Lock | None = None

    async def read(self, fn: Callable[[Store], T]) -> T:
        """``fn(store)`` in a worker thread, on the reading connection, one call at a time."""
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:
            return await asyncio.to_thread(self._call, fn)

    def _call(self, fn: Callable[[Store], T]) -> T:
        if self._reader is None:
            self._reader = Store.open(self.store.home)
        return fn(self._reader)

    def log_path(self, run_id: str, step: str, host: str, attempt: int) -> Path:
        return self.store.log_path(run_id, step, host, attempt)

    def lock(self, run_id: str) -> RunLock:
        """Lock ``run_id`` for this console (:class:`LiveRunError` if another has it)."""
        lock = self.locks.get(run_id)
        if lock is None or not lock.held:
            lock = self.locks[run_id] = self.store.acquire_run_lock(run_id)
        return lock

    def begin(self, run: Run, *, on_error: Callable[[StoreError], None],
              warn: Callable[[str], None]) -> None:
        """Claim the run's workflow and start recording ``run`` (before it executes); the
        claim's warnings go to ``warn``, a failed write later to ``on_error``. Raises
        :class:`HistoryError` (one line) when the store refuses: the run must not start."""
        try:
            claim = claim_workflow(self.store, run)
        except StoreError as exc:  # an exclusive workflow with a live run: not started
            raise HistoryError(str(exc)) from None
        for warning in claim.warnings:
            warn(warning)
        self.claims[run.id] = claim
        try:
            self.record(run, on_error=on_error)
        except StoreError as exc:
            self.claims.pop(run.id).release()
            raise HistoryError(f"cannot record run {run.id}: {exc}") from None

    def attempt_log(self, run: Run, step: str, host: str) -> Path | None:
        """The file holding the full output of the task's current attempt (None: the task
        has not run)."""
        task = run.tasks.get((step, host))
        if task is None or task.attempt == 0:
            return None
        return self.log_path(run.id, step, host, task.attempt)

    def record(self, run: Run, on_error: Callable[[StoreError], None] | None = None) -> Recorder:
        recorder = self.recorders.get(run.id)
        if recorder is None:
            recorder = self.recorders[run.id] = self.store.record(run, on_error=on_error)
        return recorder

    def flush(self, run_id: str) -> None:
        """Push what the recorder of ``run_id`` buffered (log output) to the files."""
        recorder = self.recorders.get(run_id)
        if recorder is not None:
            recorder.flush()

    def release(self, run_id: str) -> None:
        """The run is over in this console: close its recorder, release its lock."""
        recorder = self.recorders.pop(run_id, None)
        if recorder is not None:
            recorder.close()
        lock = self.locks.pop(run_id, None)
        if lock is not None:
            lock.release()
        claim = self.claims.pop(run_id, None)
        if claim is not None:
            claim.release()

    def close(self) -> None:
        for run_id in list(self.recorders) + list(self.locks) + list(self.claims):
            self.release(run_id)
        if self._reader is not None:
            self._reader.close()
            self._reader = None


# ---------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class PastRun:
    """A row of the history view: the stored summary and whether a process still runs it."""

    summary: RunSummary
    live: bool

    @property
    def id(self) -> str:
        return self.summary.id

    @property
    def state(self) -> str:
        """The stored state, except that a ``running`` run nobody holds is ``interrupted``."""
        if self.summary.state in (RunState.RUNNING, RunState.PAUSED) and not self.live:
            return str(RunState.INTERRUPTED)
        return self.summary.state

    @property
    def resumable(self) -> bool:
        return not self.live and self.state != RunState.SUCCEEDED


def past_runs(store: Store, path: Path, *, limit: int | None = 200,
              mark: bool = True) -> list[PastRun]:
    """Runs of the workflow file ``path``, newest first. ``mark``: a ``running`` run whose
    lock is free (its console died) is marked ``interrupted`` in the store, at the time of
    its last recorded event."""
    rows = store.runs(workflow=str(path), limit=limit)
    out: list[PastRun] = []
    for row in rows:
        live = row.state in (RunState.RUNNING, RunState.PAUSED) and store.is_live(row.id)
        if mark and row.state in (RunState.RUNNING, RunState.PAUSED) and not live:
            row = _mark(store, row)
        out.append(PastRun(row, live))
    return out


def _mark(store: Store, row: RunSummary) -> RunSummary:
    stored = store.load(row.id)
    last = max((e.time for e in stored.events), default=row.started)
    try:
        store.mark_interrupted(row.id, now=last)
    except LiveRunError:  # resumed by someone else in the meantime
        return row
    return RunSummary(row.id, row.workflow, row.path, str(RunState.INTERRUPTED), row.user,
                      row.started, last)


def last_runs(store: Store, paths: list[Path]) -> dict[Path, RunSummary]:
    """The newest run of each workflow file that has one."""
    out: dict[Path, RunSummary] = {}
    for path in paths:
        rows = store.runs(workflow=str(path), limit=1)
        if rows:
            out[path] = rows[0]
    return out


def interrupted_notice(runs: list[PastRun]) -> str | None:
    """The notice shown when a workflow opens with interrupted runs (newest named)."""
    hit = [r for r in runs if r.state == RunState.INTERRUPTED]
    if not hit:
        return None
    newest = hit[0]
    when = newest.summary.ended or newest.summary.started
    text = f"run {newest.id} was interrupted at {local_time(when)} — press h to see it / resume it"
    if len(hit) > 1:
        text += f" ({len(hit) - 1} more interrupted)"
    return text


def local_time(when: float | None) -> str:
    if when is None:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(when))


def ago(when: float | None, now: float) -> str:
    """``just now``, ``5m ago``, ``3h ago``, ``2d ago``."""
    if when is None:
        return ""
    seconds = max(0, int(now - when))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return "just now"


# ---------------------------------------------------------------------------- replay


def replay(on_event: Callable[[Event], None], events: Iterator[Event]) -> None:
    """Feed past events to a console session (``RunSession.on_event``)."""
    for event in events:
        on_event(event)
