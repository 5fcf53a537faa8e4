"""Scheduler overhead: a 1,000-step layered DAG of `true`, baton against `make -j16`.

50 layers x 20 steps; every step needs the whole previous layer; concurrency 16. The
same graph is written as a workflow TOML and as a Makefile. Baton is timed in-process
(``Run.execute`` with no printer: the engine and executor alone) and as the
`baton run --headless` command (start-up, loading and printing included), each with the
run history store off and on ($BATON_HOME in a temporary folder).

    python bench/local_dag.py [--layers 50] [--width 20] [--repeat 7] [--spawn-ab]

``--spawn-ab`` times only the in-process run (no store) two ways, each paired with make as
above: the executor's ``subprocess.Popen`` (:mod:`console.executors.spawn`) and
``os.posix_spawn``. (Issue 12 measured a third, CPython's private
``_posixsubprocess.fork_exec`` called directly, at commit 64080cb; it was dropped: see
docs/architecture.md.)

Target: baton / make <= 3x. Always exits 0 unless a run fails; read the table. Every
baton run is timed right after a make run and the verdict is the median ratio within
those pairs: on a shared machine single timings swing by a third (make alone ran
0.29-0.50 s here) and slow spells last seconds, so two separate best times can come from
different spells. The ratio of the best times is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench._common import baton_env  # noqa: E402

CONCURRENCY = 16
TARGET_RATIO = 3.0


def name(layer: int, index: int) -> str:
    return f"s{layer:02d}_{index:02d}"


def workflow_toml(layers: int, width: int) -> str:
    out = [f'[workflow]\nname = "dag {layers}x{width}"\nconcurrency = {CONCURRENCY}\n']
    for layer in range(layers):
        needs = [name(layer - 1, i) for i in range(width)] if layer else []
        for index in range(width):
            out.append(f"[steps.{name(layer, index)}]")
            out.append('run = "true"')
            if needs:
                out.append("needs = [" + ", ".join(f'"{n}"' for n in needs) + "]")
            out.append("")
    return "\n".join(out)


def makefile(layers: int, width: int) -> str:
    every = [name(layer, i) for layer in range(layers) for i in range(width)]
    out = [".PHONY: all " + " ".join(every), "all: " + " ".join(name(layers - 1, i)
                                                               for i in range(width))]
    for layer in range(layers):
        needs = " ".join(name(layer - 1, i) for i in range(width)) if layer else ""
        for index in range(width):
            out.append(f"{name(layer, index)}: {needs}".rstrip())
            out.append("\t@true")
    return "\n".join(out) + "\n"


def paired_rounds(repeat: int, make: Callable[[], None] | None,
                  runners: dict[str, Callable[[], None]]) -> dict[str, list[tuple[float, float]]]:
    """Per runner, ``repeat`` pairs (its time, make's time just before it).

    Each baton row is timed right after a make run, row after row, round after round. On
    a shared machine single timings swing by a third and slow spells last seconds, so the
    ratio within a pair is far steadier than the ratio of two separate bests."""
    pairs: dict[str, list[tuple[float, float]]] = {label: [] for label in runners}
    for _ in range(repeat):
        for label, fn in runners.items():
            before = _timed(make) if make is not None else float("nan")
            pairs[label].append((_timed(fn), before))
    return pairs


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_make(folder: Path) -> None:
    subprocess.run(["make", "-s", f"-j{CONCURRENCY}", "-f", str(folder / "Makefile"), "all"],
                   check=True, cwd=folder, stdout=subprocess.DEVNULL)


def run_command(path: Path, *extra: str) -> None:
    env = baton_env()
    result = subprocess.run([sys.executable, "-m", "console.cli", "run", str(path), "--headless",
                             *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        sys.exit(f"baton run failed ({result.returncode}): {result.stderr.decode()[-500:]}")


def run_in_process(workflow, store=None) -> None:  # type: ignore[no-untyped-def]
    """Only ``Run.execute`` (recorded in ``store`` when given): loading is timed separately."""
    from console.engine.events import RunState
    from console.engine.run import Run, RunOptions

    async def go() -> RunState:
        run = Run(workflow, RunOptions(approval="auto"))
        recorder = store.record(run) if store is not None else None
        try:
            return await run.execute()
        finally:
            if recorder is not None:
                recorder.close()

    state = asyncio.run(go())
    if state is not RunState.SUCCEEDED:
        sys.exit(f"in-process run ended {state}")


def posix_spawn(argv: list[str], *, stdin: int, stdout: int, stderr: int,
                env: dict[str, str] | None, cwd: str | None,
                keep_fd: int | None) -> subprocess.Popen[bytes] | _Spawned:
    """The executor's spawn through ``os.posix_spawn`` (setsid, dup2 file actions; no cwd
    support before Python 3.13, so Popen then). Measured only: it inherits every fd the
    parent left inheritable, where Popen closes them."""
    from console.executors.spawn import spawn

    if cwd is not None:
        return spawn(argv, stdin=stdin, stdout=stdout, stderr=stderr, env=env, cwd=cwd,
                     keep_fd=keep_fd)
    actions = [(os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, stdout, 1),
               (os.POSIX_SPAWN_DUP2, stderr, 2)]
    if keep_fd is not None:
        actions.append((os.POSIX_SPAWN_DUP2, keep_fd, keep_fd))  # clears its close-on-exec
    pid = os.posix_spawn(argv[0], argv, os.environ if env is None else env,
                         file_actions=actions, setsid=True)
    return _Spawned(pid)


class _Spawned:
    """What the executor needs of a started process: ``pid``, a settable ``returncode``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None


def spawn_runners(workflow) -> dict[str, Callable[[], None]]:
    """The in-process run with each way of starting a process (see the module docstring)."""
    import console.executors.local as local

    def with_spawn(how: str) -> Callable[[], None]:
        def go() -> None:
            saved = local.spawn
            if how == "posix_spawn":
                local.spawn = posix_spawn  # type: ignore[assignment]
            try:
                run_in_process(workflow)
            finally:
                local.spawn = saved
        return go

    return {f"in-process, no store, {how}": with_spawn(how) for how in ("Popen", "posix_spawn")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--width", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--spawn-ab", action="store_true",
                        help="compare the ways of starting a process (in-process, no store)")
    args = parser.parse_args()
    steps = args.layers * args.width
    with tempfile.TemporaryDirectory(prefix="baton-dag-") as tmp:
        folder = Path(tmp)
        path = folder / "dag.toml"
        path.write_text(workflow_toml(args.layers, args.width))
        (folder / "Makefile").write_text(makefile(args.layers, args.width))
        from console.model.loader import load_workflow

        start = time.perf_counter()
        workflow = load_workflow(path)
        load = time.perf_counter() - start
        from console.store import Store

        os.environ["BATON_HOME"] = str(folder / "home")  # history of these runs: thrown away
        with Store.open() as store:
            runners = spawn_runners(workflow) if args.spawn_ab else {
                "baton in-process, no store": lambda: run_in_process(workflow),
                "baton in-process, store on": lambda: run_in_process(workflow, store),
                "baton run --headless --no-history": lambda: run_command(path, "--no-history"),
                "baton run --headless (store on)": lambda: run_command(path),
            }
            make = (lambda: run_make(folder)) if shutil.which("make") else None
            pairs = paired_rounds(args.repeat, make, runners)

    print(f"local DAG: {args.layers} layers x {args.width} steps = {steps} steps of `true`, "
          f"each needs the whole previous layer, concurrency {CONCURRENCY}, {args.repeat} "
          "rounds")
    print(f"(loading the workflow file takes {load:.3f}s; it is in the command's time only)")
    print("each baton run is paired with a make run just before it; 'x make' is the median "
          "ratio\nwithin pairs, 'best' the ratio of the best times (of the row, of its make runs)")
    print(f"{'':34}{'best s':>8}{'steps/s':>9}{'best':>7}{'x make':>8}  target <= "
          f"{TARGET_RATIO:g}x")
    if make is None:
        print(f"{'make -j16':34}{'make not installed':>24}")
    else:
        best_make = min(m for row in pairs.values() for _, m in row)
        print(f"{'make -j16':34}{best_make:>8.3f}{steps / best_make:>9,.0f}")
    for label, row in pairs.items():
        best = min(t for t, _ in row)
        line = f"{label:34}{best:>8.3f}{steps / best:>9,.0f}"
        if make is not None:
            ratio = statistics.median(t / m for t, m in row)
            verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
            own_make = min(m for _, m in row)  # as many make runs as its own: a fair best
            line += f"{best / own_make:>6.2f}x{ratio:>7.2f}x  {verdict}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
