"""The JSON headless printer: one compact JSON object per event and per log line (SPEC
section 4), keys in SPEC order."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import IO, Any

from console.engine.events import ActionEvent, Event, LogEvent, TaskEvent
from console.printers.writer import ByteWriter, Mask, no_mask

__all__ = ["JsonPrinter"]


# --- JSON ------------------------------------------------------------------------------

_NEEDS_ESCAPE = re.compile(r'[\x00-\x09\x0b-\x1f"\\]')
"""Characters JSON must escape, except the "\\n" that separates lines in a chunk."""


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class JsonPrinter:
    """One JSON object per line (SPEC section 4), compact, UTF-8, keys in SPEC order."""

    def __init__(self, out: IO[bytes], *, flush_each: bool = False, mask: Mask = no_mask,
                 before_output: Callable[[], bool | None] | None = None) -> None:
        self._w = ByteWriter(out, flush_each, before_output)
        self._mask = mask
        self._heads: dict[tuple[str, str, str], str] = {}

    def __call__(self, event: Event) -> None:
        if type(event) is LogEvent:
            self.log(event)
            return
        if type(event) is TaskEvent:
            if event.reason:
                event = TaskEvent(
                    event.step, event.host, event.state, event.attempt,
                    event.exit_code, self._mask(event.reason), event.time,
                )
        elif type(event) is ActionEvent and event.reason:
            event = ActionEvent(
                event.action, event.step, event.host, event.user, self._mask(event.reason),
                event.time,
            )
        # flushed once per loop pass, after the store's commit (see ByteWriter)
        self._w.write("".join(_dumps(d) + "\n" for d in event.to_dicts()), flush=True)

    def log(self, event: LogEvent) -> None:
        key = (event.step, event.host, event.stream)
        head = self._heads.get(key)
        if head is None:
            head = self._heads[key] = (
                f'{{"type":"log","step":{_dumps(event.step)},"host":{_dumps(event.host)},'
                f'"stream":{_dumps(event.stream)},"line":"'
            )
        text = event.text
        tail = f'","time":{_dumps(event.time)}}}\n'
        if _NEEDS_ESCAPE.search(text) is None:
            self._w.write(head + text.replace("\n", tail + head) + tail, flush=True)
            return
        # Slow path: a line with quotes, backslashes or control characters.
        head = head[:-1]
        tail = tail[1:]
        self._w.write("".join([head + encode_basestring(line) + tail
                               for line in text.split("\n")]), flush=True)

    def flush(self) -> None:
        self._w.flush()
