"""Attach to a live run (issue 15): time to the first full frame, and event latency.

1. A runner owns a 1,000-task run (a gate holds 999 steps); ``AttachApp`` (the console of
   ``baton attach``) is started under Textual's test driver and timed until its run screen
   has drawn every task (imports excluded). Target < 1 s.
2. A runner floods N lines (default 1,000,000) from one step while a client follows the
   socket; each log event's latency is its receipt time minus the runner's event time.
   Targets: median < 20 ms, worst < 100 ms.
3. The runner's overhead on bench/console_flood.py's workload (its "chatty" producer,
   default 1,000,000 lines, keys pressed every 0.2 s as there): the flood run by a runner
   with the console of ``baton attach`` on it, against today's in-process console (with a
   history, as ``baton run FILE`` records one), each timed as console_flood times it: from
   the operator's start (``g`` in-process; the approval of the held step through the
   attached console) to the console seeing the run end, every line received. Target <= 1.2x.

    python bench/attach.py [--lines N] [--tasks N] [--overhead-lines N] [--only overhead]

Exit code 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import baton_env
from console.runner.client import SocketClient, connect
from console.runner.daemon import spawn


def fleet(tasks: int) -> str:
    out = ['[workflow]\nname = "attach bench"\n\n[steps.gate]\nrun = "true"\nconfirm = true\n']
    for i in range(1, tasks):
        out.append(f'[steps.s{i:04d}]\nneeds = ["gate"]\nrun = "true"\n')
    return "\n".join(out)


FLOOD = '[workflow]\nname = "attach flood"\n\n[steps.flood]\nrun = "seq 1 %d"\n'


from console.runner.attach_app import AttachApp, AttachedRunScreen  # noqa: E402
from console.ui.widgets.dag_tree import DagTree  # noqa: E402


async def first_frame(socket: Path, tasks: int) -> float:
    """From AttachApp's start (modules already imported, as the in-process console's
    benchmarks measure) to a run screen holding every task, drawn."""
    start = time.perf_counter()
    app = AttachApp(socket)
    async with app.run_test(size=(160, 50)) as pilot:
        while True:
            screen = app.screen
            if isinstance(screen, AttachedRunScreen) and screen.is_mounted:
                tree = screen.query_one(DagTree)
                if tree.is_mounted and screen.run is not None and len(screen.run.tasks) == tasks:
                    await pilot.pause()
                    break
            await asyncio.sleep(0.005)
        took = time.perf_counter() - start
        assert screen.run is not None
        screen.run.detach()
        app.exit()
    return took


async def in_process_frame(path: Path, tasks: int) -> float:
    """The same for today's in-process console (read-only: it draws, runs nothing)."""
    from console.ui.app import BatonApp, LaunchOptions
    from console.ui.screens.run_screen import RunScreen

    start = time.perf_counter()
    app = BatonApp(path, LaunchOptions(read_only=True))
    async with app.run_test(size=(160, 50)) as pilot:
        while True:
            screen = app.screen
            if isinstance(screen, RunScreen) and screen.is_mounted:
                tree = screen.query_one(DagTree)
                if tree.is_mounted and len(screen.run.tasks) == tasks:
                    await pilot.pause()
                    break
            await asyncio.sleep(0.005)
        took = time.perf_counter() - start
        app.exit()
    return took


async def latency(client: SocketClient) -> list[float]:
    out: list[float] = []
    async for message in client.events():
        if message.get("type") == "log":
            count = (message["text"].count("\n") + 1 if "text" in message
                     else len(message["lines"]))
            out.extend([time.time() - message["time"]] * count)
        elif message.get("type") == "task" and message["state"] == "succeeded":
            break
    await client.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--overhead-lines", type=int, default=1_000_000,
                        help="lines of the console_flood workload (part 3)")
    parser.add_argument("--presses", type=int, default=40, help="part 3: keys pressed")
    parser.add_argument("--only", choices=("frame", "latency", "overhead"),
                        help="run one part only")
    args = parser.parse_args()
    os.environ.update(baton_env())
    ok = True
    parts = [args.only] if args.only else ["frame", "latency", "overhead"]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        os.environ["BATON_HOME"] = str(home)
        if "frame" in parts:
            ok &= frame_part(Path(tmp), home, args.tasks)
        if "latency" in parts:
            ok &= latency_part(Path(tmp), home, args.lines)
        if "overhead" in parts:
            ok &= overhead_part(Path(tmp), args.overhead_lines, args.presses)
    return 0 if ok else 1


def frame_part(tmp: Path, home: Path, tasks: int) -> bool:
    wf = tmp / "fleet.toml"
    wf.write_text(fleet(tasks))
    local = asyncio.run(in_process_frame(wf, tasks))  # also warms Textual up
    runner = spawn([str(wf)], home)
    try:
        took = asyncio.run(first_frame(runner.socket, tasks))
    finally:
        os.kill(runner.pid, signal.SIGTERM)
    print(f"attach to first full frame, {tasks} tasks: {took * 1000:.0f} ms "
          f"(target < 1000 ms); the in-process console on the same file: "
          f"{local * 1000:.0f} ms")
    return took < 1.0


def latency_part(tmp: Path, home: Path, lines: int) -> bool:
    wf = tmp / "flood.toml"
    wf.write_text(FLOOD % lines)
    start = time.perf_counter()
    runner = spawn([str(wf), "--step"], home)  # held until the client follows
    try:
        lat = asyncio.run(_flood(runner.socket))
    finally:
        os.kill(runner.pid, signal.SIGTERM)
    owned = time.perf_counter() - start
    alone = headless_wall(wf, home)
    print(f"flood of {lines} lines: runner + attached client {owned:.2f} s, "
          f"headless alone {alone:.2f} s ({owned / alone:.2f}x)")
    med, worst = statistics.median(lat) * 1000, max(lat) * 1000
    print(f"event latency runner -> client over {len(lat)} lines: median {med:.1f} ms "
          f"(target < 20), worst {worst:.1f} ms (target < 100)")
    return med < 20 and worst < 100


def overhead_part(tmp: Path, lines: int, presses: int) -> bool:
    """Part 3: console_flood's workload in the in-process console and through a runner."""
    from bench.attach_flood import attached_flood, in_process_flood
    from bench.console_flood import write_workflow

    folder = tmp / "overhead"
    folder.mkdir()
    path = write_workflow(folder, lines)
    local = asyncio.run(in_process_flood(path, folder / "home-local", presses))
    home = folder / "home-runner"
    runner = spawn([str(path), "--step"], home)  # held: the console's approval starts it
    try:
        owned = asyncio.run(attached_flood(runner.socket, presses, runner.pid))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(runner.pid, signal.SIGTERM)
    ratio = owned.wall / local.wall
    for name, got in (("in-process console", local), ("runner + attached console", owned)):
        print(f"console_flood workload, {lines:,} lines, {name}: {got.wall:.2f} s, "
              f"{got.total:,} lines shown, keypress median {got.median_ms:.0f} ms, "
              f"worst {got.worst_ms:.0f} ms")
    per = 1e6 / max(lines, 1)
    print(f"  CPU per million lines over the run (the producer's excluded): in-process "
          f"console {local.cpu * per:.2f} s; runner {owned.runner_cpu * per:.2f} s + "
          f"attached console {owned.cpu * per:.2f} s")
    met = ratio <= 1.2 and owned.total == lines == local.total
    print(f"  {'ok  ' if met else 'MISS'} runner overhead {owned.wall:.2f} s / "
          f"{local.wall:.2f} s = {ratio:.2f}x (target <= 1.2x)")
    return met


def headless_wall(flow: Path, home: Path) -> float:
    """The same flood run by `baton run --headless` (history, no console): wall time."""
    import subprocess

    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "console", "run", str(flow), "--headless", "--yes"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                   env={**os.environ, "BATON_HOME": str(home)})
    return time.perf_counter() - start


async def _flood(socket: Path) -> list[float]:
    from console.runner.protocol import Action

    client = await connect(socket, log_bytes=True)  # as the console connects
    follower = asyncio.create_task(latency(client))
    assert (await client.act(Action("approve", "flood"))).ok
    return await follower


if __name__ == "__main__":
    sys.exit(main())
