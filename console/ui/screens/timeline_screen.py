"""The timeline (``l``): every event, operator action and note, with time and user."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from console.sanitize import visible
from console.ui.palette import palette
from console.ui.session import RunSession, TimelineEntry

_KIND_STYLE = {"action": "marker-gate", "note": "marker-manual", "run": "state-running",
               "task": "dim-text"}


class TimelineScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,l,q", "close", "Back", id="timeline.close"),
        Binding("o", "only_actions", "Actions only", id="timeline.actions"),
    ]

    def __init__(self, session: RunSession) -> None:
        super().__init__()
        self.session = session
        self.only_actions = False
        self._shown = 0

    def compose(self) -> ComposeResult:
        yield Label(f"Timeline · {self.session.run.workflow.name} · run {self.session.run.id}",
                    id="timeline-title")
        yield DataTable(id="timeline", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("time", width=8)
        table.add_column("user", width=10)
        table.add_column("kind", width=6)
        table.add_column("what")
        self._reload()
        self.set_interval(0.25, self._append_new)
        table.focus()

    def _rows(self) -> list[TimelineEntry]:
        entries = list(self.session.timeline)
        if self.only_actions:
            entries = [e for e in entries if e.kind in ("action", "note")]
        return entries

    def _reload(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        self._shown = 0
        self._append_new()

    def _append_new(self) -> None:
        timeline = self.session.timeline
        total = len(timeline)
        if total == self._shown:
            return
        pal = palette(self.app)
        table = self.query_one(DataTable)
        for entry in list(timeline)[self._shown:]:
            if self.only_actions and entry.kind not in ("action", "note"):
                continue
            style = pal.style(_KIND_STYLE.get(entry.kind, "dim-text"))
            table.add_row(time.strftime("%H:%M:%S", time.localtime(entry.time)),
                          entry.user, Text(entry.kind, style=style), visible(entry.text))
        self._shown = total
        table.move_cursor(row=table.row_count - 1)

    def action_close(self) -> None:
        self.app.pop_screen()

    def action_only_actions(self) -> None:
        self.only_actions = not self.only_actions
        self._reload()
