"""Turn a byte stream into chunks of complete, decoded lines."""

from __future__ import annotations

import codecs

_UTF8 = codecs.getincrementaldecoder("utf-8")  # looked up once: two splitters per attempt

MAX_LINE = 1 << 20
"""A line longer than this (1 MiB characters) is delivered in pieces of this size."""


class LineSplitter:
    """Incremental UTF-8 decoding (invalid bytes replaced) and line splitting.

    ``feed`` returns the complete lines now available as one string (lines joined by
    "\\n", without the trailing newline; ``""`` is one empty line) or None; ``flush``
    returns a final partial line or None. Lines are never dropped: a line longer than
    ``MAX_LINE`` is cut into pieces ``line[0:MAX_LINE]``, ``line[MAX_LINE:2*MAX_LINE]``
    … (the last piece is never empty), however the bytes were chunked on the way in.
    """

    __slots__ = ("_decoder", "_parts", "_size")

    def __init__(self) -> None:
        self._decoder = _UTF8(errors="replace")
        # The pending partial line, kept as a list so that a long line arriving in many
        # small reads is joined once instead of being copied on every read.
        self._parts: list[str] = []
        self._size = 0

    def feed(self, data: bytes) -> str | None:
        text = self._decoder.decode(data)
        if not text:
            return None
        cut = text.rfind("\n")
        if cut < 0:
            self._parts.append(text)
            self._size += len(text)
            return self._take_long() if self._size > MAX_LINE else None
        if self._parts:
            self._parts.append(text[:cut])
            chunk = "".join(self._parts)
            self._parts = []
        else:
            chunk = text[:cut]
        if len(chunk) > MAX_LINE:
            chunk = _cut_long_lines(chunk)
        rest = text[cut + 1 :]
        self._size = len(rest)
        if rest:
            self._parts.append(rest)
            if self._size > MAX_LINE:
                return f"{chunk}\n{self._take_long()}"
        return chunk

    def _take_long(self) -> str:
        """Deliver whole MAX_LINE pieces of the partial line, keeping a non-empty tail."""
        partial = "".join(self._parts)
        whole = (len(partial) - 1) // MAX_LINE * MAX_LINE
        self._parts = [partial[whole:]]
        self._size = len(partial) - whole
        return "\n".join(partial[i : i + MAX_LINE] for i in range(0, whole, MAX_LINE))

    def flush(self) -> str | None:
        text = "".join(self._parts) + self._decoder.decode(b"", final=True)
        self._parts = []
        self._size = 0
        if not text:
            return None
        return _cut_long_lines(text) if len(text) > MAX_LINE else text


def _cut_long_lines(chunk: str) -> str:
    lines = chunk.split("\n")
    if all(len(line) <= MAX_LINE for line in lines):
        return chunk
    pieces: list[str] = []
    for line in lines:
        if len(line) <= MAX_LINE:
            pieces.append(line)
        else:
            pieces.extend(line[i : i + MAX_LINE] for i in range(0, len(line), MAX_LINE))
    return "\n".join(pieces)
