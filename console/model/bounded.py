"""Bounded reads: a workflow, inventory or secret file, or a secret command's output, can
neither hang baton nor exhaust its memory.

A named pipe would block ``open``/``read`` forever and ``/dev/zero`` (or a command running
``yes``) would be read until memory runs out. :func:`read_regular` opens without blocking,
refuses anything but a regular file, and reads at most ``limit`` bytes;
:func:`run_bounded` reads a command's output up to ``limit`` bytes and ``timeout``
seconds, then kills its whole process group.
"""

from __future__ import annotations

import os
import selectors
import signal
import stat
import subprocess
import time
from pathlib import Path

__all__ = [
    "FILE_LIMIT",
    "MIB",
    "SECRET_LIMIT",
    "BoundedError",
    "read_regular",
    "run_bounded",
    "size_text",
]

MIB = 1 << 20
FILE_LIMIT = 16 * MIB
"""Largest workflow or inventory file."""
SECRET_LIMIT = 1 * MIB
"""Largest secret file, and most output a secret command may print."""
_STDERR_KEEP = 64 * 1024


class BoundedError(Exception):
    """The file is not a regular file or is too large, or the command printed too much or
    took too long; ``str()`` is the reason, e.g. ``is a named pipe (FIFO), not a regular
    file``."""


def size_text(limit: int) -> str:
    return f"{limit // MIB} MiB" if limit % MIB == 0 else f"{limit:,} bytes"


def _kind(mode: int) -> str | None:
    """What a non-regular file is, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a regular file"
    if stat.S_ISCHR(mode):
        return "is a character device, not a regular file"
    if stat.S_ISBLK(mode):
        return "is a block device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    return "is not a regular file"


def read_regular(path: Path | str, limit: int) -> bytes:
    """The bytes of the regular file ``path`` (symlinks followed), at most ``limit``.

    Raises :class:`BoundedError` for anything but a regular file or a file over ``limit``,
    and ``OSError`` (``FileNotFoundError``, ``IsADirectoryError``, ``PermissionError`` …)
    as ``open`` does.
    """
    mode = os.stat(path).st_mode  # nothing is opened that is not a regular file
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(21, "Is a directory", str(path))
    kind = _kind(mode)
    if kind is not None:
        raise BoundedError(kind)
    # O_NONBLOCK: should the path become a FIFO between stat and open, open cannot hang
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        kind = _kind(info.st_mode)
        if kind is not None:
            raise BoundedError(kind)
        too_large = BoundedError(f"is larger than {size_text(limit)}")
        if info.st_size > limit:
            raise too_large
        chunks: list[bytes] = []
        total = 0
        while True:
            data = os.read(fd, min(limit + 1 - total, MIB))
            if not data:
                break
            chunks.append(data)
            total += len(data)
            if total > limit:  # grew while being read
                raise too_large
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def run_bounded(argv: list[str], *, cwd: Path | None, timeout: float,
                limit: int) -> tuple[int, bytes, bytes]:
    """Run ``argv`` in its own session with stdin from /dev/null: (exit status, stdout,
    the start of stderr).

    Raises :class:`BoundedError` when stdout passes ``limit`` bytes (``printed more than
    1 MiB``) or the command is not done within ``timeout`` seconds (``timed out after
    30s``); either way its whole process group is killed first. ``OSError`` when it
    cannot start.
    """
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd, start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + timeout
    out = bytearray()
    err = bytearray()
    selector = selectors.DefaultSelector()
    try:
        selector.register(proc.stdout, selectors.EVENT_READ, out)
        selector.register(proc.stderr, selectors.EVENT_READ, err)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill(proc)
                raise BoundedError(f"timed out after {timeout:g}s")
            for key, _ in selector.select(remaining):
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                buffer: bytearray = key.data
                if buffer is out:
                    out += data
                    if len(out) > limit:
                        _kill(proc)
                        raise BoundedError(f"printed more than {size_text(limit)}")
                elif len(err) < _STDERR_KEEP:
                    err += data[:_STDERR_KEEP - len(err)]
        try:
            status = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise BoundedError(f"timed out after {timeout:g}s") from None
    finally:
        selector.close()
        proc.stdout.close()
        proc.stderr.close()
    return status, bytes(out), bytes(err)
