"""The subscriber that writes a Run's events into the store as they happen.

Writes are buffered in memory and committed once per event-loop pass (a flush is scheduled
with ``loop.call_soon`` on the first buffered write), so a 1,000-step graph or a flood of
output costs one transaction per pass, not one per event. Log chunks go to the attempt's
log file through a writer thread (:mod:`console.store.log_writer`: creating a file per
attempt costs milliseconds the event loop must not wait for), asked to flush at the same
points; :meth:`Recorder.flush` waits for it.

Some events are committed synchronously, before the engine's ``_emit`` returns:

- an :class:`ActionEvent`: an operator action is durable before the console shows it done;
- every :class:`RunEvent` and reload (few, and a RunEvent carries the run's final state).

Task states are committed with the rest of their event-loop pass, by a flush scheduled
with the first of them, so it runs before anything the event itself sets in motion:

- a task entering ``running`` is durable before its command starts: the engine yields
  once between emitting ``running`` and launching (see ``Run._attempt``). A crash can
  never leave a started side effect the store does not know about (on resume that task
  is ``interrupted``, never silently re-run);
- a finished task is durable before any dependent starts (the scheduler acts on it in a
  later callback), and before the headless printer lets its line out: the printer calls
  :meth:`Recorder.flush` before any byte leaves the process.

That is one commit per pass instead of one per task (a 1,000-step graph finishes tasks
by the dozen per pass).

So the engine needs no extra call; :meth:`Recorder.flush` is public for callers that want a
barrier of their own (e.g. before exit). A failed write (disk full …) does not raise into
the engine: it is kept in :attr:`Recorder.error`, passed to ``on_error`` once, and the
buffered rows are retried at the next flush.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any

from console.engine.diff import StepDiff
from console.engine.events import (
    ActionEvent,
    Event,
    LogEvent,
    ReloadEvent,
    RunEvent,
    TaskEvent,
    TaskState,
)
from console.store import logs
from console.store.database import Database
from console.store.errors import StoreError
from console.store.log_writer import LogWriter

if TYPE_CHECKING:
    from pathlib import Path

    from console.engine.run import Run
    from console.engine.task import Attempt, Task
    from console.model.workflow import Workflow

_TASK_UPSERT = (
    "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id, step, host) DO UPDATE SET position = excluded.position, "
    "state = excluded.state, attempt = excluded.attempt, exit_code = excluded.exit_code, "
    "reason = excluded.reason, started = excluded.started, ended = excluded.ended, "
    "outputs = coalesce(excluded.outputs, tasks.outputs)"
)
_TASK_INSERT = "INSERT OR IGNORE INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_ATTEMPT_UPSERT = "INSERT OR REPLACE INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_RUN_UPSERT = (
    "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET state = excluded.state, ended = NULL, "
    "host = excluded.host, pid = excluded.pid"
)


def task_event_json(event: TaskEvent) -> str:
    """``json.dumps(event.to_dicts()[0])``, byte for byte, at a third of the cost (two
    task events per step: on a 1,000-step graph the encoder was a tenth of the store's
    time)."""
    q = encode_basestring_ascii
    exit_code = "null" if event.exit_code is None else int(event.exit_code)
    reason = "null" if event.reason is None else q(event.reason)
    return (f'{{"type": "task", "step": {q(event.step)}, "host": {q(event.host)}, '
            f'"state": {q(str(event.state))}, "attempt": {int(event.attempt)}, '
            f'"exit_code": {exit_code}, "reason": {reason}, "time": {float(event.time)!r}}}')


class Recorder:
    """Stores one run. Created by ``Store.record(run)``; ``close()`` when the run is over."""

    def __init__(self, database: Database, home: Path, machine: str, run: Run,
                 on_error: Callable[[StoreError], None] | None = None) -> None:
        self.database = database
        self.machine = machine
        """Recorded with the run as the machine it runs on."""
        self.run = run
        self.run_id = run.id
        self.on_error = on_error
        self.error: StoreError | None = None
        self._db = database.connection
        lock = logs.held_here(run.id, home)
        self._own_lock = lock is None
        self._lock = lock or logs.acquire_run_lock(run.id, home)
        self._logs = LogWriter(logs.LogFiles(
            home, run.id, getattr(run.workflow, "log_limit", logs.DEFAULT_LOG_LIMIT)))
        self._events: list[tuple[Any, ...]] = []
        self._tasks: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._attempts: dict[tuple[str, str, int], tuple[Any, ...]] = {}
        self._processes: dict[tuple[str, str, int], tuple[Any, ...]] = {}
        self._actions: list[tuple[Any, ...]] = []
        self._definitions: list[tuple[str, str, str | None]] = []
        self._run_update: tuple[Any, ...] | None = None
        self._scheduled = False
        self._closed = False
        self._digest: str | None = None
        try:
            with database.guard():
                self._seq = database.next_seq(run.id)
                self._start()
        except BaseException:
            self._release()
            raise
        self._unsubscribe = run.subscribe(self._on_event)
        hooks = getattr(run, "started_hooks", None)
        if hooks is not None:
            hooks.append(self._on_started)

    def _start(self) -> None:
        run = self.run
        wf = run.workflow
        self._note_definition(wf)
        masker = run.masker
        params = {k: masker.mask(v) if isinstance(v, str) else v
                  for k, v in run.options.params.items()}
        opts = run.options
        options = {"limit": list(opts.limit), "approval": opts.approval,
                   "step_mode": opts.step_mode, "start_at": opts.start_at,
                   "dry_run": opts.dry_run, "keep_alive": opts.keep_alive,
                   "secrets": sorted(opts.secrets)}
        path = str(wf.path) if wf.path is not None else None
        started = run.started if run.started is not None else run.clock()
        row = (run.id, wf.name, path, wf.digest or None, str(run.state), run.user,
               json.dumps(params, default=str), started, run.ended, self.machine,
               os.getpid(), json.dumps(options, default=str))
        self._positions = {t.key: i for i, t in enumerate(run.tasks_in_order())}
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        db.execute(_RUN_UPSERT, row)
        db.executemany(_TASK_INSERT, [self._task_row(t, t.state, t.attempt, t.exit_code,
                                                     t.reason) for t in run.tasks_in_order()])
        db.executemany("INSERT OR IGNORE INTO definitions VALUES (?, ?, ?)", self._definitions)
        db.execute("COMMIT")
        self._definitions.clear()

    # ------------------------------------------------------------------ events

    def _on_event(self, event: Event) -> None:
        try:
            match event:
                case LogEvent():
                    self._logs.write(event.step, event.host, event.attempt, event.text + "\n",
                                     event.stream == "stderr")
                    self._schedule()
                case TaskEvent():
                    self._on_task(event)
                case ActionEvent():
                    self._on_action(event)
                case ReloadEvent():
                    self._on_reload(event)
                case RunEvent():
                    self._on_run(event)
        except Exception as exc:  # never break the engine; report once
            self._fail(exc)

    def _event_row(self, event: Event, **extra: Any) -> None:
        data = (task_event_json(event) if type(event) is TaskEvent
                else json.dumps({**event.to_dicts()[0], **extra}))
        self._events.append((self.run_id, self._seq, event.time, event.type, data))
        self._seq += 1

    def _on_task(self, event: TaskEvent) -> None:
        key = (event.step, event.host)
        task = self.run.tasks.get(key)
        self._tasks[key] = self._task_row(task, event.state, event.attempt, event.exit_code,
                                          event.reason, key)
        if task is not None and task.attempts:
            a = task.attempts[-1]
            state = a.state if a.state is not None else event.state
            mask = self.run.masker.mask  # the engine masks both; this is the last line
            self._attempts[(*key, a.number)] = (
                self.run_id, event.step, event.host, a.number, a.started, a.ended, a.exit_code,
                a.signal, str(state), a.reason and mask(a.reason), mask(a.command),
                a.digest or None)
            if a.digest != self._digest:
                self._note_definition(self.run.workflow)
            if event.state is TaskState.RUNNING and a.tag:
                self._note_process(event.step, event.host, a)
        self._event_row(event)
        if event.state is not TaskState.RUNNING:
            self._logs.close_task(event.step, event.host)
        self._schedule()

    def _note_process(self, step: str, host: str, a: Attempt) -> None:
        self._processes[(step, host, a.number)] = (self.run_id, step, host, a.number, a.tag,
                                                   a.pid, a.pid_start, a.sid)

    def _on_started(self, task: Task, attempt: Attempt) -> None:
        """The attempt's process started: its pid, start time and session join its tag."""
        try:
            self._note_process(task.step, task.host, attempt)
            self._schedule()
        except Exception as exc:  # never break the engine; report once
            self._fail(exc)

    def _task_row(self, task: Task | None, state: TaskState, attempt: int,
                  exit_code: int | None, reason: str | None,
                  key: tuple[str, str] | None = None) -> tuple[Any, ...]:
        if key is None:
            assert task is not None
            key = task.key
        position = self._positions.get(key)
        if position is None:
            position = self._positions[key] = len(self._positions)
        outputs = started = ended = None
        if task is not None:
            started, ended = task.started, task.ended
            if task.outputs.status is not None and (state.finished
                                                    or state is TaskState.RETRYING):
                outputs = json.dumps(task.outputs.as_dict())
        return (self.run_id, key[0], key[1], position, str(state), attempt, exit_code, reason,
                started, ended, outputs)

    def _on_action(self, event: ActionEvent) -> None:
        self._actions.append((self.run_id, event.time, event.user, event.action, event.step,
                              event.host, event.reason))
        self._event_row(event)
        # committed before the action returns; the log writer is not waited for (on the UI
        # loop that wait is the writer thread's whole backlog)
        self._flush(barrier=False)

    def _on_reload(self, event: ReloadEvent) -> None:
        """A reload is kept as a ``reload`` action (who, when, the diff or the error) plus
        the new definition text, so the timeline can show what each attempt ran."""
        if event.error is not None:
            reason = f"refused: {event.error}"
        else:
            diff = StepDiff(tuple(event.added), tuple(event.changed), tuple(event.removed))
            reason = f"{diff.summary()} (definition {(event.digest or '')[:12]})"
            self._note_definition(self.run.workflow)
        self._actions.append((self.run_id, event.time, self.run.user, "reload", None, None,
                              reason))
        # the stored event names the definition now in force: resume continues with it
        self._event_row(event, **({"digest": event.digest} if event.error is None else {}))
        self.flush()

    def _on_run(self, event: RunEvent) -> None:
        run = self.run
        self._run_update = (str(event.state), run.started, run.ended if event.state.finished
                            else None, self.run_id)
        self._event_row(event)
        self._flush(barrier=False)  # as for actions; readers of the logs call flush()

    def _note_definition(self, wf: Workflow) -> None:
        self._digest = wf.digest
        if wf.digest:
            path = str(wf.path) if wf.path is not None else None
            self._definitions.append((wf.digest, wf.source, path))

    # ------------------------------------------------------------------ writing

    def _schedule(self) -> None:
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._scheduled = True
        loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._scheduled = False
        try:
            self._flush(barrier=False)
        except Exception as exc:
            self._fail(exc)

    def flush(self) -> None:
        """Push log output to the OS (waiting for the log writer thread) and commit
        buffered rows."""
        self._flush(barrier=True)

    def _flush(self, barrier: bool) -> None:
        """``barrier=False`` (the once-per-pass flush): the log writer thread is asked to
        flush and not waited for, so the event loop never waits on the disk."""
        try:
            if barrier:
                self._logs.sync()
            else:
                self._logs.flush()
        except (OSError, StoreError) as exc:
            self._fail(exc)
        if not (self._events or self._tasks or self._attempts or self._actions
                or self._run_update or self._definitions or self._processes):
            return
        db = self._db
        try:
            db.execute("BEGIN")
            if self._definitions:
                db.executemany("INSERT OR IGNORE INTO definitions VALUES (?, ?, ?)",
                               self._definitions)
            if self._run_update is not None:
                db.execute("UPDATE runs SET state = ?, started = coalesce(started, ?), "
                           "ended = ? WHERE id = ?", self._run_update)
            if self._tasks:
                db.executemany(_TASK_UPSERT, self._tasks.values())
            if self._attempts:
                db.executemany(_ATTEMPT_UPSERT, self._attempts.values())
            if self._processes:
                db.executemany("INSERT OR REPLACE INTO processes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               self._processes.values())
            if self._actions:
                db.executemany("INSERT INTO actions (run_id, time, user, action, step, host, "
                               "reason) VALUES (?, ?, ?, ?, ?, ?, ?)", self._actions)
            if self._events:
                db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", self._events)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._fail(exc)
            return
        self._definitions.clear()
        self._run_update = None
        self._tasks.clear()
        self._attempts.clear()
        self._processes.clear()
        self._actions.clear()
        self._events.clear()

    def _fail(self, exc: BaseException) -> None:
        first = self.error is None
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.error = exc if isinstance(exc, StoreError) else StoreError(
            f"cannot record run {self.run_id} in {self.database.path}: {text}")
        if not first:
            return
        if self.on_error is not None:
            self.on_error(self.error)
        else:
            print(f"baton: {self.error}", file=sys.stderr)

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Stop listening, write what is buffered, close the log files, release the lock."""
        if self._closed:
            return
        self._closed = True
        self._unsubscribe()
        try:
            self.flush()
            self._logs.close()
        except OSError as exc:
            self._fail(exc)
        finally:
            self._release()

    def _release(self) -> None:
        if self._own_lock:
            self._lock.release()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
