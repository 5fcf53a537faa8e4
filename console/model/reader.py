"""Typed, located access to parsed TOML: :class:`Reader` records each bad value as a
:class:`~console.model.problems.Problem` at its key's line and column, and carries on.

Shared by the workflow loader (:mod:`console.model.loader`), the inventory
(:mod:`console.model.inventory`) and the recovery keys (:mod:`console.model.recovery`);
imports none of them.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import tomli

from console.model.durations import parse_duration, parse_percent
from console.model.locate import KeyPath, Locator
from console.model.problems import Problem
from console.model.sizes import format_size, parse_size

__all__ = ["BARE_KEY", "KIND_NAMES", "Reader", "dotted", "is_kind", "parse_toml", "read_text",
           "suggest", "type_name"]


BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
KIND_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "table": "a table",
    "array": "an array",
}


def type_name(value: Any) -> str:
    """TOML's name for the type of a parsed value."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, datetime.date | datetime.time):
        return "datetime"
    return type(value).__name__


def is_kind(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return kind == "boolean"
    return isinstance(
        value,
        {
            "string": str,
            "integer": int,
            "number": int | float,
            "boolean": bool,
            "table": dict,
            "array": list,
        }[kind],
    )


def dotted(path: KeyPath) -> str:
    """``("steps", "my step", "env")`` -> ``steps."my step".env`` (array indexes dropped)."""
    parts = [p if BARE_KEY.fullmatch(p) else json.dumps(p) for p in path if isinstance(p, str)]
    return ".".join(parts)


def suggest(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    import difflib  # only when something is misspelt

    candidates = list(candidates)
    match = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if not match and len(word) >= 3:
        match = [c for c in candidates if c.startswith(word)][:1]
    return f" (did you mean '{match[0]}'?)" if match else ""


class Reader:
    """Reads values out of one parsed TOML file, recording located problems as it goes.

    Getters return ``default`` when the key is missing, and also (after recording a
    problem) when the value is invalid, so loading can carry on and find more problems.
    """

    def __init__(self, file: str, text: str, problems: list[Problem]) -> None:
        self.file = file
        self.locator = Locator(text)
        self.problems = problems

    def report(self, path: KeyPath, message: str, *, line: int | None = None,
               col: int | None = None) -> None:
        """Record ``message`` at the key ``path`` (or at an explicit line/col)."""
        if line is None:
            line, col = self.locator.find(path)
        self.problems.append(Problem(self.file, line, col, message))

    def error(self, path: KeyPath, message: str) -> None:
        """Record ``path: message`` at the key ``path``."""
        self.report(path, f"{dotted(path)}: {message}" if dotted(path) else message)

    def table(self, value: Any, path: KeyPath,
              allowed: Iterable[str] | None = None) -> dict[str, Any] | None:
        """``value`` if it is a table, reporting keys not in ``allowed``; else None."""
        if not isinstance(value, dict):
            self.error(path, f"expected a table, got {type_name(value)}")
            return None
        if allowed is not None:
            allowed = tuple(allowed)
            for key in value:
                if key not in allowed:
                    self.unknown_key(path, key, allowed, is_table=isinstance(value[key], dict))
        return value

    def unknown_key(self, path: KeyPath, key: str, allowed: Iterable[str],
                    *, is_table: bool = False) -> None:
        hint = suggest(key, allowed)
        if not path:
            what = f"table [{dotted((key,))}]" if is_table else f"key '{key}'"
            self.report((key,), f"unknown {what}{hint}")
        else:
            self.report((*path, key), f"{dotted(path)}: unknown key '{key}'{hint}")

    def get(self, table: Mapping[str, Any], path: KeyPath, key: str, kind: str,
            default: Any = None) -> Any:
        if key not in table:
            return default
        value = table[key]
        if not is_kind(value, kind):
            self.error((*path, key), f"expected {KIND_NAMES[kind]}, got {type_name(value)}")
            return default
        if kind == "number":
            if not math.isfinite(value):
                self.error((*path, key), f"must be a finite number, got {value}")
                return default
            return float(value)
        return value

    def string(self, table: Mapping[str, Any], path: KeyPath, key: str,
               default: str | None = None, *, non_empty: bool = False) -> str | None:
        value = self.get(table, path, key, "string", default)
        if non_empty and isinstance(table.get(key), str) and not table[key].strip():
            self.error((*path, key), "must not be empty")
            return default
        return value

    def integer(self, table: Mapping[str, Any], path: KeyPath, key: str,
                default: int | None = None, *, minimum: int | None = None,
                maximum: int | None = None) -> int | None:
        value = self.get(table, path, key, "integer", default)
        if key not in table or not is_kind(value, "integer"):
            return value
        if minimum is not None and value < minimum:
            self.error((*path, key), f"must be at least {minimum}, got {value}")
            return default
        if maximum is not None and value > maximum:
            self.error((*path, key), f"must be at most {maximum}, got {value}")
            return default
        return value

    def boolean(self, table: Mapping[str, Any], path: KeyPath, key: str,
                default: bool = False) -> bool:
        return self.get(table, path, key, "boolean", default)

    def duration(self, table: Mapping[str, Any], path: KeyPath, key: str,
                 default: float | None = None, *, positive: bool = False) -> float | None:
        if key not in table:
            return default
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self.error((*path, key),
                       f"expected a duration (seconds or a string like '90s'), "
                       f"got {type_name(value)}")
            return default
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.error((*path, key), str(exc))
            return default
        if positive and seconds <= 0:
            self.error((*path, key), "must be more than 0 seconds")
            return default
        return seconds

    def size(self, table: Mapping[str, Any], path: KeyPath, key: str, default: int, *,
             minimum: int = 0) -> int:
        if key not in table:
            return default
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self.error((*path, key), f"expected a size like '256MiB', got {type_name(value)}")
            return default
        try:
            size = parse_size(value)
        except ValueError as exc:
            self.error((*path, key), str(exc))
            return default
        if size < minimum:
            self.error((*path, key), f"must be at least {format_size(minimum)}, got {value!r}")
            return default
        return size

    def strings(self, table: Mapping[str, Any], path: KeyPath, key: str, *,
                single: bool = False) -> list[tuple[str, KeyPath]] | None:
        """A list of strings (or one string when ``single``), each with its own path."""
        if key not in table:
            return None
        value = table[key]
        here = (*path, key)
        if single and isinstance(value, str):
            return [(value, here)]
        if not isinstance(value, list):
            expected = "a string or an array of strings" if single else "an array of strings"
            self.error(here, f"expected {expected}, got {type_name(value)}")
            return None
        if all(type(item) is str for item in value):  # the usual case, in one pass
            return [(item, (*here, index)) for index, item in enumerate(value)]
        out: list[tuple[str, KeyPath]] = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                out.append((item, (*here, index)))
            else:
                self.report((*here, index),
                            f"{dotted(here)}: expected strings, got {type_name(item)} "
                            f"({json.dumps(item, default=str)})")
        return out

    def batch_size(self, value: Any, path: KeyPath) -> int | str | None:
        """A host count (int >= 1) or a percentage string like "25%"."""
        if isinstance(value, int) and not isinstance(value, bool):
            if value >= 1:
                return value
            self.error(path, f"must be at least 1, got {value}")
            return None
        if isinstance(value, str):
            try:
                return f"{parse_percent(value):g}%"
            except ValueError as exc:
                self.error(path, str(exc))
                return None
        self.error(path, f"expected an integer or a percentage like '25%', got {type_name(value)}")
        return None


def read_text(path: Path) -> tuple[str | None, str | None]:
    """(text, None) or (None, one-line reason the file cannot be read): only a regular
    file of at most 16 MiB is read (a FIFO or a device would hang or never end)."""
    from console.model.bounded import FILE_LIMIT, BoundedError, read_regular

    try:
        return read_regular(path, FILE_LIMIT).decode("utf-8"), None
    except FileNotFoundError:
        return None, "no such file"
    except IsADirectoryError:
        return None, "is a directory, not a file"
    except BoundedError as exc:
        return None, str(exc)
    except UnicodeDecodeError:
        return None, "not a UTF-8 text file"
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}"


def parse_toml(text: str, file: str, problems: list[Problem]) -> dict[str, Any] | None:
    """Parsed TOML, or None after recording the syntax error with its position."""
    try:
        return tomli.loads(text)  # tomllib's parser, compiled with mypyc in tomli's wheels
    except RecursionError:  # tomli refuses tables/arrays nested past 400 levels
        line, col = _too_deep(text)
        problems.append(Problem(file, line, col, "invalid TOML: tables or arrays nested "
                                f"more than {_MAX_NESTING} levels deep"))
        return None
    except tomli.TOMLDecodeError as exc:  # tomli >= 2.1 (pyproject: >= 2.2) locates it
        at_end = exc.pos >= len(text)  # "at end of document": a line but no column
        message = exc.msg[:1].lower() + exc.msg[1:]
        problems.append(Problem(file, exc.lineno, None if at_end else exc.colno,
                                f"invalid TOML: {message}"))
        return None


_MAX_NESTING = 400
"""tomli's limit on nested inline tables and arrays."""


def _too_deep(text: str) -> tuple[int | None, int | None]:
    """Where brackets (outside strings and comments) first nest past ``_MAX_NESTING``."""
    depth = 0
    line, line_start = 1, 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line, line_start = line + 1, i + 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c in "\"'":
            quote = text[i:i + 3] if text.startswith(c * 3, i) else c
            j = i + len(quote)
            while j < n and not text.startswith(quote, j):
                if text[j] == "\\" and c == '"':
                    j += 1
                elif text[j] == "\n":
                    line, line_start = line + 1, j + 1
                j += 1
            i = j + len(quote)
            continue
        elif c in "[{":
            depth += 1
            if depth > _MAX_NESTING:
                return line, i - line_start + 1
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1
    for number, text_line in enumerate(text.splitlines(), start=1):  # a dotted key, then
        if text_line.count(".") >= _MAX_NESTING:
            return number, None
    return None, None
