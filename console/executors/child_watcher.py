"""A thread-free child watcher for asyncio subprocesses on Python 3.11.

Python 3.11's default ``ThreadedChildWatcher`` starts one thread per child process just
to wait for it: with hundreds of short steps that is a real cost. Linux (5.3+) can watch a
child through a pidfd in the event loop itself. The stock ``PidfdChildWatcher`` of 3.11 is
bound to one loop (every new loop needs ``attach_loop``), so this module backports the
loop-agnostic variant of Python 3.12, which is the default there.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import threading
import warnings

_lock = threading.Lock()


class LoopPidfdChildWatcher(asyncio.PidfdChildWatcher):
    """Watches each child with a pidfd registered in the loop that started it."""

    def is_active(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def attach_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        pass

    def add_child_handler(self, pid, callback, *args) -> None:  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(pid)
        loop._add_reader(pidfd, self._wait_pidfd, loop, pid, pidfd, callback, args)  # type: ignore[attr-defined]

    def _wait_pidfd(self, loop, pid, pidfd, callback, args) -> None:  # type: ignore[no-untyped-def]
        loop._remove_reader(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            returncode = 255  # reaped elsewhere; same convention as asyncio
        else:
            returncode = os.waitstatus_to_exitcode(status)
        os.close(pidfd)
        callback(pid, returncode, *args)

    def remove_child_handler(self, pid: int) -> bool:
        return True  # asyncio never calls it; the reader goes away with the child


@functools.cache
def pidfd_works() -> bool:
    """Whether this kernel (and its seccomp rules) lets us watch a child through a pidfd."""
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # old kernel, or blocked by seccomp
        return False
    return True


def install_child_watcher() -> bool:
    """Use the pidfd watcher for asyncio subprocesses if this Python needs and allows it.

    Returns True when a pidfd watcher is in place. Cheap and idempotent: call it before
    every spawn, from inside or outside a running loop. No-op on Python 3.12+ (already
    pidfd-based), off Linux, and with a non-default event loop policy (e.g. uvloop).
    """
    if sys.version_info >= (3, 12) or not pidfd_works():
        return False
    policy = asyncio.get_event_loop_policy()
    if not isinstance(policy, asyncio.DefaultEventLoopPolicy):
        return False
    with _lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        current = policy.get_child_watcher()
        if isinstance(current, asyncio.PidfdChildWatcher):
            return True  # ours, or one the application chose itself
        # Children already handed to the old watcher are still reported by its threads.
        policy.set_child_watcher(LoopPidfdChildWatcher())
    return True
