"""The reload banner: why the workflow file on disk was not applied to the run.

Hidden while the file is good. It stays up (it is not a toast that times out) until a
later save of the file is valid again, because until then the run is not what the file
says.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from console.engine.diff import StepDiff
from console.engine.events import ReloadEvent


def relative_paths(text: str) -> str:
    """``text`` with files under the current directory named relative to it (the watcher
    resolves paths; the operator thinks of ``deploy.toml``, not its absolute path)."""
    return text.replace(f"{Path.cwd()}{os.sep}", "")


class ReloadBanner(Static):
    DEFAULT_CSS = """
    ReloadBanner {
        display: none;
        height: auto;
        padding: 0 1;
        background: $error 25%;
        color: $foreground;
        border-left: thick $error;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.error: str | None = None

    def show_error(self, error: str) -> None:
        """Show ``FILE:LINE: message``; the run keeps the last good definition."""
        self.error = error
        text = Text()
        text.append("✘ not reloaded  ", style="bold")
        text.append(relative_paths(error))
        text.append("  · the run keeps the last good definition", style="italic")
        self.update(text)
        self.display = True

    def clear(self) -> None:
        self.error = None
        self.display = False

    def announce(self, event: ReloadEvent, path: Path | None) -> None:
        """A reload of the workflow file ``path``: a refused one shows here (a toast too
        when the file is gone); an applied one clears the banner and toasts the diff."""
        name = path.name if path is not None else "workflow"
        if event.error is not None:
            if event.error != self.error and path is not None and not path.exists():
                self.notify(f"{relative_paths(str(path.resolve()))} was deleted; "
                            "the run carries on with its definition",
                            title="workflow file deleted", severity="warning", timeout=10)
            self.show_error(event.error)
            return
        self.clear()
        diff = StepDiff(tuple(event.added), tuple(event.changed), tuple(event.removed))
        self.notify(diff.summary(), title=f"{name} reloaded", timeout=8)


class HistoryBanner(Static):
    """Why the run stopped starting tasks: its history cannot be written (a full or
    read-only disk). It stays up for the rest of the run."""

    DEFAULT_CSS = """
    HistoryBanner {
        display: none;
        height: auto;
        padding: 0 1;
        background: $error 35%;
        color: $foreground;
        border-left: thick $error;
    }
    """

    def show_error(self, error: str) -> None:
        text = Text()
        text.append("✘ history not written  ", style="bold")
        text.append(error)
        text.append("  · no new task starts; the run will not report success",
                    style="italic")
        self.update(text)
        self.display = True
