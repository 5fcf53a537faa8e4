"""Names shown to the operator: refuse control characters, quote a name safely in a message.

A leaf: imports nothing of Baton's.
"""

from __future__ import annotations

import re

__all__ = ["bad_characters", "printable"]

_BAD_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def bad_characters(text: str) -> bool:
    """Does a name hold control characters (C0, DEL, C1, line separators, bidi overrides)?"""
    return _BAD_CHARACTERS.search(text) is not None


def printable(text: str) -> str:
    """``text`` quoted with every control character escaped, safe in a message."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _BAD_CHARACTERS.sub(lambda m: f"\\u{ord(m[0]):04x}", escaped) + '"'
