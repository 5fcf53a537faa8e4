"""The folder view: every workflow file of a folder; a broken file is listed with its
first error, never hidden. Enter opens the highlighted workflow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from console.model.loader import WorkflowError, load_workflow
from console.ui.palette import palette

if TYPE_CHECKING:
    from console.ui.app import BatonApp

NO_HISTORY = "—"


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
            first = str(exc.problems[0]) if exc.problems else str(exc)
            first = first.removeprefix(f"{path}:").lstrip(":0123456789 ")
            entries.append(Entry(path, path.stem, "", first))
            continue
        lines = [line.strip() for line in workflow.description.splitlines() if line.strip()]
        entries.append(Entry(path, workflow.name, lines[0] if lines else ""))
    return entries


class FolderScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", id="folder.open"),
        Binding("question_mark", "help", "Help", id="folder.help", show=False),
        Binding("q", "quit", "Quit", id="folder.quit"),
    ]

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self.entries: list[Entry] = []

    def compose(self) -> ComposeResult:
        yield Label(f"Workflows in {self.folder}", id="folder-title")
        yield DataTable(id="workflows", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("file", width=22)
        table.add_column("name", width=30)
        table.add_column("last run", width=9)
        table.add_column("description / problem")
        self.load()
        table.focus()

    def load(self) -> None:
        pal = palette(self.app)
        table = self.query_one(DataTable)
        table.clear()
        self.entries = scan_folder(self.folder)
        for entry in self.entries:
            if entry.error is not None:
                bad = pal.style("state-failed")
                table.add_row(entry.path.name, Text(entry.name, style=bad), NO_HISTORY,
                              Text(f"✘ {entry.error}", style=bad))
            else:
                table.add_row(entry.path.name, entry.name, NO_HISTORY, entry.description)
        if not self.entries:
            self.notify(f"no *.toml workflow in {self.folder}", severity="warning")

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
        app: BatonApp = self.app  # type: ignore[assignment]
        app.open_workflow(entry.path, from_folder=True)

    def action_help(self) -> None:
        self.notify("Enter opens the highlighted workflow; q quits.")

    def action_quit(self) -> None:
        app: BatonApp = self.app  # type: ignore[assignment]
        app.finish(None)
