"""Sizes in workflow files: ``log_limit = "256MiB"`` (or a number of bytes)."""

from __future__ import annotations

import re

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4,
          "tb": 1000**4, "tib": 1024**4}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*\Z")

MAX_SIZE = 1024**5
"""Anything bigger is a typo (a pebibyte of log per attempt)."""


def parse_size(value: int | float | str) -> int:
    """Bytes of ``1024``, ``"64KiB"``, ``"256MiB"``, ``"1.5GB"``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like '256MiB', got {value!r}")
    if isinstance(value, int | float):
        number, unit = float(value), ""
    else:
        match = _SIZE.match(value)
        if match is None or match.group(2).lower() not in _UNITS:
            raise ValueError(f"expected a size like '256MiB' or '10MB', got {value!r}")
        number, unit = float(match.group(1)), match.group(2).lower()
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"expected a finite size, got {value!r}")
    size = number * _UNITS[unit]
    if size > MAX_SIZE:
        raise ValueError(f"size {value!r} is too large (at most 1PiB)")
    return int(size)


def format_size(size: int) -> str:
    """``268435456`` -> ``256MiB``; ``1500`` -> ``1500 bytes``."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size} bytes"
