"""The history view (``h``): past runs of one workflow, newest first.

Enter opens the highlighted run read-only (rebuilt from the store, never executed);
``r`` resumes it, like ``baton resume`` (refused while another process runs it).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from console.engine.events import RunState
from console.store import StoreError
from console.ui import format as fmt
from console.ui.history import History, PastRun, local_time, past_runs
from console.ui.palette import palette
from console.ui.screens.refusals import bound_action

_ICON = {str(s): fmt.ICONS[t] for s, t in (
    (RunState.RUNNING, fmt.S.RUNNING), (RunState.PAUSED, fmt.S.AWAITING_APPROVAL),
    (RunState.SUCCEEDED, fmt.S.SUCCEEDED), (RunState.FAILED, fmt.S.FAILED),
    (RunState.CANCELLED, fmt.S.CANCELLED), (RunState.INTERRUPTED, fmt.S.INTERRUPTED))}


def run_state_text(state: str, app: object) -> Text:
    """``✔ succeeded`` in the theme's colour of that state."""
    try:
        style = palette(app).run_state(RunState(state))  # type: ignore[arg-type]
    except ValueError:
        return Text(state)
    return Text(f"{_ICON.get(state, '?')} {state}", style=style)


class HistoryScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open read-only", id="history.open"),
        Binding("r", "resume", "Resume", id="history.resume",
                tooltip="Continue the run: finished work stays finished"),
        Binding("escape,q,h", "close", "Back", id="history.close"),
    ]

    class Open(Message):
        """Show the stored run ``run_id`` read-only."""

        def __init__(self, run_id: str) -> None:
            super().__init__()
            self.run_id = run_id

    class Resume(Message):
        """Continue the stored run ``run_id`` (like ``baton resume``)."""

        def __init__(self, run_id: str) -> None:
            super().__init__()
            self.run_id = run_id

    def __init__(self, path: Path, name: str, history: History, *,
                 read_only: bool = False) -> None:
        super().__init__()
        self.path = path
        self.workflow_name = name
        self.history = history
        self.read_only = read_only
        """The console resumes nothing (``--read-only``): past runs are only looked at."""
        self.runs: list[PastRun] = []

    def compose(self) -> ComposeResult:
        resume = "" if self.read_only else " · r resumes it"
        yield Label(f"History of {self.workflow_name} ({self.path.name}) · Enter opens a run "
                    f"read-only{resume}", id="history-title")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("run", width=14)
        table.add_column("started", width=17)
        table.add_column("duration", width=9)
        table.add_column("status", width=14)
        table.add_column("user")
        table.focus()
        self.load()

    @work(exclusive=True, group="history-load")
    async def load(self) -> None:
        mark = not self.read_only
        try:
            self.runs = await self.history.read(lambda s: past_runs(s, self.path, mark=mark))
        except StoreError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        table = self.query_one(DataTable)
        table.clear()
        for past in self.runs:
            row = past.summary
            status = run_state_text(past.state, self.app)
            if past.live:
                status.append(" (live)")
            table.add_row(row.id, local_time(row.started), fmt.duration(row.duration), status,
                          row.user, key=row.id)
        if not self.runs:
            self.notify(f"no stored run of {self.path.name} yet")
        self.refresh_bindings()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.refresh_bindings()

    @property
    def selected(self) -> PastRun | None:
        table = self.query_one(DataTable)
        if not self.runs or not 0 <= table.cursor_row < len(self.runs):
            return None
        return self.runs[table.cursor_row]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "resume":
            past = self.selected
            return (not self.read_only and past is not None
                    and past.resumable)
        if action == "open":
            return self.selected is not None
        return True

    def on_key(self, event: events.Key) -> None:
        """r where nothing can be resumed says why instead of doing nothing."""
        if bound_action(self, event.key) != "resume" or self.check_action("resume", ()):
            return
        event.stop()
        event.prevent_default()
        past = self.selected
        if self.read_only:
            why = "read-only: this console resumes nothing (run baton resume RUN)"
        elif past is None:
            why = "no run selected"
        else:
            why = (f"run {past.id} is live in another process" if past.live
                   else f"run {past.id} already succeeded; nothing to resume")
        self.notify(why, severity="warning")

    def action_open(self) -> None:
        past = self.selected
        if past is not None:
            self.post_message(self.Open(past.id))

    def action_resume(self) -> None:
        past = self.selected
        if past is None:
            return
        if not past.resumable:
            why = "is live in another process" if past.live else "already succeeded"
            self.notify(f"run {past.id} {why}; nothing to resume", severity="warning")
            return
        self.post_message(self.Resume(past.id))

    def action_close(self) -> None:
        self.app.pop_screen()
