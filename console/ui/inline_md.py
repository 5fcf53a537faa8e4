"""One line of Markdown as styled text, for places too small for the Markdown widget (the
folder view's description column): code spans, bold, italics and links lose their
markers and keep their meaning; anything too long ends with an ellipsis."""

from __future__ import annotations

import re

from rich.style import Style
from rich.text import Text

_INLINE = re.compile(
    r"`(?P<code>[^`]+)`"
    r"|\*\*(?P<bold>[^*]+)\*\*|__(?P<bold2>[^_]+)__"
    r"|(?<![\w*])\*(?P<italic>[^*\s][^*]*)\*|(?<![\w_])_(?P<italic2>[^_\s][^_]*)_(?!\w)"
    r"|\[(?P<link>[^\]]+)\]\([^)]*\)"
)
_HEADING = re.compile(r"^\s*#{1,6}\s")
_BLOCK_MARK = re.compile(r"^\s*(#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*)")

STYLES = {
    "code": Style(bold=True),
    "bold": Style(bold=True),
    "bold2": Style(bold=True),
    "italic": Style(italic=True),
    "italic2": Style(italic=True),
    "link": Style(underline=True),
}


def first_paragraph(markdown: str) -> str:
    """The first paragraph of ``markdown`` as one line, without block markers; headings
    are titles, not the paragraph (one is used only when nothing else is there)."""
    lines: list[str] = []
    heading = ""
    for line in markdown.splitlines():
        if _HEADING.match(line):
            heading = heading or _BLOCK_MARK.sub("", line).strip()
            if lines:
                break
            continue
        if not line.strip():
            if lines:
                break
            continue
        lines.append(_BLOCK_MARK.sub("", line).strip())
    return " ".join(lines) or heading


def inline(markdown: str, style: Style | str = "") -> Text:
    """``markdown`` (one line) with its inline markup applied."""
    text = Text(style=style, no_wrap=True, overflow="ellipsis")
    position = 0
    for match in _INLINE.finditer(markdown):
        text.append(markdown[position:match.start()])
        kind = match.lastgroup or "code"
        text.append(match.group(kind), style=STYLES[kind])
        position = match.end()
    text.append(markdown[position:])
    return text


def fit(text: Text | str, width: int) -> Text:
    """``text`` cut to ``width`` cells, ending with ``…`` when it was longer."""
    result = Text(text) if isinstance(text, str) else text.copy()
    if width > 0 and result.cell_len > width:
        result.truncate(width - 1, overflow="crop")
        result.append("…")
    return result
