"""How many SSH host setups run at once: a limit that adapts to how long they take.

A host's setup is its handshake, or a new remote shell up to its prelude having run
(:mod:`console.executors.ssh_connect`). On loopback or a busy jump host, setups share
CPU: a herd of them costs every one more and the run gets slower (bench/ssh_phases.py);
on a real fleet behind a slow network they mostly wait on round trips, and a fixed small
bound only serialises that waiting (1,000 hosts x 1.5 s setups / 32 at a time = 47 s).

:class:`SetupLimit` is additive increase, multiplicative decrease on latency (as TCP
Vegas and Netflix's concurrency limiters do): it starts at ``initial``, remembers the
fastest setup seen (the baseline), and after each setup that ended

- within ``tolerance`` x the baseline while setups were queued: one more slot (up to
  ``ceiling``): setups are not slowing each other down, let more in;
- slower than that: the limit x ``backoff`` (at least ``least``), at most once per
  window of ``limit`` setups: they are queueing for something shared, let fewer in.

Failed setups (refused, timed out) do not count; a shell whose start outlasted the
connect timeout gives its slot back then and counts as slow. When no setup is in flight
or waiting, the baseline is forgotten: the next burst (perhaps other hosts) learns its
own. One limit per event loop.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

__all__ = ["SetupLimit", "setup_limit"]


class SetupLimit:
    """At most ``limit`` setups in flight; the limit moves between ``least`` and
    ``ceiling`` with the setups' durations (see the module)."""

    def __init__(self, ceiling: int, initial: int, *, least: int = 4,
                 tolerance: float = 2.0, backoff: float = 0.75,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = max(1, ceiling)
        self.least = max(1, min(least, self.ceiling))
        self.initial = initial
        self.limit = float(max(self.least, min(initial, self.ceiling)))
        self.tolerance = tolerance
        self.backoff = backoff
        self.baseline: float | None = None
        self.in_flight = 0
        self.peak = 0
        """The most setups ever in flight at once (for tests and benches)."""
        self._clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._ended = 0
        self._calm_until = 0
        """No further decrease until this many setups have ended (one per window)."""

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for a setup; its duration adapts the limit when it succeeds."""
        await self._acquire()
        queued = bool(self._waiters)
        started = self._clock()
        ok = False
        try:
            yield
            ok = True
        finally:
            self.in_flight -= 1
            if ok:
                self.ended(self._clock() - started, queued or bool(self._waiters))
            if not self.in_flight and not self._waiters:
                self.baseline = None  # idle: the next burst (other hosts?) learns its own
            self._wake()

    def ended(self, duration: float, queued: bool) -> None:
        """A setup took ``duration`` s; ``queued``: others were waiting for a slot."""
        self._ended += 1
        if self.baseline is None or duration < self.baseline:
            self.baseline = duration
        if duration > self.baseline * self.tolerance:
            if self._ended >= self._calm_until:
                self.limit = max(float(self.least), self.limit * self.backoff)
                self._calm_until = self._ended + int(self.limit)
        elif queued:
            self.limit = min(float(self.ceiling), self.limit + 1)

    async def _acquire(self) -> None:
        if self.in_flight < int(self.limit) and not self._waiters:
            self._take()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.in_flight -= 1  # granted as we were cancelled: hand it on
                self._wake()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def _take(self) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)


_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SetupLimit] = (
    weakref.WeakKeyDictionary())


def setup_limit(ceiling: int, initial: int, least: int) -> SetupLimit:
    """This event loop's limit (made with these bounds on first use, or when they
    changed)."""
    loop = asyncio.get_running_loop()
    found = _limits.get(loop)
    if found is None or (found.ceiling, found.initial, found.least) != (
            max(1, ceiling), initial, max(1, min(least, ceiling))):
        found = _limits[loop] = SetupLimit(ceiling, initial, least=least)
    return found
