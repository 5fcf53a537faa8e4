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
import functools
import os
import shutil
import subprocess

from console.executors.base import CommandRequest, OutputCallback
from console.executors.containment import TAG_ENV, enable_subreaper, new_tag
from console.executors.local_execution import (
    LEFTOVER_GRACE,
    LocalExecution,
    OutputProtocol,
    PidfdWatch,
    end_tree,
)
from console.executors.local_script import devnull, script_fd, shell_argv
from console.executors.spawn import spawn

__all__ = ["DEFAULT_SHELL", "LEFTOVER_GRACE", "LocalExecution", "LocalExecutor", "pidfd_works"]

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


class LocalExecutor:
    """Runs scripts with a local shell; see the module docstring."""

    use_pidfd: bool | None = None
    """None: use a pidfd when this kernel allows one (tests force either path)."""

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
            fd = script_fd(request.script)
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
        execution.on_leftover = self.leftover
        return execution

    async def close(self) -> None:
        """End what attempts of this executor left running (see the module docstring)."""
        leftovers, self._leftovers = self._leftovers, []
        for execution in leftovers:
            await end_tree(None, execution.pid, 1.0,
                             frozenset({execution.tag} - {""}) | frozenset())


async def _spawn_pidfd(argv: list[str], env: dict[str, str] | None, cwd: str | None,
                       script_fd: int, on_stdin: bool,
                       on_output: OutputCallback) -> LocalExecution:
    loop = asyncio.get_running_loop()
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        process = spawn(argv, stdin=script_fd if on_stdin else devnull(), stdout=out_write,
                        stderr=err_write, env=env, cwd=cwd,
                        keep_fd=None if on_stdin else script_fd)
    except BaseException:
        os.close(out_read)
        os.close(err_read)
        raise
    finally:
        os.close(out_write)
        os.close(err_write)
    execution = LocalExecution(process.pid, loop.create_future())
    execution._watch = PidfdWatch(loop, execution, process, out_read, err_read, on_output)
    return execution


async def _spawn_transport(argv: list[str], env: dict[str, str] | None, cwd: str | None,
                           script_fd: int, on_stdin: bool,
                           on_output: OutputCallback) -> LocalExecution:
    loop = asyncio.get_running_loop()
    execution = LocalExecution(None, loop.create_future())
    protocol = OutputProtocol(execution, on_output)
    transport, _ = await loop.subprocess_exec(
        lambda: protocol, *argv, stdin=script_fd if on_stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
        pass_fds=() if on_stdin else (script_fd,), start_new_session=True)
    execution._pid = transport.get_pid()
    execution._watch = protocol
    return execution
