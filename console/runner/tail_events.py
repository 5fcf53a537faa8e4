"""A snapshot's log tail of one task (docs/attach-protocol.md) turned back into the engine
events a console shows: consecutive lines of one stream, time and attempt as one
:class:`LogEvent`, and where a later attempt's lines begin the start of that attempt (the
console draws its ``── attempt N ──`` separator, as for a retry it saw live)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from console.engine.events import Event, LogEvent, TaskEvent, TaskState


def tail_events(step: str, host: str, lines: list[dict[str, Any]], current: int
                ) -> Iterator[Event]:
    """The events of ``lines``; a line without an ``attempt`` (a runner older than that
    field) is of the task's ``current`` attempt."""
    shown: int | None = None
    for stream, text, when, attempt in _runs_of(lines, current):
        if attempt != shown and attempt > 1:
            yield TaskEvent(step, host, TaskState.RUNNING, attempt, None, None, when)
        shown = attempt
        yield LogEvent(step, host, stream, text, when, attempt)


def _runs_of(lines: list[dict[str, Any]], current: int
             ) -> list[tuple[Any, str, float, int]]:
    """Consecutive lines of one stream, time and attempt, joined."""
    out: list[tuple[Any, list[str], float, int]] = []
    for line in lines:
        when = float(line.get("time") or 0.0)
        attempt = line.get("attempt")
        attempt = attempt if isinstance(attempt, int) else current
        if out and out[-1][0] == line["stream"] and out[-1][2] == when \
                and out[-1][3] == attempt:
            out[-1][1].append(line["line"])
        else:
            out.append((line["stream"], [line["line"]], when, attempt))
    return [(stream, "\n".join(texts), when, attempt)
            for stream, texts, when, attempt in out]
