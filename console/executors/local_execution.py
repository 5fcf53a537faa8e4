"""One local attempt while it runs: its output pipes, its exit, its leftovers.

An attempt ends when its shell has exited and its output pipes are closed; when
something the shell started still holds them :data:`LEFTOVER_GRACE` seconds after the
shell exited, the attempt ends anyway, its log names those processes, and its
``on_leftover`` callback hands them to the executor, which ends them when the run ends.

On Linux an attempt is two non-blocking pipes and a pidfd read straight from the event
loop (:class:`PidfdWatch`); elsewhere asyncio's subprocess transports
(:class:`OutputProtocol`) keep the same contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import subprocess
from collections.abc import Callable

from console.executors.base import GRACE_SECONDS, ExitStatus, OutputCallback, Stream
from console.executors.containment import describe, tagged_pids
from console.executors.lines import LineSplitter

LEFTOVER_GRACE = 2.0
"""Seconds an attempt waits, after its shell exited, for what it started to close the
output pipes; then the attempt ends and those processes are named in its log."""


READ_SIZE = 256 * 1024
"""Bytes per read of an output pipe (what asyncio's pipe transports use)."""

READ_PAUSE = 0.0
"""Seconds to wait after a read that emptied a pipe before reading it again (0: read as
soon as anything is there). A process with no screen to keep live (the runner) sets a
few milliseconds: a step printing line by line is then read in chunks of many lines,
not one read (and one output event) per line or two, at that much latency. While
pausing, the pipes hold :data:`PAUSED_PIPE_SIZE` bytes, so the step does not wait."""

PAUSED_PIPE_SIZE = 1 << 17
"""Bytes an output pipe holds when reads pause (a step writing 100 MB/s fills it in
1.3 ms; a bigger pipe makes bigger reads, each later on its way to a console: 1 MiB
took a bulk flood's lines from 1 ms to 13 ms)."""


class LocalExecution:
    """One running (or failed-to-start) attempt on the local machine.

    ``done`` resolves once the shell has exited and both output pipes are closed, or
    :data:`LEFTOVER_GRACE` s after the shell exited while something else still held them
    (see the module docstring), or when :meth:`terminate` has done what it could.
    """

    def __init__(self, pid: int | None = None, done: asyncio.Future[None] | None = None,
                 error: str | None = None, tag: str = "",
                 on_leftover: Callable[[LocalExecution], None] | None = None) -> None:
        self._pid = pid
        self._done = done
        self._error = error
        self.tag = tag
        self.on_leftover = on_leftover
        """Told when processes outlive the attempt (the executor ends them later)."""
        self.returncode: int | None = None
        """The shell's exit code, or minus the signal that ended it; None while it runs."""
        self._killing: asyncio.Future[None] | None = None
        self._watch: PidfdWatch | OutputProtocol | None = None
        self.left: list[int] = []
        """Processes still running when the attempt ended (named in its log)."""

    @classmethod
    def failed(cls, error: str) -> LocalExecution:
        return cls(error=error)

    @property
    def pid(self) -> int | None:
        """The shell's pid (also its process group and session id); None if it never started."""
        return self._pid

    async def wait(self) -> ExitStatus:
        if self._done is None:
            return ExitStatus(exit_code=None, error=self._error)
        # Shielded: a waiter being cancelled must not cancel the attempt's bookkeeping.
        await asyncio.shield(self._done)
        code = self.returncode
        if code is None:
            return ExitStatus(exit_code=None, error="the shell could not be ended (still "
                              f"running as pid {self._pid})")
        if code < 0:
            return ExitStatus(exit_code=None, signal=-code)
        return ExitStatus(exit_code=code)

    async def terminate(self, grace: float = GRACE_SECONDS) -> None:
        """TERM the whole tree, KILL what is left after ``grace`` s; then the attempt ends
        whatever holds its pipes. Idempotent."""
        if self._done is None or self._done.done():
            return
        if self._killing is None:
            self._killing = asyncio.ensure_future(self._kill(grace))
        await asyncio.shield(self._killing)

    async def _kill(self, grace: float) -> None:
        # Once the shell has exited its pid may be reused: only its group (still
        # holding our pipes open, or `done` would be set) and its tag are signalled then.
        root = self._pid if self.returncode is None else None
        left = await end_tree(root, self._pid, grace, frozenset({self.tag} - {""}))
        if self._done is None:
            return
        if not self._done.done():
            # The tree is gone (or as gone as it gets): give the exit and the last output
            # a moment to arrive through the loop, then end the attempt whatever holds
            # the pipes (a process we may not signal, one stuck in the kernel).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._done), 1.0)
        if self._watch is not None and not self._done.done():
            if left:
                self._watch.say(f"baton: could not end {describe(left)}")
            self._watch.abandon([])

    def _leftovers(self) -> list[int]:
        """What of this attempt still runs after its shell exited (its group, its tag)."""
        pids = set(tagged_pids({self.tag} if self.tag else set()))
        if self._pid is not None:
            for pid in _group(self._pid):
                pids.add(pid)
        pids.discard(self._pid or -1)
        return sorted(pids)

    def _finished(self) -> None:
        done = self._done
        if done is not None and not done.done():
            done.set_result(None)


def _group(pgid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getpgid(int(name)) == pgid:
                    out.append(int(name))
            except OSError:
                continue
    return out


class PidfdWatch:
    """Reads both pipes and reaps the shell from event-loop callbacks (Linux)."""

    __slots__ = ("_add_reader", "_execution", "_fds", "_grace", "_loop", "_on_output",
                 "_pause", "_pidfd", "_process", "_remove_reader")

    def __init__(self, loop: asyncio.AbstractEventLoop, execution: LocalExecution,
                 process: subprocess.Popen[bytes], stdout: int, stderr: int,
                 on_output: OutputCallback) -> None:
        # The selector loop's own registration skips a per-call check that no transport
        # owns the fd: these fds are ours alone. Other loops get the public API.
        self._add_reader = getattr(loop, "_add_reader", loop.add_reader)
        self._remove_reader = getattr(loop, "_remove_reader", loop.remove_reader)
        self._loop = loop
        self._execution = execution
        self._process = process
        self._on_output = on_output
        self._pause = READ_PAUSE
        self._grace: asyncio.TimerHandle | None = None
        self._fds: dict[int, tuple[Stream, LineSplitter]] = {}
        pipes: tuple[tuple[int, Stream], ...] = ((stdout, "stdout"), (stderr, "stderr"))
        for fd, stream in pipes:
            os.set_blocking(fd, False)
            if self._pause > 0:
                with contextlib.suppress(OSError, AttributeError):  # a bigger pipe, if allowed
                    fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PAUSED_PIPE_SIZE)
            self._fds[fd] = (stream, LineSplitter())
            self._add_reader(fd, self._readable, fd)
        self._pidfd: int | None = os.pidfd_open(process.pid)
        self._add_reader(self._pidfd, self._exited)

    def _readable(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        stream, lines = self._fds[fd]
        if data:
            text = lines.feed(data)
            if text is not None:
                self._on_output(stream, text)
            if self._pause > 0 and len(data) < READ_SIZE and fd in self._fds:
                self._remove_reader(fd)  # emptied: let more gather (see READ_PAUSE)
                self._loop.call_later(self._pause, self._resume, fd)
            return
        self._close(fd)
        if not self._fds and self._execution.returncode is not None:
            self._end()

    def _resume(self, fd: int) -> None:
        if fd in self._fds:  # not closed meanwhile
            self._add_reader(fd, self._readable, fd)

    def _close(self, fd: int) -> None:
        stream, lines = self._fds.pop(fd)
        self._remove_reader(fd)
        os.close(fd)
        text = lines.flush()
        if text is not None:
            self._on_output(stream, text)

    def _exited(self) -> None:
        if self._pidfd is not None:
            self._remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self._reap(0)
        if not self._fds:
            self._end()
        elif self._grace is None:
            loop = asyncio.get_running_loop()
            self._grace = loop.call_later(LEFTOVER_GRACE, self._leftover)

    def _reap(self, flags: int) -> None:
        if self._execution.returncode is not None:
            return
        pid = self._process.pid
        try:
            reaped, status = os.waitpid(pid, flags)
        except ChildProcessError:
            reaped, status = pid, -1  # reaped elsewhere
        if not reaped:
            return
        code = 255 if status == -1 else os.waitstatus_to_exitcode(status)  # 255: asyncio's
        # A Popen must know: one it thinks is running would be reaped again by the
        # subprocess module's cleanup of lost children.
        self._process.returncode = self._execution.returncode = code

    def _leftover(self) -> None:
        self._grace = None
        if self._fds:
            self.abandon(self._execution._leftovers())

    def say(self, text: str) -> None:
        self._on_output("stderr", text)

    def abandon(self, left: list[int]) -> None:
        """Stop reading (whatever holds the pipes) and end the attempt."""
        _keep_leftovers(self._execution, left, self.say)
        for fd in list(self._fds):
            self._close(fd)
        if self._pidfd is not None and self._execution.returncode is None:
            self._reap(os.WNOHANG)
        self._end()

    def _end(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        if self._pidfd is not None and self._execution.returncode is not None:
            self._remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self._execution._finished()


def _keep_leftovers(execution: LocalExecution, left: list[int],
                    say: Callable[[str], None]) -> None:
    """Name the processes still holding the step's output (``left``) on its stderr and
    hand them to the executor, which ends them when the run ends."""
    if not left:
        return
    execution.left = left
    say(f"baton: still running after the step's shell exited: {describe(left)}"
        "; ended when the run ends")
    if execution.on_leftover is not None:
        execution.on_leftover(execution)


class OutputProtocol(asyncio.SubprocessProtocol):
    """The portable path: feeds each pipe through its own LineSplitter."""

    def __init__(self, execution: LocalExecution, on_output: OutputCallback) -> None:
        self._execution = execution
        self._on_output = on_output
        self._lines: dict[int, tuple[Stream, LineSplitter]] = {
            1: ("stdout", LineSplitter()), 2: ("stderr", LineSplitter())}
        self._transport: asyncio.SubprocessTransport | None = None
        self._grace: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        stream, lines = self._lines[fd]
        text = lines.feed(data)
        if text is not None:
            self._on_output(stream, text)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        stream, lines = self._lines[fd]
        text = lines.flush()
        if text is not None:
            self._on_output(stream, text)

    def process_exited(self) -> None:
        # Set as soon as the shell exits (terminate() must not signal a reaped pid), which
        # asyncio reports before connection_lost.
        if self._transport is not None:
            self._execution.returncode = self._transport.get_returncode()
            loop = asyncio.get_running_loop()
            self._grace = loop.call_later(LEFTOVER_GRACE, self._leftover)

    def _leftover(self) -> None:
        self._grace = None
        if not self._execution._done or self._execution._done.done():
            return
        self.abandon(self._execution._leftovers())

    def say(self, text: str) -> None:
        self._on_output("stderr", text)

    def abandon(self, left: list[int]) -> None:
        _keep_leftovers(self._execution, left, self.say)
        if self._transport is not None:
            self._transport.close()
        self._execution._finished()

    def connection_lost(self, exc: Exception | None) -> None:
        # asyncio calls this once the process has exited AND both pipes are closed.
        if self._grace is not None:
            self._grace.cancel()
        if self._transport is not None:
            self._transport.close()  # marks it closed: no ResourceWarning when collected
        self._execution._finished()


async def end_tree(pid: int | None, pgid: int | None, grace: float,
                     tags: frozenset[str] = frozenset()) -> list[int]:
    """psutil is imported only when something must be killed (it costs 40 ms at start-up)."""
    from console.executors.proctree import kill_tree

    return await kill_tree(pid, pgid, grace, tags)
