"""One client API for a live run, whether it runs in this process or in a runner.

:class:`RunClient` is what a console needs: the run's state now (:meth:`snapshot`), what
happens next (:meth:`events`, SPEC section 4 objects plus ``snapshot`` messages after a
resync) and operator actions (:meth:`act`, answered once durable). :class:`SocketClient`
speaks the attach protocol to a runner; :class:`LocalClient` wraps a :class:`Run` of this
process and behaves the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from console.engine.actions import ActionError
from console.engine.events import Event
from console.runner import protocol as p
from console.runner.protocol import Action
from console.runner.reader import ThreadReader

if TYPE_CHECKING:
    from console.engine.run import Run


@dataclass(frozen=True, slots=True)
class Ack:
    ok: bool
    error: str | None = None


class RunClient(Protocol):
    run_id: str

    def snapshot(self) -> dict[str, Any]:
        """The latest snapshot message (protocol section "snapshot")."""
        ...

    def events(self) -> AsyncIterator[dict[str, Any]]:
        """Events after the snapshot, one dict each; ends when the run's connection does."""
        ...

    async def act(self, action: Action) -> Ack:
        """Ask for an operator action; returns once it is recorded (or refused)."""
        ...

    async def close(self) -> None: ...


class ConnectError(Exception):
    """The run cannot be reached (gone, refused, another protocol): one line."""


class SocketClient:
    """A connection to a live run's socket. Use :func:`connect`. Its messages are read in
    a thread (:class:`console.runner.reader.ThreadReader`); actions are written from the
    loop."""

    def __init__(self, sock: socket.socket, hello: dict[str, Any], snapshot: dict[str, Any],
                 rest: bytes = b"") -> None:
        self._sock = sock
        self.hello = hello
        self.run_id: str = str(hello["run_id"])
        self.user: str = str(hello.get("user"))
        self._snapshot = snapshot
        self._queue: asyncio.Queue[tuple[dict[str, Any], int] | None] = asyncio.Queue()
        self._pending: dict[int, asyncio.Future[Ack]] = {}
        self._next = 0
        self._write = asyncio.Lock()
        self.closed = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._reader = ThreadReader(sock, loop, rest, self._deliver, self._ended)

    def snapshot(self) -> dict[str, Any]:
        return self._snapshot

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            item = await self._queue.get()
            if item is None:
                self._queue.put_nowait(None)  # every later call ends too
                return
            message, size = item
            self._reader.consumed(size)
            yield message

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._write:
            await self._loop.sock_sendall(self._sock, p.encode(message))

    async def act(self, action: Action) -> Ack:
        if self.closed.is_set():
            return Ack(False, "the connection to the run is closed")
        self._next += 1
        future: asyncio.Future[Ack] = self._loop.create_future()
        self._pending[self._next] = future
        try:
            await self._send(action.to_message(self._next))
        except OSError:
            self._pending.pop(self._next, None)
            return Ack(False, "the connection to the run was lost")
        return await future

    async def answer_host_key(self, question: int, trust: bool) -> None:
        """Answer the runner's ``host_key`` question ``question`` (docs: host key questions)."""
        if self.closed.is_set():
            return
        with contextlib.suppress(OSError):
            await self._send({"type": "host_key_answer", "id": question, "trust": trust})

    async def request_snapshot(self) -> None:
        await self._send({"type": "snapshot"})

    def _deliver(self, batch: list[tuple[dict[str, Any], int]]) -> None:
        for message, size in batch:
            kind = message["type"]
            if kind == "ack":
                self._reader.consumed(size)
                future = self._pending.pop(int(message.get("id") or 0), None)
                if future is not None and not future.done():
                    future.set_result(Ack(bool(message.get("ok")), message.get("error")))
                continue
            if kind == "snapshot":
                self._snapshot = message
            self._queue.put_nowait((message, size))

    def _ended(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_result(Ack(False, "the connection to the run was lost"))
        self._pending.clear()
        self._queue.put_nowait(None)

    async def close(self) -> None:
        if not self.closed.is_set():
            with contextlib.suppress(OSError):
                await asyncio.wait_for(self._send({"type": "bye"}), 1.0)
        await self._reader.stop()
        self._ended()
        self._sock.close()


async def connect(path: Path, *, read_only: bool = False, host_keys: bool = False,
                  log_bytes: bool = False) -> SocketClient:
    """Connect to the socket at ``path``; raises :class:`ConnectError` with the reason.
    ``host_keys``: this client answers the runner's host key questions (a console).
    ``log_bytes``: the runner sends output as bytes after each ``log`` message (no JSON
    escaping to do, either end); :meth:`SocketClient.events` gives it as the message's
    ``text`` (lines joined by "\n", as a console keeps them) rather than ``lines``."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        with p.short_path(path) as where:
            await loop.sock_connect(sock, where)
    except FileNotFoundError:
        sock.close()
        raise ConnectError(f"{path}: no such live run") from None
    except ConnectionRefusedError:
        sock.close()
        raise ConnectError(f"{path}: the run's process is gone") from None
    except PermissionError:
        sock.close()
        raise ConnectError(f"{path}: permission denied (the run belongs to another "
                           f"user)") from None
    except OSError as exc:
        sock.close()
        raise ConnectError(f"{path}: {exc}") from None
    try:
        await loop.sock_sendall(sock, p.encode({
            "type": "hello", "protocol": p.VERSION, "read_only": read_only,
            "pid": os.getpid(), "host_keys": host_keys and not read_only,
            "log_bytes": log_bytes}))
        lines = _Lines(sock)
        first = p.decode(await lines.next())
        if first["type"] == "error":
            raise ConnectError(str(first.get("error")))
        p.check_hello(first)
        snapshot = p.decode(await lines.next())
        if snapshot["type"] != "snapshot":
            raise ConnectError(f"expected a snapshot, got {snapshot['type']!r}")
    except ConnectionError:
        sock.close()
        raise ConnectError(f"{path}: the run's process is gone") from None
    except (p.ProtocolError, OSError, TimeoutError) as exc:
        sock.close()
        raise ConnectError(f"{path}: {exc or 'no answer'}") from None
    except ConnectError:
        sock.close()
        raise
    return SocketClient(sock, first, snapshot, lines.rest)


class _Lines:
    """The first lines of a connection, read on the loop (the hello and the snapshot)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rest = b""

    async def next(self, timeout: float = 10.0) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while b"\n" not in self.rest:
            if len(self.rest) > p.MAX_SNAPSHOT:
                raise p.ProtocolError("message too long")
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError("the run did not answer")
            chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 1 << 16), left)
            if not chunk:
                raise ConnectError("the run closed the connection")
            self.rest += chunk
        line, self.rest = self.rest.split(b"\n", 1)
        return line


class LocalClient:
    """The same API over a Run of this process (the in-process console, tests)."""

    def __init__(self, run: Run, recorder: Any = None, user: str | None = None) -> None:
        self.run = run
        self.run_id = run.id
        self.user = user or run.user
        self._recorder = recorder
        self._tails = p.Tails()
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._unsubscribe = run.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        self._tails(event)
        for message in event.to_dicts():
            self._queue.put_nowait(message)

    def snapshot(self) -> dict[str, Any]:
        return json.loads(json.dumps(p.snapshot(self.run, self._tails)))

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            message = await self._queue.get()
            if message is None:
                return
            yield message

    async def act(self, action: Action) -> Ack:
        try:
            p.apply_action(self.run, action, self.user)
        except (ActionError, p.ProtocolError) as exc:
            return Ack(False, str(exc))
        if self._recorder is not None:
            self._recorder.flush()
            if self._recorder.error is not None:
                return Ack(False, f"applied but not recorded: {self._recorder.error}")
        return Ack(True)

    async def close(self) -> None:
        self._unsubscribe()
        self._queue.put_nowait(None)
