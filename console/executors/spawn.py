"""Start a shell in its own session with given stdin/stdout/stderr and one inherited fd.

This is what ``subprocess.Popen(argv, stdin=..., stdout=..., stderr=..., pass_fds=(fd,),
start_new_session=True)`` does, minus Popen: a 1,000-step graph is mostly process starts,
and Popen's Python side (option handling, an object per process, its bookkeeping of lost
children) is about a sixth of each start. On CPython 3.11 the same C helper Popen uses
(vfork, close every other fd, setsid, exec) is called directly, as ``multiprocessing``
does; on any other version, or when asked, Popen itself runs.

Errors are Popen's: ``OSError`` with errno, message and the file (the shell, or ``cwd``
when changing into it failed); ``ValueError`` for a bad environment.
"""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

# Any: the C helper's positional signature differs between versions (typeshed's is not the
# one called here); DIRECT below restricts the call to the version it is written for.
_posixsubprocess: Any
try:
    import _posixsubprocess
except ImportError:  # not CPython on POSIX
    _posixsubprocess = None

DIRECT = _posixsubprocess is not None and sys.version_info[:2] == (3, 11)
"""Whether :func:`spawn` calls the C helper itself: only where its signature is known."""


class Child:
    """A started process: ``pid``, and ``returncode`` once the caller has reaped it."""

    __slots__ = ("pid", "returncode")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None


def spawn(argv: list[str], *, stdin: int, stdout: int, stderr: int,
          env: Mapping[str, str] | None, cwd: str | None, keep_fd: int | None,
          direct: bool | None = None) -> Child | subprocess.Popen[bytes]:
    """Start ``argv`` (``argv[0]`` a path); the caller reaps it and sets ``returncode``."""
    if not (DIRECT if direct is None else direct):
        return subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr, env=env,
                                cwd=cwd, pass_fds=() if keep_fd is None else (keep_fd,),
                                start_new_session=True)
    sys.audit("subprocess.Popen", argv[0], argv, cwd, env)
    args = [os.fsencode(arg) for arg in argv]
    env_list = None
    if env is not None:
        env_list = []
        for key, value in env.items():
            name = os.fsencode(key)
            if b"=" in name:
                raise ValueError("illegal environment variable name")
            env_list.append(name + b"=" + os.fsencode(value))
    # The child reports a failed exec through this pipe; it closes on a successful exec.
    errpipe_read, errpipe_write = os.pipe()
    low: list[int] = []
    while errpipe_write < 3:  # never one of the fds the child is about to dup2 over
        low.append(errpipe_write)
        errpipe_write = os.dup(errpipe_write)
    for fd in low:
        os.close(fd)
    keep = {errpipe_write} if keep_fd is None else {keep_fd, errpipe_write}
    try:
        try:
            pid = _posixsubprocess.fork_exec(
                args, (args[0],), True, tuple(sorted(keep)), cwd,
                env_list, stdin, -1, -1, stdout, -1, stderr, errpipe_read, errpipe_write,
                True, True, -1, None, None, None, -1, None, True)
        finally:
            os.close(errpipe_write)
        report = b""
        while chunk := os.read(errpipe_read, 50000):  # empty at once when exec succeeded
            report += chunk
            if len(report) > 50000:
                break
    finally:
        os.close(errpipe_read)
    if report:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        raise _child_error(report, argv[0], cwd)
    return Child(pid)


def _child_error(report: bytes, executable: str, cwd: str | None) -> Exception:
    """The exception the child reported, as Popen raises it."""
    try:
        name, hex_errno, text = report.split(b":", 2)
        message = text.decode()
    except ValueError:
        return subprocess.SubprocessError(f"bad exception data from child: {report!r}")
    kind = getattr(builtins, name.decode("ascii", "replace"), subprocess.SubprocessError)
    if isinstance(kind, type) and issubclass(kind, OSError) and hex_errno:
        number = int(hex_errno, 16)
        filename = cwd if message == "noexec" else executable
        return kind(number, os.strerror(number) if number else "", filename)
    if isinstance(kind, type) and issubclass(kind, Exception):
        return kind(message)
    return subprocess.SubprocessError(message)
