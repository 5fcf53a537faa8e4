"""The history tables the CLI prints (``baton runs``)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Protocol

from console.model.durations import PRECISE, format_duration

__all__ = ["format_runs", "format_time"]


# --- history ---------------------------------------------------------------------------


class RunLike(Protocol):
    id: str
    workflow: str
    state: str
    user: str
    started: float | None

    @property
    def duration(self) -> float | None: ...


def format_time(t: float | None) -> str:
    """UTC, ISO 8601 to the second (as ``baton show`` prints times)."""
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def format_runs(runs: Iterable[RunLike]) -> str:
    """The ``baton runs`` table: id, workflow, started, duration, status, user."""
    header = ("ID", "WORKFLOW", "STARTED", "DURATION", "STATUS", "USER")
    rows = [(r.id, r.workflow, format_time(r.started), format_duration(r.duration, PRECISE),
             str(r.state), r.user) for r in runs]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                   + "\n" for row in [header, *rows])
