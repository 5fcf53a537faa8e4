"""Output on its way to the clients of a live run, merged and framed (docs/attach-protocol.md,
"Runner → client: events").

A task printing fast is read in thousands of small chunks a second (one per read of its
pipe); sent one message each, every chunk would cost the runner an encoding and a write
and each console a decoding and an event. :class:`LogBatch` holds the chunks for at most
:data:`WINDOW` seconds and sends consecutive chunks of one task's stream and attempt, read
within the same wall-clock second, as one message (the time of its first chunk: what a
console shows, to the second, is unchanged). Output that comes slowly, or in big chunks
(:data:`ENOUGH`), goes out at once.

Order is kept: the server sends what is held before any other event (:meth:`take`), so a
client sees lines, task events and acks in the order the run emitted them.
"""

from __future__ import annotations

import json
from typing import Any

from console.engine.events import LogEvent

WINDOW = 0.005
"""Seconds output may wait to be merged with what follows (a flood), at most."""

ENOUGH = 64 << 10
"""Characters of output held that go out at once, without waiting for :data:`WINDOW`
(a chunk this big is already cheap per line; waiting would only add latency)."""

MAX_TEXT = 256 << 10
"""Characters of output merged into one message, at most (a single larger chunk is sent
as it came)."""

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


class _Run:
    """Consecutive chunks of one task's stream and attempt, in one second."""

    __slots__ = ("attempt", "host", "second", "size", "step", "stream", "texts", "time")

    def __init__(self, event: LogEvent) -> None:
        self.step, self.host, self.stream = event.step, event.host, event.stream
        self.attempt = event.attempt
        self.time = event.time
        self.second = int(event.time)
        self.texts = [event.text]
        self.size = len(event.text)

    def takes(self, event: LogEvent) -> bool:
        return (event.step == self.step and event.host == self.host
                and event.stream == self.stream and event.attempt == self.attempt
                and int(event.time) == self.second
                and self.size + 1 + len(event.text) <= MAX_TEXT)

    def message(self, raw: bool) -> bytes:
        """One ``log`` message. ``raw``: a JSON line whose ``bytes`` says how many bytes
        of output (UTF-8, lines joined by "\\n") follow it as they are (no escaping to
        do, either end); else the output in the list ``lines`` (the documented default)."""
        body: dict[str, Any] = {"type": "log", "step": self.step, "host": self.host,
                                "stream": self.stream, "time": self.time}
        if raw:
            data = "\n".join(self.texts).encode("utf-8", "replace")
            body["bytes"] = len(data)
            return _ENCODER.encode(body).encode() + b"\n" + data
        lines: list[str] = []
        for chunk in self.texts:
            lines += chunk.split("\n")
        body["lines"] = lines
        return _ENCODER.encode(body).encode() + b"\n"


class LogBatch:
    """Log events held for merging; :meth:`take` returns them as messages."""

    __slots__ = ("_runs", "size")

    def __init__(self) -> None:
        self._runs: list[_Run] = []
        self.size = 0
        """Characters of output held."""

    def __bool__(self) -> bool:
        return bool(self._runs)

    def add(self, event: LogEvent) -> None:
        runs = self._runs
        if runs and runs[-1].takes(event):
            last = runs[-1]
            last.texts.append(event.text)
            last.size += 1 + len(event.text)  # joined by a newline
        else:
            runs.append(_Run(event))
        self.size += len(event.text)

    def take(self) -> list[_Run]:
        """What is held, oldest first (each encoded with ``message``); empties the batch."""
        runs, self._runs = self._runs, []
        self.size = 0
        return runs
