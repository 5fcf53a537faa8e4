"""The socket every live run listens on (docs/attach-protocol.md).

One :class:`RunServer` per run: it subscribes to the run's events, fans them out to every
connected client and applies the clients' operator actions, each acknowledged once the
history holds it. A client is accepted only from the runner's own uid (``SO_PEERCRED``);
its login name is the user of every action it sends.

A slow client never stalls the run: each has a bounded queue of encoded events
(:data:`QUEUE_BYTES`). A client whose queue overflows loses the queued events and is sent
a fresh snapshot (``"resync": true``) as soon as its socket drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.engine.actions import ActionError
from console.engine.events import Event, LogEvent
from console.runner import protocol as p
from console.runner.hostkeys import HostKeyForwarder
from console.runner.log_batch import ENOUGH, WINDOW, LogBatch

if TYPE_CHECKING:
    from console.engine.run import Run

QUEUE_BYTES = 8 << 20
"""Encoded events a client may have waiting before it is resynchronised."""

READY_FD_ENV = "BATON_RUNNER_READY_FD"
"""Set by :func:`console.runner.daemon.spawn`: the server writes one ``ready`` line there."""

SERVERS: dict[str, RunServer] = {}
"""The servers of this process, by run id (the runner watches its clients)."""

Durable = Callable[[], str | None]
"""Makes every recorded action durable; returns why it could not, or None."""


class _Client:
    __slots__ = ("before", "control", "host_keys", "log_bytes", "queue", "read_only", "resync",
                 "size", "user", "wake", "writer")

    def __init__(self, writer: asyncio.StreamWriter, user: str,
                 before: Callable[[], None] = lambda: None) -> None:
        self.writer = writer
        self.before = before
        """Sends the output the server holds (a reply comes after it)."""
        self.user = user
        self.read_only = False
        self.host_keys = False
        """Its hello said it answers host key questions (a console)."""
        self.log_bytes = False
        """Its hello asked for a ``log`` message's output as bytes after it (not in
        ``lines``)."""
        self.queue: list[bytes] = []
        self.control: list[bytes] = []
        """Hello, acks and errors: never dropped on overflow."""
        self.size = 0
        self.resync = False
        self.wake = asyncio.Event()

    def push(self, data: bytes) -> None:
        if self.resync:
            return  # the snapshot to come holds it
        self.size += len(data)
        if self.size > QUEUE_BYTES:
            self.queue.clear()
            self.size = 0
            self.resync = True
        else:
            self.queue.append(data)
        self.wake.set()

    def reply(self, message: dict[str, Any]) -> None:
        """An ack or error: in order with the events, never dropped by a resync (the
        snapshot to come holds the events it follows)."""
        self.before()
        (self.control if self.resync else self.queue).append(p.encode(message))
        self.wake.set()


class RunServer:
    """Serves ``run`` on ``$BATON_HOME/live/RUN.sock`` until :meth:`close`."""

    def __init__(self, run: Run, home: Path, durable: Durable | None = None, *,
                 ask_host_keys: bool = False) -> None:
        self.run = run
        self.path = p.socket_path(home, run.id)
        self._durable = durable
        self.tails = p.Tails()
        """Each task's last lines and the actions: what a snapshot carries."""
        self._clients: set[_Client] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.base_events.Server | None = None
        self._closed = False
        self._logs = LogBatch()
        """Output not sent yet (merged for a short while: see log_batch)."""
        self._logs_due: asyncio.Handle | None = None
        self._logs_sent = 0.0
        """The loop's time output was last sent."""
        self._unsubscribe = run.subscribe(self._on_event)
        self._host_keys: HostKeyForwarder | None = None
        if ask_host_keys:  # a runner: its consoles answer (a headless run keeps its rule)
            self._host_keys = HostKeyForwarder(run, lambda: self._clients)

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def start(self) -> Path:
        from console.store.logs import ensure_dir

        ensure_dir(self.path.parent)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket of a dead process (run ids are unique)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            with p.short_path(self.path) as where:
                sock.bind(where)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self._server = await asyncio.start_unix_server(self._accept, sock=sock,
                                                       limit=p.MAX_LINE)
        SERVERS[self.run.id] = self
        _tell_ready(self.run.id, self.path)
        return self.path

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        SERVERS.pop(self.run.id, None)
        self._unsubscribe()
        self._send_logs()
        if self._host_keys is not None:
            self._host_keys.close()
        if self._server is not None:
            self._server.close()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        for client in list(self._clients):  # what is queued (the final run event) goes out
            with contextlib.suppress(ConnectionError, OSError):
                client.writer.write(b"".join(client.control + client.queue))
                client.control.clear()
                client.queue.clear()
                await asyncio.wait_for(client.writer.drain(), 1.0)
            client.writer.close()  # the client's reader sees the end
        if self._handlers:
            _done, pending = await asyncio.wait(set(self._handlers), timeout=1.0)
            for handler in pending:
                handler.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # ------------------------------------------------------------------ events

    def _on_event(self, event: Event) -> None:
        self.tails(event)
        if not self._clients:
            return
        if type(event) is LogEvent:
            self._logs.add(event)
            if self._logs.size >= ENOUGH:
                self._send_logs()
            elif self._logs_due is None:
                loop = asyncio.get_running_loop()
                wait = self._logs_sent + WINDOW - loop.time()
                self._logs_due = (loop.call_later(wait, self._send_logs) if wait > 0
                                  else loop.call_soon(self._send_logs))
            return
        self._send_logs()  # what was printed before this event goes first
        data = p.event_bytes(event)
        for client in self._clients:
            client.push(data)

    def _send_logs(self) -> None:
        """Send the output held (see :class:`LogBatch`) to every client."""
        if self._logs_due is not None:
            self._logs_due.cancel()
            self._logs_due = None
        if not self._logs:
            return
        with contextlib.suppress(RuntimeError):  # no loop: closing
            self._logs_sent = asyncio.get_running_loop().time()
        clients = self._clients
        as_lines = any(not c.log_bytes for c in clients)
        as_bytes = any(c.log_bytes for c in clients)
        for run in self._logs.take():
            raw = run.message(True) if as_bytes else b""
            lines = run.message(False) if as_lines else b""
            for client in clients:
                client.push(raw if client.log_bytes else lines)

    # ------------------------------------------------------------------ clients

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass  # the server is closing (a handler of asyncio's, nobody awaits it)
        finally:
            self._handlers.discard(handler)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        uid = _peer_uid(writer)
        if uid != os.getuid():
            writer.write(p.encode({"type": "error", "error": f"refused: uid {uid} does not "
                                   f"own run {self.run.id}"}))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            return
        self._send_logs()  # to the others: the snapshot holds it
        client = _Client(writer, p.user_name(uid), self._send_logs)
        client.control.append(p.encode(p.hello(self.run.id, client.user)))
        client.control.append(p.encode(p.snapshot(self.run, self.tails)))
        client.wake.set()
        self._clients.add(client)
        sender = asyncio.create_task(self._send(client))
        try:
            await self._read(reader, client)
        finally:
            self._clients.discard(client)
            if self._host_keys is not None:
                self._host_keys.update()
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _send(self, client: _Client) -> None:
        writer = client.writer
        try:
            while True:
                await client.wake.wait()
                client.wake.clear()
                if client.resync:
                    self._send_logs()  # to the others: the snapshot holds it
                    client.resync = False
                    client.queue.clear()
                    client.size = 0
                    client.queue.append(p.encode(p.snapshot(self.run, self.tails,
                                                            resync=True)))
                payload = b"".join(client.control + client.queue)
                client.control.clear()
                client.queue.clear()
                client.size = 0
                writer.write(payload)
                await writer.drain()
        except (ConnectionError, OSError):
            writer.close()

    async def _read(self, reader: asyncio.StreamReader, client: _Client) -> None:
        while True:
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):
                client.reply({"type": "error", "error": "message too long"})
                return
            except ConnectionError:
                return
            if not line:
                return
            message: dict[str, Any] = {}
            try:
                message = p.decode(line)
                if message["type"] == "hello":
                    p.check_hello(message)
                    client.read_only = bool(message.get("read_only"))
                    client.host_keys = bool(message.get("host_keys"))
                    client.log_bytes = message.get("log_bytes") is True
                    if self._host_keys is not None:
                        self._host_keys.update()
                        if client.host_keys and not client.read_only:
                            self._host_keys.offer(client)
                elif message["type"] == "host_key_answer":
                    if self._host_keys is None:
                        raise p.ProtocolError("this run asks no host key questions")
                    self._host_keys.answer(client, message)
                elif message["type"] == "action":
                    self._act(client, message)
                elif message["type"] == "snapshot":
                    client.resync = True
                    client.wake.set()
                elif message["type"] == "bye":
                    return
                else:
                    raise p.ProtocolError(f"unknown message type {message['type']!r}")
            except p.ProtocolError as exc:
                client.reply({"type": "error", "error": str(exc)})
                if message.get("type") == "hello":
                    await asyncio.sleep(0)
                    return

    def _act(self, client: _Client, message: dict[str, Any]) -> None:
        request = message.get("id")
        ack: dict[str, Any] = {"type": "ack", "id": request, "ok": True}
        try:
            if client.read_only:
                raise p.ProtocolError("this connection is read-only")
            action = p.Action.from_message(message)
            p.apply_action(self.run, action, client.user)
            error = self._durable() if self._durable is not None else None
            if error is not None:
                ack = {"type": "ack", "id": request, "ok": False,
                       "error": f"applied but not recorded: {error}"}
        except (ActionError, p.ProtocolError) as exc:
            ack = {"type": "ack", "id": request, "ok": False, "error": str(exc)}
        client.reply(ack)  # after the action's own event


def _peer_uid(writer: asyncio.StreamWriter) -> int:
    sock = writer.get_extra_info("socket")
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def _tell_ready(run_id: str, path: Path) -> None:
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is None:
        return
    with contextlib.suppress(OSError, ValueError):
        os.write(int(fd), p.encode({"type": "ready", "run_id": run_id, "socket": str(path),
                                    "pid": os.getpid()}))
        os.close(int(fd))


def _past_timeline(run: Run, store: Any, tails: p.Tails) -> None:
    """A resumed run's timeline from before this process, read before it records any of
    its own (a new run's is empty; a history that cannot be read leaves it out, with a
    warning)."""
    from console.runner.past_timeline import past_timeline
    from console.store.errors import StoreError

    try:
        past = past_timeline(run, store.load(run.id))
    except StoreError as exc:
        print(f"baton: warning: run {run.id}: its timeline before the resume cannot be "
              f"served: {exc}", file=sys.stderr, flush=True)
        return
    tails.past_timeline, tails.past_omitted = past.entries, past.omitted


@contextlib.asynccontextmanager
async def listening(run: Run, store: Any, recorder: Any) -> AsyncIterator[RunServer | None]:
    """What a headless run serves: its socket when it has a history (a run without one has
    no durable actions to offer). A socket that cannot be made is a warning on stderr and
    the run goes on unserved, except in a runner (it exists to serve)."""
    if store is None:
        yield None
        return
    durable: Durable | None = None
    if recorder is not None:
        def durable() -> str | None:
            recorder.flush()
            return None if recorder.error is None else str(recorder.error)
    in_runner = READY_FD_ENV in os.environ  # its consoles answer host key questions
    server = RunServer(run, Path(store.home), durable, ask_host_keys=in_runner)
    if any(task.attempt for task in run.tasks.values()):  # resumed: its past output too
        from console.runner.past import past_logs

        past = await asyncio.to_thread(past_logs, run, store, server.tails.limit)
        for step, host, lines in past:
            server.tails.past(step, host, lines)
    _past_timeline(run, store, server.tails)  # resumed before any task started: still one
    try:
        await server.start()
    except OSError as exc:
        await server.close()
        if READY_FD_ENV in os.environ:
            raise
        print(f"baton: warning: run {run.id} cannot be attached to: {exc}", file=sys.stderr,
              flush=True)
        yield None
        return
    try:
        yield server
    finally:
        await server.close()
