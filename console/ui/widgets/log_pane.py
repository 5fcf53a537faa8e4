"""The log pane: a titled :class:`LogView` with a filter input that appears on ``/``."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Input

from console.ui.session import LogBuffer
from console.ui.widgets.inputs import make_input
from console.ui.widgets.log_view import LogView


class LogPane(Vertical):
    DEFAULT_CSS = """
    LogPane { border: round $panel; border-title-color: $foreground; }
    LogPane > #filter { display: none; dock: bottom; }
    LogPane.filtering > #filter { display: block; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear_filter", "Clear filter", id="log.clear_filter"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.subject = ""
        self._view = LogView(id="log")
        """Kept, not queried: the pane may be asked for it while the app is already
        tearing its screen down (a query then finds nothing)."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            return self.has_class("filtering") or bool(self.view.filter_text)
        return True

    def compose(self) -> ComposeResult:
        yield self._view
        yield make_input(self.app, placeholder="filter the log (Enter keeps it, Esc clears)",
                         id="filter")

    def on_mount(self) -> None:
        self.watch(self.view, "follow", self._follow_changed, init=False)

    def _follow_changed(self, _follow: bool) -> None:
        self.update_title()

    @property
    def view(self) -> LogView:
        return self._view

    def show(self, subject: str, buffer: LogBuffer | None, *, multi_host: bool) -> None:
        self.subject = subject
        self.view.show(buffer, multi_host=multi_host)
        self.update_title()

    def sync(self) -> None:
        """Take in new lines. The title (with line counts) is left to the 1 s tick:
        changing a border title restyles the pane, too costly to do every frame."""
        self.view.sync()

    def update_title(self) -> None:
        view = self.view
        parts = [f"log · {self.subject}" if self.subject else "log"]
        parts.append("following" if view.follow else "follow paused (End or f resumes)")
        if view.filter_text:
            parts.append(f"filter '{view.filter_text}': {view.line_count} lines")
        buffer = view.buffer
        if buffer is not None and buffer.dropped:
            parts.append(f"last {len(buffer):,} of {buffer.total:,} lines")
        if view.show_time:
            parts.append("timestamps")
        title = " · ".join(parts)
        if title != self.border_title:
            self.border_title = title

    # ------------------------------------------------------------------ filter

    def open_filter(self) -> None:
        self.add_class("filtering")
        field = self.query_one("#filter", Input)
        field.value = self.view.filter_text
        field.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            event.stop()
            self.view.filter_text = event.value
            self.update_title()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.stop()
            if not event.value:
                self.remove_class("filtering")
            self.view.focus()

    def action_clear_filter(self) -> None:
        self.view.filter_text = ""
        self.query_one("#filter", Input).value = ""
        self.remove_class("filtering")
        self.update_title()
