"""Console under a log flood: one step prints N lines (default 1,000,000) while a Pilot
presses keys. Reports the keypress-to-screen latency (median, worst), the peak RSS and
the run's wall time against the same flood run headless.

Targets: median < 100 ms, worst < 500 ms, peak RSS <= 300 MB, console run <= 2x headless.

    python bench/console_flood.py [--lines N] [--presses K]

Exit code 0 when every target is met, 1 otherwise. The keypress latency is measured from
posting the key event to the first repaint of the log pane that shows its effect (the
timestamps column toggled, follow mode toggled). The headless baseline is the same run
through ``console.headless.execute_headless`` (human printer) with output to /dev/null.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.engine.events import RunState
from console.engine.run import Run, RunOptions
from console.headless import execute_headless
from console.model.loader import load_workflow
from console.ui.app import BatonApp, LaunchOptions
from console.ui.screens.run_screen import RunScreen
from console.ui.system import SystemStats, fixed_sampler
from console.ui.widgets.log_pane import LogPane
from console.ui.widgets.log_view import LogView

PRODUCERS = {
    # one write per line, like a chatty program with line-buffered output
    "chatty": ("awk 'BEGIN { for (i = 1; i <= %d; i++) { "
               "print \"flood line \" i \" level=info msg=request served in 12ms\"; "
               "fflush() } }'"),
    # one big stream, as fast as the pipe goes
    "bulk": "seq 1 %d",
}


def write_workflow(folder: Path, lines: int, producer: str = "chatty") -> Path:
    path = folder / "flood.toml"
    command = PRODUCERS[producer] % lines
    text = tomli_w.dumps({"workflow": {"name": "flood"}, "steps": {"flood": {"run": command}}})
    path.write_text(text, encoding="utf-8")
    return path


async def headless(path: Path) -> float:
    """The same flood through `baton run --headless` (human printer), output discarded."""
    run = Run(load_workflow(path), RunOptions(run_id="bench", approval="auto"))
    with open(os.devnull, "w") as out, open(os.devnull, "w") as err:
        start = time.perf_counter()
        code = await execute_headless(run, out=out, err=err)
        elapsed = time.perf_counter() - start
    assert code == 0, code
    return elapsed


class PaintProbe:
    """Notes the first repaint of the log view that shows an expected state."""

    def __init__(self) -> None:
        self.expect: tuple[bool, bool] | None = None
        self.painted_at = 0.0
        self.original = LogView.render_line
        probe = self

        def render_line(view: LogView, y: int):  # type: ignore[no-untyped-def]
            if probe.expect is not None and (view.show_time, view.follow) == probe.expect:
                probe.painted_at = time.perf_counter()
                probe.expect = None
            return probe.original(view, y)

        LogView.render_line = render_line  # type: ignore[method-assign]

    def close(self) -> None:
        LogView.render_line = self.original  # type: ignore[method-assign]


async def press_during_the_flood(app: Any, screen: Any, probe: PaintProbe, presses: int,
                                 interval: float, ended: list[float] | None = None
                                 ) -> list[float]:
    """Press ``T`` and ``f`` in turn while the run is running (and ``ended`` is empty);
    each latency is from the key to the first repaint of the log view that shows it."""
    pane = screen.query_one(LogPane)
    keys = ["T", "f"]
    latencies: list[float] = []
    for index in range(presses):
        if ended or screen.run.state is not RunState.RUNNING:
            break
        key = keys[index % 2]
        view = pane.view
        probe.expect = ((not view.show_time, view.follow) if key == "T"
                        else (view.show_time, not view.follow))
        pressed = time.perf_counter()
        # simulate_key posts the same Key event a terminal would; Pilot.press would
        # also wait for the screen to go idle, which a flood postpones to its end
        app.simulate_key(key)
        while probe.expect is not None:
            await asyncio.sleep(0.001)
        latencies.append(probe.painted_at - pressed)
        await asyncio.sleep(interval)
    return latencies


async def console(path: Path, presses: int, config: Path,
                  interval: float = 0.2) -> tuple[list[float], float, int]:
    probe = PaintProbe()
    app = BatonApp(path, LaunchOptions(start=False, run_id="bench"), config_file=config,
                   sampler=fixed_sampler(SystemStats(0, 0, (0, 0, 0))), blink=False)
    latencies: list[float] = []
    async with app.run_test(size=(120, 36)) as pilot:
        while not isinstance(app.screen, RunScreen):
            await asyncio.sleep(0.01)
        screen: RunScreen = app.screen
        ended: list[float] = []
        screen.run.subscribe(lambda e: ended.append(time.perf_counter())
                             if getattr(e, "type", "") == "run" and e.state.finished else None)
        await pilot.pause(0.2)  # the console is up and idle: now start the run with g
        start = time.perf_counter()
        app.simulate_key("g")
        while not screen.session.task_log("flood", "local").total:
            await asyncio.sleep(0.001)
        latencies += await press_during_the_flood(app, screen, probe, presses, interval)
        while not ended:
            await asyncio.sleep(0.005)
        assert screen.run.state is RunState.SUCCEEDED, screen.run.state
        wall = ended[0] - start
        await pilot.press("l", "escape")  # the Pilot still drives the app after the flood
        total = screen.session.task_log("flood", "local").total
        screen.run.close()
        await pilot.pause()
    probe.close()
    return latencies, wall, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument("--producer", choices=sorted(PRODUCERS), default="chatty",
                        help="chatty: one write per line (default); bulk: seq")
    parser.add_argument("--interval", type=float, default=0.2,
                        help="seconds between keypresses (default 0.2: a fast operator)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = write_workflow(folder, args.lines, args.producer)
        base = asyncio.run(headless(path))
        latencies, wall, total = asyncio.run(console(path, args.presses, folder / "c.toml",
                                                    args.interval))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if not latencies:
        print("no keypress was measured: the run ended first (use more --lines)")
        return 1
    median = statistics.median(latencies) * 1000
    worst = max(latencies) * 1000
    checks = {
        f"median keypress-to-screen {median:.1f} ms (< 100)": median < 100,
        f"worst keypress-to-screen {worst:.1f} ms (< 500)": worst < 500,
        f"peak RSS {rss_mb:.0f} MB (<= 300)": rss_mb <= 300,
        f"console run {wall:.2f} s vs headless {base:.2f} s (<= 2x)": wall <= 2 * base,
        f"lines received {total:,} (= {args.lines:,})": total == args.lines,
    }
    print(f"console flood ({args.producer}): {args.lines:,} lines, "
          f"{len(latencies)} keypresses "
          f"(latencies ms: {', '.join(f'{x * 1000:.0f}' for x in latencies[:12])}"
          f"{' …' if len(latencies) > 12 else ''})")
    for text, ok in checks.items():
        print(f"  {'ok  ' if ok else 'MISS'} {text}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
