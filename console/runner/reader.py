"""The reading side of a client's connection, in a thread of its own.

A console's event loop also draws the screen: read there, a flood arrives faster than the
loop comes round to the socket (one kernel buffer, ~200 KB, per turn), the runner's queue
for the client overflows and the console loses output to a resync. A thread drains the
socket as fast as the runner writes, decodes each message and hands them to the loop in
batches. What the loop has not consumed yet is bounded (:data:`BACKLOG_BYTES`): past it
the thread stops reading, and the runner's own bound for a slow client applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

from console.runner import protocol as p

BACKLOG_BYTES = 64 << 20
"""Decoded-but-unconsumed bytes a client holds before it stops reading."""

CHUNK = 1 << 20

Deliver = Callable[[list[tuple[dict[str, Any], int]]], None]
"""Called on the loop with each batch of (message, its size in bytes)."""


class ThreadReader:
    """Reads ``sock`` (non-blocking, connected) in a thread; ``deliver`` gets the messages
    on ``loop``, ``ended`` once the connection is over (EOF, error, bad message)."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop, rest: bytes,
                 deliver: Deliver, ended: Callable[[], None]) -> None:
        self._sock = sock
        self._loop = loop
        self._deliver = deliver
        self._ended = ended
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._backlog = 0
        self._waiting: list[tuple[dict[str, Any], int]] | None = None
        """Messages read and handed over, not yet taken by the loop."""
        self._thread = threading.Thread(target=self._run, args=(rest,), daemon=True,
                                        name="baton-attach-reader")
        self._thread.start()

    def consumed(self, size: int) -> None:
        """The loop consumed a message of ``size`` bytes."""
        with self._lock:
            self._backlog -= size

    def _full(self) -> bool:
        with self._lock:
            return self._backlog > BACKLOG_BYTES

    def _run(self, rest: bytes) -> None:
        frames = Frames(rest)
        try:
            while not self._stop.is_set():
                batch = frames.messages()
                if batch:
                    with self._lock:
                        self._backlog += sum(size for _m, size in batch)
                    self._hand_over(batch)
                if frames.waiting > p.MAX_SNAPSHOT:  # a resync's snapshot comes this way
                    return  # a message too long: the connection is over
                while self._full() and not self._stop.wait(0.01):
                    pass
                readable, _, _ = select.select([self._sock], [], [], 0.25)
                if not readable:
                    continue
                try:
                    chunk = self._sock.recv(CHUNK)
                except (BlockingIOError, InterruptedError):
                    continue
                if not chunk:
                    return
                frames.feed(chunk)
        except (OSError, ValueError, p.ProtocolError):
            return
        finally:
            self._post(self._end)

    def _hand_over(self, batch: list[tuple[dict[str, Any], int]]) -> None:
        """Give ``batch`` to the loop: one callback for everything read until the loop
        takes it (a flood read in many pieces wakes the loop once per turn, not per
        piece)."""
        with self._lock:
            waiting = self._waiting
            if waiting is not None:
                waiting.extend(batch)
                return
            self._waiting = batch
        self._post(self._take)

    def _take(self) -> None:
        with self._lock:
            batch, self._waiting = self._waiting, None
        if batch:
            self._deliver(batch)

    def _end(self) -> None:
        self._take()  # what was read before the end comes first
        self._ended()

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
            self._loop.call_soon_threadsafe(callback, *args)

    async def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        await asyncio.to_thread(self._thread.join, 2.0)


class Frames:
    """Messages out of the bytes of a connection, as they come: newline-delimited JSON,
    where a ``log`` message with ``bytes`` (to a client that asked for ``log_bytes``) is
    followed by that many bytes of output, handed on as the message's ``text``.

    Bytes are appended to one buffer and searched once (a snapshot of many megabytes
    arrives in hundreds of pieces)."""

    __slots__ = ("_buffer", "_head", "_head_size", "_need", "_searched")

    def __init__(self, data: bytes = b"") -> None:
        self._buffer = bytearray(data)
        self._searched = 0
        """How far the buffer is known to hold no newline."""
        self._head: dict[str, Any] | None = None
        """A log message whose output has not all come yet."""
        self._head_size = 0
        self._need = 0

    @property
    def waiting(self) -> int:
        """Bytes of messages not complete yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def messages(self) -> list[tuple[dict[str, Any], int]]:
        """The messages completed by what was fed so far, each with its size in bytes."""
        out: list[tuple[dict[str, Any], int]] = []
        buffer, at, end = self._buffer, 0, len(self._buffer)
        head = self._head
        while True:
            if head is not None:
                need = self._need
                if end - at < need:
                    break
                head["text"] = buffer[at:at + need].decode("utf-8", "replace")
                out.append((head, self._head_size + need))
                at += need
                head = None
            cut = buffer.find(b"\n", max(at, self._searched))
            if cut < 0:
                self._searched = end
                break
            line = bytes(buffer[at:cut])
            at = cut + 1
            if not line.strip():
                continue
            message = p.decode(line)
            size = message.pop("bytes", None) if message["type"] == "log" else None
            if size is None:
                out.append((message, len(line) + 1))
            elif isinstance(size, int) and 0 <= size <= p.MAX_SNAPSHOT:
                head, self._need, self._head_size = message, size, len(line) + 1
            else:
                raise p.ProtocolError(f"a log message's 'bytes' must be a count, not "
                                      f"{size!r}")
        self._head = head
        if at:
            del buffer[:at]
            self._searched = max(0, self._searched - at)
        return out
