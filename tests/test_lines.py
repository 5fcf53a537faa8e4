"""LineSplitter: bytes in, chunks of complete decoded lines out."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.executors import lines as lines_module
from console.executors.lines import MAX_LINE, LineSplitter


def run(chunks: list[bytes]) -> list[str]:
    """Feed every chunk, flush, and return the delivered lines."""
    splitter = LineSplitter()
    out: list[str] = []
    for chunk in chunks:
        text = splitter.feed(chunk)
        if text is not None:
            out.extend(text.split("\n"))
    tail = splitter.flush()
    if tail is not None:
        out.extend(tail.split("\n"))
    return out


def test_complete_lines_are_joined_and_the_partial_one_waits() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"a\nb\nc") == "a\nb"
    assert splitter.flush() == "c"


def test_partial_line_is_completed_by_a_later_feed() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"ab") is None
    assert splitter.feed(b"c") is None
    assert splitter.feed(b"d\ne") == "abcd"
    assert splitter.feed(b"\n") == "e"
    assert splitter.flush() is None


def test_empty_lines_are_kept() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"\n") == ""
    assert splitter.feed(b"\n\nx\n") == "\n\nx"


def test_empty_feed_and_empty_flush_give_nothing() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"") is None
    assert splitter.flush() is None


def test_flush_resets_the_partial_line() -> None:
    splitter = LineSplitter()
    splitter.feed(b"one")
    assert splitter.flush() == "one"
    assert splitter.feed(b"two\n") == "two"


def test_multibyte_characters_split_across_feeds() -> None:
    data = "é€😀\nnaïve\n".encode()
    assert run([data[i : i + 1] for i in range(len(data))]) == ["é€😀", "naïve"]


def test_invalid_bytes_are_replaced() -> None:
    assert run([b"ok \xff\xfe end\n"]) == ["ok \ufffd\ufffd end"]


def test_truncated_character_at_the_end_is_replaced_on_flush() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"x\xe2\x82") is None
    assert splitter.flush() == "x\ufffd"


@pytest.mark.parametrize("chunk_size", [65536, 1 << 22])
def test_long_line_comes_in_max_line_pieces(chunk_size: int) -> None:
    data = b"x" * (2 * MAX_LINE + 5) + b"\nend\n"
    pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    out = run(pieces)
    assert [len(line) for line in out] == [MAX_LINE, MAX_LINE, 5, 3]
    assert out[-1] == "end"


def test_line_of_exactly_max_line_adds_no_empty_line() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"y" * MAX_LINE) is None  # may still be one whole line
    assert splitter.feed(b"\n") == "y" * MAX_LINE
    assert splitter.flush() is None


def test_long_unterminated_line_is_not_lost_on_flush() -> None:
    out = run([b"z" * (MAX_LINE + 1)])
    assert [len(line) for line in out] == [MAX_LINE, 1]


def _expected(data: bytes, max_line: int) -> list[str]:
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines[-1] == "":
        lines.pop()
    out: list[str] = []
    for line in lines:
        out.extend([line[i : i + max_line] for i in range(0, len(line), max_line)] or [""])
    return out


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(
        st.one_of(
            st.text(alphabet="ab\né😀", max_size=30).map(str.encode),
            st.binary(max_size=12),
        ),
        max_size=8,
    ).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_output_does_not_depend_on_how_bytes_are_chunked(data: bytes, cuts: list[int]) -> None:
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    original = lines_module.MAX_LINE
    lines_module.MAX_LINE = 7  # small, so that random input exercises long lines
    try:
        assert run(chunks) == _expected(data, 7)
    finally:
        lines_module.MAX_LINE = original
