"""Run a task's script on this machine.

The script goes to the shell through an inherited file descriptor (a memfd, or an
unlinked temporary file where memfd is missing), never through argv or stdin: it may
hold secrets, which must not show up in ``ps`` (/proc/*/cmdline), and stdin stays
/dev/null so a command that reads stdin cannot swallow the rest of the script. The shell
sees its script as ``/dev/fd/N`` (that is also its ``$0``).

Each attempt runs in its own session and process group, so cancelling it can end the
whole tree (see :mod:`console.executors.proctree`).

Spawning is the hot path of a big DAG (a 1,000-step graph of ``true`` is mostly spawns),
so on Linux an attempt is two non-blocking pipes read straight from the event loop, the
shell reaped when both close (a pidfd is watched only if it outlives them): no
transports, protocols or tasks per process, no threads, no psutil on the happy path.
Elsewhere (no pidfd) the same contract is kept with asyncio's subprocess transports.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess

from console.executors.base import (
    GRACE_SECONDS,
    CommandRequest,
    ExitStatus,
    OutputCallback,
    Stream,
)
from console.executors.lines import LineSplitter
from console.executors.spawn import Child, spawn

DEFAULT_SHELL = "/bin/sh"


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


READ_SIZE = 256 * 1024
"""Bytes per read of an output pipe (what asyncio's pipe transports use)."""


class LocalExecution:
    """One running (or failed-to-start) attempt on the local machine.

    ``done`` resolves once the shell has exited and both output pipes are closed (a
    background child still holding them keeps the attempt open, as a terminal would).
    """

    def __init__(self, pid: int | None = None, done: asyncio.Future[None] | None = None,
                 error: str | None = None) -> None:
        self._pid = pid
        self._done = done
        self._error = error
        self.returncode: int | None = None
        """The shell's exit code, or minus the signal that ended it; None while it runs."""
        self._killing: asyncio.Future[None] | None = None

    @classmethod
    def failed(cls, error: str) -> LocalExecution:
        return cls(error=error)

    @property
    def pid(self) -> int | None:
        """The shell's pid (also its process group id); None if it never started."""
        return self._pid

    async def wait(self) -> ExitStatus:
        if self._done is None:
            return ExitStatus(exit_code=None, error=self._error)
        # Shielded: a waiter being cancelled must not cancel the attempt's bookkeeping.
        await asyncio.shield(self._done)
        code = self.returncode
        if code is None:  # cannot happen once done; be explicit rather than lie
            return ExitStatus(exit_code=None, error="exit status unknown")
        if code < 0:
            return ExitStatus(exit_code=None, signal=-code)
        return ExitStatus(exit_code=code)

    async def terminate(self, grace: float = GRACE_SECONDS) -> None:
        """TERM the whole tree, KILL what is left after ``grace`` s. Idempotent."""
        if self._done is None or self._done.done():
            return
        if self._killing is None:
            # Once the shell has exited its pid may be reused: only its group (still
            # holding our pipes open, or `done` would be set) is signalled then.
            root = self._pid if self.returncode is None else None
            self._killing = asyncio.ensure_future(_kill_tree(root, self._pid, grace))
        await asyncio.shield(self._killing)


class _PidfdWatch:
    """Reads both pipes and reaps the shell from event-loop callbacks (Linux).

    The shell is usually gone by the time both pipes are closed: then it is reaped at
    once, and a pidfd is opened and watched only when it is still running (a background
    child closed its output, or the shell closed both before exiting).
    """

    __slots__ = ("_add_reader", "_execution", "_on_output", "_pending", "_process",
                 "_remove_reader")

    def __init__(self, loop: asyncio.AbstractEventLoop, execution: LocalExecution,
                 process: Child | subprocess.Popen[bytes], stdout: int, stderr: int,
                 on_output: OutputCallback) -> None:
        # The selector loop's own registration skips a per-call check that no transport
        # owns the fd: these fds are ours alone. Other loops get the public API.
        self._add_reader = getattr(loop, "_add_reader", loop.add_reader)
        self._remove_reader = getattr(loop, "_remove_reader", loop.remove_reader)
        self._execution = execution
        self._process = process
        self._on_output = on_output
        self._pending = 2
        for fd, stream in ((stdout, "stdout"), (stderr, "stderr")):
            os.set_blocking(fd, False)
            self._add_reader(fd, self._readable, fd, stream, LineSplitter())

    def _readable(self, fd: int, stream: Stream, lines: LineSplitter) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            text = lines.feed(data)
            if text is not None:
                self._on_output(stream, text)
            return
        self._remove_reader(fd)
        os.close(fd)
        text = lines.flush()
        if text is not None:
            self._on_output(stream, text)
        self._pending -= 1
        if not self._pending:
            self._reap(os.WNOHANG)

    def _reap(self, flags: int) -> None:
        pid = self._process.pid
        try:
            reaped, status = os.waitpid(pid, flags)
        except ChildProcessError:
            reaped, status = pid, -1  # reaped elsewhere
        if not reaped:  # still running: nobody else reaps it, so its pid stays valid
            pidfd = os.pidfd_open(pid)
            self._add_reader(pidfd, self._exited, pidfd)
            return
        code = 255 if status == -1 else os.waitstatus_to_exitcode(status)  # 255: asyncio's
        # A Popen must know: one it thinks is running would be reaped again by the
        # subprocess module's cleanup of lost children.
        self._process.returncode = self._execution.returncode = code
        done = self._execution._done
        if done is not None and not done.done():
            done.set_result(None)

    def _exited(self, pidfd: int) -> None:
        self._remove_reader(pidfd)
        os.close(pidfd)
        self._reap(0)


class _OutputProtocol(asyncio.SubprocessProtocol):
    """The portable path: feeds each pipe through its own LineSplitter."""

    def __init__(self, execution: LocalExecution, on_output: OutputCallback) -> None:
        self._execution = execution
        self._on_output = on_output
        self._lines = {1: ("stdout", LineSplitter()), 2: ("stderr", LineSplitter())}
        self._transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        stream, lines = self._lines[fd]
        text = lines.feed(data)
        if text is not None:
            self._on_output(stream, text)  # type: ignore[arg-type]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        stream, lines = self._lines[fd]
        text = lines.flush()
        if text is not None:
            self._on_output(stream, text)  # type: ignore[arg-type]

    def process_exited(self) -> None:
        # Set as soon as the shell exits (terminate() must not signal a reaped pid), which
        # asyncio reports before connection_lost.
        if self._transport is not None:
            self._execution.returncode = self._transport.get_returncode()

    def connection_lost(self, exc: Exception | None) -> None:
        # asyncio calls this once the process has exited AND both pipes are closed.
        if self._transport is not None:
            self._transport.close()  # marks it closed: no ResourceWarning when collected
        done = self._execution._done
        if done is not None and not done.done():
            done.set_result(None)


class LocalExecutor:
    """Runs scripts with a local shell; see the module docstring."""

    use_pidfd: bool | None = None
    """None: use a pidfd when this kernel allows one (tests force either path)."""
    direct_spawn: bool | None = None
    """None: :mod:`console.executors.spawn` decides; False: always Popen (tests)."""

    async def start(self, request: CommandRequest, on_output: OutputCallback) -> LocalExecution:
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
        use_pidfd = self.use_pidfd if self.use_pidfd is not None else pidfd_works()
        launch = _spawn_pidfd if use_pidfd else _spawn_transport
        try:
            return await launch([shell, f"/dev/fd/{fd}"], env, cwd, fd, on_output)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if cwd is not None and exc.filename == cwd:
                return LocalExecution.failed(f"cannot change to cwd {cwd}: {reason}")
            return LocalExecution.failed(f"cannot start {shell}: {reason}")
        except ValueError as exc:  # e.g. "=" or NUL in an environment variable name
            return LocalExecution.failed(f"cannot start {shell}: {exc}")
        finally:
            os.close(fd)

    async def close(self) -> None:
        """Nothing to release: every attempt owns its own process."""


async def _spawn_pidfd(argv: list[str], env: dict[str, str] | None, cwd: str | None,
                       script_fd: int, on_output: OutputCallback) -> LocalExecution:
    loop = asyncio.get_running_loop()
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        process = spawn(argv, stdin=_devnull(), stdout=out_write, stderr=err_write, env=env,
                        cwd=cwd, keep_fd=script_fd, direct=LocalExecutor.direct_spawn)
    except BaseException:
        os.close(out_read)
        os.close(err_read)
        raise
    finally:
        os.close(out_write)
        os.close(err_write)
    execution = LocalExecution(process.pid, loop.create_future())
    _PidfdWatch(loop, execution, process, out_read, err_read, on_output)
    return execution


async def _spawn_transport(argv: list[str], env: dict[str, str] | None, cwd: str | None,
                           script_fd: int, on_output: OutputCallback) -> LocalExecution:
    loop = asyncio.get_running_loop()
    execution = LocalExecution(None, loop.create_future())
    transport, _ = await loop.subprocess_exec(
        lambda: _OutputProtocol(execution, on_output), *argv, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
        pass_fds=(script_fd,), start_new_session=True)
    execution._pid = transport.get_pid()
    return execution


@functools.cache
def _devnull() -> int:
    """One read-only /dev/null for every attempt's stdin (Popen would open one each time)."""
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


def _script_fd(script: str) -> int:
    """A readable fd holding ``script``, positioned at its start, not inheritable."""
    data = script.encode("utf-8", "surrogateescape")
    try:
        fd = os.memfd_create("baton-script", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        import tempfile  # only where memfd is missing

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
