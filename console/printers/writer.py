"""The byte writer under the headless printers: text in, bytes to the OS once per event-loop
pass, after the store's commit; a closed pipe turns into silence."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

__all__ = ["ByteWriter", "Mask", "no_mask"]

Mask = Callable[[str], str]
"""Masks secrets in operator-written text (reasons, notes)."""


def no_mask(text: str) -> str:
    return text


class ByteWriter:
    """Buffers encoded text and hands it to the OS once per event-loop pass (at once with
    ``flush_each``, early past ``LIMIT`` bytes); a closed pipe (``baton run | head``)
    turns into silence.

    ``before_output`` runs before any byte leaves (headless passes the store's commit):
    a line never reports a state the run's history does not hold yet, however the
    output is buffered, and the store can commit once per pass instead of once per
    finished task. When it returns False (the commit failed) the buffered lines are
    dropped instead.
    """

    LIMIT = 1 << 16

    __slots__ = ("_out", "_parts", "_pending", "_size", "before_output", "broken",
                 "flush_each")

    def __init__(self, out: IO[bytes], flush_each: bool,
                 before_output: Callable[[], bool | None] | None = None) -> None:
        self._out = out
        self.flush_each = flush_each
        self.before_output = before_output
        self.broken = False
        self._parts: list[bytes] = []
        self._size = 0
        self._pending: asyncio.Handle | None = None

    def write(self, text: str, flush: bool = False) -> None:
        if self.broken:
            return
        data = text.encode("utf-8", "backslashreplace")
        self._parts.append(data)
        self._size += len(data)
        if self.flush_each or self._size >= self.LIMIT:
            self.flush()
        elif flush:
            self._flush_soon()

    def _flush_soon(self) -> None:
        """One flush per event-loop pass: a reader of the pipe sees state changes at once,
        without a write system call for each of a thousand tasks finishing together."""
        if self._pending is not None:
            return
        import asyncio  # here: `baton runs` and `show` print tables without an event loop

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._pending = loop.call_soon(self.flush)

    def flush(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self.broken or not self._parts:
            return
        if self.before_output is not None and self.before_output() is False:
            # the history could not take what these lines report: they are not printed
            # (a success the store does not hold would be re-run by a resume)
            self._parts.clear()
            self._size = 0
            return
        data = b"".join(self._parts) if len(self._parts) > 1 else self._parts[0]
        self._parts.clear()
        self._size = 0
        try:
            self._out.write(data)
            self._out.flush()
        except (BrokenPipeError, ValueError):  # reader gone, or the writer closed at exit
            self.broken = True
