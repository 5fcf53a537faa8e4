"""The folder view: every workflow file of a folder; a broken file is listed with its
first error, never hidden. Enter opens the highlighted workflow (``FolderScreen.Open`` to
the app). The screen watches its folder (a worker) and re-lists it on a change."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from console.model.loader import WorkflowError, load_workflow
from console.store import StoreError
from console.ui.history import History, ago, last_runs
from console.ui.inline_md import first_paragraph, fit, inline
from console.ui.messages import ShowHistory
from console.ui.palette import palette
from console.ui.screens.history_screen import run_state_text
from console.ui.system import Clock
from console.ui.watchers import Watchers, watch_folder

NO_HISTORY = "—"
FILE_WIDTH, NAME_WIDTH, LAST_WIDTH = 22, 24, 20


@dataclass(frozen=True)
class Entry:
    path: Path
    name: str
    description: str
    error: str | None = None


def scan_folder(folder: Path) -> list[Entry]:
    """Every ``*.toml`` of ``folder`` (sorted), loaded or with its first problem."""
    entries: list[Entry] = []
    for path in sorted(folder.glob("*.toml")):
        try:
            workflow = load_workflow(path)
        except WorkflowError as exc:
            entries.append(Entry(path, path.stem, "", _first_problem(exc, path)))
            continue
        entries.append(Entry(path, workflow.name, first_paragraph(workflow.description)))
    return entries


def _first_problem(exc: WorkflowError, path: Path) -> str:
    """``line 5: message`` (the file is the row's own); another file's problem keeps its
    ``FILE:LINE:`` (an inventory)."""
    if not exc.problems:
        return str(exc)
    problem = exc.problems[0]
    if problem.file != str(path):
        return str(problem)
    return f"line {problem.line}: {problem.message}" if problem.line else problem.message


class FolderScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", id="folder.open"),
        Binding("h", "history", "History", id="folder.history",
                tooltip="Past runs of the highlighted workflow"),
        Binding("question_mark", "help", "Help", id="folder.help", show=False),
        Binding("q", "quit", "Quit", id="folder.quit"),
    ]

    class Open(Message):
        """Open the workflow file ``path`` (the run starts at once, params form first)."""

        def __init__(self, path: Path) -> None:
            super().__init__()
            self.path = path

    class Quit(Message):
        """Leave the console (no run is open)."""

    def __init__(self, folder: Path, note: str | None = None, *,
                 history: History | None = None, clock: Clock) -> None:
        super().__init__()
        self.folder = folder
        self.note = note
        """A line under the title (e.g. where the bundled examples live)."""
        self.history = history
        """Where the "last run" column comes from (None: the column stays empty)."""
        self.clock = clock
        self.entries: list[Entry] = []
        self._watchers = Watchers()

    def compose(self) -> ComposeResult:
        yield Label(f"Workflows in {self.folder}", id="folder-title")
        if self.note:
            yield Label(self.note, id="folder-note")
        yield DataTable(id="workflows", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("file", width=FILE_WIDTH)
        table.add_column("name", width=NAME_WIDTH)
        table.add_column("last run", width=LAST_WIDTH, key="last")
        table.add_column("description / problem", width=self._rest_width(), key="about")
        self.load()
        table.focus()
        self._watchers = watch_folder(self, self.folder, self.relist)
        # the rows hold the theme's colours: redo them when it changes
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.relist())

    def on_unmount(self) -> None:
        self._watchers.stop()

    def relist(self) -> None:
        """Read the folder again; the highlighted file stays highlighted."""
        table = self.query_one(DataTable)
        row = table.cursor_row
        current = self.entries[row].path if 0 <= row < len(self.entries) else None
        self.load()
        paths = [entry.path for entry in self.entries]
        if current in paths:
            table.move_cursor(row=paths.index(current))
        elif paths:
            table.move_cursor(row=min(row, len(paths) - 1))

    def _rest_width(self) -> int:
        """The description column: what the screen leaves after the other columns."""
        return max(20, self.size.width - FILE_WIDTH - NAME_WIDTH - LAST_WIDTH - 10)

    def on_resize(self) -> None:
        table = self.query_one(DataTable)
        column = table.columns.get("about")  # type: ignore[call-overload]
        if column is not None and column.width != self._rest_width():
            column.width = self._rest_width()
            self._fill(table)

    def load(self) -> None:
        self.entries = scan_folder(self.folder)
        self._fill(self.query_one(DataTable))
        if not self.entries:
            self.notify(f"no *.toml workflow in {self.folder}", severity="warning")

    def _fill(self, table: DataTable[object]) -> None:
        """One row per entry; every cell cut to its column with an ellipsis."""
        pal = palette(self.app)
        rest = self._rest_width()
        table.clear()
        for entry in self.entries:
            file = fit(entry.path.name, FILE_WIDTH)
            if entry.error is not None:
                bad = pal.style("state-failed")
                table.add_row(file, fit(Text(entry.name, style=bad), NAME_WIDTH), NO_HISTORY,
                              fit(Text(f"✘ {entry.error}", style=bad), rest),
                              key=str(entry.path))
            else:
                table.add_row(file, fit(entry.name, NAME_WIDTH), NO_HISTORY,
                              fit(inline(entry.description), rest), key=str(entry.path))
        self.load_last_runs()

    @work(exclusive=True, group="last-runs")
    async def load_last_runs(self) -> None:
        """Fill the "last run" column from the store (in a worker thread)."""
        history = self.history
        if history is None:
            return
        paths = [e.path.resolve() for e in self.entries if e.error is None]
        try:
            found = await history.read(lambda store: last_runs(store, paths))
        except StoreError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        table = self.query_one(DataTable)
        now = self.clock()
        for entry in self.entries:
            summary = found.get(entry.path.resolve())
            if summary is None or str(entry.path) not in table.rows:
                continue
            cell = run_state_text(summary.state, self.app)
            cell.append(f" {ago(summary.started, now)}",
                        style=palette(self.app).style("dim-text"))
            table.update_cell(str(entry.path), "last", cell)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if not self.entries:
            return
        entry = self.entries[table.cursor_row]
        if entry.error is not None:
            self.notify(f"{entry.path.name}: {entry.error}", severity="error")
            return
        self.post_message(self.Open(entry.path))

    def action_history(self) -> None:
        if not self.entries:
            return
        entry = self.entries[self.query_one(DataTable).cursor_row]
        self.post_message(ShowHistory(entry.path.resolve(), entry.name))

    def action_help(self) -> None:
        self.notify("Enter opens the highlighted workflow; h shows its past runs; q quits.")

    def action_quit(self) -> None:
        self.post_message(self.Quit())
