"""Map TOML key paths to line/column positions.

``tomllib`` returns plain dicts without positions, so this small scanner walks the text
once and remembers where every key, table header and value starts. It only has to cope
with valid TOML (syntax errors are reported by the TOML parser itself) and never raises: on
anything unexpected it stops and keeps what it found so far.

Paths are tuples of keys, with integer indexes for array elements:
``("steps", "deploy", "retries")``, ``("rollouts", "web", "serial", 1)``.
"""

from __future__ import annotations

import bisect
import re

import tomli

KeyPath = tuple[str | int, ...]
Position = tuple[int, int]
"""1-based (line, column)."""

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_BLANK = " \t\r"
_SCALAR_END = ",]}#\n"


class Locator:
    """Positions of keys and values in one TOML document.

    The text is scanned on first use: a valid workflow never needs positions, and scanning
    a 1,000-step file costs a third of a second.
    """

    def __init__(self, text: str) -> None:
        self._text: str | None = text
        self._keys: dict[KeyPath, Position] = {}
        self._values: dict[KeyPath, Position] = {}

    def _scan(self) -> None:
        text, self._text = self._text, None
        if text is None:
            return
        try:
            _Scanner(text, self).document()
        except Exception:  # best effort: positions are a nicety, never an error
            pass

    @property
    def keys(self) -> dict[KeyPath, Position]:
        self._scan()
        return self._keys

    @property
    def values(self) -> dict[KeyPath, Position]:
        """Where each value starts; for a multi-line string, where its content starts
        (after the newline that TOML trims right after an opening triple quote)."""
        self._scan()
        return self._values

    def find(self, path: KeyPath) -> tuple[int | None, int | None]:
        """(line, col) of the key at ``path`` (or the value, for array elements).

        Falls back to the nearest known parent's line, with no column.
        """
        if path in self.keys:
            return self.keys[path]
        if path in self.values:
            return self.values[path]
        for end in range(len(path) - 1, 0, -1):
            parent = path[:end]
            found = self.keys.get(parent) or self.values.get(parent)
            if found:
                return found[0], None
        return None, None

    def line(self, path: KeyPath) -> int | None:
        return self.find(path)[0]

    def value_line(self, path: KeyPath) -> int | None:
        """Line where the value's content starts (the line after a bare opening ``\"\"\"``)."""
        found = self.values.get(path)
        return found[0] if found else self.line(path)


class _Scanner:
    def __init__(self, text: str, out: Locator) -> None:
        self.text = text
        self.n = len(text)
        self.i = 0
        self.out = out
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.array_tables: dict[KeyPath, int] = {}

    # -- positions -------------------------------------------------------------------
    def pos(self, index: int) -> Position:
        line = bisect.bisect_right(self.starts, index)
        return line, index - self.starts[line - 1] + 1

    def key_at(self, path: KeyPath, index: int) -> None:
        self.out.keys.setdefault(path, self.pos(index))

    # -- lexical helpers -------------------------------------------------------------
    def peek(self, s: str) -> bool:
        return self.text.startswith(s, self.i)

    def skip_blank(self) -> None:
        while self.i < self.n and self.text[self.i] in _BLANK:
            self.i += 1

    def skip_comment(self) -> None:
        if self.i < self.n and self.text[self.i] == "#":
            end = self.text.find("\n", self.i)
            self.i = self.n if end < 0 else end

    def skip_space(self) -> None:
        """Blanks, newlines and comments (inside arrays and between statements)."""
        while self.i < self.n:
            before = self.i
            self.skip_blank()
            self.skip_comment()
            if self.i < self.n and self.text[self.i] == "\n":
                self.i += 1
            if self.i == before:
                return

    def skip_line(self) -> None:
        end = self.text.find("\n", self.i)
        self.i = self.n if end < 0 else end + 1

    # -- grammar ---------------------------------------------------------------------
    def document(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip_space()
            if self.i >= self.n:
                return
            start = self.i
            if self.peek("["):
                table = self.header()
            else:
                self.key_value(table)
            if self.i <= start:  # no progress: give up on this line
                self.skip_line()

    def header(self) -> KeyPath:
        start = self.i
        double = self.peek("[[")
        self.i += 2 if double else 1
        names = self.key()
        path: KeyPath = tuple(name for name, _ in names)
        for end in range(1, len(path) + 1):
            self.key_at(path[:end], start)
        if double:
            index = self.array_tables.get(path, 0)
            self.array_tables[path] = index + 1
            path = (*path, index)
            self.key_at(path, start)
        self.skip_line()
        return path

    def key(self) -> list[tuple[str, int]]:
        """A dotted key: [(segment, start index), ...]."""
        names: list[tuple[str, int]] = []
        while True:
            self.skip_blank()
            start = self.i
            if self.peek('"') or self.peek("'"):
                names.append((self.quoted_key(), start))
            else:
                match = _BARE.match(self.text, self.i)
                if not match:
                    return names
                names.append((match.group(), start))
                self.i = match.end()
            self.skip_blank()
            if not self.peek("."):
                return names
            self.i += 1

    def quoted_key(self) -> str:
        quote = self.text[self.i]
        j = self.i + 1
        while j < self.n and self.text[j] != quote and self.text[j] != "\n":
            j += 2 if quote == '"' and self.text[j] == "\\" else 1
        raw = self.text[self.i : j + 1]
        self.i = j + 1
        if quote == "'" or "\\" not in raw:
            return raw[1:-1]  # no escapes: the text between the quotes is the value
        try:
            return tomli.loads(f"k = {raw}")["k"]
        except tomli.TOMLDecodeError:
            return raw[1:-1]

    def key_value(self, table: KeyPath) -> None:
        names = self.key()
        if not names:
            return
        path = table
        for name, start in names:
            path = (*path, name)
            self.key_at(path, start)
        self.skip_blank()
        if not self.peek("="):
            self.skip_line()
            return
        self.i += 1
        self.skip_blank()
        self.value(path)
        self.skip_blank()
        self.skip_comment()

    def value(self, path: KeyPath) -> None:
        for quote in ('"""', "'''"):
            if self.peek(quote):
                self.multiline_string(path, quote)
                return
        if self.peek('"') or self.peek("'"):
            self.out.values.setdefault(path, self.pos(self.i))
            self.quoted_key()  # same lexical rules as a single-line string
        elif self.peek("["):
            self.out.values.setdefault(path, self.pos(self.i))
            self.array(path)
        elif self.peek("{"):
            self.out.values.setdefault(path, self.pos(self.i))
            self.inline_table(path)
        else:
            self.out.values.setdefault(path, self.pos(self.i))
            while self.i < self.n and self.text[self.i] not in _SCALAR_END:
                self.i += 1

    def multiline_string(self, path: KeyPath, quote: str) -> None:
        content = self.i + 3
        if self.text.startswith("\r\n", content):
            content += 2
        elif self.text.startswith("\n", content):
            content += 1
        self.out.values.setdefault(path, self.pos(content))
        j = self.i + 3
        while j < self.n:
            if quote == '"""' and self.text[j] == "\\":
                j += 2
                continue
            if self.text.startswith(quote, j):
                extra = 0  # up to two quotes may sit right before the closing delimiter
                while extra < 2 and self.text.startswith(quote[0], j + 3):
                    j += 1
                    extra += 1
                self.i = j + 3
                return
            j += 1
        self.i = self.n

    def array(self, path: KeyPath) -> None:
        self.i += 1
        index = 0
        while self.i < self.n:
            self.skip_space()
            if self.peek("]"):
                self.i += 1
                return
            start = self.i
            self.value((*path, index))
            index += 1
            self.skip_space()
            if self.peek(",") or self.i == start:
                self.i += 1

    def inline_table(self, path: KeyPath) -> None:
        self.i += 1
        while self.i < self.n:
            self.skip_space()
            if self.peek("}"):
                self.i += 1
                return
            start = self.i
            names = self.key()
            inner = path
            for name, at in names:
                inner = (*inner, name)
                self.key_at(inner, at)
            self.skip_blank()
            if names and self.peek("="):
                self.i += 1
                self.skip_blank()
                self.value(inner)
            self.skip_space()
            if self.peek(",") or self.i == start:
                self.i += 1
