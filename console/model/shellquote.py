"""Quote template values for the shell context each one lands in.

A ``run`` script is rendered in two passes. Jinja renders it with every substituted value
replaced by a marker (``NUL index NUL``: a shell script cannot hold NUL, so a marker never
collides with text); then :func:`scan` lexes the result as POSIX shell (with the bash
forms that change quoting) and tells, for every marker, the context it sits in. Each value
is then quoted for exactly that context, so the program always receives the value's
bytes:

========================  ==============================================================
context                   inserted as
========================  ==============================================================
bare word                 ``shlex.quote(value)``  (``'…'`` with ``'\\''`` for quotes)
inside ``"…"``            ``\\`` before each of ``\\ $ ` "``  (the only specials there)
inside ``'…'``            each ``'`` becomes ``'\\''``  (close, escaped quote, reopen)
quoted heredoc body       verbatim; refused when a line would start with the delimiter
comment                   with line breaks turned into spaces (it must not end the
                          comment; nothing receives it)
========================  ==============================================================

Everywhere else the quoting cannot be proved safe, and a value there is an error (a
located ``check`` error before the run, a task error at render time) unless it is marked
``| raw``: an unquoted heredoc body, backticks, ``$(( ))``, ``${ … }``, ``$'…'``, right
after ``$`` or ``\\``, or a heredoc delimiter. ``| raw`` values are inserted as written and
lexed as part of the script, since they are shell syntax on purpose.

The lexer (:mod:`console.model.shell_lexer`) is iterative (no recursion on hostile nesting)
and linear in the script.
"""

from __future__ import annotations

import re

from console.model.shell_lexer import (
    BARE,
    COMMENT,
    DOUBLE,
    MARK,
    MARKER,
    QUOTED_HEREDOC,
    SINGLE,
    UNSAFE,
    Slot,
    marker,
    scan,
)

__all__ = [
    "MARK",
    "QuotingError",
    "Slot",
    "check_template",
    "marker",
    "quote_into",
    "scan",
    "substitute",
]


class QuotingError(Exception):
    """A value cannot be placed where the template puts it; ``str()`` is one line."""


_DOUBLE_SPECIAL = re.compile(r'([\\$`"])')


def quote_into(value: str, context: str) -> str:
    """``value`` written so that, in ``context``, the shell yields exactly ``value``."""
    if MARK in value:
        raise QuotingError("a value contains a NUL byte, which no shell command can receive")
    if context == BARE:
        from shlex import quote

        return quote(value)
    if context == DOUBLE:
        return _DOUBLE_SPECIAL.sub(r"\\\1", value)
    if context == SINGLE:
        return value.replace("'", "'\\''")
    if context == COMMENT:
        return value.replace("\n", " ")
    if context == QUOTED_HEREDOC:
        return value
    where, fix = UNSAFE.get(context, (f"in context {context}", "mark it | raw"))
    raise QuotingError(f"a value substituted {where} cannot be quoted safely: {fix}")


def _dash_drops_a_byte(line: str, delimiter: str) -> bool:
    """dash 0.5.12 (Debian's /bin/sh), reading a heredoc line that starts like its delimiter,
    drops the first non-ASCII byte after the part that matched: ``E`` + ``é`` under
    ``<<'EOF'`` arrives as ``E\\xa9``. Such a line is refused, like one starting with the
    whole delimiter."""
    matched = 0
    for mine, theirs in zip(line, delimiter, strict=False):
        if mine != theirs:
            break
        matched += 1
    return 0 < matched < len(line) and ord(line[matched]) > 0x7F


def _loses_tabs(text: str, start: int, value: str) -> bool:
    """Would a ``<<-`` heredoc strip a tab of ``value``, placed at ``start``?"""
    if "\n\t" in value:
        return True
    line_start = text.rfind("\n", 0, start) + 1
    return value.startswith("\t") and not text[line_start:start].strip("\t")


def substitute(text: str, values: list[str]) -> str:
    """``text`` with each marker replaced by its value quoted for its context.

    Raises :class:`QuotingError` for a value in a place that cannot be quoted safely, a
    value holding NUL, or a value that would end its quoted heredoc early.
    """
    slots = scan(text)
    out: list[str] = []
    position = 0
    checks: dict[tuple[int, int, str, bool], None] = {}
    for slot in slots:
        out.append(text[position:slot.start])
        try:
            out.append(quote_into(values[slot.index], slot.context))
        except QuotingError as exc:
            line = text.count("\n", 0, slot.start) + 1
            raise QuotingError(f"line {line}: {exc}") from None
        if slot.heredoc is not None:
            checks[slot.heredoc] = None
            if slot.heredoc[3] and _loses_tabs(text, slot.start, values[slot.index]):
                raise QuotingError(
                    "a value starts a line with a tab inside a <<- heredoc, which strips "
                    "it: use << instead of <<-")
        marker = MARKER.match(text, slot.start)
        assert marker is not None  # scan() puts each slot at a marker
        position = marker.end()
    out.append(text[position:])
    if len(slots) != text.count(MARK) // 2:  # every marker must have been quoted
        raise QuotingError("internal error: a substituted value was not placed")
    for body_start, body_end, delimiter, strip in checks:
        body = MARKER.sub(lambda m: values[int(m[1])], text[body_start:body_end])
        for body_line in body.split("\n"):
            start = body_line.lstrip("\t") if strip else body_line
            if start.startswith(delimiter) or _dash_drops_a_byte(start, delimiter):
                raise QuotingError(
                    f"a value puts a line starting with {delimiter!r} (or with a part of it "
                    "before a non-ASCII character) into its heredoc, which could end it early "
                    "or lose a byte in dash: choose a delimiter that cannot occur in the value")
    return "".join(out)


# --- static check of a template -------------------------------------------------------

_TAG = re.compile(r"\{\{(.*?)\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_RAW = re.compile(r"\|\s*raw\s*-?$")


def check_template(source: str) -> list[tuple[int, int, str, str]]:
    """Each ``{{ }}`` of a ``run`` template that lands where it cannot be quoted safely
    and is not marked ``| raw``: (line, column, the tag's text, message), 1-based within
    the template.

    Static: Jinja blocks count as empty text and every branch is lexed in order, a
    ``| raw`` value as an opaque word. Rendering checks each real value again.
    """
    if "{{" not in source:
        return []
    parts: list[str] = []
    tags: list[tuple[int, str]] = []
    position = 0
    for match in _TAG.finditer(source):
        parts.append(source[position:match.start()].replace(MARK, ""))
        expression = match.group(1)
        if expression is not None:
            if _RAW.search(expression.strip()):
                parts.append("raw")
            else:
                parts.append(marker(len(tags)))
                tags.append((match.start(), match.group(0)))
        position = match.end()
    parts.append(source[position:].replace(MARK, ""))
    problems: list[tuple[int, int, str, str]] = []
    for slot in scan("".join(parts)):
        if slot.context in UNSAFE:
            offset, tag = tags[slot.index]
            line = source.count("\n", 0, offset) + 1
            col = offset - (source.rfind("\n", 0, offset) + 1) + 1
            where, fix = UNSAFE[slot.context]
            problems.append((line, col, tag, f"{tag} is {where}, where it cannot be quoted "
                                             f"safely: {fix}"))
    return problems
