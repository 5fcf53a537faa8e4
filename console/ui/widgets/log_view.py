"""The log pane's view: a virtual view over a bounded :class:`LogBuffer`.

Only the visible lines are rendered (Line API), so the cost of a frame does not depend on
how many lines arrived since the last one. The screen calls :meth:`LogView.sync` at most
~30 times a second; a flood of output therefore costs one size update and one repaint
per frame. A filter keeps its own bounded list of matching lines, extended with the new
lines of each frame.
"""

from __future__ import annotations

import time
from collections import deque
from itertools import islice
from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from console.sanitize import sgr_style, styled_spans
from console.ui.palette import palette
from console.ui.session import LogBuffer, LogLine

GROW_STEP = 2_048
"""Lines by which the scrollable height grows past its first screenful."""
MAX_WIDTH = 2_000
"""Lines are cut here for horizontal scrolling (the full text stays in the buffer)."""


def clean(text: str) -> str:
    """Plain text of a log line as a terminal shows it: escape sequences and controls
    dropped, the last ``\r`` segment, tabs at 8-column stops (see console.sanitize)."""
    return "".join(chunk for chunk, _ in styled_spans(text))


class LogView(ScrollView, can_focus=True):
    """Follows the end of the log as ``less +F`` does: scrolling up (Up, PageUp, Home,
    ``k``, the mouse wheel) pauses following, End resumes it (``f`` toggles it)."""

    DEFAULT_CSS = """
    LogView { background: $surface; padding: 0 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "scroll_up", "Scroll up", show=False, id="log.up"),
        Binding("j", "scroll_down", "Scroll down", show=False, id="log.down"),
    ]

    follow: reactive[bool] = reactive(True)
    show_time: reactive[bool] = reactive(False)
    filter_text: reactive[str] = reactive("")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.buffer: LogBuffer | None = None
        self.multi_host = False
        self._seen = 0
        self._dropped = 0
        self._matches: deque[LogLine] | None = None
        self._width = 0

    def on_mount(self) -> None:  # lines are drawn in the theme's colours
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.refresh())

    # ------------------------------------------------------------------ source

    def show(self, buffer: LogBuffer | None, *, multi_host: bool) -> None:
        """Display ``buffer`` (a task's or a step's log)."""
        self.buffer = buffer
        self.multi_host = multi_host
        self._seen = 0
        self._dropped = buffer.dropped if buffer is not None else 0
        self._width = 0
        self._matches = None
        self.scroll_to(0, 0, animate=False)
        self.sync()

    @property
    def line_count(self) -> int:
        if self._matches is not None:
            return len(self._matches)
        return 0 if self.buffer is None else len(self.buffer)

    def line_at(self, index: int) -> LogLine:
        if self._matches is not None:
            return self._matches[index]
        assert self.buffer is not None
        return self.buffer.line(index)

    def shown_lines(self) -> list[LogLine]:
        """Every line the view can scroll to (after the filter)."""
        return [self.line_at(i) for i in range(self.line_count)]

    def sync(self) -> None:
        """Take in the lines that arrived since the last call and repaint."""
        buffer = self.buffer
        if buffer is None:
            self.virtual_size = Size(0, 0)
            self.refresh()
            return
        new = min(buffer.total - self._seen, len(buffer))
        dropped_lines = buffer.dropped - self._dropped
        self._dropped = buffer.dropped
        self._seen = buffer.total
        if self.filter_text and self._matches is None:
            self._matches = self._scan(0, len(buffer))
        elif new and self._matches is not None:
            self._matches.extend(self._scan(len(buffer) - new, len(buffer)))
        size = self._virtual_size()
        if size != self.virtual_size:
            self.virtual_size = size
        if self.follow:
            self.scroll_to(y=self._end_y(), animate=False, immediate=True)
        elif dropped_lines and self._matches is None and self.scroll_y:
            self.scroll_to(y=max(0, self.scroll_y - dropped_lines), animate=False)
        self.refresh()

    def _virtual_size(self) -> Size:
        """The scrollable size, grown in steps: every change of it makes Textual lay out
        the whole screen, which a flood would otherwise cause on every frame."""
        lines = self.line_count
        height = lines if lines <= GROW_STEP else -(-lines // GROW_STEP) * GROW_STEP
        width = self._width
        if width > self.scrollable_content_region.width:
            width = -(-width // 64) * 64
        return Size(width, height)

    def _end_y(self) -> int:
        """The scroll position that shows the last line at the bottom."""
        return max(0, self.line_count - self.scrollable_content_region.height)

    def _scan(self, start: int, end: int) -> deque[LogLine]:
        """Matching lines among buffer lines ``start:end``."""
        assert self.buffer is not None
        needle = self.filter_text.lower()
        found: deque[LogLine] = deque(maxlen=self.buffer.limit)
        for line in islice(self.buffer.lines_from(start), end - start):
            if needle in line.text.lower():
                found.append(line)
        return found

    # ------------------------------------------------------------------ reactives

    def watch_filter_text(self) -> None:
        self._matches = None
        self.sync()

    def watch_show_time(self) -> None:
        self._width = 0
        self.sync()

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.scroll_to(y=self._end_y(), animate=False, immediate=True)

    # ------------------------------------------------------------------ scrolling

    def _pause_follow(self) -> None:
        if self.follow and self.line_count > self.scrollable_content_region.height:
            self.follow = False

    def action_scroll_up(self) -> None:
        self._pause_follow()
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self._pause_follow()
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self._pause_follow()
        super().action_scroll_home()

    def action_scroll_end(self) -> None:
        self.follow = True
        super().action_scroll_end()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        """The wheel scrolls up (Textual's own handler runs next): follow pauses first."""
        if not (event.ctrl or event.shift):
            self._pause_follow()

    # ------------------------------------------------------------------ rendering

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        base = self.rich_style
        if index >= self.line_count:
            return Strip.blank(width, base)
        line = self.line_at(index)
        pal = palette(self.app)
        segments: list[Segment] = []
        if self.show_time:
            stamp = time.strftime("%H:%M:%S ", time.localtime(line.time))
            segments.append(Segment(stamp, base + pal.style("log-time")))
        if self.multi_host:
            host = line.host[:11].ljust(12)
            segments.append(Segment(host, base + pal.style("dim-text")))
        if line.stream == "stderr":
            style: Style = base + pal.style("log-stderr")
        elif line.stream == "meta":
            style = base + pal.style("dim-text", bold=True)
        else:
            style = base
        # step bytes pass the sanitiser: SGR colours become styles, nothing else survives
        for text, sgr in styled_spans(line.text[:MAX_WIDTH]):
            segments.append(Segment(text, style + sgr_style(sgr) if sgr else style))
        length = sum(cell_len(s.text) for s in segments)
        if length > self._width:  # the horizontal extent grows as wider lines are shown
            self._width = min(MAX_WIDTH, length)
            self.call_after_refresh(self.sync)
        strip = Strip(segments, length)
        return strip.crop_extend(scroll_x, scroll_x + width, base).apply_offsets(scroll_x, index)
