"""Run tasks on remote hosts over SSH (asyncssh).

- **One connection per host per run** (:mod:`console.executors.ssh_connect`), opened
  lazily by the first task, reused by every later one, kept alive, and reopened by the
  next task after it was lost. Connection setup (handshakes, shell starts)
  is bounded by a limit that adapts to how long setups take (:mod:`.ssh_setup`).
- **One persistent remote shell per session** (:mod:`console.executors.ssh_shell`): the
  login shell's start-up cost is paid once per host, not once per task, while each task
  still starts from the login environment, in its own process group, with its script fed
  through a pipe (never on a command line) and stdout/stderr kept apart.
- **Host keys are always checked** (:mod:`console.executors.ssh_hostkeys`): the host's
  ``known_hosts``, else ``[ssh]``'s, else ``~/.ssh/known_hosts``. Unknown keys fail unless
  ``accept_new_host_keys`` (then they are recorded); changed keys always fail, loudly.
- **No prompts**: public-key authentication only (keys, agent), no password or
  keyboard-interactive; agent forwarding only where the host asks for it.
- ``~/.ssh/config`` is honoured (aliases, users, ports, identity files, ProxyJump) unless
  ``ssh_config=[]``; values from the workflow win over it.

Every failure is an :class:`ExitStatus` whose ``error`` is one line naming the host.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from console.executors.base import GRACE_SECONDS, CommandRequest, ExitStatus, OutputCallback
from console.executors.containment import new_tag
from console.executors.ssh_connect import (
    MAX_PARALLEL_SETUP,
    MAX_SESSIONS,
    Connector,
    SSHContext,
    SSHError,
)
from console.executors.ssh_shell import ControlSession, RemoteTask, TaskSetupError, task_command
from console.model.workflow import Host, Workflow

__all__ = ["MAX_PARALLEL_SETUP", "MAX_SESSIONS", "SSHContext", "SSHError", "SSHExecution",
           "SSHExecutor", "ssh_executor_factory"]


class SSHExecution:
    """One attempt on a remote host: connect (lazily), run, report."""

    def __init__(self, connector: Connector, request: CommandRequest,
                 on_output: OutputCallback) -> None:
        self._connector = connector
        self._request = request
        self._on_output = on_output
        self._remote: RemoteTask | None = None
        self._session: ControlSession | None = None
        self._killing: asyncio.Future[None] | None = None
        self.tag = request.tag or new_tag()
        """Exported as ``BATON_ATTEMPT`` to everything the task starts on the host."""
        self._job = asyncio.ensure_future(self._run())

    @property
    def name(self) -> str:
        return self._connector.host.name

    async def _run(self) -> ExitStatus:
        request = self._request
        try:
            command = task_command(request.shell, request.script, request.env, request.cwd,
                                   self.tag, request.step or "baton")
        except TaskSetupError as exc:
            return ExitStatus(None, error=f"{self.name}: {exc}")
        try:
            session = await self._connector.acquire()
        except SSHError as exc:
            return ExitStatus(None, error=str(exc))
        self._session = session
        notices = self._connector.context.policy.notices
        while notices:  # keys recorded for this connection (or its jump hosts), as ssh says
            self._on_output("stderr", notices.pop(0) + "\n")
        try:
            self._remote = session.run(command, self._on_output, request.cwd)
            return await asyncio.shield(self._remote.done)
        finally:
            self._connector.release(session)

    async def wait(self) -> ExitStatus:
        try:
            return await asyncio.shield(self._job)
        except asyncio.CancelledError:
            if self._job.cancelled():
                return ExitStatus(None, error=f"{self.name}: cancelled before it started")
            raise

    async def terminate(self, grace: float = GRACE_SECONDS) -> None:
        """TERM the task's whole remote session (group, session, tagged processes), KILL
        it after ``grace`` s, then name what could not be ended. Idempotent."""
        if self._job.done():
            return
        if self._killing is None:
            self._killing = asyncio.ensure_future(self._kill(grace))
        await asyncio.shield(self._killing)

    async def _kill(self, grace: float) -> None:
        remote, session = self._remote, self._session
        if remote is None or session is None:
            self._job.cancel()  # still connecting: stop that
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._job
            return
        try:
            pgid = await asyncio.wait_for(asyncio.shield(remote.started), grace)
        except (TimeoutError, asyncio.CancelledError):
            pgid = 0
        for signal in ("TERM", "KILL"):
            if remote.done.done():
                return
            if pgid:
                session.signal(pgid, signal, self.tag)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(remote.done), grace)
        if not remote.done.done():
            if pgid:
                session.report(pgid, self.tag)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(remote.done), 1.0)
            session.close()  # the remote shell's EXIT trap kills what is left
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(remote.done), grace)


class SSHExecutor:
    """Executor for one remote host; executors built on one :class:`SSHContext` share
    jump-host connections and known_hosts handling (see :func:`ssh_executor_factory`)."""

    def __init__(self, host: Host, *, context: SSHContext | None = None,
                 **options: Any) -> None:
        if context is not None and options:
            raise TypeError("pass either context or options, not both")
        self.host = host
        self.context = context or SSHContext(**options)
        self.context.users += 1
        self._connector = self.context.connector(host)
        self._closed = False

    async def start(self, request: CommandRequest, on_output: OutputCallback) -> SSHExecution:
        return SSHExecution(self._connector, request, on_output)

    async def close(self) -> None:
        """Closes the connections once every executor of the context is closed."""
        if self._closed:
            return
        self._closed = True
        self.context.users -= 1
        if self.context.users <= 0:
            await self.context.close()


def ssh_executor_factory(workflow: Workflow, *, accept_new_host_keys: bool = False,
                         **options: Any) -> Callable[[Host], SSHExecutor]:
    """``executor_for`` for the remote hosts of one run (one shared :class:`SSHContext`)."""
    context = SSHContext(defaults=workflow.ssh, hosts=workflow.hosts,
                         accept_new_host_keys=accept_new_host_keys, **options)

    def make(host: Host) -> SSHExecutor:
        return SSHExecutor(host, context=context)

    return make
