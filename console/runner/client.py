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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from console.engine.actions import ActionError
from console.engine.events import Event
from console.runner import protocol as p
from console.runner.protocol import Action

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
    """A connection to a live run's socket. Use :func:`connect`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 hello: dict[str, Any], snapshot: dict[str, Any]) -> None:
        self._reader = reader
        self._writer = writer
        self.hello = hello
        self.run_id: str = str(hello["run_id"])
        self.user: str = str(hello.get("user"))
        self._snapshot = snapshot
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._pending: dict[int, asyncio.Future[Ack]] = {}
        self._next = 0
        self.closed = asyncio.Event()
        self._pump = asyncio.get_running_loop().create_task(self._read())

    def snapshot(self) -> dict[str, Any]:
        return self._snapshot

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            message = await self._queue.get()
            if message is None:
                return
            yield message

    async def act(self, action: Action) -> Ack:
        if self.closed.is_set():
            return Ack(False, "the connection to the run is closed")
        self._next += 1
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._pending[self._next] = future
        self._writer.write(p.encode(action.to_message(self._next)))
        await self._writer.drain()
        return await future

    async def answer_host_key(self, question: int, trust: bool) -> None:
        """Answer the runner's ``host_key`` question ``question`` (docs: host key questions)."""
        if self.closed.is_set():
            return
        with contextlib.suppress(ConnectionError, OSError):
            self._writer.write(p.encode({"type": "host_key_answer", "id": question,
                                         "trust": trust}))
            await self._writer.drain()

    async def request_snapshot(self) -> None:
        self._writer.write(p.encode({"type": "snapshot"}))
        await self._writer.drain()

    async def _read(self) -> None:
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                message = p.decode(line)
                kind = message["type"]
                if kind == "ack":
                    future = self._pending.pop(int(message.get("id") or 0), None)
                    if future is not None and not future.done():
                        future.set_result(Ack(bool(message.get("ok")), message.get("error")))
                    continue
                if kind == "snapshot":
                    self._snapshot = message
                self._queue.put_nowait(message)
        except (ConnectionError, ValueError, p.ProtocolError):
            pass
        finally:
            self.closed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_result(Ack(False, "the connection to the run was lost"))
            self._pending.clear()
            self._queue.put_nowait(None)

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            self._writer.write(p.encode({"type": "bye"}))
            self._writer.close()
            await self._writer.wait_closed()
        self._pump.cancel()
        await asyncio.gather(self._pump, return_exceptions=True)


async def connect(path: Path, *, read_only: bool = False,
                  host_keys: bool = False) -> SocketClient:
    """Connect to the socket at ``path``; raises :class:`ConnectError` with the reason.
    ``host_keys``: this client answers the runner's host key questions (a console)."""
    try:
        with p.short_path(path) as where:
            reader, writer = await asyncio.open_unix_connection(where, limit=p.MAX_LINE)
    except FileNotFoundError:
        raise ConnectError(f"{path}: no such live run") from None
    except ConnectionRefusedError:
        raise ConnectError(f"{path}: the run's process is gone") from None
    except PermissionError:
        raise ConnectError(f"{path}: permission denied (the run belongs to another "
                           f"user)") from None
    try:
        writer.write(p.encode({"type": "hello", "protocol": p.VERSION,
                               "read_only": read_only, "pid": os.getpid(),
                               "host_keys": host_keys and not read_only}))
        first = p.decode(await _line(reader))
        if first["type"] == "error":
            raise ConnectError(str(first.get("error")))
        p.check_hello(first)
        snapshot = p.decode(await _line(reader))
        if snapshot["type"] != "snapshot":
            raise ConnectError(f"expected a snapshot, got {snapshot['type']!r}")
    except ConnectionError:
        writer.close()
        raise ConnectError(f"{path}: the run's process is gone") from None
    except (p.ProtocolError, OSError) as exc:
        writer.close()
        raise ConnectError(f"{path}: {exc}") from None
    except ConnectError:
        writer.close()
        raise
    return SocketClient(reader, writer, first, snapshot)


async def _line(reader: asyncio.StreamReader) -> bytes:
    line = await asyncio.wait_for(reader.readline(), 10.0)
    if not line:
        raise ConnectError("the run closed the connection")
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
