"""End a whole process tree: TERM, a grace period, then KILL.

A tree is the root process, all its descendants (found through their parents, so a
descendant that called ``setsid`` is still found while its parent lives), every member
of the root's process group (found even after its parent died) and every process that
carries the attempt's tag (:mod:`console.executors.containment`: found even after it
left the session and its parent died, as a double-forked daemon does). The group gets one
``killpg``; descendants outside the group are signalled one by one.

Zombies count as gone: they are dead, only waiting for a parent (which may be an init
that never reaps them) to collect their exit status.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import psutil

from console.executors.containment import orphans_of_ours, reap, tagged_pids

KILL_WAIT = 2.0
"""After KILL, how long to wait for the processes to disappear before giving up."""

_FIRST_POLL = 0.005
_MAX_POLL = 0.05


class _Tree:
    """The processes of one tree, collected with psutil (pid-reuse safe)."""

    def __init__(self, pid: int | None, pgid: int | None,
                 tags: frozenset[str] = frozenset()) -> None:
        self.tags = tags
        # Never signal our own group: that would take Baton down with the tree.
        self.pgid = None if pgid == os.getpgrp() else pgid
        self.root: psutil.Process | None = None
        if pid is not None:
            try:
                self.root = psutil.Process(pid)
            except psutil.Error:
                pass
        self.procs: dict[int, psutil.Process] = {}
        self.seen: set[int] = set()
        self.collect()

    def collect(self) -> None:
        """Add descendants and group members that appeared since the last look."""
        found: list[psutil.Process] = []
        if self.root is not None:
            try:
                found.append(self.root)
                found.extend(self.root.children(recursive=True))
            except psutil.Error:
                pass
        if self.pgid is not None:
            found.extend(_group_members(self.pgid))
        for pid in tagged_pids(self.tags):
            if pid not in self.procs:
                try:
                    found.append(psutil.Process(pid))
                except psutil.Error:
                    pass
        for proc in found:
            self.procs.setdefault(proc.pid, proc)
            self.seen.add(proc.pid)

    def signal(self, sig: int) -> None:
        if self.pgid is not None:
            try:
                os.killpg(self.pgid, sig)
            except OSError:  # the group is gone, or was never ours
                pass
        for proc in self.procs.values():
            try:
                if self.pgid is not None and os.getpgid(proc.pid) == self.pgid:
                    continue  # already signalled through its group
                proc.send_signal(sig)
            except (OSError, psutil.Error):
                pass

    def alive(self) -> bool:
        """Drop the processes that are gone; True while any is left."""
        for pid, proc in list(self.procs.items()):
            if not _is_alive(proc):
                del self.procs[pid]
        return bool(self.procs)

    def reap_orphans(self, root: int | None) -> None:
        """Orphans re-parented to us (subreaper) are reaped; the root is its watcher's."""
        reap(orphans_of_ours(list(self.seen), root))

    def left(self) -> list[int]:
        """The pids still alive."""
        self.alive()
        return list(self.procs)


def _is_alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid:
                members.append(psutil.Process(pid))
        except (OSError, psutil.Error):
            continue
    return members


def _delays(timeout: float) -> Iterator[float]:
    """Sleep lengths for polling: short at first (most trees die at once), then capped."""
    deadline = time.monotonic() + timeout
    delay = _FIRST_POLL
    while (left := deadline - time.monotonic()) > 0:
        yield min(delay, left)
        delay = min(delay * 2, _MAX_POLL)


def _gone(tree: _Tree) -> bool:
    if tree.alive():
        return False
    tree.collect()  # something may have forked while being terminated
    return not tree.alive()


async def kill_tree(pid: int | None, pgid: int | None, grace: float,
                    tags: frozenset[str] = frozenset()) -> list[int]:
    """TERM the tree of ``pid`` and group ``pgid``, KILL what is left after ``grace`` s.

    Either may be None (e.g. the root has exited but its group may live on); ``tags``
    adds every process carrying one of them. Returns the pids that could not be ended
    (empty once every process of the tree is gone), at most ``KILL_WAIT`` s after the KILL.
    """
    tree = _Tree(pid, pgid, tags)
    try:
        tree.signal(signal.SIGTERM)
        for delay in _delays(grace):
            if _gone(tree):
                return []
            await asyncio.sleep(delay)
        tree.collect()
        tree.signal(signal.SIGKILL)
        for delay in _delays(KILL_WAIT):
            if not tree.alive():
                return []
            await asyncio.sleep(delay)
        return tree.left()
    finally:
        tree.reap_orphans(pid)


def kill_tree_sync(pid: int | None, pgid: int | None, grace: float,
                   tags: frozenset[str] = frozenset()) -> list[int]:
    """Blocking :func:`kill_tree`, for atexit handlers and signal handlers."""
    tree = _Tree(pid, pgid, tags)
    try:
        tree.signal(signal.SIGTERM)
        for delay in _delays(grace):
            if _gone(tree):
                return []
            time.sleep(delay)
        tree.collect()
        tree.signal(signal.SIGKILL)
        for delay in _delays(KILL_WAIT):
            if not tree.alive():
                return []
            time.sleep(delay)
        return tree.left()
    finally:
        tree.reap_orphans(pid)
