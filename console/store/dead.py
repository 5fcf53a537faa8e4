"""Runs whose owner died: their lock is free while the store still says running.

A console killed with -9, a closed terminal, a reboot: the process recording a run is
gone, and the kernel dropped its flock. Every command that reads the history shows such a
run ``interrupted``: on a writable store :func:`reap` marks it so (tasks and attempts that
were running too); on a read-only one the same is shown without a write
(:func:`shown_interrupted`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.engine.events import RunState, TaskState
from console.store import interrupt, logs
from console.store.database import Database
from console.store.errors import LiveRunError

if TYPE_CHECKING:
    from console.store.records import AttemptRecord, TaskRecord

_LIVE = (TaskState.RUNNING, TaskState.RETRYING)


def reason(pid: int | None) -> str:
    owner = f"baton (pid {pid})" if pid else "baton"
    return f"{owner} stopped while it ran"


def reap(database: Database, home: Path, machine: str, run_id: str | None = None) -> list[str]:
    """Mark ``interrupted`` every ``running`` or ``paused`` run (or just ``run_id``) whose
    owner is gone, at the time of its last recorded event. The run's lock is taken while
    marking, so a process resuming it meanwhile is never overwritten. Runs recorded on
    another machine are left alone (their locks are not ours to test). Returns the ids."""
    sql = "SELECT id, host, pid FROM runs WHERE state IN (?, ?)"
    args: list[Any] = [RunState.RUNNING, RunState.PAUSED]
    if run_id is not None:
        sql += " AND id = ?"
        args.append(run_id)
    with database.guard() as db:
        rows = db.execute(sql, args).fetchall()
    marked = []
    for rid, recorded_on, pid in rows:
        if recorded_on not in (None, machine) or logs.held_here(rid, home):
            continue
        try:
            lock = logs.acquire_run_lock(rid, home)
        except LiveRunError:
            continue  # its owner is alive
        with lock, database.guard() as db:
            last = db.execute("SELECT max(time) FROM events WHERE run_id = ?",
                              (rid,)).fetchone()[0]
            interrupt.mark(database, rid, reason(pid), last)
        marked.append(rid)
    return marked


def shown_interrupted(tasks: list[TaskRecord], attempts: list[AttemptRecord],
                      pid: int | None) -> tuple[list[TaskRecord], list[AttemptRecord]]:
    """What :func:`reap` would store, for a store that cannot be written: running tasks
    and their open attempts read ``interrupted``."""
    why = reason(pid)
    interrupted = str(TaskState.INTERRUPTED)
    tasks = [dataclasses.replace(t, state=interrupted, reason=why) if t.state in _LIVE else t
             for t in tasks]
    attempts = [dataclasses.replace(a, state=interrupted, reason=why)
                if a.ended is None and a.state in (*_LIVE, None) else a for a in attempts]
    return tasks, attempts
