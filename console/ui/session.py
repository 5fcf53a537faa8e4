"""The console's view of a run: bounded logs, the timeline, and what changed since the last
frame.

The engine calls :meth:`RunSession.on_event` synchronously for every event. The callback
only appends to buffers and records what changed; the screen drains those changes at most
~30 times a second (:meth:`RunSession.take_changes`), so a flood of output costs one
repaint per frame, not one per line. Nothing here imports Textual.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from console.engine.events import ActionEvent, Event, LogEvent, RunEvent, TaskEvent, TaskState
from console.engine.run import Run

MAX_LOG_LINES = 10_000
MAX_TIMELINE = 50_000


class LogLine(NamedTuple):
    time: float
    host: str
    stream: str
    """``stdout``, ``stderr`` or ``meta`` (a line the console adds, e.g. a new attempt)."""
    text: str


class LogBuffer:
    """The last ``limit`` lines of a task or step; ``total`` counts every line ever added."""

    __slots__ = ("lines", "total")

    def __init__(self, limit: int = MAX_LOG_LINES) -> None:
        self.lines: deque[LogLine] = deque(maxlen=limit)
        self.total = 0

    def extend(self, lines: list[LogLine]) -> None:
        self.lines.extend(lines)
        self.total += len(lines)

    @property
    def dropped(self) -> int:
        return self.total - len(self.lines)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    time: float
    kind: str
    """``run``, ``task``, ``action`` or ``note``."""
    user: str
    text: str
    step: str | None = None
    host: str | None = None


@dataclass
class Changes:
    """What happened since the last frame."""

    run: bool = False
    steps: set[str] = field(default_factory=set)
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

    # ------------------------------------------------------------------ buffers

    def task_log(self, step: str, host: str) -> LogBuffer:
        buffer = self.task_logs.get((step, host))
        if buffer is None:
            buffer = self.task_logs[(step, host)] = LogBuffer(self.max_lines)
        return buffer

    def step_log(self, step: str) -> LogBuffer:
        buffer = self.step_logs.get(step)
        if buffer is None:
            buffer = self.step_logs[step] = LogBuffer(self.max_lines)
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
        kind = type(event)
        if kind is LogEvent:
            self._on_log(event)  # type: ignore[arg-type]
        elif kind is TaskEvent:
            self._on_task(event)  # type: ignore[arg-type]
        elif kind is ActionEvent:
            self._on_action(event)  # type: ignore[arg-type]
        elif kind is RunEvent:
            self._changes.run = True
            self._add(TimelineEntry(event.time, "run", "", f"run {event.state}"))
        if self._on_change is not None:
            self._on_change()

    def _on_log(self, event: LogEvent) -> None:
        time, host, stream = event.time, event.host, event.stream
        lines = [LogLine(time, host, stream, text) for text in event.text.split("\n")]
        self._append(event.step, host, lines)

    def _append(self, step: str, host: str, lines: list[LogLine]) -> None:
        self.task_log(step, host).extend(lines)
        self.step_log(step).extend(lines)
        self._changes.logs.add(step)

    def _on_task(self, event: TaskEvent) -> None:
        self._changes.steps.add(event.step)
        self._changes.run = True
        where = event.step if event.host == "local" else f"{event.step}@{event.host}"
        text = f"{where} {str(event.state).replace('_', ' ')}"
        if event.state is TaskState.RUNNING and event.attempt:
            text += f" (attempt {event.attempt})"
            if event.attempt > 1:
                marker = LogLine(event.time, event.host, "meta",
                                 f"── attempt {event.attempt} ──")
                self._append(event.step, event.host, [marker])
        if event.reason:
            text += f": {event.reason}"
        self._add(TimelineEntry(event.time, "task", "", text, event.step, event.host))

    def _on_action(self, event: ActionEvent) -> None:
        self._changes.actions = True
        self._changes.run = True
        if event.step is not None:
            self._changes.steps.add(event.step)
        if event.action == "note":
            text = event.reason or ""
            kind = "note"
        else:
            target = event.step or ""
            if event.step and event.host and event.host != "local":
                target = f"{event.step}@{event.host}"
            text = " ".join(p for p in (event.action.replace("_", " "), target) if p)
            if event.reason:
                text += f": {event.reason}"
            kind = "action"
        self._add(TimelineEntry(event.time, kind, event.user, text, event.step, event.host))

    def _add(self, entry: TimelineEntry) -> None:
        self.timeline.append(entry)
        self._changes.timeline = True
