"""An attached console applies a burst of the runner's events in slices: its keys and
frames get the event loop between them (issue 16: 300 hosts ending at once)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

from console.engine.events import Event, LogEvent
from console.engine.task import TaskState
from console.model.loader import load_workflow
from console.runner import protocol as p
from console.runner.client import connect
from console.runner.daemon import spawn
from console.runner.mirror import RemoteRun
from tests.conftest import baton

STEPS = 600
BURST = """
[workflow]
name = "burst"
concurrency = 600

[steps.gate]
run = "true"
confirm = true
""" + "".join(f'\n[steps.s{i:03d}]\nneeds = ["gate"]\nrun = "echo {i} done"\n'
              for i in range(STEPS))
"""600 steps start and end at once when the gate is approved, as the hosts of a fleet do."""


async def test_a_burst_of_queued_events_is_applied_in_slices(tmp_path: Path,
                                                              baton_home: Path) -> None:
    path = tmp_path / "wf.toml"
    path.write_text(BURST)
    spawned = spawn([str(path)], baton_home)
    try:
        client = await connect(spawned.socket)
        mirror = RemoteRun(load_workflow(path), client, spawned.socket)
        assert (await client.act(p.Action("approve", "gate"))).ok
        # the whole burst reaches this client's queue before the mirror reads any of it
        deadline = time.monotonic() + 60  # 600 processes on a loaded machine
        while True:
            shown = json.loads(baton("show", spawned.run_id, "--json").stdout)
            states = Counter(t["state"] for t in shown["tasks"])
            if states["succeeded"] == len(shown["tasks"]):
                break
            assert time.monotonic() < deadline, states
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # the reader thread hands over what it read

        applied = 0
        apply = mirror._apply

        def counting(message: dict) -> None:  # type: ignore[type-arg]
            nonlocal applied
            applied += 1
            apply(message)

        mirror._apply = counting  # type: ignore[method-assign]
        lines: list[str] = []

        def on_event(event: Event) -> None:
            if isinstance(event, LogEvent):
                lines.append(event.text)

        mirror.subscribe(on_event)
        turns: list[int] = []  # how many events were applied at each turn of this task

        async def other_work() -> None:
            while not all(t.state is TaskState.SUCCEEDED for t in mirror.tasks.values()):
                turns.append(applied)
                await asyncio.sleep(0)

        executing = asyncio.create_task(mirror.execute())
        await asyncio.wait_for(other_work(), 20)
        total = applied
        mirror.detach()
        await asyncio.wait_for(executing, 10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(spawned.pid, signal.SIGKILL)
    assert total >= 2 * STEPS, total  # a burst (each step starts and ends), not a trickle
    mid_burst = [n for n in turns if 0 < n < total]
    assert mid_burst, (turns[:5], total)  # other work ran while the burst was applied
    assert sorted(lines) == sorted(f"{i} done" for i in range(STEPS))  # every event
