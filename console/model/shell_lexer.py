"""The POSIX shell lexer behind :mod:`console.model.shellquote`: which quoting context each
value marker (``NUL index NUL``) of a rendered script sits in.

It knows POSIX shell and the bash forms that change quoting (``$'…'``, ``${ … }``,
``$(( ))``, heredocs with ``<<-`` and quoted delimiters); it is iterative (no recursion on
hostile nesting) and linear in the script. A leaf: imports nothing of Baton's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["BARE", "COMMENT", "DOUBLE", "MARK", "MARKER", "QUOTED_HEREDOC", "SINGLE", "UNSAFE",
           "Slot", "marker", "scan"]

MARK = "\x00"

# Contexts a value can be quoted for.
BARE = "bare"
DOUBLE = "double"
SINGLE = "single"
COMMENT = "comment"
QUOTED_HEREDOC = "quoted-heredoc"

# Contexts where quoting cannot be proved safe: context -> (where, fix).
_ENV_FIX = ('set it in env (env = { NAME = "{{ … }}" }) and use "$NAME" there, '
            'or mark it "| raw" if it is shell syntax on purpose')
UNSAFE: dict[str, tuple[str, str]] = {
    "heredoc": ("inside an unquoted heredoc body", "quote the delimiter (<<'EOF') so the body "
                "is literal, or " + _ENV_FIX),
    "backtick": ("inside backticks", "use $( ) instead of backticks, or " + _ENV_FIX),
    "arith": ("inside $(( ))", _ENV_FIX),
    "param": ("inside ${ … }", _ENV_FIX),
    "ansi": ("inside $'…'", "use '…' or \"…\" instead, or " + _ENV_FIX),
    "escaped": ("right after a backslash", "remove the backslash, or " + _ENV_FIX),
    "dollar": ("right after $", "remove the $, or " + _ENV_FIX),
    "delimiter": ("in a heredoc delimiter", "write the delimiter literally"),
}

_WORD_BREAK = frozenset(" \t\n;&|()<>")
MARKER = re.compile("\x00(\\d+)\x00")


def marker(index: int) -> str:
    return f"{MARK}{index}{MARK}"


@dataclass(frozen=True)
class Slot:
    """Where marker ``index`` sits: its context and, in a quoted heredoc body, the
    body's extent in the scanned text and its delimiter."""

    index: int
    context: str
    start: int
    heredoc: tuple[int, int, str, bool] | None = None
    """(body start, body end, delimiter, leading tabs stripped) for a heredoc body."""


@dataclass
class _Frame:
    kind: str
    depth: int = 0


_PENDING = tuple[str, bool, bool]  # delimiter, strip tabs (<<-), quoted


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.i = 0
        self.stack: list[_Frame] = [_Frame(BARE)]
        self.slots: list[Slot] = []
        self.pending: list[_PENDING] = []
        self.unsafe = 0  # how many frames on the stack are unsafe contexts

    # -- frames -----------------------------------------------------------------------
    def push(self, kind: str) -> None:
        self.stack.append(_Frame(kind))
        if kind in UNSAFE:
            self.unsafe += 1

    def pop(self) -> None:
        if len(self.stack) > 1 and self.stack.pop().kind in UNSAFE:
            self.unsafe -= 1

    def context(self) -> str:
        if self.unsafe:
            for frame in reversed(self.stack):
                if frame.kind in UNSAFE:
                    return frame.kind
        kind = self.stack[-1].kind
        return BARE if kind == "cmdsub" else kind

    def take_marker(self, context: str | None = None,
                    heredoc: tuple[int, int, str, bool] | None = None) -> None:
        """Record the marker at ``self.i`` and step over it."""
        match = MARKER.match(self.text, self.i)
        if match is None:  # a stray NUL: not ours; step over it
            self.i += 1
            return
        self.slots.append(Slot(int(match[1]), context or self.context(), self.i, heredoc))
        self.i = match.end()

    # -- main loop --------------------------------------------------------------------
    def run(self) -> list[Slot]:
        text = self.text
        while self.i < self.n:
            c = text[self.i]
            if c == MARK:
                self.take_marker()
                continue
            kind = self.stack[-1].kind
            if kind == SINGLE:
                self.i = self._skip_to(self.i, "'")
                if self.i < self.n and text[self.i] == "'":
                    self.pop()
                    self.i += 1
            elif kind == COMMENT:
                if c == "\n":
                    self.pop()  # the newline itself belongs to the enclosing context
                else:
                    self.i += 1
            elif kind == DOUBLE:
                self.double(c)
            elif kind == "backtick":
                self.backtick(c)
            elif kind == "arith":
                self.arith(c)
            elif kind == "param":
                self.param(c)
            elif kind == "ansi":
                if c == "\\":
                    self.escape()
                else:
                    if c == "'":
                        self.pop()
                    self.i += 1
            else:
                self.bare(c, kind)
        return self.slots

    def _skip_to(self, i: int, stops: str) -> int:
        """Index of the next char of ``stops`` or NUL at or after ``i`` (or the end)."""
        text = self.text
        while i < self.n and text[i] not in stops and text[i] != MARK:
            i += 1
        return i

    def escape(self) -> None:
        """A backslash: it quotes the next char; a value right after it cannot be quoted."""
        self.i += 1
        if self.i < self.n:
            if self.text[self.i] == MARK:
                self.take_marker(self.context() if self.unsafe else "escaped")
            else:
                self.i += 1

    def dollar(self) -> None:
        text, i = self.text, self.i
        nxt = text[i + 1] if i + 1 < self.n else ""
        if nxt == "(":
            if text.startswith("((", i + 1):
                self.push("arith")
                self.i = i + 3
            else:
                self.push("cmdsub")
                self.i = i + 2
        elif nxt == "{":
            self.push("param")
            self.i = i + 2
        elif nxt == "'" and self.stack[-1].kind != DOUBLE:
            self.push("ansi")
            self.i = i + 2
        elif nxt == MARK:
            self.i = i + 1
            self.take_marker(self.context() if self.unsafe else "dollar")
        else:
            self.i = i + 1

    def double(self, c: str) -> None:
        if c == "\\":
            self.escape()
        elif c == '"':
            self.pop()
            self.i += 1
        elif c == "$":
            self.dollar()
        elif c == "`":
            self.push("backtick")
            self.i += 1
        else:
            self.i += 1

    def backtick(self, c: str) -> None:
        if c == "\\":
            self.escape()
            return
        if c == "`":
            self.pop()
        self.i += 1

    def arith(self, c: str) -> None:
        frame = self.stack[-1]
        if c == "(":
            frame.depth += 1
        elif c == ")":
            if frame.depth == 0:
                self.pop()
                self.i += 2 if self.text.startswith("))", self.i) else 1
                return
            frame.depth -= 1
        elif c == "\\":
            self.escape()
            return
        self.i += 1

    def param(self, c: str) -> None:
        frame = self.stack[-1]
        if c == "\\":
            self.escape()
            return
        if c == "{":
            frame.depth += 1
        elif c == "}":
            if frame.depth == 0:
                self.pop()
            else:
                frame.depth -= 1
        elif c == "'":  # what quotes mean in ${ } differs between shells: all unsafe
            self.push(SINGLE)
        elif c == '"':
            self.push(DOUBLE)
        elif c == "$":
            self.dollar()
            return
        elif c == "`":
            self.push("backtick")
        self.i += 1

    def bare(self, c: str, kind: str) -> None:
        text, i = self.text, self.i
        if c == "\\":
            self.escape()
        elif c == "'":
            self.push(SINGLE)
            self.i += 1
        elif c == '"':
            self.push(DOUBLE)
            self.i += 1
        elif c == "`":
            self.push("backtick")
            self.i += 1
        elif c == "$":
            self.dollar()
        elif c == "#" and (i == 0 or text[i - 1] in _WORD_BREAK):
            self.push(COMMENT)
            self.i += 1
        elif c == "(" and text.startswith("((", i) and (i == 0 or text[i - 1] in _WORD_BREAK):
            self.push("arith")  # bash's (( )) arithmetic command
            self.i += 2
        elif c == "(" and kind == "cmdsub":
            self.stack[-1].depth += 1
            self.i += 1
        elif c == ")" and kind == "cmdsub":
            if self.stack[-1].depth == 0:
                self.pop()
            else:
                self.stack[-1].depth -= 1
            self.i += 1
        elif c == "<" and text.startswith("<<", i):
            if text.startswith("<<<", i):
                self.i += 3
            else:
                self.heredoc_word(i + 2)
        elif c == "\n":
            self.i += 1
            if self.pending:
                self.heredoc_bodies()
        else:
            self.i += 1

    # -- heredocs ---------------------------------------------------------------------
    def heredoc_word(self, i: int) -> None:
        text = self.text
        strip = text.startswith("-", i)
        if strip:
            i += 1
        while i < self.n and text[i] in " \t":
            i += 1
        start = i
        quote = ""
        while i < self.n:
            c = text[i]
            if c == MARK:
                self.i = i
                self.take_marker(self.context() if self.unsafe else "delimiter")
                i = self.i
            elif quote:
                if c == quote:
                    quote = ""
                i += 1
            elif c in "'\"":
                quote = c
                i += 1
            elif c == "\\":
                i += 2
            elif c in _WORD_BREAK:
                break
            else:
                i += 1
        i = min(i, self.n)
        word = text[start:i]
        quoted = any(q in word for q in "'\"\\")
        delimiter = re.sub(r"\\(.)", r"\1", word, flags=re.S).replace("'", "").replace('"', "")
        self.pending.append((delimiter, strip, quoted))
        self.i = i

    def heredoc_bodies(self) -> None:
        """The bodies of the heredocs opened on the line that just ended, in order."""
        text = self.text
        pending, self.pending = self.pending, []
        for delimiter, strip, quoted in pending:
            body_start = self.i
            slots: list[int] = []
            while self.i < self.n:
                end = text.find("\n", self.i)
                end = self.n if end < 0 else end
                line = text[self.i:end]
                if (line.lstrip("\t") if strip else line) == delimiter:
                    body_end = self.i
                    self.i = min(end + 1, self.n)
                    break
                for match in MARKER.finditer(line):
                    slots.append(self.i + match.start())
                self.i = min(end + 1, self.n)
            else:
                body_end = self.n
            for position in slots:
                self.i, resume = position, self.i
                if self.unsafe:
                    self.take_marker()
                elif quoted:
                    self.take_marker(QUOTED_HEREDOC, (body_start, body_end, delimiter, strip))
                else:
                    self.take_marker("heredoc")
                self.i = resume


def scan(text: str) -> list[Slot]:
    """Every marker in ``text`` with the shell context it sits in, in text order."""
    return _Scanner(text).run()


# --- quoting -------------------------------------------------------------------------
