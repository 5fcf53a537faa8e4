"""The history tables the CLI prints (``baton runs``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from console.model.durations import PRECISE, format_duration, utc_iso

__all__ = ["format_runs"]


# --- history ---------------------------------------------------------------------------


class RunLike(Protocol):
    id: str
    workflow: str
    state: str
    user: str
    started: float | None

    @property
    def duration(self) -> float | None: ...


def format_runs(runs: Iterable[RunLike]) -> str:
    """The ``baton runs`` table: id, workflow, started, duration, status, user."""
    header = ("ID", "WORKFLOW", "STARTED", "DURATION", "STATUS", "USER")
    rows = [(r.id, r.workflow, utc_iso(r.started), format_duration(r.duration, PRECISE),
             str(r.state), r.user) for r in runs]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                   + "\n" for row in [header, *rows])
