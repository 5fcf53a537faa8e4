"""Where the time of an SSH fan-out goes: one timeline per connection (issue 16).

    python bench/ssh_phases.py [--hosts 30 100] [--mode raw baton openssh]
                               [--setup-limit N] [--profile FILE]

Starts a farm of ``max(--hosts)`` loopback hosts (tests/sshd.py :class:`Farm`), then for each
host count and mode runs one trivial command on every host at once and records, per
connection, the moments asyncssh logs (debug level 1) plus the bench's own hooks:

- ``queue``: from the start of the run to asyncssh opening the TCP connection (baton:
  the engine launching the task, waiting for a handshake slot, building the options);
- ``tcp``: TCP connect (asyncssh's "Opening SSH connection" to "Connected");
- ``kex``: version exchange and key exchange ("Connected" to "Completed key exchange");
- ``auth``: public-key authentication (to "Auth ... succeeded");
- ``chan``: opening the session channel (to the channel's ``connection_made``);
- ``first``: to the first byte from the remote shell or command;
- ``done``: to the command's end (baton: the task's final state).

Per phase it prints the median, 90th percentile and maximum over the hosts, when the
first, median and last host finished, the client's CPU time, the sshd side's CPU time
(listeners and their reaped children) and the event loop's lag (a 10 ms ticker's
overshoot: how long ready callbacks waited). ``openssh`` times ``ssh host true`` for all
hosts at once under ``xargs -P`` (the floor; no phases). ``--setup-limit K`` pins the
SSH executor's adaptive setup limit at K (baton mode);
``--profile`` writes a cProfile of the last baton run; ``--raw-limit K`` lets raw mode run
only K hosts at a time, from connect to the command's end (is a herd of sessions starting
at once dearer for the server?).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncssh  # noqa: E402
import psutil  # noqa: E402

from console.engine.events import TaskEvent, TaskState  # noqa: E402
from console.engine.run import Run, RunOptions  # noqa: E402
from console.executors import ssh_connect, ssh_shell  # noqa: E402
from console.executors.ssh import ssh_executor_factory  # noqa: E402
from console.model.workflow import Host, Step, Workflow  # noqa: E402
from tests.sshd import Farm, FarmHost  # noqa: E402

PHASES = ("queue", "tcp", "kex", "auth", "chan", "first", "done")
_OPENING = re.compile(r"Opening SSH connection to \W*([0-9a-fA-F.:]+)")
_ADDR = re.compile(r"at \W*([0-9a-fA-F.:]+)")
_CONN = re.compile(r"\[conn=(\d+)\] (.*)")


@dataclass
class Timeline:
    """The moments of one host's connection, in seconds from the run's start."""

    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str, at: float) -> None:
        self.marks.setdefault(name, at)

    def durations(self) -> dict[str, float]:
        out, last = {}, 0.0
        order = ("open", "tcp", "kex", "auth", "chan", "first", "done")
        for phase, mark in zip(PHASES, order, strict=True):
            if mark in self.marks:
                out[phase] = self.marks[mark] - last
                last = self.marks[mark]
        return out


class Recorder(logging.Handler):
    """Turns asyncssh's log lines into timeline marks, keyed by address."""

    def __init__(self, start: float) -> None:
        super().__init__(logging.DEBUG)
        self.start = start
        self.by_addr: dict[str, Timeline] = {}
        self._conn_addr: dict[str, str] = {}

    def line(self, addr: str) -> Timeline:
        return self.by_addr.setdefault(addr, Timeline())

    def emit(self, record: logging.LogRecord) -> None:
        at = time.perf_counter() - self.start
        text = record.getMessage()
        if found := _OPENING.search(text):
            self.line(found[1]).mark("open", at)
            return
        found = _CONN.match(text)
        if not found:
            return
        conn, message = found[1], found[2]
        if message.startswith("Connected to SSH server at"):
            found = _ADDR.search(message)
            if not found:
                return
            addr = found[1].rstrip(":,")
            self._conn_addr[conn] = addr
            self.line(addr).mark("tcp", at)
        elif conn in self._conn_addr:
            line = self.line(self._conn_addr[conn])
            if message == "Completed key exchange":
                line.mark("kex", at)
            elif message.startswith("Auth for user") and message.endswith("succeeded"):
                line.mark("auth", at)


class LoopLag:
    """A 10 ms ticker's overshoot: how long a ready callback waits in this loop."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            self.lags.append(time.perf_counter() - before - 0.01)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


def hosts_of(fleet: Farm, servers: list[FarmHost]) -> dict[str, Host]:
    return {s.address: Host(s.address, s.address, port=s.port, user="root",
                            identity=str(fleet.client_key), known_hosts=str(fleet.known_hosts))
            for s in servers}


async def raw(fleet: Farm, servers: list[FarmHost], rec: Recorder,
              limit: int = 0) -> LoopLag:
    """Plain asyncssh, every host at once (or ``limit`` hosts at a time, from connect to
    the command's end): connect, one session running ``echo x``."""
    gate = asyncio.Semaphore(limit or len(servers))

    class Session(asyncssh.SSHClientSession[bytes]):
        def __init__(self, addr: str) -> None:
            self.addr = addr

        def connection_made(self, chan: Any) -> None:
            rec.line(self.addr).mark("chan", time.perf_counter() - rec.start)

        def data_received(self, data: bytes, datatype: Any) -> None:
            rec.line(self.addr).mark("first", time.perf_counter() - rec.start)

    async def one(server: FarmHost) -> None:
        async with gate, asyncssh.connect(server.address, port=server.port, username="root",
                                    client_keys=[str(fleet.client_key)], config=[],
                                    known_hosts=str(fleet.known_hosts)) as conn:
            chan, _ = await conn.create_session(lambda: Session(server.address),
                                                "echo x", encoding=None)
            await chan.wait_closed()
            rec.line(server.address).mark("done", time.perf_counter() - rec.start)

    with LoopLag() as lag:
        await asyncio.gather(*(one(s) for s in servers))
    return lag


async def baton(fleet: Farm, servers: list[FarmHost], rec: Recorder) -> LoopLag:
    """The engine with the SSH executor, one step ``echo x`` on every host."""
    hosts = hosts_of(fleet, servers)
    wf = Workflow(name="phases", hosts=hosts, concurrency=len(hosts), steps={
        "s": Step("s", "s", run="echo x", on=("all",))})
    run = Run(wf, RunOptions(approval="auto"),
              executor_for=ssh_executor_factory(wf, ssh_config=[]))

    def on_event(event: object) -> None:
        if isinstance(event, TaskEvent) and event.state is TaskState.SUCCEEDED:
            rec.line(event.host).mark("done", time.perf_counter() - rec.start)

    run.subscribe(on_event)
    with LoopLag() as lag:
        state = await run.execute()
    if str(state) != "succeeded":
        raise SystemExit(f"baton run {state}")
    return lag


_CURRENT: list[Recorder] = []
"""The recorder of the run in progress (the session hooks are installed once)."""


def hook_sessions() -> None:
    """Channel open and first byte of baton's persistent shells (by host name = address)."""
    cls = ssh_shell.ControlSession
    made, received = cls.connection_made, cls.data_received

    def connection_made(self: Any, chan: Any) -> None:
        rec = _CURRENT[-1]
        rec.line(self.name).mark("chan", time.perf_counter() - rec.start)
        made(self, chan)

    def data_received(self: Any, data: bytes, datatype: Any) -> None:
        rec = _CURRENT[-1]
        rec.line(self.name).mark("first", time.perf_counter() - rec.start)
        received(self, data, datatype)

    cls.connection_made = connection_made  # type: ignore[method-assign]
    cls.data_received = data_received  # type: ignore[method-assign]


def openssh(fleet: Farm, servers: list[FarmHost]) -> None:
    targets = "".join(f"{s.port} root@{s.address}\n" for s in servers)
    ssh = ("ssh -q -o BatchMode=yes -o StrictHostKeyChecking=yes "
           f"-o UserKnownHostsFile={fleet.known_hosts} -i {fleet.client_key} -p")
    subprocess.run(["xargs", "-P", str(len(servers)), "-L", "1", "sh", "-c",
                    f'{ssh} "$0" "$1" true'], input=targets, text=True, check=True,
                   stderr=subprocess.DEVNULL)


def sshd_cpu(farm: Farm) -> float:
    """CPU seconds of the sshd side: each listener, its live descendants (sessions, the
    users' shells) and everything they reaped."""
    total = 0.0
    for server in farm.listeners:
        if server.process is None:
            continue
        try:
            listener = psutil.Process(server.process.pid)
            family = [listener, *listener.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in family:
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


def quantiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    return (statistics.median(ordered), ordered[int(0.9 * (len(ordered) - 1))], ordered[-1])


def measure(label: str, fleet: Farm, servers: list[FarmHost],
            action: Callable[[Recorder], Awaitable[LoopLag]] | None,
            profile: Path | None = None) -> None:
    time.sleep(1.0)  # the previous round's sessions end and are reaped
    server0 = sshd_cpu(fleet)
    cpu0 = time.process_time()
    start = time.perf_counter()
    rec = Recorder(start)
    lag: LoopLag | None = None
    if action is None:
        openssh(fleet, servers)
    else:
        logger = logging.getLogger("asyncssh")
        logger.addHandler(rec)
        profiler = cProfile.Profile() if profile else None
        try:
            if profiler:
                profiler.enable()
            lag = asyncio.run(action(rec))
        finally:
            if profiler:
                profiler.disable()
                profiler.dump_stats(str(profile))
            logger.removeHandler(rec)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    time.sleep(1.0)
    server_cpu = sshd_cpu(fleet) - server0
    load = os.getloadavg()[0]
    print(f"\n{label}, {len(servers)} hosts: wall {wall:.2f}s, client CPU {cpu:.2f}s, "
          f"sshd side CPU {server_cpu:.2f}s, load {load:.1f}")
    if action is None or lag is None:
        return
    lines = [rec.by_addr.get(s.address, Timeline()) for s in servers]
    per_phase: dict[str, list[float]] = {p: [] for p in PHASES}
    for line in lines:
        for phase, value in line.durations().items():
            per_phase[phase].append(value)
    print(f"  {'phase':6} {'median':>8} {'p90':>8} {'max':>8}  (s; each from the previous mark)")
    for phase in PHASES:
        if per_phase[phase]:
            med, p90, top = quantiles(per_phase[phase])
            print(f"  {phase:6} {med:8.3f} {p90:8.3f} {top:8.3f}")
    ends = sorted(line.marks["done"] for line in lines if "done" in line.marks)
    if ends:
        print(f"  hosts done: first {ends[0]:.2f}s, median {statistics.median(ends):.2f}s, "
              f"last {ends[-1]:.2f}s ({len(ends)}/{len(servers)})")
    kexes = sorted(line.marks["kex"] for line in lines if "kex" in line.marks)
    if kexes:
        print(f"  key exchanges done: first {kexes[0]:.2f}s, median "
              f"{statistics.median(kexes):.2f}s, last {kexes[-1]:.2f}s")
    if lag.lags:
        med, p90, top = quantiles(lag.lags)
        print(f"  loop lag: median {med * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms, "
              f"max {top * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[30, 100])
    parser.add_argument("--mode", nargs="+", default=["openssh", "raw", "baton"],
                        choices=["openssh", "raw", "baton"])
    parser.add_argument("--setup-limit", type=int, default=None)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--raw-limit", type=int, default=0,
                        help="raw mode: hosts in flight at once, connect to end (0: all)")
    args = parser.parse_args()
    if args.setup_limit:  # a fixed limit: the adaptive one pinned
        ssh_connect.MAX_PARALLEL_SETUP = args.setup_limit
        ssh_connect.INITIAL_PARALLEL_SETUP = args.setup_limit
        ssh_connect.LEAST_PARALLEL_SETUP = args.setup_limit
    hook_sessions()
    asyncssh.set_debug_level(1)
    logging.getLogger("asyncssh").setLevel(logging.DEBUG)
    logging.getLogger("asyncssh").propagate = False
    with tempfile.TemporaryDirectory(prefix="baton-phases-") as tmp:
        fleet = Farm(Path(tmp), max(args.hosts))
        try:
            for count in args.hosts:
                servers = fleet.servers[:count]
                for mode in args.mode:
                    if mode == "openssh":
                        measure("OpenSSH ssh under xargs", fleet, servers, None)
                    elif mode == "raw":
                        title = (f"raw asyncssh, {args.raw_limit} hosts at a time"
                                 if args.raw_limit else "raw asyncssh, all at once")
                        measure(title, fleet, servers,
                                lambda rec, s=servers: raw(fleet, s, rec, args.raw_limit))
                    else:
                        limit = (f"setup limit fixed at {args.setup_limit}"
                                 if args.setup_limit else "adaptive setup limit")
                        measure(f"baton ({limit})", fleet, servers,
                                lambda rec, s=servers: _baton_hooked(fleet, s, rec),
                                args.profile)
        finally:
            fleet.stop()


async def _baton_hooked(fleet: Farm, servers: list[FarmHost], rec: Recorder) -> LoopLag:
    _CURRENT.append(rec)
    lag = await baton(fleet, servers, rec)
    limit = ssh_connect._setup_limit()
    print(f"  setup limit: at most {limit.peak} in flight, {limit.limit:.1f} at the end")
    return lag


if __name__ == "__main__":
    main()
