"""The headless printers on hand-made events."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.engine.events import ActionEvent, LogEvent, RunEvent, RunState, TaskEvent, TaskState
from console.printers import HumanPrinter, JsonPrinter, format_summary, use_color


def human(**kwargs) -> tuple[HumanPrinter, io.BytesIO]:
    out = io.BytesIO()
    return HumanPrinter(out, **kwargs), out


def text_of(printer, out: io.BytesIO) -> str:
    printer.flush()
    return out.getvalue().decode()


def per_line_dumps(event: LogEvent) -> str:
    return "".join(
        json.dumps(d, ensure_ascii=False, separators=(",", ":")) + "\n" for d in event.to_dicts()
    )


# --- human -----------------------------------------------------------------------------


def test_human_prefixes_every_line_of_a_chunk() -> None:
    printer, out = human()
    printer(LogEvent("build", "local", "stdout", "one\ntwo\n\nfour", 1.0))
    printer(LogEvent("deploy", "web1", "stderr", "boom", 2.0))
    assert text_of(printer, out) == (
        "build | one\nbuild | two\nbuild | \nbuild | four\ndeploy@web1 | boom\n"
    )


def test_human_pads_prefixes_to_a_common_width() -> None:
    printer, out = human(width=11)
    printer(LogEvent("a", "local", "stdout", "x\ny", 1.0))
    assert text_of(printer, out) == "a           | x\na           | y\n"


def test_human_task_lines_show_attempt_duration_exit_and_reason() -> None:
    printer, out = human()
    printer(TaskEvent("deploy", "web1", TaskState.RUNNING, 1, None, None, 10.0))
    printer(TaskEvent("deploy", "web1", TaskState.RETRYING, 1, 3, "exit 3; retry 1/2 in 1s", 11.0))
    printer(TaskEvent("deploy", "web1", TaskState.RUNNING, 2, None, None, 12.0))
    printer(TaskEvent("deploy", "web1", TaskState.FAILED, 2, 3, "exit 3", 13.5))
    printer(TaskEvent("build", "local", TaskState.RUNNING, 1, None, None, 20.0))
    printer(TaskEvent("build", "local", TaskState.SUCCEEDED, 1, 0, None, 21.25))
    printer(TaskEvent("build", "local", TaskState.PENDING, 1, None, "approved", 22.0))
    assert text_of(printer, out).splitlines() == [
        "● deploy@web1 running (attempt 1)",
        "↻ deploy@web1 retrying (attempt 1) (exit 3; retry 1/2 in 1s)",
        "● deploy@web1 running (attempt 2)",
        "✗ deploy@web1 failed 3.50s exit 3",
        "● build running (attempt 1)",
        "✓ build succeeded 1.25s",
    ]


def test_human_run_and_action_lines_mask_reasons() -> None:
    printer, out = human(mask=lambda text: text.replace("hunter2", "***"))
    printer(RunEvent("r1", RunState.RUNNING, 1.0))
    printer(ActionEvent("skip", "db", "db1", "alice", "pw hunter2 broke", 2.0))
    printer(TaskEvent("db", "db1", TaskState.SKIPPED, 0, None, "skipped: hunter2", 3.0))
    text = text_of(printer, out)
    assert "hunter2" not in text
    assert text.splitlines() == [
        "▶ run r1 running",
        "» skip db@db1 by alice: pw *** broke",
        "- db@db1 skipped (skipped: ***)",
    ]


def test_human_colour_only_when_asked() -> None:
    plain, out = human(color=False)
    plain(LogEvent("s", "local", "stderr", "err", 1.0))
    plain(TaskEvent("s", "local", TaskState.FAILED, 1, 1, None, 1.0))
    assert "\x1b[" not in text_of(plain, out)
    coloured, out = human(color=True)
    coloured(LogEvent("s", "local", "stderr", "e1\ne2", 1.0))
    text = text_of(coloured, out)
    assert text.count("\x1b[31m") == 2  # every stderr line in red
    assert text.count("\x1b[0m") >= 2


class FakeStream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_use_color_needs_a_tty_and_no_NO_COLOR(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(FakeStream(tty=True))
    assert not use_color(FakeStream(tty=False))
    assert not use_color(io.BytesIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(FakeStream(tty=True))


def test_closed_pipe_is_silent() -> None:
    class Closed(io.BytesIO):
        def write(self, data: bytes) -> int:
            raise BrokenPipeError

    printer = HumanPrinter(Closed())
    printer(LogEvent("s", "local", "stdout", "x", 1.0))
    printer(TaskEvent("s", "local", TaskState.RUNNING, 1, None, None, 1.0))
    printer.flush()


# --- summary ---------------------------------------------------------------------------


@dataclass
class FakeTask:
    step: str
    host: str
    state: TaskState
    attempt: int
    exit_code: int | None
    reason: str | None
    duration: float | None


def test_summary_table() -> None:
    tasks = [
        FakeTask("build", "local", TaskState.SUCCEEDED, 1, 0, None, 1.234),
        FakeTask("deploy", "web1", TaskState.FAILED, 3, 2, "token s3cret rejected", 75.0),
        FakeTask("verify", "local", TaskState.BLOCKED, 0, None, "needs deploy (failed)", None),
    ]
    text = format_summary(tasks, RunState.FAILED, 80.5, mask=lambda t: t.replace("s3cret", "***"))
    lines = text.splitlines()
    assert lines[0].split() == ["STEP", "HOST", "STATE", "ATTEMPTS", "DURATION", "RESULT"]
    assert lines[1].split() == ["build", "local", "succeeded", "1", "1.23s", "exit", "0"]
    assert lines[2].split()[:5] == ["deploy", "web1", "failed", "3", "1m15s"]
    assert lines[2].endswith("exit 2, token *** rejected")
    assert lines[3].split()[:5] == ["verify", "local", "blocked", "0", "-"]
    assert lines[-1] == "total 1m20s · run failed"
    # columns line up
    assert len({line.index("STATE") if i == 0 else None for i, line in enumerate(lines[:1])}) == 1
    starts = {line.find(word) for line, word in zip(lines[:4], ["STATE", "succeeded", "failed",
                                                               "blocked"], strict=True)}
    assert len(starts) == 1


# --- JSON ------------------------------------------------------------------------------


def json_output(*events) -> str:
    out = io.BytesIO()
    printer = JsonPrinter(out)
    for event in events:
        printer(event)
    printer.flush()
    return out.getvalue().decode()


def test_json_fast_path_equals_per_line_dumps() -> None:
    event = LogEvent("deploy", "web1", "stdout", "1\n2\nhé ☃ 𝄞\n\nlast", 1732640000.123)
    text = json_output(event)
    assert text == per_line_dumps(event)
    assert [json.loads(line)["line"] for line in text.splitlines()] == event.lines


@pytest.mark.parametrize(
    "chunk",
    [
        'say "hi"',
        "C:\\path\\to",
        "tab\there\x00nul\x1bescape\rcr",
        'mixed\nplain line\n"quoted"\n\\\n\x7fdel',
        "\u2028line separator",
    ],
)
def test_json_escaping_fallback_is_valid_and_exact(chunk: str) -> None:
    event = LogEvent("s", "local", "stderr", chunk, 5.5)
    text = json_output(event)
    assert text == per_line_dumps(event)
    assert [json.loads(line)["line"] for line in text.split("\n")[:-1]] == chunk.split("\n")


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
                min_size=1, max_size=8))
def test_json_log_lines_round_trip(lines: list[str]) -> None:
    lines = [line.replace("\n", "") for line in lines]
    event = LogEvent('st"ep', "h\\ost", "stdout", "\n".join(lines), 3.25)
    text = json_output(event)
    assert text == per_line_dumps(event)
    decoded = [json.loads(line) for line in text.split("\n")[:-1]]
    assert [d["line"] for d in decoded] == lines
    assert all(d["step"] == 'st"ep' and d["host"] == "h\\ost" for d in decoded)


def test_json_other_events_match_spec_and_mask_reasons() -> None:
    mask = lambda text: text.replace("pw1", "***")  # noqa: E731
    out = io.BytesIO()
    printer = JsonPrinter(out, mask=mask)
    printer(RunEvent("r1", RunState.RUNNING, 1.0))
    printer(TaskEvent("deploy", "web1", TaskState.FAILED, 2, 1, "login pw1 refused", 2.0))
    printer(ActionEvent("note", None, None, "bob", "rotated pw1", 3.0))
    printer(RunEvent("r1", RunState.FAILED, 4.0))
    printer.flush()
    lines = out.getvalue().decode().splitlines()
    assert lines == [
        '{"type":"run","run_id":"r1","state":"running","time":1.0}',
        '{"type":"task","step":"deploy","host":"web1","state":"failed","attempt":2,'
        '"exit_code":1,"reason":"login *** refused","time":2.0}',
        '{"type":"action","action":"note","step":null,"host":null,"user":"bob",'
        '"reason":"rotated ***","time":3.0}',
        '{"type":"run","run_id":"r1","state":"failed","time":4.0}',
    ]
