"""Taking a run's lock (an ``flock`` on its lock file, see :mod:`console.store.logs`), with
the one wait a dead owner's lock needs."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time

SETTLE = 1.0
"""Seconds a run lock may outlive the process recorded as holding it before the run counts
as live: a child that process forked holds the lock's file until it execs, and under load
that lasts a moment after the owner died (a runner killed with -9 while starting a step,
then at once ``baton resume``: "live in process <the dead one>")."""


def take(fd: int) -> bool:
    """Take the lock on ``fd``; False while another process holds it (waiting up to
    :data:`SETTLE` when the recorded holder is a process of this machine that is gone)."""
    deadline: float | None = None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if not holder_gone(fd):
                return False
            now = time.monotonic()
            if deadline is None:
                deadline = now + SETTLE
            elif now >= deadline:
                return False
            time.sleep(0.02)


def holder_gone(fd: int) -> bool:
    """The lock file names a process of this machine that has ended (or is a zombie)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        pid, host = int(info["pid"]), str(info["host"])
    except (ValueError, KeyError, TypeError, OSError):
        return False
    if host != socket.gethostname():
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            return stat_file.read().rsplit(b")", 1)[-1].split()[0] == b"Z"
    except FileNotFoundError:
        return True
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
