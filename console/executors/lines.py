"""Turn a byte stream into chunks of complete, decoded lines."""

from __future__ import annotations

import codecs

MAX_LINE = 1 << 20
"""A line longer than this (1 MiB) without a newline is delivered in pieces of this size."""


class LineSplitter:
    """Incremental UTF-8 decoding (invalid bytes replaced) and line splitting.

    ``feed`` returns the complete lines now available as one string (lines joined by
    "\\n", without the trailing newline) or None; ``flush`` returns a final partial line.
    Lines are never dropped: an over-long line is cut into ``MAX_LINE`` pieces.
    """

    __slots__ = ("_decoder", "_partial")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""

    def feed(self, data: bytes) -> str | None:
        text = self._decoder.decode(data)
        if not text:
            return None
        cut = text.rfind("\n")
        if cut < 0:
            self._partial += text
            if len(self._partial) >= MAX_LINE:
                return self._take_long()
            return None
        chunk = self._partial + text[:cut] if self._partial else text[:cut]
        self._partial = text[cut + 1 :]
        if len(self._partial) >= MAX_LINE:
            long = self._take_long()
            return f"{chunk}\n{long}" if long is not None else chunk
        return chunk

    def _take_long(self) -> str | None:
        whole = len(self._partial) // MAX_LINE * MAX_LINE
        if not whole:
            return None
        pieces = [self._partial[i : i + MAX_LINE] for i in range(0, whole, MAX_LINE)]
        self._partial = self._partial[whole:]
        return "\n".join(pieces)

    def flush(self) -> str | None:
        text = self._partial + self._decoder.decode(b"", final=True)
        self._partial = ""
        return text if text else None
