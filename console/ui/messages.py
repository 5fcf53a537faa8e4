"""Messages the console's screens post up to the app (Textual's "attributes down,
messages up"), when more than one screen posts the same request. A message one screen
alone posts is a nested class of that screen (``FolderScreen.Open``,
``HistoryScreen.Resume``, ``RunScreen.Quit``)."""

from __future__ import annotations

from pathlib import Path

from textual.message import Message

from console.engine.run import Run


class ShowHistory(Message):
    """Show the past runs of the workflow file ``path`` (``h`` in the folder and run
    views); ``path`` None: the workflow has no file."""

    def __init__(self, path: Path | None, name: str) -> None:
        super().__init__()
        self.path = path
        self.name = name


class PageLog(Message):
    """Open the full log of the current attempt of ``run``'s task (``o``) in $PAGER."""

    def __init__(self, run: Run, step: str, host: str) -> None:
        super().__init__()
        self.run = run
        self.step = step
        self.host = host
