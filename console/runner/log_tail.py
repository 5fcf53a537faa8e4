"""The last lines of one task's output, kept by a live run's server for the snapshot.

Output is kept as the chunks it arrived in (one per :class:`LogEvent`), with their line
counts: taking a chunk in costs a ``count("\\n")`` and an append, never a Python step per
line (a flood arrives in thousands of chunks a second). Lines are split out only when a
snapshot is made.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

TailLine = tuple[str, str, float, int]
"""One line of a task's tail: stream, text, time, attempt number."""


class LogTail:
    """The last ``limit`` lines of a task's log; iterating yields them, oldest first."""

    __slots__ = ("_chunks", "_count", "limit")

    def __init__(self, limit: int, lines: Iterable[TailLine] = ()) -> None:
        self.limit = limit
        self._chunks: deque[tuple[str, str, float, int, int]] = deque()
        """stream, text (lines joined by "\\n"), time, attempt, its number of lines."""
        self._count = 0
        for stream, text, time, attempt in lines:
            self.add(stream, text, time, attempt, 1)

    def add(self, stream: str, text: str, time: float, attempt: int,
            count: int | None = None) -> None:
        """Add a chunk of ``count`` lines (counted when not given)."""
        if count is None:
            count = text.count("\n") + 1
        chunks = self._chunks
        chunks.append((stream, text, time, attempt, count))
        self._count += count
        while len(chunks) > 1 and self._count - chunks[0][4] >= self.limit:
            self._count -= chunks.popleft()[4]

    def extend(self, lines: Iterable[TailLine]) -> None:
        for stream, text, time, attempt in lines:
            self.add(stream, text, time, attempt, 1)

    def __iter__(self) -> Iterator[TailLine]:
        skip = max(0, self._count - self.limit)
        for stream, text, time, attempt, count in self._chunks:
            if skip >= count:
                skip -= count
                continue
            lines = text.split("\n") if count > 1 else [text]
            for line in lines[skip:]:
                yield stream, line, time, attempt
            skip = 0

    def __len__(self) -> int:
        return min(self._count, self.limit)
