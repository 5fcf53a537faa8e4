"""A scripted executor for deterministic engine and console tests.

The script of a step is a tiny language, one command per line:
``echo TEXT`` (stdout), ``err TEXT`` (stderr), ``sleep SECONDS``, ``exit CODE``,
``hold NAME`` (wait until the test calls ``release(NAME)``), ``fail_until NAME N`` (exit 1
on the first N-1 runs of any script counting NAME, then go on). Anything else succeeds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from console.executors.base import CommandRequest, ExitStatus, OutputCallback
from console.model.workflow import Host


@dataclass
class Record:
    step: str
    host: str
    script: str
    env: dict[str, str]
    cwd: str | None
    start_seq: int
    end_seq: int | None = None
    executor: str = ""
    """The host of the executor that ran it (a delegated task runs on another host)."""


@dataclass
class ScriptedWorld:
    """Shared state of every ScriptedExecutor of a run: what started, what overlapped."""

    records: list[Record] = field(default_factory=list)
    running: int = 0
    max_running: int = 0
    running_by_step: dict[str, int] = field(default_factory=dict)
    max_by_step: dict[str, int] = field(default_factory=dict)
    holds: dict[str, asyncio.Event] = field(default_factory=dict)
    seq: int = 0
    terminated: list[str] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    def release(self, name: str) -> None:
        self.holds.setdefault(name, asyncio.Event()).set()

    def factory(self) -> Callable[[Host], ScriptedExecutor]:
        return lambda host: ScriptedExecutor(self, host)

    def starts(self, step: str) -> list[Record]:
        return [r for r in self.records if r.step == step]

    def order(self) -> list[str]:
        return [r.step for r in sorted(self.records, key=lambda r: r.start_seq)]

    def tick(self) -> int:
        self.seq += 1
        return self.seq


class ScriptedExecution:
    def __init__(self, world: ScriptedWorld, record: Record, on_output: OutputCallback) -> None:
        self.world = world
        self.record = record
        self.on_output = on_output
        self._task = asyncio.get_running_loop().create_task(self._play())

    async def _play(self) -> ExitStatus:
        world, record = self.world, self.record
        world.running += 1
        world.max_running = max(world.max_running, world.running)
        by_step = world.running_by_step
        by_step[record.step] = by_step.get(record.step, 0) + 1
        world.max_by_step[record.step] = max(world.max_by_step.get(record.step, 0),
                                             by_step[record.step])
        try:
            await asyncio.sleep(0)
            for line in record.script.splitlines():
                word, _, rest = line.strip().partition(" ")
                if word == "echo":
                    self.on_output("stdout", rest)
                elif word == "err":
                    self.on_output("stderr", rest)
                elif word == "sleep":
                    await asyncio.sleep(float(rest))
                elif word == "hold":
                    await world.holds.setdefault(rest, asyncio.Event()).wait()
                elif word == "exit":
                    return ExitStatus(int(rest))
                elif word == "fail_until":
                    name, count = rest.split()
                    world.counters[name] = world.counters.get(name, 0) + 1
                    if world.counters[name] < int(count):
                        return ExitStatus(1)
            return ExitStatus(0)
        except asyncio.CancelledError:
            return ExitStatus(None, signal=15)
        finally:
            world.running -= 1
            by_step[record.step] -= 1
            record.end_seq = world.tick()

    async def wait(self) -> ExitStatus:
        return await asyncio.shield(self._task)

    async def terminate(self, grace: float = 0) -> None:
        self.world.terminated.append(self.record.step)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class ScriptedExecutor:
    def __init__(self, world: ScriptedWorld, host: Host) -> None:
        self.world = world
        self.host = host

    async def start(self, request: CommandRequest, on_output: OutputCallback) -> ScriptedExecution:
        record = Record(request.step, request.host.name, request.script, dict(request.env),
                        request.cwd, self.world.tick(), executor=self.host.name)
        self.world.records.append(record)
        return ScriptedExecution(self.world, record, on_output)

    async def close(self) -> None:
        return None


def check_need_counters(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    """Make every ``Scheduler.deps_status`` answer also walk all needs and compare the two.

    The counters behind the O(1) answer are kept up to date incrementally; this proves
    them against the plain walk in whatever scenario a test drives. Returns a list whose
    length is the number of answers the counters gave (so a test can see it was used).
    """
    from console.engine.scheduler import Scheduler

    fast_path_used: list[int] = []
    original = Scheduler.deps_status

    def checked(self, task):  # type: ignore[no-untyped-def]
        answer = original(self, task)
        graph = self.run.graph
        saved = graph.needs_bad[task.step]
        graph.needs_bad[task.step] = 1  # only a walk can name a bad need: forces the walk
        try:
            walked = original(self, task)
        finally:
            graph.needs_bad[task.step] = saved
        if answer[1] is None and walked != answer:
            raise AssertionError(f"need counters say {answer}, the walk says {walked} "
                                 f"for {task.key}")
        if answer[1] is None and graph.rollout_of.get(task.step) is None:
            fast_path_used.append(1)
        return answer

    monkeypatch.setattr(Scheduler, "deps_status", checked)
    return fast_path_used
