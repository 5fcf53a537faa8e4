"""Marking a run ``interrupted`` after its owner stopped: one transaction over its tasks,
attempts, events and run row. Used by :meth:`Store.mark_interrupted
<console.store.store.Store.mark_interrupted>` and by the dead-run reaper
(:mod:`console.store.dead`).
"""

from __future__ import annotations

import json

from console.engine.events import RunState, TaskState
from console.store.database import Database

__all__ = ["mark"]


def mark(database: Database, run_id: str, reason: str, now: float) -> list[tuple[str, str]]:
    """Running/retrying tasks (and their open attempts) become ``interrupted``, an undoing
    task ``undo_failed``, and the run ``interrupted``. Returns the (step, host) of those
    tasks. The caller holds the run's lock (or made sure nobody does)."""
    with database.guard() as db:
        db.execute("BEGIN IMMEDIATE")
        hit = db.execute(
            "SELECT step, host, attempt, state FROM tasks WHERE run_id = ? AND state IN "
            "(?, ?, ?) ORDER BY position",
            (run_id, TaskState.RUNNING, TaskState.RETRYING, TaskState.UNDOING)).fetchall()
        seq = database.next_seq(run_id)
        for step, host, attempt, was in hit:
            # an undo cut short is a failed undo: only an operator's rollback re-runs it
            task_state, task_reason = (
                (TaskState.UNDO_FAILED, f"was undoing when baton stopped ({reason})")
                if was == TaskState.UNDOING else (TaskState.INTERRUPTED, reason))
            db.execute("UPDATE tasks SET state = ?, reason = ?, ended = ? WHERE run_id = ? "
                       "AND step = ? AND host = ?",
                       (task_state, task_reason, now, run_id, step, host))
            db.execute("UPDATE attempts SET state = ?, reason = ?, ended = ? WHERE run_id = ?"
                       " AND step = ? AND host = ? AND ended IS NULL",
                       (TaskState.INTERRUPTED, reason, now, run_id, step, host))
            payload = {"type": "task", "step": step, "host": host,
                       "state": str(task_state), "attempt": attempt,
                       "exit_code": None, "reason": task_reason, "time": now}
            db.execute("INSERT INTO events VALUES (?, ?, ?, 'task', ?)",
                       (run_id, seq, now, json.dumps(payload)))
            seq += 1
        state = db.execute("SELECT state FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
        if hit or not RunState(state).finished:
            db.execute("UPDATE runs SET state = ?, ended = ? WHERE id = ?",
                       (RunState.INTERRUPTED, now, run_id))
            payload = {"type": "run", "run_id": run_id,
                       "state": str(RunState.INTERRUPTED), "time": now}
            db.execute("INSERT INTO events VALUES (?, ?, ?, 'run', ?)",
                       (run_id, seq, now, json.dumps(payload)))
        db.execute("COMMIT")
    return [(step, host) for step, host, _, _ in hit]
