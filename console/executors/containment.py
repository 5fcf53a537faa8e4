"""Keep track of every process an attempt starts, including the ones that leave it.

A step's processes are found three ways (see :mod:`console.executors.proctree`): as
descendants of its shell, as members of its process group, and by a **tag**: every
attempt gets a random value in the environment variable :data:`TAG_ENV`, which every
process it starts inherits. A double-forked daemon that called ``setsid`` is neither a
descendant (its parent exited) nor in the group, but it still carries the tag (as
Jenkins finds the processes of a build). On Linux Baton is also made a *child
subreaper*: such orphans are re-parented to Baton instead of init, so they stay in its
process tree and Baton reaps them once they are killed.

A process that clears its own environment and leaves the session cannot be told apart
from the machine's other processes; containing those needs a cgroup (see
docs/security.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os

TAG_ENV = "BATON_ATTEMPT"
"""The environment variable carrying an attempt's tag into every process it starts."""

_PR_SET_CHILD_SUBREAPER = 36


def new_tag() -> str:
    """A fresh attempt tag (random; no cryptography needed, start-up time counts)."""
    return os.urandom(8).hex()


@functools.cache
def enable_subreaper() -> bool:
    """Make this process the child subreaper of everything it starts (Linux); True if so."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def tagged_pids(tags: set[str] | frozenset[str]) -> dict[int, str]:
    """Live processes whose environment carries one of ``tags``: {pid: tag}."""
    if not tags:
        return {}
    wanted = {f"{TAG_ENV}={tag}".encode(): tag for tag in tags}
    found: dict[int, str] = {}
    me = os.getpid()
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                data = handle.read()
        except OSError:  # gone, or not ours to read
            continue
        for item in data.split(b"\0"):
            tag = wanted.get(item)
            if tag is not None:
                found[int(name)] = tag
                break
    return found


def identity(pid: int) -> tuple[float, int] | None:
    """(start time in clock ticks since boot, session id) of ``pid``; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return float(fields[19]), int(fields[3])
    except (IndexError, ValueError):
        return None


def describe(pids: list[int]) -> str:
    """``pid 123 (sleep), pid 124 (sh)`` for a log line."""
    out = []
    for pid in sorted(pids):
        name = "?"
        with contextlib.suppress(OSError), open(f"/proc/{pid}/comm", "rb") as handle:
            name = handle.read().decode("utf-8", "replace").strip()
        out.append(f"pid {pid} ({name})")
    return ", ".join(out)


def reap(pids: list[int]) -> None:
    """Collect the exit status of orphans re-parented to us (never a shell we watch)."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def orphans_of_ours(pids: list[int], keep: int | None) -> list[int]:
    """Those of ``pids`` whose parent is now this process (subreaper), except ``keep``."""
    me = os.getpid()
    out = []
    for pid in pids:
        if pid == keep:
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                data = handle.read()
            if int(data[data.rfind(b")") + 2 :].split()[1]) == me:
                out.append(pid)
        except (OSError, ValueError, IndexError):
            continue
    return out
