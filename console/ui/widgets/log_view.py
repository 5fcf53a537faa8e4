"""The log pane: a virtual view over a bounded :class:`LogBuffer`.

Only the visible lines are rendered (Line API), so the cost of a frame does not depend on
how many lines arrived since the last one. The screen calls :meth:`LogView.sync` at most
~30 times a second; a flood of output therefore costs one size update and one repaint
per frame.
"""

from __future__ import annotations

import re
import time
from collections import deque
from itertools import islice

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from console.ui.palette import palette
from console.ui.session import LogBuffer, LogLine

_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f]")


def clean(text: str) -> str:
    """Drop terminal escape sequences and control characters; expand tabs."""
    if "\x1b" in text or "\t" in text or not text.isprintable():
        text = _CONTROL.sub("", text.expandtabs(4))
    return text


class LogView(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    LogView { background: $surface; padding: 0 1; }
    """

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
    def lines(self) -> deque[LogLine] | tuple[()]:
        if self._matches is not None:
            return self._matches
        return () if self.buffer is None else self.buffer.lines

    @property
    def line_count(self) -> int:
        return len(self.lines)

    def sync(self) -> None:
        """Take in the lines that arrived since the last call and repaint."""
        buffer = self.buffer
        if buffer is None:
            self.virtual_size = Size(0, 0)
            self.refresh()
            return
        new = min(buffer.total - self._seen, len(buffer.lines))
        dropped_lines = buffer.dropped - self._dropped
        self._dropped = buffer.dropped
        if new:
            fresh = list(islice(reversed(buffer.lines), new))
            if self.filter_text:
                if self._matches is None:
                    self._matches = self._scan(buffer.lines)
                else:
                    needle = self.filter_text.lower()
                    self._matches.extend(
                        line for line in reversed(fresh) if needle in line.text.lower()
                    )
            width = max((len(line.text) for line in fresh), default=0)
            self._width = max(self._width, width + self._prefix_width())
            self._seen = buffer.total
        elif self.filter_text and self._matches is None:
            self._matches = self._scan(buffer.lines)
        self.virtual_size = Size(self._width, self.line_count)
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        elif dropped_lines and self._matches is None and self.scroll_y:
            self.scroll_to(y=max(0, self.scroll_y - dropped_lines), animate=False)
        self.refresh()

    def _scan(self, lines: deque[LogLine]) -> deque[LogLine]:
        needle = self.filter_text.lower()
        return deque((line for line in lines if needle in line.text.lower()),
                     maxlen=lines.maxlen)

    def _prefix_width(self) -> int:
        width = 9 if self.show_time else 0
        if self.multi_host:
            width += 12
        return width

    # ------------------------------------------------------------------ reactives

    def watch_filter_text(self) -> None:
        self._matches = None
        self.sync()

    def watch_show_time(self) -> None:
        self._width = 0
        self._seen = 0
        self.sync()

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    # ------------------------------------------------------------------ rendering

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        base = self.rich_style
        lines = self.lines
        if index >= len(lines):
            return Strip.blank(width, base)
        line = lines[index]
        pal = palette(self.app)
        segments: list[Segment] = []
        if self.show_time:
            stamp = time.strftime("%H:%M:%S ", time.localtime(line.time))
            segments.append(Segment(stamp, base + pal.style("log-time")))
        if self.multi_host:
            host = line.host[:11].ljust(12)
            segments.append(Segment(host, base + pal.style("dim-text")))
        text = clean(line.text)
        if line.stream == "stderr":
            style: Style = base + pal.style("log-stderr")
        elif line.stream == "meta":
            style = base + pal.style("dim-text", bold=True)
        else:
            style = base
        segments.append(Segment(text, style))
        length = sum(cell_len(s.text) for s in segments)
        strip = Strip(segments, length)
        return strip.crop_extend(scroll_x, scroll_x + width, base).apply_offsets(scroll_x, index)
