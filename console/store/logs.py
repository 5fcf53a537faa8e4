"""The file side of the store: private folders and files, per-attempt logs, run locks.

Layout under ``$BATON_HOME``::

    history.sqlite                          runs, tasks, attempts, events, actions
    logs/<run_id>/<step>@<host>.<n>.log     output of attempt n, stdout and stderr lines
    logs/<run_id>/<step>@<host>.<n>.stderr  its stderr lines alone (the postmortem's tail)
    locks/<run_id>.lock                     flock held by the process recording the run

Folders are 0700 and files 0600 whatever the umask: they hold commands and output.

A run lock is an ``fcntl.flock`` on the run's lock file. The kernel drops it when the
holder dies, however it dies, so a crashed console never keeps a run locked.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import IO
from urllib.parse import quote

DIR_MODE = 0o700
FILE_MODE = 0o600


class StoreError(Exception):
    """The store cannot be used; the message is one line that names the path."""


class LiveRunError(StoreError):
    """Another live process records this run."""


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as a private folder; return it."""
    if not path.is_dir():
        missing = []
        probe = path
        while not probe.exists() and probe != probe.parent:
            missing.append(probe)
            probe = probe.parent
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        for created in missing:
            os.chmod(created, DIR_MODE)
    return path


def create_private(path: Path) -> None:
    """Create an empty 0600 file unless it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def _opener(path: str, flags: int) -> int:
    fd = os.open(path, flags, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return fd


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


class LogFiles:
    """The open log files of a run's current attempts, buffered, flushed on demand.

    Chunks are written as they come (a LogEvent holds many lines); :meth:`flush` pushes the
    buffers to the OS, which keeps them even if this process is killed. Files are opened in
    append mode, so a resumed run continues the same files.
    """

    def __init__(self, home: Path, run_id: str) -> None:
        self.home = home
        self.run_id = run_id
        self._files: dict[tuple[str, str], dict[int | str, IO[str]]] = {}
        self._dirty: set[IO[str]] = set()
        self._dir_ready = False

    def write(self, step: str, host: str, attempt: int, text: str,
              stderr: bool = False) -> None:
        """Append ``text`` to the attempt's log; ``stderr``: to its stderr file too."""
        files = self._files.get((step, host))
        handle = files.get(attempt) if files is not None else None
        if handle is None:
            handle = self._open(step, host, attempt, "log")
        handle.write(text)
        self._dirty.add(handle)
        if stderr:
            key = f"{attempt}.stderr"
            err = self._files[(step, host)].get(key) or self._open(step, host, attempt,
                                                                   "stderr")
            err.write(text)
            self._dirty.add(err)

    def _open(self, step: str, host: str, attempt: int, suffix: str) -> IO[str]:
        path = log_path(self.home, self.run_id, step, host, attempt, suffix)
        if not self._dir_ready:
            ensure_dir(path.parent)
            self._dir_ready = True
        handle = open(path, "a", encoding="utf-8", errors="replace",  # noqa: SIM115
                      buffering=1 << 16, opener=_opener)
        key: int | str = attempt if suffix == "log" else f"{attempt}.{suffix}"
        self._files.setdefault((step, host), {})[key] = handle
        return handle

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for handle in dirty:
            handle.flush()

    def close_task(self, step: str, host: str) -> None:
        """Close the files of a task whose attempt has ended."""
        for handle in self._files.pop((step, host), {}).values():
            self._dirty.discard(handle)
            handle.close()

    def close(self) -> None:
        self.flush()
        for handles in self._files.values():
            for handle in handles.values():
                handle.close()
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
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError as exc:
        raise StoreError(f"cannot create lock file {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise LiveRunError(f"run {run_id} is live in process {holder}; close that console "
                           f"first") from None
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
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
