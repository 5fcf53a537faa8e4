"""The local host's load for the header, behind a small interface so tests can fix it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(frozen=True)
class SystemStats:
    cpu_percent: float
    memory_percent: float
    load: tuple[float, float, float]

    def describe(self) -> str:
        one, five, fifteen = self.load
        return (f"cpu {self.cpu_percent:3.0f}%  mem {self.memory_percent:3.0f}%  "
                f"load {one:.2f} {five:.2f} {fifteen:.2f}")


Sampler = Callable[[], SystemStats]


def psutil_sampler() -> Sampler:
    """Sample with psutil; ``cpu_percent(None)`` compares with the previous call, so it
    never sleeps on the UI loop."""
    import psutil

    psutil.cpu_percent(interval=None)

    def sample() -> SystemStats:
        try:
            load = os.getloadavg()
        except (OSError, AttributeError):
            load = (0.0, 0.0, 0.0)
        return SystemStats(psutil.cpu_percent(interval=None),
                           psutil.virtual_memory().percent, load)

    return sample


def fixed_sampler(stats: SystemStats) -> Sampler:
    return lambda: stats
