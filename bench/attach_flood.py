"""bench/attach.py part 3: bench/console_flood.py's workload in two consoles, timed alike.

:func:`in_process_flood`: today's in-process console (``BatonApp`` with a history, as
``baton run FILE`` records one) starts the run with ``g``. :func:`attached_flood`: the
console of ``baton attach`` (``AttachApp``) on a runner whose flood step is held
(``--step``) approves it. Both then press keys as console_flood does and stop the clock
when the console sees the run end; the lines the console holds are counted, and the CPU
time each process spent over that span (robust to a loaded machine, where wall times are
not).
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.console_flood import PaintProbe, press_during_the_flood
from console.engine.events import RunState
from console.store import Store
from console.ui.app import BatonApp, LaunchOptions
from console.ui.screens.run_screen import RunScreen
from console.ui.system import SystemStats, fixed_sampler


@dataclass(frozen=True)
class Flood:
    wall: float
    total: int
    latencies: list[float]
    cpu: float = 0.0
    """CPU seconds of this process (all threads) over ``wall``: the console's."""
    runner_cpu: float = 0.0
    """CPU seconds of the runner process over ``wall`` (0 in-process)."""

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else 0.0

    @property
    def worst_ms(self) -> float:
        return max(self.latencies) * 1000 if self.latencies else 0.0


def _sampler() -> Any:
    return fixed_sampler(SystemStats(0, 0, (0, 0, 0)))


async def in_process_flood(path: Path, home: Path, presses: int) -> Flood:
    store = Store.open(home)
    try:
        app = BatonApp(path, LaunchOptions(start=False, run_id="bench"), store=store,
                       config_file=home.parent / "c.toml", sampler=_sampler(), blink=False)
        return await _drive(app, lambda app, screen: app.simulate_key("g"), presses)
    finally:
        store.close()


def cpu_self() -> float:
    """CPU seconds (user + system) of this process so far, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far (its children excluded)."""
    fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def attached_flood(socket: Path, presses: int, runner: int | None = None) -> Flood:
    from console.runner.attach_app import AttachApp

    app = AttachApp(socket, config_file=socket.parent / "c.toml", sampler=_sampler(),
                    blink=False)
    return await _drive(app, lambda app, screen: screen.run.approve("flood", "local"),
                        presses, runner=runner)


async def _drive(app: BatonApp, begin: Callable[[BatonApp, RunScreen], None],
                 presses: int, interval: float = 0.2, runner: int | None = None) -> Flood:
    """console_flood.console's measurement, for any console app and way to start."""
    probe = PaintProbe()
    latencies: list[float] = []
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            while not (isinstance(app.screen, RunScreen) and app.screen.is_mounted):
                await asyncio.sleep(0.01)
            screen: RunScreen = app.screen
            ended: list[float] = []
            screen.run.subscribe(lambda e: ended.append(time.perf_counter())
                                 if getattr(e, "type", "") == "run" and e.state.finished
                                 else None)
            await pilot.pause(0.2)  # the console is up and idle: now start the run
            start = time.perf_counter()
            cpu, runner_cpu = cpu_self(), cpu_of(runner) if runner else 0.0
            begin(app, screen)
            while not screen.session.task_log("flood", "local").total:
                await asyncio.sleep(0.001)
            latencies += await press_during_the_flood(app, screen, probe, presses, interval,
                                                      ended)
            while not ended:
                await asyncio.sleep(0.005)
            assert screen.run.state is RunState.SUCCEEDED, screen.run.state
            wall = ended[0] - start
            cpu = cpu_self() - cpu
            runner_cpu = cpu_of(runner) - runner_cpu if runner else 0.0
            await pilot.pause()
            total = screen.session.task_log("flood", "local").total
            screen.run.close()
            await pilot.pause()
    finally:
        probe.close()
    return Flood(wall, total, latencies, cpu, runner_cpu)
