"""Run a task's script on this machine.

The script goes to the shell through a file descriptor (a memfd, or an unlinked
temporary file where memfd is missing), never through argv: it may hold secrets, which
must not show up in ``ps`` (/proc/*/cmdline). A POSIX shell (sh, bash, dash, zsh, ksh …)
gets it as stdin, reads all of it, replaces stdin with /dev/null (closing the script)
and only then runs it (:data:`BOOT`): no process the step starts can read the script
back, not even through ``/proc/<shell>/fd``, and a command that reads stdin reads
/dev/null. Another interpreter is given an inherited descriptor as ``/dev/fd/N`` (and
stdin /dev/null).

Each attempt runs in its own session and process group, and carries a tag in its
environment (:mod:`console.executors.containment`), so cancelling it can end the whole
tree, daemons that left the session included (see :mod:`console.executors.proctree`).
An attempt ends when its shell has exited and its output pipes are closed; when
something the shell started still holds them :data:`LEFTOVER_GRACE` seconds after the
shell exited, the attempt ends anyway, its log names those processes, and they are
ended when the run ends (:meth:`LocalExecutor.close`).

Spawning is the hot path of a big DAG (a 1,000-step graph of ``true`` is mostly spawns),
so on Linux an attempt is two non-blocking pipes and a pidfd read straight from the
event loop: no transports, protocols or tasks per process, no threads, no psutil on the
happy path. Elsewhere (no pidfd) the same contract is kept with asyncio's subprocess
transports.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import subprocess
from collections.abc import Callable

from console.executors.base import (
    GRACE_SECONDS,
    CommandRequest,
    ExitStatus,
    OutputCallback,
    Stream,
)
from console.executors.containment import (
    TAG_ENV,
    describe,
    enable_subreaper,
    new_tag,
    tagged_pids,
)
from console.executors.lines import LineSplitter
from console.executors.spawn import Child, spawn

DEFAULT_SHELL = "/bin/sh"

POSIX_SHELLS = frozenset({"sh", "ash", "dash", "bash", "ksh", "mksh", "zsh", "yash",
                          "busybox"})
"""Interpreters given :data:`BOOT` (``-c``); any other gets the script as ``/dev/fd/N``."""

BOOT = ('__baton_s=$({cat}) || exit 126\n'
        'eval "exec </dev/null; unset __baton_s; $__baton_s"')
"""The shell's stdin is the script: read it all, make stdin /dev/null (which closes the
script), forget the variable, run the script."""

BOOT_SMALL = ('__baton_s=; while IFS= read -r __baton_l; do __baton_s="$__baton_s$__baton_l\n'
              '"; done; __baton_s="$__baton_s$__baton_l"\n'
              'eval "exec </dev/null; unset __baton_s __baton_l; $__baton_s"')
"""The same with the shell's own ``read``: no ``cat`` to start (most of a short step's
cost), but a byte per system call, so only for short scripts (:data:`SMALL_SCRIPT`)."""

SMALL_SCRIPT = 1024
"""Scripts up to this many bytes are read with :data:`BOOT_SMALL`."""

LEFTOVER_GRACE = 2.0
"""Seconds an attempt waits, after its shell exited, for what it started to close the
output pipes; then the attempt ends and those processes are named in its log."""


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


@functools.cache
def _cat() -> str | None:
    found = shutil.which("cat", path=os.defpath + os.pathsep + os.environ.get("PATH", ""))
    return found if found and "'" not in found else None


def shell_argv(shell: str, fd: int, name: str, size: int = 0) -> tuple[list[str], bool]:
    """The argv that makes ``shell`` run the ``size``-byte script on descriptor ``fd``,
    and whether the script goes to its stdin (True) or stays inherited as ``fd``."""
    if os.path.basename(shell) in POSIX_SHELLS:
        if size <= SMALL_SCRIPT:
            return [shell, "-c", BOOT_SMALL, name], True
        cat = _cat()
        if cat is not None:
            return [shell, "-c", BOOT.format(cat=f"'{cat}'"), name], True
    return [shell, f"/dev/fd/{fd}"], False


READ_SIZE = 256 * 1024
"""Bytes per read of an output pipe (what asyncio's pipe transports use)."""


class LocalExecution:
    """One running (or failed-to-start) attempt on the local machine.

    ``done`` resolves once the shell has exited and both output pipes are closed, or
    :data:`LEFTOVER_GRACE` s after the shell exited while something else still held them
    (see the module docstring), or when :meth:`terminate` has done what it could.
    """

    def __init__(self, pid: int | None = None, done: asyncio.Future[None] | None = None,
                 error: str | None = None, tag: str = "",
                 executor: LocalExecutor | None = None) -> None:
        self._pid = pid
        self._done = done
        self._error = error
        self.tag = tag
        self._executor = executor
        self.returncode: int | None = None
        """The shell's exit code, or minus the signal that ended it; None while it runs."""
        self._killing: asyncio.Future[None] | None = None
        self._watch: _PidfdWatch | _OutputProtocol | None = None
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
        left = await _kill_tree(root, self._pid, grace, frozenset({self.tag} - {""}))
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


class _PidfdWatch:
    """Reads both pipes and reaps the shell from event-loop callbacks (Linux)."""

    __slots__ = ("_add_reader", "_execution", "_fds", "_grace", "_on_output", "_pidfd",
                 "_process", "_remove_reader")

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
        self._grace: asyncio.TimerHandle | None = None
        self._fds: dict[int, tuple[Stream, LineSplitter]] = {}
        pipes: tuple[tuple[int, Stream], ...] = ((stdout, "stdout"), (stderr, "stderr"))
        for fd, stream in pipes:
            os.set_blocking(fd, False)
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
            return
        self._close(fd)
        if not self._fds and self._execution.returncode is not None:
            self._end()

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
    if execution._executor is not None:
        execution._executor.leftover(execution)


class _OutputProtocol(asyncio.SubprocessProtocol):
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


class LocalExecutor:
    """Runs scripts with a local shell; see the module docstring."""

    use_pidfd: bool | None = None
    """None: use a pidfd when this kernel allows one (tests force either path)."""
    direct_spawn: bool | None = None
    """None: :mod:`console.executors.spawn` decides; False: always Popen (tests)."""

    def __init__(self) -> None:
        enable_subreaper()
        self._leftovers: list[LocalExecution] = []

    def leftover(self, execution: LocalExecution) -> None:
        """Remember an attempt whose processes outlived it: :meth:`close` ends them."""
        self._leftovers.append(execution)

    async def start(self, request: CommandRequest, on_output: OutputCallback) -> LocalExecution:
        tag = request.tag or new_tag()
        env = os.environ | request.env if request.env else dict(os.environ)
        env[TAG_ENV] = tag
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
            found = shutil.which(shell, path=env.get("PATH", os.defpath))
            if found is None:
                return LocalExecution.failed(f"cannot start {shell}: not found on PATH")
            shell = found
        try:
            fd = _script_fd(request.script)
        except (OSError, ValueError) as exc:
            return LocalExecution.failed(f"cannot hand the script to {shell}: {exc}")
        use_pidfd = self.use_pidfd if self.use_pidfd is not None else pidfd_works()
        launch = _spawn_pidfd if use_pidfd else _spawn_transport
        argv, on_stdin = shell_argv(shell, fd, request.step or "baton", len(request.script))
        try:
            execution = await launch(argv, env, cwd, fd, on_stdin, on_output)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if cwd is not None and exc.filename == cwd:
                return LocalExecution.failed(f"cannot change to cwd {cwd}: {reason}")
            return LocalExecution.failed(f"cannot start {shell}: {reason}")
        except ValueError as exc:  # e.g. "=" or NUL in an environment variable name
            return LocalExecution.failed(f"cannot start {shell}: {exc}")
        finally:
            os.close(fd)
        execution.tag = tag
        execution._executor = self
        return execution

    async def close(self) -> None:
        """End what attempts of this executor left running (see the module docstring)."""
        leftovers, self._leftovers = self._leftovers, []
        for execution in leftovers:
            await _kill_tree(None, execution.pid, 1.0,
                             frozenset({execution.tag} - {""}) | frozenset())


async def _spawn_pidfd(argv: list[str], env: dict[str, str] | None, cwd: str | None,
                       script_fd: int, on_stdin: bool,
                       on_output: OutputCallback) -> LocalExecution:
    loop = asyncio.get_running_loop()
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        process = spawn(argv, stdin=script_fd if on_stdin else _devnull(), stdout=out_write,
                        stderr=err_write, env=env, cwd=cwd,
                        keep_fd=None if on_stdin else script_fd,
                        direct=LocalExecutor.direct_spawn)
    except BaseException:
        os.close(out_read)
        os.close(err_read)
        raise
    finally:
        os.close(out_write)
        os.close(err_write)
    execution = LocalExecution(process.pid, loop.create_future())
    execution._watch = _PidfdWatch(loop, execution, process, out_read, err_read, on_output)
    return execution


async def _spawn_transport(argv: list[str], env: dict[str, str] | None, cwd: str | None,
                           script_fd: int, on_stdin: bool,
                           on_output: OutputCallback) -> LocalExecution:
    loop = asyncio.get_running_loop()
    execution = LocalExecution(None, loop.create_future())
    protocol = _OutputProtocol(execution, on_output)
    transport, _ = await loop.subprocess_exec(
        lambda: protocol, *argv, stdin=script_fd if on_stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
        pass_fds=() if on_stdin else (script_fd,), start_new_session=True)
    execution._pid = transport.get_pid()
    execution._watch = protocol
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


async def _kill_tree(pid: int | None, pgid: int | None, grace: float,
                     tags: frozenset[str] = frozenset()) -> list[int]:
    """psutil is imported only when something must be killed (it costs 40 ms at start-up)."""
    from console.executors.proctree import kill_tree

    return await kill_tree(pid, pgid, grace, tags)
