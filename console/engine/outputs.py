"""Task outputs and the lazily built template context that reads them.

Building every step's outputs for every task costs seconds on a 1,000-step graph, so the
``steps`` object of the context only looks a step up when a template reads it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

STDOUT_TAIL = 64 * 1024
"""How much of a task's stdout is kept for templates (the last 64 KiB)."""

_UNPARSED = object()


class Outputs:
    """What a finished attempt left for downstream templates. Survives retries."""

    __slots__ = ("_json", "exit_code", "status", "stdout")

    def __init__(self, status: str | None = None, exit_code: int | None = None,
                 stdout: str = "") -> None:
        self.status = status
        self.exit_code = exit_code
        self.stdout = stdout
        self._json: Any = _UNPARSED

    @property
    def json(self) -> Any:
        """stdout parsed as JSON, or None when it is not JSON."""
        if self._json is _UNPARSED:
            try:
                self._json = json.loads(self.stdout) if self.stdout.strip() else None
            except ValueError:
                self._json = None
        return self._json

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "exit_code": self.exit_code, "stdout": self.stdout}


class TailBuffer:
    """The last ``limit`` characters of a stream, appended in chunks."""

    __slots__ = ("_chunks", "_size", "limit")

    def __init__(self, limit: int = STDOUT_TAIL) -> None:
        self.limit = limit
        self._chunks: list[str] = []
        self._size = 0

    def append(self, text: str) -> None:
        self._chunks.append(text)
        self._size += len(text)
        if self._size > 2 * self.limit:
            joined = "".join(self._chunks)[-self.limit :]
            self._chunks = [joined]
            self._size = len(joined)

    def value(self) -> str:
        return "".join(self._chunks)[-self.limit :]


class StepView:
    """``steps.<id>`` in a template: the short form reads the task on the reader's host."""

    __slots__ = ("_lookup", "_reader_host", "_step")

    def __init__(self, step: str, reader_host: str,
                 lookup: Callable[[str], Mapping[str, Outputs]]) -> None:
        self._step = step
        self._reader_host = reader_host
        self._lookup = lookup

    def _own(self) -> Outputs:
        per_host = self._lookup(self._step)
        if self._reader_host in per_host:
            return per_host[self._reader_host]
        if len(per_host) == 1:
            return next(iter(per_host.values()))
        return Outputs()

    @property
    def status(self) -> str | None:
        return self._own().status

    @property
    def exit_code(self) -> int | None:
        return self._own().exit_code

    @property
    def stdout(self) -> str:
        return self._own().stdout

    @property
    def json(self) -> Any:
        return self._own().json

    @property
    def hosts(self) -> dict[str, dict[str, Any]]:
        return {host: {**out.as_dict(), "json": out.json}
                for host, out in self._lookup(self._step).items()}

    def __getitem__(self, key: str) -> Any:
        if key in ("status", "exit_code", "stdout", "json", "hosts"):
            return getattr(self, key)
        raise KeyError(key)


class StepsView(Mapping[str, StepView]):
    """``steps`` in a template: ``steps.build`` or ``steps["build"]``, built on demand."""

    def __init__(self, step_ids: Iterable[str], reader_host: str,
                 lookup: Callable[[str], Mapping[str, Outputs]]) -> None:
        self._ids = list(step_ids)
        self._reader_host = reader_host
        self._lookup = lookup

    def __getitem__(self, step: str) -> StepView:
        if step not in self._ids:
            raise KeyError(step)
        return StepView(step, self._reader_host, self._lookup)

    def __getattr__(self, step: str) -> StepView:
        if step.startswith("_"):
            raise AttributeError(step)
        try:
            return self[step]
        except KeyError:
            raise AttributeError(step) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)
