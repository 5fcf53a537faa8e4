"""Ansible host patterns: ``host:port``, ``[v6addr]:port``, ranges ``web[01:03]``/``[a:c]``.

A port of ``ansible.parsing.utils.addresses.parse_address`` and
``expand_hostname_range`` (ansible-core 2.19), so that names and ports come out the same.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from typing import Any

__all__ = ["expand_hostpattern"]

_NUMERIC_RANGE = r"\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_HEX_RANGE = r"\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]"
_ALNUM_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_V6 = rf"(?:[0-9a-f]{{1,4}}|{_HEX_RANGE})"
_V4 = rf"(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{_NUMERIC_RANGE})"
_LABEL = rf"(?:[\w]|{_ALNUM_RANGE})(?:[\w_-]|{_ALNUM_RANGE})*(?<![_-])"

_BRACKETED = re.compile(r"^\[(.+)\]:([0-9]+)$")
_HOSTPORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")
_IPV4 = re.compile(rf"^(?:{_V4}\.){{3}}{_V4}$", re.I)
_IPV6 = re.compile(
    rf"""^((?:{_V6}:){{7}}{_V6}|(?:{_V6}:){{1,6}}:|(?:{_V6}:)(?::{_V6}){{1,6}}|
    (?:{_V6}:){{2}}(?::{_V6}){{1,5}}|(?:{_V6}:){{3}}(?::{_V6}){{1,4}}|
    (?:{_V6}:){{4}}(?::{_V6}){{1,3}}|(?:{_V6}:){{5}}(?::{_V6}){{1,2}}|
    (?:{_V6}:){{6}}(?::{_V6})|:(?::{_V6}){{1,6}}|{_V6}?::|
    (?:0:){{6}}(?:{_V6}\.){{3}}{_V6}|::(?:ffff:)?(?:{_V6}\.){{3}}{_V6}|
    (?:0:){{5}}ffff:(?:{_V6}\.){{3}}{_V6})$""", re.X | re.I)
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$", re.I | re.UNICODE)


def _parse_address(address: str) -> tuple[str, int | None] | None:
    port = None
    for pattern in (_BRACKETED, _HOSTPORT):
        match = pattern.match(address)
        if match:
            address, port = match.group(1), int(match.group(2))
    if any(p.match(address) for p in (_IPV4, _IPV6, _HOSTNAME)):
        return address, port
    return None


def expand_hostpattern(pattern: Any,
                       fail: Callable[[str], Exception]) -> tuple[list[str], int | None]:
    """(host names, port or None) for one host pattern, as Ansible expands it."""
    if not isinstance(pattern, str):
        raise fail("a host name must be a string (quote numbers)")
    parsed = _parse_address(pattern)
    name, port = parsed if parsed is not None else (pattern, None)
    if "[" in name:
        return _expand_range(name, fail), port
    return [name], port


def _expand_range(line: str, fail: Callable[[str], Exception]) -> list[str]:
    if line.count("[") < 1 or "]" not in line:
        raise fail("bad host range (use [01:10] or [a:f])")
    head, nrange, tail = line.replace("[", "|", 1).replace("]", "|", 1).split("|")[:3]
    bounds = nrange.split(":")
    if len(bounds) not in (2, 3):
        raise fail("a host range must be begin:end or begin:end:step")
    begin, end = bounds[0] or "0", bounds[1]
    step = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise fail("a host range must specify an end value")
    width = 0
    if begin[0] == "0" and len(begin) > 1:
        width = len(begin)
        if width != len(end):
            raise fail("a host range must have begin and end of equal length")
    try:
        stride = int(step)
        if stride < 1:
            raise ValueError
        if begin in string.ascii_letters and end in string.ascii_letters:
            first, last = string.ascii_letters.index(begin), string.ascii_letters.index(end)
            if first > last:
                raise fail("a host range must have begin <= end")
            values: list[str] = list(string.ascii_letters[first:last + 1:stride])
        else:
            values = [str(i).zfill(width) for i in range(int(begin), int(end) + 1, stride)]
    except ValueError:
        raise fail("bad host range (use [01:10] or [a:f])") from None
    out: list[str] = []
    for value in values:
        name = head + value + tail
        out.extend(_expand_range(name, fail) if "[" in name else [name])
    return out
