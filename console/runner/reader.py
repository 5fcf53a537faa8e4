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
        buffer = rest
        try:
            while not self._stop.is_set():
                *lines, buffer = buffer.split(b"\n")
                if lines:
                    batch = [(p.decode(line), len(line) + 1) for line in lines if line.strip()]
                    if batch:
                        with self._lock:
                            self._backlog += sum(size for _m, size in batch)
                        self._post(self._deliver, batch)
                if len(buffer) > p.MAX_LINE:
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
                buffer += chunk
        except (OSError, ValueError, p.ProtocolError):
            return
        finally:
            self._post(self._ended)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
            self._loop.call_soon_threadsafe(callback, *args)

    async def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        await asyncio.to_thread(self._thread.join, 2.0)
