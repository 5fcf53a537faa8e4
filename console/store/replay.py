"""A stored run turned back into the engine events that made it, with each attempt's stored
output: what a console session replays to show a past run's timeline and logs.

:func:`read_logs` reads the log files (in a worker thread: it touches the disk);
:func:`stored_events` converts the stored event rows, in order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.engine.events import (
    ActionEvent,
    Event,
    LogEvent,
    RunEvent,
    RunState,
    TaskEvent,
    TaskState,
)

if TYPE_CHECKING:
    from console.store.records import StoredRun
    from console.store.store import Store

__all__ = ["LOG_TAIL_BYTES", "read_logs", "stored_events"]

LOG_TAIL_BYTES = 4 * 1024 * 1024
"""At most this much of each stored attempt log is loaded into the console (the pane keeps
a bounded buffer anyway); the whole file opens in $PAGER."""


def read_logs(store: Store, stored: StoredRun) -> dict[tuple[str, str, int], str]:
    """The stored output of every attempt (the last :data:`LOG_TAIL_BYTES` of each)."""
    out: dict[tuple[str, str, int], str] = {}
    for task in stored.tasks:
        for number in range(1, task.attempt + 1):
            text = _tail(store.log_path(stored.id, task.step, task.host, number))
            if text:
                out[(task.step, task.host, number)] = text
    return out


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            skipped = max(0, size - LOG_TAIL_BYTES)
            handle.seek(skipped)
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if skipped:
        text = text.partition("\n")[2]
        text = f"… {skipped:,} earlier bytes in {path} (o opens the whole log)\n" + text
    return text.rstrip("\n")


def stored_events(stored: StoredRun,
                  logs: dict[tuple[str, str, int], str]) -> Iterator[Event]:
    """The run's events in order, each attempt's output right after it started."""
    pending = dict(logs)
    reloads = {a.time: a.reason for a in stored.actions if a.action == "reload"}
    for record in stored.events:
        payload = record.payload or {}
        kind = record.type
        if kind == "run":
            yield RunEvent(stored.id, RunState(payload.get("state", "running")), record.time)
        elif kind == "task":
            state = TaskState(payload.get("state", "pending"))
            attempt = int(payload.get("attempt") or 0)
            step, host = str(payload.get("step")), str(payload.get("host"))
            yield TaskEvent(step, host, state, attempt, payload.get("exit_code"),
                            payload.get("reason"), record.time)
            text = pending.pop((step, host, attempt), None) if state is TaskState.RUNNING \
                else None
            if text:
                yield LogEvent(step, host, "stdout", text, record.time, attempt)
        elif kind == "action":
            yield _action(payload, record.time)
        elif kind == "reload":
            reason = reloads.get(record.time) or payload.get("error") \
                or _reload_summary(payload)
            yield ActionEvent("reload", None, None, stored.run.user, reason, record.time)
    for (step, host, attempt), text in pending.items():  # output whose start was not stored
        yield LogEvent(step, host, "stdout", text, stored.run.ended or 0.0, attempt)


def _action(payload: dict[str, Any], when: float) -> ActionEvent:
    return ActionEvent(str(payload.get("action")), payload.get("step"), payload.get("host"),
                       str(payload.get("user") or ""), payload.get("reason"), when)


def _reload_summary(payload: dict[str, Any]) -> str:
    parts = [f"{word} {', '.join(payload.get(word) or [])}"
             for word in ("added", "changed", "removed") if payload.get(word)]
    return "; ".join(parts) or "no step changed"
