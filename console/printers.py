"""Headless event printers: human-readable lines or the JSON event stream (SPEC section 4).

Both are run subscribers (``printer(event)``) that write bytes to a binary stream. Log
output is the hot path — a flood of millions of lines — so a :class:`LogEvent` chunk of
many lines costs a few ``str`` operations, never a Python loop per line:

- human: ``prefix + text.replace("\\n", "\\n" + prefix)``;
- JSON: when the chunk holds nothing JSON must escape, every per-line object is built by
  one ``str.replace`` between a precomputed head and tail; otherwise each line goes
  through the json encoder.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring
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
from console.sanitize import has_control, sanitize

Mask = Callable[[str], str]


def _no_mask(text: str) -> str:
    return text


def use_color(stream: Any) -> bool:
    """ANSI colour only on a terminal, and never when ``NO_COLOR`` is set."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):
        return False


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s"


class _Writer:
    """Buffers encoded text and hands it to the OS once per event-loop pass (at once with
    ``flush_each``, early past ``LIMIT`` bytes); a closed pipe (``baton run | head``)
    turns into silence.

    ``before_output`` runs before any byte leaves (headless passes the store's commit):
    a line never reports a state the run's history does not hold yet, however the
    output is buffered, and the store can commit once per pass instead of once per
    finished task. When it returns False (the commit failed) the buffered lines are
    dropped instead.
    """

    LIMIT = 1 << 16

    __slots__ = ("_out", "_parts", "_pending", "_size", "before_output", "broken",
                 "flush_each")

    def __init__(self, out: IO[bytes], flush_each: bool,
                 before_output: Callable[[], bool | None] | None = None) -> None:
        self._out = out
        self.flush_each = flush_each
        self.before_output = before_output
        self.broken = False
        self._parts: list[bytes] = []
        self._size = 0
        self._pending: asyncio.Handle | None = None

    def write(self, text: str, flush: bool = False) -> None:
        if self.broken:
            return
        data = text.encode("utf-8", "backslashreplace")
        self._parts.append(data)
        self._size += len(data)
        if self.flush_each or self._size >= self.LIMIT:
            self.flush()
        elif flush:
            self._flush_soon()

    def _flush_soon(self) -> None:
        """One flush per event-loop pass: a reader of the pipe sees state changes at once,
        without a write system call for each of a thousand tasks finishing together."""
        if self._pending is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._pending = loop.call_soon(self.flush)

    def flush(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self.broken or not self._parts:
            return
        if self.before_output is not None and self.before_output() is False:
            # the history could not take what these lines report: they are not printed
            # (a success the store does not hold would be re-run by a resume)
            self._parts.clear()
            self._size = 0
            return
        data = b"".join(self._parts) if len(self._parts) > 1 else self._parts[0]
        self._parts.clear()
        self._size = 0
        try:
            self._out.write(data)
            self._out.flush()
        except (BrokenPipeError, ValueError):  # reader gone, or the writer closed at exit
            self.broken = True


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
}

_RUN_STYLE = {
    RunState.RUNNING: "cyan",
    RunState.PAUSED: "yellow",
    RunState.SUCCEEDED: "green",
    RunState.FAILED: "red",
    RunState.CANCELLED: "red",
    RunState.INTERRUPTED: "red",
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
        mask: Mask = _no_mask,
        before_output: Callable[[], bool | None] | None = None,
    ) -> None:
        self._w = _Writer(out, flush_each, before_output)
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
                words.append(format_duration(max(0.0, event.time - started)))
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
    mask: Mask = _no_mask,
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
                format_duration(task.duration),
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
    out.append(f"total {format_duration(total)} · run {state_text}")
    return sanitize("\n".join(out) + "\n", keep_sgr=color)


# --- JSON ------------------------------------------------------------------------------

_NEEDS_ESCAPE = re.compile(r'[\x00-\x09\x0b-\x1f"\\]')
"""Characters JSON must escape, except the "\\n" that separates lines in a chunk."""


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class JsonPrinter:
    """One JSON object per line (SPEC section 4), compact, UTF-8, keys in SPEC order."""

    def __init__(self, out: IO[bytes], *, flush_each: bool = False, mask: Mask = _no_mask,
                 before_output: Callable[[], bool | None] | None = None) -> None:
        self._w = _Writer(out, flush_each, before_output)
        self._mask = mask
        self._heads: dict[tuple[str, str, str], str] = {}

    def __call__(self, event: Event) -> None:
        if type(event) is LogEvent:
            self.log(event)
            return
        if type(event) is TaskEvent:
            if event.reason:
                event = TaskEvent(
                    event.step, event.host, event.state, event.attempt,
                    event.exit_code, self._mask(event.reason), event.time,
                )
        elif type(event) is ActionEvent and event.reason:
            event = ActionEvent(
                event.action, event.step, event.host, event.user, self._mask(event.reason),
                event.time,
            )
        # flushed once per loop pass, after the store's commit (see _Writer)
        self._w.write("".join(_dumps(d) + "\n" for d in event.to_dicts()), flush=True)

    def log(self, event: LogEvent) -> None:
        key = (event.step, event.host, event.stream)
        head = self._heads.get(key)
        if head is None:
            head = self._heads[key] = (
                f'{{"type":"log","step":{_dumps(event.step)},"host":{_dumps(event.host)},'
                f'"stream":{_dumps(event.stream)},"line":"'
            )
        text = event.text
        tail = f'","time":{_dumps(event.time)}}}\n'
        if _NEEDS_ESCAPE.search(text) is None:
            self._w.write(head + text.replace("\n", tail + head) + tail, flush=True)
            return
        # Slow path: a line with quotes, backslashes or control characters.
        head = head[:-1]
        tail = tail[1:]
        self._w.write("".join([head + encode_basestring(line) + tail
                               for line in text.split("\n")]), flush=True)

    def flush(self) -> None:
        self._w.flush()



# --- history ---------------------------------------------------------------------------


class RunLike(Protocol):
    id: str
    workflow: str
    state: str
    user: str
    started: float | None

    @property
    def duration(self) -> float | None: ...


def format_time(t: float | None) -> str:
    """UTC, ISO 8601 to the second (as ``baton show`` prints times)."""
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def format_runs(runs: Iterable[RunLike]) -> str:
    """The ``baton runs`` table: id, workflow, started, duration, status, user."""
    header = ("ID", "WORKFLOW", "STARTED", "DURATION", "STATUS", "USER")
    rows = [(r.id, r.workflow, format_time(r.started), format_duration(r.duration),
             str(r.state), r.user) for r in runs]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                   + "\n" for row in [header, *rows])
