"""The SSH connection to one host and its pool of persistent shells.

A :class:`Connector` opens its host's connection lazily (the first task), reuses it for
every later task, keeps it alive, and reopens it after it was lost; handshakes and shell
starts are bounded by an adaptive limit (:mod:`console.executors.ssh_setup`, one per
event loop). Host keys are judged by :mod:`console.executors.ssh_hostkeys`, ``~/.ssh/config`` by
:mod:`console.executors.ssh_config`; every failure is an :class:`SSHError` whose text is
one line naming the host. :class:`SSHContext` is what every connection of one run shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import asyncssh

from console.executors.base import HostKeyAsker, HostKeyQuestion
from console.executors.ssh_config import (
    Resolved,
    config_paths,
    expand_proxy_command,
    jump_destination,
    resolve,
)
from console.executors.ssh_hostkeys import HostKeyPolicy, KnownHosts, Verdict, describe
from console.executors.ssh_setup import SetupLimit, setup_limit
from console.executors.ssh_shell import BOOT_COMMAND, ControlSession
from console.model.workflow import Host, SSHOptions

__all__ = ["MAX_PARALLEL_SETUP", "MAX_SESSIONS", "Connector", "SSHContext", "SSHError"]

MAX_PARALLEL_SETUP = 256
"""The most host setups in flight at once (per event loop): a handshake, or a new session
up to its shell being ready. How many run at once within that adapts to how long they
take (:class:`~console.executors.ssh_setup.SetupLimit`): on shared CPU (loopback, a busy
jump host) a herd of them costs every one more, past a cliff (bench/ssh_fanout.py, 300
loopback hosts: 8-32 at once within 0.94-1.01x of OpenSSH, 64 at once 2.6x)."""
INITIAL_PARALLEL_SETUP = 8
"""Setups let in at once before any has ended (then adapted)."""
LEAST_PARALLEL_SETUP = 8
"""The adaptive limit never goes below this (a mixed fleet's far hosts look congested)."""
MAX_SESSIONS = 8
"""Persistent shells per connection; OpenSSH allows 10 sessions (MaxSessions)."""
KEEPALIVE_INTERVAL = 15.0
KEEPALIVE_COUNT_MAX = 3


def _setup_limit() -> SetupLimit:
    return setup_limit(MAX_PARALLEL_SETUP, INITIAL_PARALLEL_SETUP, LEAST_PARALLEL_SETUP)


_JUMP_CHAIN: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "baton_jump_chain", default=())
"""Hosts whose connection is waiting for the jump being opened (to refuse loops)."""


class SSHError(Exception):
    """A connection problem; ``str()`` is the one-line reason, naming the host."""


@dataclass
class SSHContext:
    """What every SSH connection of one run shares.

    ``ssh_config``: ``()`` reads ``~/.ssh/config`` (the default), ``[]`` reads nothing, a
    path or list of paths reads those files.
    """

    defaults: SSHOptions = field(default_factory=SSHOptions)
    hosts: Mapping[str, Host] = field(default_factory=dict)
    accept_new_host_keys: bool = False
    ssh_config: str | Sequence[str] = ()
    connect_timeout: float | None = None
    """Overrides ``defaults.connect_timeout`` when set."""
    keepalive_interval: float = KEEPALIVE_INTERVAL
    max_sessions: int = MAX_SESSIONS
    ask_host_key: HostKeyAsker | None = None
    """Asked about an unknown host key (when not accepted anyway); None refuses it."""
    policy: HostKeyPolicy = field(init=False)
    connectors: dict[str, Connector] = field(init=False, default_factory=dict)
    users: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.policy = HostKeyPolicy(self.accept_new_host_keys)

    def connector(self, host: Host) -> Connector:
        found = self.connectors.get(host.name)
        if found is None:
            found = self.connectors[host.name] = Connector(self, host)
        return found

    async def close(self) -> None:
        connectors, self.connectors = list(self.connectors.values()), {}
        # targets first: a jump connection carries the connections tunnelled through it
        connectors.sort(key=lambda c: c.host.name in {x.host.jump for x in connectors})
        for connector in connectors:
            await connector.close()


class _UnknownKey(SSHError):
    """A host key no known_hosts vouches for, with what is needed to ask about it."""

    def __init__(self, reason: str, verdict: Verdict, known_hosts: KnownHosts) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.known_hosts = known_hosts


class _Client(asyncssh.SSHClient):
    """Judges host keys asyncssh does not trust and notices a lost connection."""

    def __init__(self, connector: Connector, known_hosts: KnownHosts) -> None:
        self._connector = connector
        self._known_hosts = known_hosts
        self.verdict: Verdict | None = None
        self.lost = False

    def validate_host_public_key(self, host: str, addr: str, port: int, key: Any) -> bool:
        verdict = self._known_hosts.judge(host, addr, port, key)
        policy = self._connector.context.policy
        if verdict.kind == "unknown" and policy.accept_new:
            self._known_hosts.record(host, port, key)
            policy.notices.append(f"baton: permanently added the host key of {verdict.label} "
                                  f"({verdict.fingerprint}) to {self._known_hosts.path}")
            return True
        self.verdict = verdict
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._connector.lost(self)


class Connector:
    """The connection to one host and its pool of persistent shells."""

    def __init__(self, context: SSHContext, host: Host) -> None:
        self.context = context
        self.host = host
        self._conn: asyncssh.SSHClientConnection | None = None
        self._client: _Client | None = None
        self._lock = asyncio.Lock()
        self._idle: list[ControlSession] = []
        self._slots = asyncio.Semaphore(context.max_sessions)
        self._closed = False
        self.resolved: Resolved | None = None

    # -- the connection

    def _settings(self) -> dict[str, Any]:
        host = self.host
        try:
            resolved = self.resolved = resolve(host, self.context.defaults,
                                               self.context.ssh_config)
        except ValueError as exc:
            raise SSHError(str(exc)) from None
        options: dict[str, Any] = {
            "config": config_paths(self.context.ssh_config),
            "connect_timeout": self.timeout,
            "keepalive_interval": self.context.keepalive_interval,
            "keepalive_count_max": KEEPALIVE_COUNT_MAX,
            "agent_forwarding": host.forward_agent,
            "password_auth": False,
            "kbdint_auth": False,
            "gss_auth": False,
            "host_based_auth": False,
            "port": resolved.port,
            "username": resolved.user,
            # existing files only (OpenSSH skips missing ones); [] = default keys + agent
            "client_keys": list(resolved.identities),
            "proxy_command": (expand_proxy_command(resolved.proxy_command, resolved)
                              if resolved.proxy_command and not resolved.jump else None),
        }
        return options

    @property
    def timeout(self) -> float:
        return self.context.connect_timeout or self.context.defaults.connect_timeout

    @property
    def label(self) -> str:
        if self.resolved is not None:
            return f"{self.resolved.hostname}:{self.resolved.port}"
        port = self.host.port or self.context.defaults.port or 22
        return f"{self.host.address}:{port}"

    async def connection(self) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if self._conn is not None and self._client is not None and not self._client.lost:
                return self._conn
            if self._closed:
                raise SSHError(f"{self.host.name}: the run's SSH connections are closed")
            settings = self._settings()
            tunnel: Any = None
            if self.resolved is not None and self.resolved.jump:
                tunnel = await self._jump(self.resolved.jump)
            try:
                async with _setup_limit().slot():
                    self._conn = await self._open(tunnel, settings)
            except _UnknownKey as unknown:  # ask outside the setup limit: it may take long
                if not await self._trust(unknown):
                    raise SSHError(str(unknown)) from None
                async with _setup_limit().slot():
                    self._conn = await self._open(tunnel, settings)
            return self._conn

    async def _trust(self, unknown: _UnknownKey) -> bool:
        """Ask the operator about an unknown key; trusted, it is recorded like
        ``--accept-new-host-keys`` does (a changed key never gets here)."""
        ask, verdict = self.context.ask_host_key, unknown.verdict
        if ask is None or verdict.key is None:
            return False
        question = HostKeyQuestion(self.host.name, verdict.label, verdict.key_type,
                                   verdict.fingerprint, str(unknown.known_hosts.path))
        if not await ask(question):
            return False
        unknown.known_hosts.record(verdict.host, verdict.port, verdict.key)
        return True

    async def _jump(self, spec: str) -> asyncssh.SSHClientConnection:
        try:
            jump_host = jump_destination(spec, self.host, self.context.hosts, self.resolved)
        except ValueError as exc:
            raise SSHError(str(exc)) from None
        if jump_host.name == self.host.name:
            raise SSHError(f"{self.host.name}: a host cannot be its own jump host")
        chain = _JUMP_CHAIN.get()
        if jump_host.name in chain:  # e.g. ssh_config's `Host *` + ProxyJump on the bastion
            loop = " -> ".join((*chain, self.host.name, jump_host.name))
            raise SSHError(f"{self.host.name}: jump hosts loop: {loop}")
        token = _JUMP_CHAIN.set((*chain, self.host.name))
        try:
            return await self.context.connector(jump_host).connection()
        except SSHError as exc:
            raise SSHError(f"{self.host.name}: via jump host {exc}") from None
        finally:
            _JUMP_CHAIN.reset(token)

    async def _open(self, tunnel: Any, settings: dict[str, Any]) -> asyncssh.SSHClientConnection:
        known_hosts = self.context.policy.file(self.host.known_hosts
                                               or self.context.defaults.known_hosts)
        client = _Client(self, known_hosts)
        try:
            conn = await asyncssh.connect(
                self.host.address, tunnel=tunnel, known_hosts=known_hosts.lookup,
                client_factory=lambda: client, **settings)
        except Exception as exc:  # every failure becomes one line naming the host
            reason = self._reason(exc, client, known_hosts)
            verdict = client.verdict
            if (isinstance(exc, asyncssh.HostKeyNotVerifiable) and verdict is not None
                    and verdict.kind == "unknown" and self.context.ask_host_key is not None):
                raise _UnknownKey(reason, verdict, known_hosts) from None
            raise SSHError(reason) from None
        self._client = client
        return conn

    def _reason(self, exc: Exception, client: _Client, known_hosts: KnownHosts) -> str:
        name, label = self.host.name, self.label
        if isinstance(exc, asyncssh.HostKeyNotVerifiable):
            if client.verdict is not None:
                return describe(client.verdict, known_hosts, name)
            return f"{name}: host key of {label} refused: {exc.reason}"
        if isinstance(exc, asyncssh.PermissionDenied):
            missing = self.resolved.missing if self.resolved is not None else []
            skipped = "".join(f"; ssh_config IdentityFile {path} does not exist"
                              for path in missing)
            return (f"{name}: authentication failed at {label} (public key only; "
                    f"password prompts are disabled{skipped})")
        if isinstance(exc, ConnectionRefusedError):
            return f"{name}: connection refused by {label}"
        if isinstance(exc, TimeoutError):
            return f"{name}: connection to {label} timed out after {self.timeout:g}s"
        if isinstance(exc, asyncssh.ConnectionLost):
            return f"{name}: connection to {label} lost during setup ({exc.reason})"
        if isinstance(exc, asyncssh.DisconnectError):
            return f"{name}: {label} closed the connection: {exc.reason}"
        if isinstance(exc, OSError):
            return f"{name}: cannot connect to {label}: {exc.strerror or exc}"
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return f"{name}: ssh to {label} failed: {detail}"

    def lost(self, client: _Client) -> None:
        if client is self._client:
            self._conn = None
            self._client = None
            self._idle.clear()

    # -- the shells

    async def acquire(self) -> ControlSession:
        """A free persistent shell on this host, opening the connection if needed."""
        await self._slots.acquire()
        try:
            conn = await self.connection()
            while self._idle:
                session = self._idle.pop()
                if not session.closed:
                    return session
            async with _setup_limit().slot():  # the session's start is setup too (see below)
                return await self._open_session(conn)
        except BaseException:
            self._slots.release()
            raise

    async def _open_session(self, conn: asyncssh.SSHClientConnection) -> ControlSession:
        """A new persistent shell, returned once it is up (or after the connect timeout).

        Called inside the setup limit: starting a session is the dearest part of a host's
        setup for the server (sshd's fork, the login shell and its rc files), and a herd
        of them started at once costs it far more per session (bench/ssh_phases.py, 100
        hosts: 2.5-3.5x the sshd-side CPU of the same sessions 16 at a time)."""
        try:
            _, opened = await conn.create_session(
                lambda: ControlSession(self.host.name, self._dropped), BOOT_COMMAND,
                encoding=None)
        except (asyncssh.Error, OSError) as exc:
            reason = getattr(exc, "reason", "") or str(exc) or type(exc).__name__
            raise SSHError(f"{self.host.name}: cannot open a session on {self.label}: "
                           f"{reason}") from None
        session = cast(ControlSession, opened)  # the factory's product, typed generically
        session.start()
        with contextlib.suppress(TimeoutError):  # a slow rc file only stops holding the slot
            await asyncio.wait_for(asyncio.shield(session.ready), self.timeout)
        if session.closed:  # the connection went while the shell started
            raise SSHError(f"{self.host.name}: cannot open a session on {self.label}: "
                           f"connection lost ({session.close_reason})")
        return session

    def release(self, session: ControlSession) -> None:
        if session.closed or session.busy or self._closed:
            session.close()
        else:
            self._idle.append(session)
        self._slots.release()

    def _dropped(self, session: ControlSession) -> None:
        if session in self._idle:
            self._idle.remove(session)

    async def close(self) -> None:
        self._closed = True
        for session in self._idle:
            session.close()
        self._idle.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5)
