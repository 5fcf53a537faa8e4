"""Run a task's script on this machine.

The script goes to the shell through an inherited file descriptor (a memfd, or an
unlinked temporary file where memfd is missing), never through argv or stdin: it may
hold secrets, which must not show up in ``ps`` (/proc/*/cmdline), and stdin stays
/dev/null so a command that reads stdin cannot swallow the rest of the script. The shell
sees its script as ``/dev/fd/N`` (that is also its ``$0``).

Each attempt runs in its own session and process group, so cancelling it can end the
whole tree (see :mod:`console.executors.proctree`). Output is read through a raw
``SubprocessProtocol``: no stream readers, no threads, no psutil on the happy path.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile

from console.executors.base import (
    GRACE_SECONDS,
    CommandRequest,
    ExitStatus,
    OutputCallback,
)
from console.executors.child_watcher import install_child_watcher
from console.executors.lines import LineSplitter

DEFAULT_SHELL = "/bin/sh"


class _OutputProtocol(asyncio.SubprocessProtocol):
    """Feeds each pipe through its own LineSplitter; resolves ``done`` at the very end."""

    def __init__(self, on_output: OutputCallback, done: asyncio.Future[None]) -> None:
        self._on_output = on_output
        self._done = done
        self._stdout = LineSplitter()
        self._stderr = LineSplitter()
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            text = self._stdout.feed(data)
            if text is not None:
                self._on_output("stdout", text)
        else:
            text = self._stderr.feed(data)
            if text is not None:
                self._on_output("stderr", text)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            text = self._stdout.flush()
            if text is not None:
                self._on_output("stdout", text)
        else:
            text = self._stderr.flush()
            if text is not None:
                self._on_output("stderr", text)

    def connection_lost(self, exc: Exception | None) -> None:
        # asyncio calls this once the process has exited AND both pipes are closed.
        if self._transport is not None:
            self._transport.close()  # marks it closed: no ResourceWarning when collected
        if not self._done.done():
            self._done.set_result(None)


class LocalExecution:
    """One running (or failed-to-start) attempt on the local machine."""

    def __init__(
        self,
        transport: asyncio.SubprocessTransport | None = None,
        done: asyncio.Future[None] | None = None,
        error: str | None = None,
    ) -> None:
        self._transport = transport
        self._done = done
        self._error = error
        self._killing: asyncio.Future[None] | None = None

    @classmethod
    def failed(cls, error: str) -> LocalExecution:
        return cls(error=error)

    @property
    def pid(self) -> int | None:
        """The shell's pid (also its process group id); None if it never started."""
        return self._transport.get_pid() if self._transport is not None else None

    async def wait(self) -> ExitStatus:
        if self._transport is None or self._done is None:
            return ExitStatus(exit_code=None, error=self._error)
        # Shielded: a waiter being cancelled must not cancel the attempt's bookkeeping.
        await asyncio.shield(self._done)
        code = self._transport.get_returncode()
        if code is None:  # cannot happen once done; be explicit rather than lie
            return ExitStatus(exit_code=None, error="exit status unknown")
        if code < 0:
            return ExitStatus(exit_code=None, signal=-code)
        return ExitStatus(exit_code=code)

    async def terminate(self, grace: float = GRACE_SECONDS) -> None:
        """TERM the whole tree, KILL what is left after ``grace`` s. Idempotent."""
        if self._transport is None or self._done is None or self._done.done():
            return
        if self._killing is None:
            pid = self._transport.get_pid()
            # Once the shell has exited its pid may be reused: only its group (still
            # holding our pipes open, or `done` would be set) is signalled then.
            root = pid if self._transport.get_returncode() is None else None
            self._killing = asyncio.ensure_future(_kill_tree(root, pid, grace))
        await asyncio.shield(self._killing)


class LocalExecutor:
    """Runs scripts with a local shell; see the module docstring."""

    async def start(self, request: CommandRequest, on_output: OutputCallback) -> LocalExecution:
        install_child_watcher()
        env = os.environ | request.env if request.env else None
        cwd = None
        if request.cwd:
            cwd = os.path.expanduser(request.cwd)
            if not os.path.isdir(cwd):
                problem = "is not a directory" if os.path.exists(cwd) else "does not exist"
                return LocalExecution.failed(f"cwd {cwd} {problem}")
        shell = request.shell or DEFAULT_SHELL
        if os.sep in shell:
            shell = os.path.expanduser(shell)
        else:
            found = shutil.which(shell, path=(env or os.environ).get("PATH", os.defpath))
            if found is None:
                return LocalExecution.failed(f"cannot start {shell}: not found on PATH")
            shell = found
        try:
            fd = _script_fd(request.script)
        except (OSError, ValueError) as exc:
            return LocalExecution.failed(f"cannot hand the script to {shell}: {exc}")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        try:
            transport, _ = await loop.subprocess_exec(
                lambda: _OutputProtocol(on_output, done),
                shell,
                f"/dev/fd/{fd}",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=cwd,
                pass_fds=(fd,),
                start_new_session=True,
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if cwd is not None and exc.filename == cwd:
                return LocalExecution.failed(f"cannot change to cwd {cwd}: {reason}")
            return LocalExecution.failed(f"cannot start {shell}: {reason}")
        except ValueError as exc:  # e.g. "=" or NUL in an environment variable name
            return LocalExecution.failed(f"cannot start {shell}: {exc}")
        finally:
            os.close(fd)
        return LocalExecution(transport, done)

    async def close(self) -> None:
        """Nothing to release: every attempt owns its own process."""


def _script_fd(script: str) -> int:
    """A readable fd holding ``script``, positioned at its start, not inheritable."""
    data = script.encode("utf-8", "surrogateescape")
    try:
        fd = os.memfd_create("baton-script", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        fd, path = tempfile.mkstemp(prefix="baton-script-")
        os.unlink(path)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


async def _kill_tree(pid: int | None, pgid: int | None, grace: float) -> None:
    """psutil is imported only when something must be killed (it costs 40 ms at start-up)."""
    from console.executors.proctree import kill_tree

    await kill_tree(pid, pgid, grace)
