"""Helpers for the console's history tests and snapshots: a small workflow, the console
recording into a given store, and runs recorded (or left interrupted) with the scripted
executor and a frozen clock."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable
from pathlib import Path

from console.engine.events import TaskState
from console.engine.run import Run, RunOptions
from console.model.loader import load_workflow
from console.store import Store
from console.ui.app import BatonApp, LaunchOptions
from console.ui.system import SystemStats, fixed_sampler
from tests.fakes import ScriptedWorld
from tests.ui_helpers import FrozenClock, until

S = TaskState

FLOW = textwrap.dedent('''
    [workflow]
    name = "Release"
    description = "Build, ship, check."

    [steps.build]
    run = """echo compiling
    err warning: cache cold
    echo built"""

    [steps.ship]
    needs = ["build"]
    confirm = "Ship it?"
    run = "hold ship"

    [steps.check]
    needs = ["ship"]
    run = "echo all good"
''').lstrip()



def flow_file(tmp_path: Path, name: str = "release.toml", text: str = FLOW) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path.resolve()


def history_app(path: Path, store: Store, *, clock: Callable[[], float] | None = None,
                world: ScriptedWorld | None = None, **launch: object
                ) -> tuple[BatonApp, ScriptedWorld]:
    """The console on ``path`` recording into ``store`` (deterministic like ui_helpers)."""
    world = world or ScriptedWorld()
    options = LaunchOptions(run_id="r7k2m9x1", user="alice")
    for key, value in launch.items():
        setattr(options, key, value)
    app = BatonApp(path, options, executor_for=world.factory(), clock=clock or FrozenClock(),
                   sampler=fixed_sampler(SystemStats(12.0, 43.0, (0.52, 0.41, 0.30))),
                   config_file=path.parent / "config.toml", blink=False, store=store)
    return app, world


async def record_run(store: Store, path: Path, run_id: str, *, started: float,
                     stop_at: str | None = None) -> Run:
    """Run ``path`` headless-style into ``store`` with the scripted executor.

    ``stop_at``: leave the run as a killed console would: the recorder lets go while that
    step runs (its row says running, its lock is free), nothing after it is recorded."""
    world = ScriptedWorld()
    if stop_at is None:
        world.release("ship")
    clock = FrozenClock(started)
    run = Run(load_workflow(path), RunOptions(run_id=run_id, user="bob", approval="auto"),
              executor_for=world.factory(), clock=clock)
    recorder = store.record(run)
    execution = asyncio.ensure_future(run.execute())
    if stop_at is None:
        await execution
        recorder.close()
        return run
    await until(lambda: run.tasks[(stop_at, "local")].state is S.RUNNING)
    clock.now = started + 7
    recorder.close()  # the console "dies": nothing more reaches the store
    run.close()
    await execution
    return run


RELOADED = textwrap.dedent('''
    [workflow]
    name = "Reloaded"

    [steps.build]
    run = "echo built"

    [steps.ship]
    needs = ["build"]
    confirm = "Ship it?"
    run = "echo shipping VERSION"
''').lstrip()


async def record_reloaded(store: Store, path: Path, run_id: str, versions: int = 4) -> Run:
    """A run of RELOADED (``ship`` prints ``shipping v1``) that waits at ship's gate, is
    hot-reloaded to v2 … v``versions`` (no attempt runs with those), then its console dies."""
    from console.model.loader import load_text

    path.write_text(RELOADED.replace("VERSION", "v1"), encoding="utf-8")
    world = ScriptedWorld()
    run = Run(load_workflow(path), RunOptions(run_id=run_id, user="bob"),
              executor_for=world.factory(), clock=FrozenClock(1_732_640_000.0))
    recorder = store.record(run)
    execution = asyncio.ensure_future(run.execute())
    await until(lambda: run.tasks[("ship", "local")].state is S.AWAITING_APPROVAL)
    for n in range(2, versions + 1):
        text = RELOADED.replace("VERSION", f"v{n}")
        path.write_text(text, encoding="utf-8")
        run.reload(load_text(text, path))
    recorder.close()  # the console "dies": nothing more reaches the store
    run.close()
    await execution
    return run
