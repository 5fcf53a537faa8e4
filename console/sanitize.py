"""Make step output and workflow-supplied text safe to show on a terminal.

Every byte a step prints, and every name or message a workflow file supplies, reaches the
operator's terminal only through this module. A terminal obeys what it is sent: a step
could set the window title, write the clipboard (OSC 52), hide a line with cursor moves,
clear the screen or plant a hyperlink, and a name with ESC could forge a status line. So:

- :func:`sanitize` keeps printable text, tabs and newlines, and (``keep_sgr=True``, for a
  terminal that shows colours) SGR colour sequences ``ESC [ … m``. Every other escape
  sequence is dropped whole (CSI, OSC up to BEL/ST, DCS/SOS/PM/APC up to ST, two-byte
  escapes, their 8-bit C1 forms) and so is every other control character, a lone ESC
  included. A ``\\r`` inside a line keeps only what follows the last one (a progress
  line shows its final state, as on a terminal); ``\\r\\n`` is a plain line end.
- :func:`styled_spans` splits a line into (text, SGR parameters) runs for the console,
  which turns them into Rich styles (:func:`sgr_style`); tabs are expanded to 8-column
  stops, as terminals do.

Text without any control character is returned as is after one regex search: the log
flood's hot path pays nothing else. No Textual import here (Rich only on demand).
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.style import Style

__all__ = ["has_control", "sanitize", "sgr_style", "styled_spans", "visible",
           "visible_length"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Any character that needs a closer look (\\t and \\n are plain text)."""

_SEQUENCE = re.compile(
    r"""
    (?P<sgr> \x1b\[ [0-9;:]* m )                          # SGR: colours and attributes
  | \x1b\[ [0-?]* [\x20-/]* [@-~]                         # any other CSI
  | (?: \x1b\] | \x9d ) [^\n]*? (?: \x07 | \x1b\\ | \x9c | (?=\n) | \Z )     # OSC
  | (?: \x1b[PX^_] | [\x90\x98\x9e\x9f] ) [^\n]*? (?: \x1b\\ | \x9c | (?=\n) | \Z )
                                                          # DCS, SOS, PM, APC
  | \x9b [0-?]* [\x20-/]* [@-~]                           # 8-bit CSI
  | \x1b [\x20-/]* [0-~]                                  # two-byte and nF escapes
  | [\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]                 # other controls, a lone ESC
    """,
    re.VERBOSE,
)
_SGR = re.compile(r"\x1b\[([0-9;:]*)m")


_PLAIN_ASCII = bytes(range(0x20, 0x7F)) + b"\t\n"


def has_control(text: str) -> bool:
    """Does ``text`` hold a control character other than tab and newline?

    The log flood's hot path: for ASCII text (nearly all output) deleting every plain byte
    in C leaves something only when there is a control character, several times faster
    than a regex search."""
    if text.isascii():
        return bool(text.encode("ascii").translate(None, _PLAIN_ASCII))
    return _CONTROL.search(text) is not None


def _last_segment(line: str) -> str:
    """What a terminal shows of a line with carriage returns: the part after the last
    one (a ``\\r`` at the end, as in ``\\r\\n``, is ignored)."""
    line = line.rstrip("\r")
    return line[line.rfind("\r") + 1:]


def _keep_sgr(match: re.Match[str]) -> str:
    return match.group("sgr") or ""


def sanitize(text: str, *, keep_sgr: bool = False) -> str:
    """``text`` with every escape sequence and control character dropped except tab and
    newline (and SGR colours with ``keep_sgr``); ``\\r`` as a terminal shows it."""
    if not has_control(text):
        return text
    if "\r" in text:
        text = "\n".join(_last_segment(line) if "\r" in line else line
                         for line in text.split("\n"))
    return _SEQUENCE.sub(_keep_sgr if keep_sgr else "", text)


_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every control character but tab and newline written as an escape
    (``\\x1b``, ``\\r``-as-``\\x0d``, bidi overrides as ``\\u202e``): for commands,
    reasons and prompts shown in the console, where what is there must be seen, not
    obeyed nor silently dropped."""
    if _INVISIBLE.search(text) is None:
        return text
    return _INVISIBLE.sub(_escape, text)


def visible_length(text: str) -> int:
    """Length of ``text`` as shown (SGR sequences take no room)."""
    return len(_SGR.sub("", text)) if "\x1b" in text else len(text)


def styled_spans(line: str, *, tab_size: int = 8) -> list[tuple[str, str]]:
    """One line as (text, SGR parameters in effect) runs, sanitised, tabs expanded.

    The parameters are the concatenation of every SGR since the last reset
    (``"1;31"``; ``""`` for none): :func:`sgr_style` turns them into a Rich style.
    """
    if not has_control(line):
        return [(line.expandtabs(tab_size) if "\t" in line else line, "")]
    line = sanitize(line.replace("\n", " "), keep_sgr=True)
    spans: list[tuple[str, str]] = []
    column = 0
    active = ""
    position = 0
    for match in [*_SGR.finditer(line), None]:
        end = match.start() if match is not None else len(line)
        chunk = line[position:end]
        if chunk:
            if "\t" in chunk:  # tab stops count from the start of the line, across spans
                chunk = (" " * column + chunk).expandtabs(tab_size)[column:]
            spans.append((chunk, active))
            column += len(chunk)
        if match is None:
            break
        params = match.group(1)
        # later codes override earlier ones, a 0 inside resets: Rich decodes them in order
        active = "" if params in ("", "0") else f"{active};{params}".lstrip(";")
        position = match.end()
    return spans or [("", "")]


@functools.lru_cache(maxsize=512)
def sgr_style(params: str) -> Style:
    """The Rich style of accumulated SGR parameters (as :func:`styled_spans` gives)."""
    from rich.style import Style

    if not params:
        return Style()
    from rich.text import Text

    text = Text.from_ansi(f"\x1b[{params}mx")
    spans = text.spans
    if not spans:
        return Style()
    style = spans[0].style
    return style if isinstance(style, Style) else Style.parse(str(style))
