"""The human headless printer: ``step | line`` log lines, one line per task state change, the
end-of-run summary table; ANSI colour only on a terminal."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import IO, Any, Protocol

from console.engine.events import (
    ActionEvent,
    Event,
    LogEvent,
    ReloadEvent,
    RunEvent,
    RunState,
    TaskEvent,
    TaskState,
)
from console.engine.task import task_label
from console.model.durations import PRECISE, format_duration
from console.printers.writer import ByteWriter, Mask, no_mask
from console.sanitize import has_control, sanitize

__all__ = ["HumanPrinter", "format_reload", "format_summary", "use_color"]


def use_color(stream: Any) -> bool:
    """ANSI colour only on a terminal, and never when ``NO_COLOR`` is set."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):
        return False


# --- human -----------------------------------------------------------------------------

_RESET = "\x1b[0m"
_STYLE = {
    "dim": "\x1b[2m",
    "bold": "\x1b[1m",
    "red": "\x1b[31m",
    "green": "\x1b[32m",
    "yellow": "\x1b[33m",
    "blue": "\x1b[34m",
    "cyan": "\x1b[36m",
}

_SYMBOL = {
    TaskState.PENDING: ("○", "dim"),
    TaskState.AWAITING_APPROVAL: ("?", "yellow"),
    TaskState.AWAITING_OPERATOR: ("?", "yellow"),
    TaskState.RUNNING: ("●", "cyan"),
    TaskState.RETRYING: ("↻", "yellow"),
    TaskState.SUCCEEDED: ("✓", "green"),
    TaskState.FAILED: ("✗", "red"),
    TaskState.SKIPPED: ("-", "dim"),
    TaskState.CANCELLED: ("■", "red"),
    TaskState.BLOCKED: ("⊘", "red"),
    TaskState.INTERRUPTED: ("!", "red"),
    TaskState.UNDOING: ("↺", "cyan"),
    TaskState.UNDONE: ("↶", "blue"),
    TaskState.UNDO_FAILED: ("↯", "red"),
}

_RUN_STYLE = {
    RunState.RUNNING: "cyan",
    RunState.PAUSED: "yellow",
    RunState.SUCCEEDED: "green",
    RunState.FAILED: "red",
    RunState.CANCELLED: "red",
    RunState.INTERRUPTED: "red",
    RunState.ROLLED_BACK: "yellow",
}


class TaskLike(Protocol):
    step: str
    host: str
    state: TaskState
    attempt: int
    exit_code: int | None
    reason: str | None

    @property
    def duration(self) -> float | None: ...


class HumanPrinter:
    """``step | line`` log lines, one line per task state change, and a final summary.

    ``width`` pads every log prefix to the same column (the longest task label).
    ``mask`` is applied to reasons and notes (log text arrives already masked).
    """

    def __init__(
        self,
        out: IO[bytes],
        *,
        color: bool = False,
        flush_each: bool = False,
        width: int = 0,
        mask: Mask = no_mask,
        before_output: Callable[[], bool | None] | None = None,
    ) -> None:
        self._w = ByteWriter(out, flush_each, before_output)
        self._color = color
        self._width = width
        self._mask = mask
        self._prefixes: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._started: dict[tuple[str, str], float] = {}

    def _style(self, text: str, style: str) -> str:
        return f"{_STYLE[style]}{text}{_RESET}" if self._color else text

    def __call__(self, event: Event) -> None:
        if type(event) is LogEvent:
            self.log(event)
        elif type(event) is TaskEvent:
            self.task(event)
        elif type(event) is RunEvent:
            self.run(event)
        elif type(event) is ActionEvent:
            self.action(event)
        elif type(event) is ReloadEvent:
            self.reload(event)

    def log(self, event: LogEvent) -> None:
        key = (event.step, event.host, event.stream)
        parts = self._prefixes.get(key)
        if parts is None:
            parts = self._prefixes[key] = self._log_parts(*key)
        head, tail = parts
        text = event.text
        if has_control(text):  # step bytes reach the terminal only sanitised
            text = sanitize(text, keep_sgr=self._color)
            if self._color and "\x1b" in text:
                tail += _RESET  # a colour the step left on does not bleed into the next line
        self._w.write(head + text.replace("\n", tail + "\n" + head) + tail + "\n",
                      flush=True)

    def _log_parts(self, step: str, host: str, stream: str) -> tuple[str, str]:
        label = sanitize(task_label(step, host)).ljust(self._width)
        if not self._color:
            return f"{label} | ", ""
        head = f"{_STYLE['dim']}{label} |{_RESET} "
        if stream == "stderr":
            return head + _STYLE["red"], _RESET
        return head, ""

    def task(self, event: TaskEvent) -> None:
        key = (event.step, event.host)
        state = event.state
        if state is TaskState.PENDING:
            return  # back in the queue (approved, reset for a retry): the next state tells
        if state is TaskState.RUNNING:
            self._started.setdefault(key, event.time)  # automatic retries keep the first start
            progress = event.reason or ""
            if progress.startswith("polling ") and not progress.startswith("polling paused"):
                return  # a health poll's progress: each poll's log line says it
        symbol, style = _SYMBOL.get(state, ("·", "dim"))
        words = [self._style(symbol, style), self._style(task_label(*key), "bold"), str(state)]
        if state is TaskState.RUNNING or state is TaskState.RETRYING:
            words.append(f"(attempt {event.attempt})")
        elif state.finished:
            started = self._started.pop(key, None)
            if started is not None and state is not TaskState.BLOCKED:
                words.append(format_duration(max(0.0, event.time - started), PRECISE))
        reason = self._mask(event.reason) if event.reason else ""
        if state.finished and event.exit_code is not None and state is not TaskState.SUCCEEDED:
            exit_text = f"exit {event.exit_code}"
            words.append(exit_text)
            if reason.startswith(exit_text):  # "exit 5 (ignored: …)": say the exit once
                reason = reason[len(exit_text):].strip().removeprefix("(").removesuffix(")")
        if reason and reason != f"exit {event.exit_code}":
            words.append(f"({reason})")
        self._line(" ".join(words))

    def run(self, event: RunEvent) -> None:
        style = _RUN_STYLE.get(event.state, "dim")
        state = self._style(str(event.state), style)
        self._line(f"{self._style('▶', style)} run {event.run_id} {state}")

    def action(self, event: ActionEvent) -> None:
        target = ""
        if event.step:
            target = " " + task_label(event.step, event.host) if event.host else f" {event.step}"
        elif event.host:  # a host-wide action (exclude_host)
            target = f" {event.host}"
        text = f"{self._style('»', 'blue')} {event.action}{target} by {event.user}"
        if event.reason:
            text += f": {self._mask(event.reason)}"
        self._line(text)

    def reload(self, event: ReloadEvent) -> None:
        self._line(format_reload(event))

    def text(self, text: str) -> None:
        """Any other human line (a notice from the runner)."""
        self._line(text)

    def _line(self, text: str) -> None:
        """A line of our own that may quote names, reasons or notes from the workflow, the
        operator or a step: sanitised (our colours are SGR, kept on a terminal)."""
        if has_control(text):
            text = sanitize(text, keep_sgr=self._color)
        self._w.write(text + "\n", flush=True)

    def flush(self) -> None:
        self._w.flush()


def format_reload(event: ReloadEvent) -> str:
    """``reload: +added ~changed -removed``, or the reason the new text was refused."""
    if event.error is not None:
        return f"reload: {event.error} (the run keeps the previous definition)"
    parts = [f"+{s}" for s in event.added] + [f"~{s}" for s in event.changed]
    parts += [f"-{s}" for s in event.removed]
    return "reload: " + (" ".join(parts) or "no step changed")


# --- summary ---------------------------------------------------------------------------


def format_summary(
    tasks: Iterable[TaskLike],
    state: RunState | str,
    total: float | None,
    *,
    color: bool = False,
    mask: Mask = no_mask,
) -> str:
    """The end-of-run table: step, host, state, attempts, duration, exit code / reason."""
    header = ("STEP", "HOST", "STATE", "ATTEMPTS", "DURATION", "RESULT")
    rows: list[tuple[str, ...]] = []
    styles: list[str] = []
    for task in tasks:
        result = []
        reason = mask(task.reason) if task.reason else ""
        if task.exit_code is not None and not reason.startswith(f"exit {task.exit_code}"):
            result.append(f"exit {task.exit_code}")  # unless the reason says it already
        if reason:
            result.append(reason)
        rows.append(
            (
                task.step,
                task.host,
                str(task.state),
                str(task.attempt),
                format_duration(task.duration, PRECISE),
                ", ".join(result) or "-",
            )
        )
        styles.append(_SYMBOL.get(task.state, ("", "dim"))[1])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]

    def line(row: tuple[str, ...], style: str | None = None) -> str:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        if color and style:
            cells[2] = f"{_STYLE[style]}{cells[2]}{_RESET}"
        return "  ".join([*cells, row[-1]]).rstrip()

    out = [line(header)]
    out.extend(line(row, style) for row, style in zip(rows, styles, strict=True))
    state_text = str(state)
    if color:
        state_text = f"{_STYLE[_RUN_STYLE.get(RunState(state), 'dim')]}{state_text}{_RESET}"
    out.append(f"total {format_duration(total, PRECISE)} · run {state_text}")
    return sanitize("\n".join(out) + "\n", keep_sgr=color)
