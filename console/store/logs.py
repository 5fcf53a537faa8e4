"""The file side of the store: private folders and files, per-attempt logs, run locks.

Layout under ``$BATON_HOME``::

    history.sqlite                          runs, tasks, attempts, events, actions
    logs/<run_id>/<step>@<host>.<n>.log     output of attempt n, stdout and stderr lines
    logs/<run_id>/<step>@<host>.<n>.stderr  its stderr lines alone (the postmortem's tail)
    locks/<run_id>.lock                     flock held by the process recording the run

Folders are 0700 and files 0600 whatever the umask: they hold commands and output. No
state file is opened through a symlink, and a folder that is a symlink, not owned by the
user or writable by group or others is refused with a one-line message naming the path
and the fix (:func:`check_private`), as OpenSSH's StrictModes does.

A run lock is an ``fcntl.flock`` on the run's lock file. The kernel drops it when the
holder dies, however it dies, so a crashed console never keeps a run locked (but for the
moment a child it forked takes to exec: :mod:`console.store.lock_take` waits that out).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import time
from pathlib import Path
from typing import IO
from urllib.parse import quote

from console.store.errors import LiveRunError, StoreError, UnsafePathError
from console.store.lock_take import take

DIR_MODE = 0o700
FILE_MODE = 0o600


NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def check_private(path: Path, *, link_ok: bool = False) -> None:
    """Refuse a folder of the home that others could change (as OpenSSH's StrictModes):
    a symlink (unless ``link_ok``, for the home itself), not a folder, not owned by this
    user, or writable by group or others. The message names the path and the fix."""
    try:
        info = os.stat(path) if link_ok else os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot use baton home folder {path}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePathError(f"{path} is a symbolic link; baton does not follow links inside "
                              f"its home: remove it (rm {path})")
    if not stat.S_ISDIR(info.st_mode):
        raise StoreError(f"{path} is not a folder: move it aside")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise UnsafePathError(f"{path} is owned by uid {info.st_uid}, not by you (uid "
                              f"{os.geteuid()}): fix with chown {os.geteuid()} {path}, or set "
                              f"BATON_HOME to a folder of your own")
    if info.st_mode & 0o022:
        raise UnsafePathError(f"{path} is writable by group or others (mode "
                              f"{stat.S_IMODE(info.st_mode):04o}): fix with chmod 700 {path}")


def ensure_dir(path: Path, *, link_ok: bool = False) -> Path:
    """Create ``path`` (and missing parents) as a private folder and check it (see
    :func:`check_private`); return it."""
    if not os.path.lexists(path):
        missing = []
        probe = path
        while not os.path.lexists(probe) and probe != probe.parent:
            missing.append(probe)
            probe = probe.parent
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        for created in missing:
            os.chmod(created, DIR_MODE)
    check_private(path, link_ok=link_ok)
    return path


def open_private(path: Path, flags: int) -> int:
    """Open a state file without following a symlink, 0600 whatever the umask."""
    try:
        fd = os.open(path, flags | NOFOLLOW | CLOEXEC, FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(f"{path} is a symbolic link; baton does not follow links "
                                  f"inside its home: remove it (rm {path})") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StoreError(f"{path} is not a regular file: move it aside")
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_private(path: Path) -> None:
    """Create an empty 0600 file unless it exists (never through a symlink)."""
    os.close(open_private(path, os.O_WRONLY | os.O_CREAT))


def refuse_link(path: Path) -> None:
    """StoreError if ``path`` is a symlink (files SQLite opens by itself: -wal, -shm)."""
    if os.path.islink(path):
        raise UnsafePathError(f"{path} is a symbolic link; baton does not follow links "
                              f"inside its home: remove it (rm {path})")


def _opener(path: str, flags: int) -> int:
    return open_private(Path(path), flags)


def log_path(home: Path, run_id: str, step: str, host: str, attempt: int,
             suffix: str = "log") -> Path:
    """Where the output of one attempt is kept (``suffix="stderr"``: its stderr lines
    alone). Step and host are %-quoted for the name."""
    name = f"{quote(step, safe='')}@{quote(host, safe='')}.{attempt}.{suffix}"
    return home / "logs" / run_id / name


def tail_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of a text file ([] when it does not exist)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            block = b""
            while size and block.count(b"\n") <= count:
                step = min(size, 1 << 16)
                size -= step
                handle.seek(size)
                block = handle.read(step) + block
    except FileNotFoundError:
        return []
    lines = block.decode("utf-8", errors="replace").splitlines()
    return lines[-count:] if count else []


DEFAULT_LOG_LIMIT = 256 * 1024**2


class _Log:
    """One attempt's log file, capped at ``limit`` characters: the first half is kept
    as it comes, then the newest half is kept in a ring file beside it (``.tail``); when
    the attempt ends the ring is appended after a line saying how much was dropped."""

    __slots__ = ("handle", "head", "limit", "path", "ring", "ring_pos", "tail_total",
                 "written")

    def __init__(self, path: Path, handle: IO[str], limit: int) -> None:
        self.path = path
        self.handle = handle
        self.limit = limit
        self.head = limit // 2
        self.written = 0  # characters in the file (of this process; a resumed file
        # continues in a fresh budget: each attempt has its own file anyway)
        self.ring: int | None = None
        self.ring_pos = 0
        self.tail_total = 0

    def write(self, text: str) -> None:
        if self.ring is None:
            room = self.head - self.written
            if len(text) <= room:
                self.handle.write(text)
                self.written += len(text)
                return
            cut = text.rfind("\n", 0, room) + 1  # whole lines in the head
            if cut:
                self.handle.write(text[:cut])
                self.written += cut
            text = text[cut:]
            self.ring = open_private(Path(f"{self.path}.tail"),
                                     os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        self._tail(text.encode("utf-8", "replace"))

    def _tail(self, data: bytes) -> None:
        assert self.ring is not None
        size = self.limit - self.head
        self.tail_total += len(data)
        if len(data) >= size:
            os.pwrite(self.ring, data[-size:], 0)
            self.ring_pos = 0
            return
        pos = self.ring_pos
        first = min(len(data), size - pos)
        os.pwrite(self.ring, data[:first], pos)
        if first < len(data):
            os.pwrite(self.ring, data[first:], 0)
        self.ring_pos = (pos + len(data)) % size

    def close(self) -> None:
        """Append the kept tail after the line saying what was dropped."""
        ring, self.ring = self.ring, None
        try:
            if ring is not None:
                self._finish(ring)
        finally:
            self.handle.close()

    def _finish(self, ring: int) -> None:
        size = self.limit - self.head
        full = self.tail_total >= size
        parts = ([(self.ring_pos, size - self.ring_pos), (0, self.ring_pos)] if full
                 else [(0, self.ring_pos)])
        kept = b"".join(os.pread(ring, length, offset) for offset, length in parts if length)
        os.close(ring)
        if self.tail_total > size:  # the oldest kept line is partial: drop it too
            kept = kept[kept.find(b"\n") + 1 :]
        dropped = self.tail_total - len(kept)
        if dropped:
            self.handle.write(f"[baton: {dropped} bytes of output dropped here: this "
                              f"attempt's log keeps its first and last "
                              f"{_size(self.head)} (log_limit {_size(self.limit)})]\n")
        self.handle.write(kept.decode("utf-8", "replace"))
        self.handle.flush()
        with contextlib.suppress(OSError):
            os.unlink(f"{self.path}.tail")


def _size(size: int) -> str:
    from console.model.sizes import format_size

    return format_size(size)


class LogFiles:
    """The open log files of a run's current attempts, buffered, flushed on demand.

    Chunks are written as they come (a LogEvent holds many lines); :meth:`flush` pushes the
    buffers to the OS, which keeps them even if this process is killed. Files are opened in
    append mode, so a resumed run continues the same files. Each attempt's log is capped
    at ``limit`` (see :class:`_Log`).
    """

    def __init__(self, home: Path, run_id: str, limit: int = DEFAULT_LOG_LIMIT) -> None:
        self.home = home
        self.run_id = run_id
        self.limit = limit
        self._files: dict[tuple[str, str], dict[int | str, _Log]] = {}
        self._dirty: set[IO[str]] = set()
        self._dir_ready = False

    def write(self, step: str, host: str, attempt: int, text: str,
              stderr: bool = False) -> None:
        """Append ``text`` to the attempt's log; ``stderr``: to its stderr file too."""
        self._write(step, host, attempt, "log", text)
        if stderr:
            self._write(step, host, attempt, "stderr", text)

    def _write(self, step: str, host: str, attempt: int, suffix: str, text: str) -> None:
        key: int | str = attempt if suffix == "log" else f"{attempt}.{suffix}"
        log = self._files.get((step, host), {}).get(key)
        if log is None:
            log = self._open(step, host, attempt, suffix, key)
        try:
            log.write(text)
        except OSError as exc:
            raise StoreError(f"cannot write the log {log.path}: {exc.strerror or exc}; it "
                             f"is cut there") from None
        self._dirty.add(log.handle)

    def _open(self, step: str, host: str, attempt: int, suffix: str,
              key: int | str) -> _Log:
        path = log_path(self.home, self.run_id, step, host, attempt, suffix)
        if not self._dir_ready:
            ensure_dir(path.parent.parent)
            ensure_dir(path.parent)
            self._dir_ready = True
        handle = open(path, "a", encoding="utf-8", errors="replace",  # noqa: SIM115
                      buffering=1 << 16, opener=_opener)
        log = self._files.setdefault((step, host), {})[key] = _Log(path, handle, self.limit)
        return log

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for handle in dirty:
            try:
                handle.flush()
            except OSError as exc:
                raise StoreError(f"cannot write the log {handle.name}: "
                                 f"{exc.strerror or exc}; it is cut there") from None

    def close_task(self, step: str, host: str) -> None:
        """Close the files of a task whose attempt has ended."""
        for log in self._files.pop((step, host), {}).values():
            self._dirty.discard(log.handle)
            log.close()

    def close(self) -> None:
        self.flush()
        for logs in self._files.values():
            for log in logs.values():
                log.close()
        self._files.clear()


# ---------------------------------------------------------------------------- run locks

_held: dict[Path, RunLock] = {}
"""Locks held by this process, by lock file path."""


def lock_path(home: Path, run_id: str) -> Path:
    return home / "locks" / f"{run_id}.lock"


class RunLock:
    """Proof that this process owns a run. ``release()`` or leave the ``with`` block."""

    def __init__(self, run_id: str, path: Path, fd: int) -> None:
        self.run_id = run_id
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        _held.pop(self.path, None)
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def resolve_home(home: Path | str | None = None) -> Path:
    """``home`` (default ``$BATON_HOME``) as an absolute path."""
    if home is None:
        from console.paths import baton_home

        home = baton_home()
    return Path(os.path.abspath(Path(home).expanduser()))


def acquire_run_lock(run_id: str, home: Path | None = None) -> RunLock:
    """Lock ``run_id`` for this process, or raise :class:`LiveRunError` naming the holder.

    The lock is an flock: it dies with the process, so a crashed console never holds it."""
    path = lock_path(resolve_home(home), run_id)
    if path in _held:
        raise LiveRunError(f"run {run_id} is already open in this process (pid {os.getpid()})")
    try:
        ensure_dir(path.parent)
        fd = open_private(path, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        raise StoreError(f"cannot create lock file {path}: {exc.strerror or exc}") from None
    if not take(fd):
        holder = _read_holder(fd)
        os.close(fd)
        raise LiveRunError(f"run {run_id} is live in process {holder}; close that console "
                           f"first")
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    os.fchmod(fd, FILE_MODE)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    lock = _held[path] = RunLock(run_id, path, fd)
    return lock


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(info["since"])))
        return f"{int(info['pid'])} (on {info['host']}, since {since})"
    except (ValueError, KeyError, TypeError, OSError):
        return "unknown (lock file unreadable)"


def held_here(run_id: str, home: Path) -> RunLock | None:
    """The lock of ``run_id`` if this process holds it."""
    return _held.get(lock_path(home, run_id))


def is_live(run_id: str, home: Path) -> bool:
    """Whether some process, this one included, holds the run's lock."""
    path = lock_path(home, run_id)
    if path in _held:
        return True
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW | CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:  # a planted link or an unreadable file: not a lock of ours
        return False
    try:
        return not take(fd)
    finally:
        os.close(fd)
