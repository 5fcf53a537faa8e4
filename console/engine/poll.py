"""Health polls (``poll``, ``within``, ``delay``; SPEC section 1).

A polling task re-runs its command every ``poll`` seconds until it exits 0 or ``within``
passes; all its polls are ONE attempt, not failures. ``delay`` waits before the first poll;
``within`` counts from the first poll, and the time the run spends paused does not count.

- The task stays ``running`` and its reason shows the progress, ``polling 4/24 · 40s left``
  (a task event at each poll, so the tree, the store and the JSON stream all see it).
- Each failed poll leaves one compact log line (``polling 3/24 · 45s left · exit 7 · <its
  last output line>``); the poll that succeeds, or the last one when ``within`` passes, has its
  whole output in the log and in the task's outputs.
- Still failing when ``within`` passes: the task fails with the last poll's output and
  reason ``still failing after 120s (24 polls): exit 7``. ``within`` decides whether
  another poll starts; a poll that started runs to its end, for at most ``timeout`` (or
  ``within`` when the step has no timeout: a hung check cannot hold the task forever).
- Pause acts at once: no new poll starts while the run is paused (a poll already running
  finishes). Cancel acts at once: between polls the wait ends, during one the process is
  ended, as for any task.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable

from console.engine.command import execute_command, output_sink
from console.engine.core import RunCore
from console.engine.events import Event, LogEvent, RunEvent, RunState, TaskState
from console.engine.task import Attempt, Task
from console.executors.base import CommandRequest, ExitStatus, Stream
from console.model.workflow import Step

KEEP_LINES = 500
"""Lines of one poll's output kept to show when it is the poll that counts."""


class _Wait:
    """Stands in for the execution between polls: cancelling the task ends the wait."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()

    async def wait(self) -> ExitStatus:
        await self.ended.wait()
        return ExitStatus(None, signal=15)

    async def terminate(self, grace: float = 0) -> None:
        self.ended.set()


class _Capture:
    """One poll's output, raw (the run's sink masks it when it is replayed)."""

    def __init__(self) -> None:
        self.chunks: deque[tuple[Stream, str]] = deque(maxlen=KEEP_LINES)

    def __call__(self, stream: Stream, text: str) -> None:
        self.chunks.append((stream, text))

    def last_line(self, mask: Callable[[str], str]) -> str:
        """The last non-blank output line, masked as part of its whole chunk (a secret
        that spans lines is masked before the line is cut out)."""
        for _stream, text in reversed(self.chunks):
            for line in reversed(mask(text).split("\n")):
                if line.strip():
                    return line.strip()
        return ""


class _Clock:
    """The poll's deadline in loop time, moved on by the time the run spends paused."""

    def __init__(self, run: RunCore) -> None:
        self.loop = asyncio.get_running_loop()
        self.paused_since: float | None = None
        self.paused_total = 0.0
        self.changed = asyncio.Event()
        if run.state is RunState.PAUSED:
            self.paused_since = self.loop.time()

    def on_event(self, event: Event) -> None:
        if not isinstance(event, RunEvent):
            return
        now = self.loop.time()
        if event.state is RunState.PAUSED and self.paused_since is None:
            self.paused_since = now
        elif event.state is not RunState.PAUSED and self.paused_since is not None:
            self.paused_total += now - self.paused_since
            self.paused_since = None
        self.changed.set()

    @property
    def paused(self) -> bool:
        return self.paused_since is not None

    def now(self) -> float:
        """Loop time less every second spent paused (the current pause included)."""
        now = self.loop.time()
        paused = self.paused_total
        if self.paused_since is not None:
            paused += now - self.paused_since
        return now - paused


def _seconds(value: float) -> str:
    return f"{value:g}s"


async def run_polls(run: RunCore, task: Task, step: Step, attempt: Attempt,
                    request: CommandRequest) -> tuple[ExitStatus | None, str | None]:
    """Poll until the command exits 0 or ``within`` passes; returns what
    :meth:`Attempts.finish` needs: the last poll's status and the failure reason, if any."""
    interval = step.poll or 1.0
    within = step.within or interval
    total = max(1, math.ceil(within / interval))
    clock = _Clock(run)
    unsubscribe = run.subscribe(clock.on_event)
    waiter = _Wait()
    try:
        return await _poll(run, task, step, request, clock, waiter, interval, within, total)
    finally:
        unsubscribe()
        if task.execution is waiter:
            task.execution = None


async def _sleep(task: Task, clock: _Clock, waiter: _Wait, until: float,
                 on_pause: Callable[[], None]) -> None:
    """Wait until ``until`` (unpaused time: a pause holds the wait) or a cancel;
    ``on_pause`` is called as soon as a pause holds it."""
    task.execution = waiter
    announced = False
    while not task.cancel_requested:
        clock.changed.clear()
        left = until - clock.now()
        if left <= 0 and not clock.paused:
            return
        if clock.paused and not announced:
            announced = True
            on_pause()
        sleeper = asyncio.ensure_future(clock.changed.wait())
        ender = asyncio.ensure_future(waiter.ended.wait())
        try:
            await asyncio.wait({sleeper, ender}, timeout=None if clock.paused else left,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            ender.cancel()


async def _poll(run: RunCore, task: Task, step: Step, request: CommandRequest, clock: _Clock,
                waiter: _Wait, interval: float, within: float,
                total: int) -> tuple[ExitStatus | None, str | None]:
    def paused() -> None:
        left = _left(clock, deadline) if deadline is not None else "not started"
        run.set_state(task, TaskState.RUNNING, f"polling paused · {left}")

    deadline: float | None = None
    if step.delay:
        run.set_state(task, TaskState.RUNNING,
                      f"waiting {_seconds(step.delay)} before the first poll")
        await _sleep(task, clock, waiter, clock.now() + step.delay, paused)
    deadline = clock.now() + within
    status: ExitStatus | None = None
    number = 0
    while True:
        await _sleep(task, clock, waiter, clock.now(), paused)  # only while paused
        if task.cancel_requested:
            return status, None
        number += 1
        count = f"{number}/{max(total, number)}"
        began = clock.now()
        run.set_state(task, TaskState.RUNNING, f"polling {count} · {_left(clock, deadline)}")
        capture = _Capture()
        limit = step.timeout if step.timeout is not None else within
        status, timed_out = await execute_command(run, task, step, request, limit,
                                                  sink=capture)
        if task.cancel_requested or (status.ok and not timed_out):
            _replay(run, task, capture)
            return status, None
        why = f"timed out after {_seconds(limit)}" if timed_out else _why(status)
        if began + interval >= deadline or clock.now() >= deadline:
            _replay(run, task, capture)
            plural = "s" if number != 1 else ""
            return status, f"still failing after {_seconds(within)} ({number} poll{plural}): {why}"
        line = capture.last_line(run.masker.mask)
        text = f"polling {count} · {_left(clock, deadline)} · {why}"
        run.emit(LogEvent(task.step, task.host, "stdout",
                           run.masker.mask(f"{text} · {line}" if line else text),
                           run.clock(), task.attempt))
        await _sleep(task, clock, waiter, began + interval, paused)


def _left(clock: _Clock, deadline: float) -> str:
    """``40s left``, ``9m58s left``, ``1h05m left``."""
    seconds = max(0, math.ceil(deadline - clock.now()))
    if seconds < 60:
        return f"{seconds}s left"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s left"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m left"


def _why(status: ExitStatus) -> str:
    if status.error:
        return status.error
    if status.signal:
        return f"killed by signal {status.signal}"
    return f"exit {status.exit_code}"


def _replay(run: RunCore, task: Task, capture: _Capture) -> None:
    """The poll that counts: its whole output, through the run's sink (masked, kept)."""
    sink = output_sink(run, task)
    for stream, text in capture.chunks:
        sink(stream, text)
