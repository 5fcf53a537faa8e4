"""The output a resumed run's tasks printed before this process started, for the snapshot
(docs/attach-protocol.md): a console attached to a resumed run shows the log of the
attempts from before the resume, as the in-process resume replays it.

Read from the history's log files (masked when they were written, masked again with the
run's masker), newest attempt first, at most the snapshot's per-task bound of lines and
:data:`MAX_BYTES` of each file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.runner.protocol import TailLine

if TYPE_CHECKING:
    from console.engine.run import Run

MAX_BYTES = 1 << 20
"""At most this much of the end of one attempt's log file is read."""


def past_logs(run: Run, store: Any, limit: int) -> list[tuple[str, str, list[TailLine]]]:
    """Per task with stored output: its last ``limit`` lines over its past attempts."""
    mask = run.masker.mask
    out: list[tuple[str, str, list[TailLine]]] = []
    for task in run.tasks_in_order():
        lines: list[TailLine] = []
        for number in range(task.attempt, 0, -1):
            room = limit - len(lines)
            if room <= 0:
                break
            path = store.log_path(run.id, task.step, task.host, number)
            when = _started(task, number)
            lines[:0] = [("stdout", mask(text), when, number)
                         for text in _last_lines(path, room)]
        if lines:
            out.append((task.step, task.host, lines))
    return out


def _started(task: Any, number: int) -> float:
    """When attempt ``number`` started (what the replay of a stored run shows too)."""
    for attempt in task.attempts:
        if attempt.number == number and attempt.started:
            return float(attempt.started)
    return float(task.started or task.ended or 0.0)


def _last_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of the last :data:`MAX_BYTES` of ``path`` ([] when it
    cannot be read)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size - MAX_BYTES)
            block = b""
            end = size
            while end > start and block.count(b"\n") <= count:
                begin = max(start, end - (1 << 16))
                handle.seek(begin)
                block = handle.read(end - begin) + block
                end = begin
    except OSError:
        return []
    lines = block.decode("utf-8", errors="replace").splitlines()
    if end > 0:
        lines = lines[1:]  # read from the middle of a line: not shown as if whole
    return lines[-count:] if count else []
