"""The console's view of a run: bounded logs, the timeline, and what changed since the last
frame.

The engine calls :meth:`RunSession.on_event` synchronously for every event. The callback
only appends to buffers and records what changed; the screen drains those changes at most
~30 times a second (:meth:`RunSession.take_changes`), so a flood of output costs one
repaint per frame, not one per line. Nothing here imports Textual.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import NamedTuple

from console.engine.diff import StepDiff
from console.engine.events import (
    ActionEvent,
    Event,
    LogEvent,
    ReloadEvent,
    RunEvent,
    TaskEvent,
    TaskState,
)
from console.engine.run import Run

MAX_LOG_LINES = 10_000
MAX_TIMELINE = 50_000


class LogLine(NamedTuple):
    time: float
    host: str
    stream: str
    """``stdout``, ``stderr`` or ``meta`` (a line the console adds, e.g. a new attempt)."""
    text: str


class LogMeta(NamedTuple):
    """What the lines of one output chunk share."""

    time: float
    host: str
    stream: str


class LogBuffer:
    """The last ``limit`` lines of a task or step; ``total`` counts every line ever added.

    Output is kept as the chunks it arrived in (one chunk = one :class:`LogEvent`), each
    with its line count: taking in a chunk of any size costs a ``count("\\n")`` and two
    appends, never a Python step per line. Lines are split out only when they are shown
    (a few chunks at a time, cached). Whole chunks are dropped from the front once the
    rest still holds ``limit`` lines; the view skips the surplus lines of the first one.
    """

    __slots__ = ("_cache", "_size", "_starts", "chunks", "limit", "total")

    def __init__(self, limit: int = MAX_LOG_LINES) -> None:
        self.limit = limit
        self.chunks: deque[tuple[LogMeta, str]] = deque()
        self._starts: deque[int] = deque()
        """Absolute number of each chunk's first line."""
        self._size = 0
        self.total = 0
        self._cache: dict[int, list[str]] = {}

    def add(self, meta: LogMeta, text: str) -> None:
        """Add one chunk: lines joined by "\\n", without a trailing newline."""
        count = text.count("\n") + 1
        self.chunks.append((meta, text))
        self._starts.append(self.total)
        self.total += count
        self._size += count
        starts = self._starts
        while len(starts) > 1 and self.total - starts[1] >= self.limit:
            self._size = self.total - starts[1]
            self._cache.pop(starts.popleft(), None)
            self.chunks.popleft()

    def __len__(self) -> int:
        return min(self._size, self.limit)

    @property
    def first(self) -> int:
        """Absolute number of the first line shown."""
        return self.total - len(self)

    @property
    def dropped(self) -> int:
        return self.first

    def _lines_of(self, position: int) -> list[str]:
        start = self._starts[position]
        lines = self._cache.get(start)
        if lines is None:
            if len(self._cache) >= 8:
                self._cache.pop(next(iter(self._cache)))
            lines = self._cache[start] = self.chunks[position][1].split("\n")
        return lines

    def line(self, index: int) -> LogLine:
        """Line ``index`` (0 = the oldest line kept)."""
        absolute = self.first + index
        position = bisect_right(self._starts, absolute) - 1
        meta = self.chunks[position][0]
        text = self._lines_of(position)[absolute - self._starts[position]]
        return LogLine(meta.time, meta.host, meta.stream, text)

    def lines_from(self, index: int) -> Iterator[LogLine]:
        """Lines ``index`` .. the end, chunk by chunk."""
        absolute = self.first + max(0, index)
        if absolute >= self.total:
            return
        position = bisect_right(self._starts, absolute) - 1
        for pos in range(position, len(self.chunks)):
            meta, _ = self.chunks[pos]
            skip = max(0, absolute - self._starts[pos])
            for text in islice(self._lines_of(pos), skip, None):
                yield LogLine(meta.time, meta.host, meta.stream, text)

    def lines(self) -> list[LogLine]:
        return list(self.lines_from(0))


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    time: float
    kind: str
    """``run``, ``task``, ``action``, ``note`` or ``reload``."""
    user: str
    text: str
    step: str | None = None
    host: str | None = None


@dataclass
class Changes:
    """What happened since the last frame."""

    run: bool = False
    steps: set[str] = field(default_factory=set)
    tasks: set[tuple[str, str]] = field(default_factory=set)
    """(step, host) of the tasks whose state changed."""
    logs: set[str] = field(default_factory=set)
    """Steps whose log (of any host) grew."""
    timeline: bool = False
    actions: bool = False

    def __bool__(self) -> bool:
        return self.run or bool(self.steps) or bool(self.logs) or self.timeline


class RunSession:
    """Subscribes to a :class:`Run` and keeps what the console shows about it."""

    def __init__(self, run: Run, max_lines: int = MAX_LOG_LINES,
                 on_change: Callable[[], None] | None = None) -> None:
        self.run = run
        self.max_lines = max_lines
        self.task_logs: dict[tuple[str, str], LogBuffer] = {}
        self.step_logs: dict[str, LogBuffer] = {}
        self.timeline: deque[TimelineEntry] = deque(maxlen=MAX_TIMELINE)
        self._changes = Changes()
        self._on_change = on_change
        self._unsubscribe = run.subscribe(self.on_event)

    def close(self) -> None:
        self._unsubscribe()

    def subscribe_again(self) -> None:
        """Move this subscription behind those added since: the store's recorder hears
        every event first, so an action is durable before the console shows it."""
        self._unsubscribe()
        self._unsubscribe = self.run.subscribe(self.on_event)

    # ------------------------------------------------------------------ buffers

    def task_log(self, step: str, host: str) -> LogBuffer:
        buffer = self.task_logs.get((step, host))
        if buffer is None:
            buffer = self.task_logs[(step, host)] = LogBuffer(self.max_lines)
        return buffer

    def step_log(self, step: str) -> LogBuffer:
        """Every host's lines of ``step``; the task's own buffer for a single-task step."""
        buffer = self.step_logs.get(step)
        if buffer is None:
            tasks = self.run.tasks_of(step)
            if len(tasks) == 1:
                buffer = self.task_log(step, tasks[0].host)
            else:
                buffer = LogBuffer(self.max_lines)
            self.step_logs[step] = buffer
        return buffer

    @property
    def dirty(self) -> bool:
        """Something changed that the screen has not drawn yet."""
        return bool(self._changes)

    def take_changes(self) -> Changes:
        changes, self._changes = self._changes, Changes()
        return changes

    # ------------------------------------------------------------------ events

    def on_event(self, event: Event) -> None:
        match event:
            case LogEvent():
                self._on_log(event)
            case TaskEvent():
                self._on_task(event)
            case ActionEvent():
                self._on_action(event)
            case RunEvent():
                self._changes.run = True
                self._add(TimelineEntry(event.time, "run", "", f"run {event.state}"))
            case ReloadEvent():
                self._on_reload(event)
        if self._on_change is not None:
            self._on_change()

    def _on_log(self, event: LogEvent) -> None:
        meta = LogMeta(event.time, event.host, event.stream)
        self._append(event.step, meta, event.text)

    def _append(self, step: str, meta: LogMeta, text: str) -> None:
        task_log = self.task_log(step, meta.host)
        task_log.add(meta, text)
        step_log = self.step_log(step)
        if step_log is not task_log:
            step_log.add(meta, text)
        self._changes.logs.add(step)

    def _on_task(self, event: TaskEvent) -> None:
        self._changes.steps.add(event.step)
        self._changes.tasks.add((event.step, event.host))
        self._changes.run = True
        where = event.step if event.host == "local" else f"{event.step}@{event.host}"
        text = f"{where} {str(event.state).replace('_', ' ')}"
        if event.state is TaskState.RUNNING and event.attempt:
            text += f" (attempt {event.attempt})"
            if event.attempt > 1:
                meta = LogMeta(event.time, event.host, "meta")
                self._append(event.step, meta, f"── attempt {event.attempt} ──")
        if event.reason:
            text += f": {event.reason}"
        self._add(TimelineEntry(event.time, "task", "", text, event.step, event.host))

    def _on_action(self, event: ActionEvent) -> None:
        self._changes.actions = True
        self._changes.run = True
        if event.step is not None:
            self._changes.steps.add(event.step)
        elif event.host is not None:  # a host-wide action (exclude_host): its tasks' rows
            keys = [t.key for t in self.run.tasks.values() if t.host == event.host]
            self._changes.steps.update(step for step, _ in keys)
            self._changes.tasks.update(keys)
        if event.action == "note":
            text = event.reason or ""
            kind = "note"
        else:
            target = event.step or event.host or ""
            if event.step and event.host and event.host != "local":
                target = f"{event.step}@{event.host}"
            elif not event.step and event.host:  # a host-wide action (a host key)
                target = event.host
            text = " ".join(p for p in (event.action.replace("_", " "), target) if p)
            if event.reason:
                text += f": {event.reason}"
            kind = "action"
        self._add(TimelineEntry(event.time, kind, event.user, text, event.step, event.host))

    def _on_reload(self, event: ReloadEvent) -> None:
        self._changes.run = True
        for step in event.changed:  # its hosts may differ now: cache a new step log
            buffer = self.step_logs.get(step)
            if buffer is not None and buffer.total == 0:
                del self.step_logs[step]
        self._changes.steps.update(event.added, event.changed, event.removed)
        if event.error is not None:
            text = f"reload refused: {event.error}"
        else:
            diff = StepDiff(tuple(event.added), tuple(event.changed), tuple(event.removed))
            text = f"reload {diff.summary()} (definition {(event.digest or '')[:12]})"
        self._add(TimelineEntry(event.time, "reload", self.run.user, text))

    def _add(self, entry: TimelineEntry) -> None:
        self.timeline.append(entry)
        self._changes.timeline = True
