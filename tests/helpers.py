"""Helpers every kind of test shares (no Textual here: engine and store tests use them too).

``until`` waits for a condition the event loop will make true; ``FrozenClock`` is the one
fake clock: it moves only when a test says so, so stored and shown times are exact.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Callable
from functools import cache
from pathlib import Path

T0 = 1_732_640_000.0
"""The default start time of a test clock."""


class FrozenClock:
    """A clock that moves only when a test says so (``clock.now = ...`` or ``+=``)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def until(predicate: Callable[[], object], timeout: float = 5.0,
                interval: float = 0.002) -> None:
    """Return as soon as ``predicate()`` is true, polling every ``interval`` seconds;
    TimeoutError after ``timeout`` seconds."""

    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(interval)

    await asyncio.wait_for(poll(), timeout)


@cache
def parsed(path: Path) -> ast.Module:
    """The syntax tree of a source file, parsed once per test process. The structure
    tests (import graph, layers, exit codes, Textual's private API...) each read every
    module of console/; parsing it took 0.45 s of CPU each time. Read the tree, never
    change it."""
    return ast.parse(path.read_text(encoding="utf-8"), str(path))
