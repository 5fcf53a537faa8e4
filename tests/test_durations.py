"""One duration formatter, four styles (issue 12 item 6): each style writes exactly what
the formatter it replaced wrote (copied here as the reference), for any duration."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.model.durations import COMPACT, PRECISE, SHORT, SPACED, format_duration


def _short(seconds: float) -> str:  # was console.model.durations.format_duration
    if seconds < 60:  # (it wrote -0.0 as "-0.0s"; every clamped style now writes "0.0s")
        return f"{max(0.0, seconds):.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _precise(seconds: float | None) -> str:  # was console.printers.format_duration
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s"


def _spaced(seconds: float | None) -> str:  # was console.store.show.duration
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s"


def _compact(seconds: float | None) -> str:  # was console.ui.format.duration
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


STYLES = [(SHORT, _short), (PRECISE, _precise), (SPACED, _spaced), (COMPACT, _compact)]
EDGES = [-3.0, -0.01, 0.0, 0.004, 0.05, 9.994, 9.996, 10.0, 10.4, 10.5, 59.4, 59.5, 59.96,
         60.0, 89.5, 599.5, 3599.4, 3599.5, 3600.0, 3725.0, 86399.6, 360000.0]


@pytest.mark.parametrize(("style", "reference"), STYLES)
def test_each_style_writes_what_its_old_formatter_wrote_at_the_edges(style, reference):
    for seconds in EDGES:
        assert format_duration(seconds, style) == reference(seconds), seconds
    if reference is not _short:
        assert format_duration(None, style) == reference(None)


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-100.0, max_value=1e7, allow_nan=False))
def test_each_style_matches_its_old_formatter_anywhere(seconds: float) -> None:
    for style, reference in STYLES:
        assert format_duration(seconds, style) == reference(seconds)


def test_the_styles_read_as_documented() -> None:
    assert [format_duration(s, SPACED) for s in (0.42, 12.4, 185, 3725)] == [
        "0.4s", "12s", "3m 05s", "1h 02m 05s"]
    assert [format_duration(s, PRECISE) for s in (0.42, 12.44, 185, 3725)] == [
        "0.42s", "12.4s", "3m05s", "1h02m05s"]
    assert [format_duration(s, COMPACT) for s in (None, -1, 12.9, 3725)] == [
        "", "0.0s", "12s", "1h02m"]
