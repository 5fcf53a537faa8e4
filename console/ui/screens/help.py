"""Help (``?``): every key of the run screen and what it does, from its bindings."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

KeyHelp = tuple[str, str, str]
"""(key as shown, short description, what it does)."""


def describe_keys(bindings: Iterable[BindingType], overrides: dict[str, str],
                  key_display: Callable[[Binding], str]) -> list[KeyHelp]:
    """(key, description, help) of every binding, the user's remapped keys applied."""
    out: list[KeyHelp] = []
    for binding in bindings:
        if isinstance(binding, tuple):
            continue
        key = overrides.get(binding.id or "", binding.key)
        shown = ", ".join(key_display(Binding(k.strip(), binding.action))
                          for k in key.split(","))
        out.append((shown, binding.description, binding.tooltip))
    return out


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close", id="help.close"),
    ]

    def __init__(self, keys: list[KeyHelp]) -> None:
        super().__init__(classes="dialog-screen")
        self.keys = keys

    def compose(self) -> ComposeResult:
        table = Table(box=None, padding=(0, 2), show_header=True, header_style="bold")
        table.add_column("key", style="bold")
        table.add_column("action")
        table.add_column("what it does")
        for key, short, long in self.keys:
            table.add_row(key, short, long)
        table.add_row("ctrl+p", "Palette", "Every action (and the theme) by name")
        with VerticalScroll(classes="dialog", id="help-dialog"):
            yield Label("Keys", classes="dialog-title")
            yield Static(table)
            yield Label("Esc closes · remap keys in config.toml [keys] by binding id",
                        classes="dialog-hint", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
