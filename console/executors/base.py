"""The interface every executor (local, ssh) implements.

An executor starts one attempt of a task and hands back an :class:`Execution`. Output is
delivered through the ``on_output(stream, text)`` callback as chunks of complete lines
(joined by "\\n", no trailing newline; see :class:`console.executors.lines.LineSplitter`),
raw and unmasked: the run masks secrets before anything else sees them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from console.model.workflow import Host

Stream = Literal["stdout", "stderr"]
OutputCallback = Callable[[Stream, str], None]

GRACE_ENV = "BATON_KILL_GRACE"


def _grace_seconds(default: float = 5.0) -> float:
    """``default``, or the seconds in ``$BATON_KILL_GRACE`` (0-600): the test suite
    shortens the grace that its tests of a KILL after TERM would otherwise wait out.
    A value that is not such a number keeps the default."""
    try:
        value = float(os.environ.get(GRACE_ENV, ""))
    except ValueError:
        return default
    return value if math.isfinite(value) and 0 <= value <= 600 else default


GRACE_SECONDS = _grace_seconds()
"""Time between TERM and KILL when a task is cancelled or times out (5 s by default)."""


@dataclass(frozen=True)
class CommandRequest:
    """What to run for one attempt. ``script`` is the rendered command text."""

    step: str
    host: Host
    script: str
    shell: str = "/bin/sh"
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    tag: str = ""
    """The attempt's tag, put in the environment of everything it starts (see
    :mod:`console.executors.containment`); the executor makes one when empty."""


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int | None
    """The process exit code; None when it died of a signal or never started."""
    signal: int | None = None
    error: str | None = None
    """Why the attempt could not run or lost contact (one line, names the host)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.error is None


class Execution(Protocol):
    async def wait(self) -> ExitStatus:
        """Wait until the attempt ends and all its output has been delivered."""
        ...

    async def terminate(self, grace: float = GRACE_SECONDS) -> None:
        """End the whole process tree: TERM, then KILL after ``grace`` seconds."""
        ...


class Executor(Protocol):
    async def start(self, request: CommandRequest, on_output: OutputCallback) -> Execution:
        """Start the attempt. Failure to start is reported by ``wait()``, not raised."""
        ...

    async def close(self) -> None:
        """Release connections and helpers at the end of the run."""
        ...


@dataclass(frozen=True)
class HostKeyQuestion:
    """An SSH host presents a key that no known_hosts file vouches for (and none
    contradicts: a changed key is refused without a question). Whoever answers (the
    console's dialog) decides whether to trust it; trusted, it is recorded in
    ``known_hosts`` as ``--accept-new-host-keys`` would."""

    host: str
    """The workflow's host name."""
    label: str
    """What OpenSSH records: ``address`` or ``[address]:port``."""
    key_type: str
    """e.g. ``ssh-ed25519``."""
    fingerprint: str
    """``SHA256:…``, as ``ssh-keygen -lf`` prints it."""
    known_hosts: str
    """The file it would be recorded in."""


HostKeyAsker = Callable[[HostKeyQuestion], Awaitable[bool]]
"""Asks an operator about an unknown host key; True trusts (and records) it."""
