"""Durations ("1h30m", "250ms") and percentages ("25%") as written in workflow files, and
the one formatter that writes a duration back for a person (:func:`format_duration`, in the
style of the place that shows it)."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

MAX_DURATION = 365 * 86400.0
"""The longest duration a workflow may give (timeouts, delays): a year. Anything longer is
a typo, and huge values overflow timers and date arithmetic."""
MAX_DURATION_TEXT = "365d"

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")


def parse_duration(value: int | float | str) -> float:
    """Seconds for a number or a duration string such as "90s", "5m", "1h30m", "250ms"."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '90s' or '5m', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_duration_text(value)
    else:
        raise ValueError(f"expected a duration like '90s' or '5m', got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be a positive number of seconds, got {value!r}")
    if seconds > MAX_DURATION:
        raise ValueError(f"duration {value!r} is too long: at most {MAX_DURATION_TEXT} "
                         f"({MAX_DURATION:.0f} seconds)")
    return seconds


def _parse_duration_text(value: str) -> float:
    text = value.strip().lower().replace(" ", "")
    if _NUMBER.fullmatch(text):
        return float(text)
    total = 0.0
    pos = 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(
            f"invalid duration {value!r}: use a number of seconds or units ms/s/m/h/d, "
            "e.g. '90s', '5m', '1h30m', '250ms'"
        )
    return total


def parse_percent(value: str) -> float:
    """The number in a percentage string like "25%" (0 < p <= 100)."""
    text = value.strip() if isinstance(value, str) else ""
    if not text.endswith("%") or not _NUMBER.fullmatch(text[:-1].strip()):
        raise ValueError(f"invalid percentage {value!r}: expected a string like '25%'")
    percent = float(text[:-1])
    if not 0 < percent <= 100:
        raise ValueError(f"percentage {value!r} out of range: must be above 0% and at most 100%")
    return percent


@dataclass(frozen=True)
class DurationStyle:
    """How :func:`format_duration` writes a duration in one place of Baton."""

    unknown: str
    """What an unknown duration (None) reads as."""
    fine_below: float
    """Below this many seconds: seconds with ``decimals`` decimals."""
    decimals: int
    tenths_below: float
    """Below this many seconds (and from ``fine_below``): seconds with one decimal."""
    truncate: bool
    """Whole seconds by truncation (else rounded)."""
    sep: str
    """Between the parts: ``3m05s`` or ``3m 05s``."""
    hour_seconds: bool
    """Hours show seconds too (``1h02m05s``), else ``1h02m``."""
    clamp: bool
    """A negative duration (a clock step) reads as 0."""


SHORT = DurationStyle("-", 60, 1, 60, True, "", False, True)
"""``0.4s``, ``12.5s``, ``3m05s``, ``1h02m``: durations in messages."""
PRECISE = DurationStyle("-", 10, 2, 60, False, "", True, False)
"""``0.42s``, ``12.5s``, ``3m05s``, ``1h02m05s``: the headless printers and ``baton runs``."""
SPACED = DurationStyle("-", 10, 1, 10, False, " ", True, False)
"""``0.4s``, ``12s``, ``3m 05s``, ``1h 02m 05s``: ``baton show`` and the incident timeline."""
COMPACT = DurationStyle("", 10, 1, 10, True, "", False, True)
"""``0.4s``, ``12s``, ``3m05s``, ``1h02m``, empty when unknown: the console's columns."""


def format_duration(seconds: float | None, style: DurationStyle = SHORT) -> str:
    """``seconds`` written in ``style`` (the one duration formatter of Baton)."""
    if seconds is None:
        return style.unknown
    if style.clamp:
        seconds = max(0.0, seconds)
    if seconds < style.fine_below:
        return f"{seconds:.{style.decimals}f}s"
    if seconds < style.tenths_below:
        return f"{seconds:.1f}s"
    whole = int(seconds) if style.truncate else round(seconds)
    if whole < 60:
        return f"{whole}s"
    sep = style.sep
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{sep}{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if style.hour_seconds:
        return f"{hours}h{sep}{minutes:02d}m{sep}{secs:02d}s"
    return f"{hours}h{sep}{minutes:02d}m"


def retry_delay(delay: float, backoff: float, retry: int) -> float:
    """Seconds before automatic retry number ``retry`` (1-based): ``delay * backoff **
    (retry - 1)``, capped at :data:`MAX_DURATION` (many retries would overflow a float)."""
    try:
        value = delay * backoff ** (retry - 1)
    except OverflowError:
        return MAX_DURATION
    return min(value, MAX_DURATION) if math.isfinite(value) else MAX_DURATION


def utc_iso(t: float | None) -> str:
    """A moment as ``baton runs`` and ``baton show`` print it: UTC, ISO 8601 to the second
    (``-`` for none)."""
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
