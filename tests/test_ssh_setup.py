"""Issue 16: the adaptive limit on SSH setups in flight (console/executors/ssh_setup.py).

On 300 loopback hosts a fixed limit of 8-32 setups at once ran 5 steps within
0.94-1.01x of OpenSSH's floor, 64 at once 2.6x (bench/ssh_fanout.py): setups sharing a CPU
fall off a cliff. Far hosts sharing nothing want more at once. The limit backs off when
setups slow down and grows while they do not.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from console.engine.events import TaskState
from console.executors.ssh_setup import SetupLimit
from tests.sshd import Fleet
from tests.test_ssh import run_workflow, workflow


def test_limit_grows_to_the_ceiling_while_setups_do_not_slow_down() -> None:
    limit = SetupLimit(64, 4, least=2)
    for _ in range(100):
        limit.ended(1.0, queued=True)
    assert limit.limit == 64


def test_limit_does_not_grow_when_nobody_waits() -> None:
    limit = SetupLimit(64, 4, least=2)
    for _ in range(10):
        limit.ended(1.0, queued=False)
    assert limit.limit == 4


def test_limit_backs_off_once_per_window_when_setups_slow_down() -> None:
    limit = SetupLimit(64, 32, least=8)
    limit.ended(1.0, queued=True)  # the baseline
    assert limit.limit == 33
    limit.ended(2.5, queued=True)  # slower than 2x the baseline: back off
    assert limit.limit == pytest.approx(33 * 0.75)
    after_cut = limit.limit
    for _ in range(int(after_cut) - 1):  # the rest of that window: no further cut
        limit.ended(3.0, queued=True)
    assert limit.limit == after_cut
    for _ in range(200):  # a herd stays slow: down to the floor, never below
        limit.ended(3.0, queued=True)
    assert limit.limit == 8


def test_limit_stays_within_its_bounds() -> None:
    assert SetupLimit(1, 16, least=8).limit == 1  # the ceiling wins over everything
    assert SetupLimit(64, 2, least=8).limit == 8


async def test_slots_never_exceed_the_limit_and_cancelled_waiters_leak_none() -> None:
    limit = SetupLimit(3, 3, least=3)
    running = peak = 0
    release = asyncio.Event()

    async def setup() -> None:
        nonlocal running, peak
        async with limit.slot():
            running += 1
            peak = max(peak, running)
            try:
                await release.wait()
            finally:
                running -= 1

    tasks = [asyncio.ensure_future(setup()) for _ in range(8)]
    await asyncio.sleep(0.01)
    assert running == 3 and limit.in_flight == 3
    tasks[5].cancel()  # a waiter goes away
    tasks[0].cancel()  # a holder goes away
    await asyncio.sleep(0.01)
    assert limit.in_flight == 3
    release.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert peak == limit.peak == 3 and limit.in_flight == 0 and not limit._waiters


def test_a_herd_that_slows_down_with_its_size_is_held_back() -> None:
    # setups sharing one CPU: a round of k setups at once takes 0.1 s x k each
    limit = SetupLimit(256, 8, least=4)
    hosts, started, rounds = 1000, 0, []
    while started < hosts:
        size = min(int(limit.limit), hosts - started)
        started += size
        rounds.append(size)
        for _ in range(size):
            limit.ended(0.1 * size, queued=started < hosts)
    assert max(rounds) <= 40, rounds  # without the back-off: 8, 16, 32, ... 256
    assert min(rounds[1:-1]) >= 8, rounds  # and it keeps going, above its start


async def test_far_hosts_get_more_setups_at_once(fleet: Fleet,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # 12 real hosts, each handshake 0.3 s further away (a slow network, no CPU): the
    # limit, started at 2, lets more in; a fixed limit of 2 would run 6 rounds
    from console.executors import ssh_connect

    monkeypatch.setattr(ssh_connect, "MAX_PARALLEL_SETUP", 64)
    monkeypatch.setattr(ssh_connect, "INITIAL_PARALLEL_SETUP", 2)
    monkeypatch.setattr(ssh_connect, "LEAST_PARALLEL_SETUP", 2)
    open_connection = ssh_connect.Connector._open
    in_flight = peak = 0

    async def far_open(self: Any, tunnel: Any, settings: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.3)
            return await open_connection(self, tunnel, settings)
        finally:
            in_flight -= 1

    monkeypatch.setattr(ssh_connect.Connector, "_open", far_open)
    from console.model.workflow import Step

    steps = {"s": Step("s", "s", run="true", on=("web",))}
    started = time.monotonic()
    run = await run_workflow(workflow(fleet, fleet.servers, steps))
    assert all(t.state is TaskState.SUCCEEDED for t in run.tasks_of("s"))
    assert peak > 2, "the limit never grew past its start"
    assert time.monotonic() - started < 6 * 0.3 + 10


@pytest.fixture
def fleet(sshd_fleet: Fleet, tmp_path: Path) -> Fleet:
    return sshd_fleet
