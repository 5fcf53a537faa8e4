"""Issue 15, the runner's cost on a flood: a process with no screen (the runner) lets a
step's output gather for a moment after reading a pipe empty (``READ_PAUSE``), so a
step printing line by line is read, recorded and sent in chunks of many lines; every
byte still arrives, in order, and the end of the output still ends the attempt."""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import time
from pathlib import Path

import pytest

from console.executors import local_execution
from console.executors.base import CommandRequest
from console.executors.local import LocalExecutor
from console.model.workflow import LOCAL_HOST
from console.runner import process

PAUSE = 0.002
LINES = 100_000
# one write per line (a chatty program), a few stderr lines, a last line without newline
CHATTY = (f"awk 'BEGIN {{ for (i = 1; i <= {LINES}; i++) {{ print \"line \" i; "
          f"if (i % 25000 == 0) print \"err \" i > \"/dev/stderr\"; fflush() }} "
          f"printf \"no newline\" }}'")


class Output:
    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.calls = 0
        self.first = self.last = 0.0

    def __call__(self, stream: str, text: str) -> None:
        self.calls += 1
        self.last = time.monotonic()
        self.first = self.first or self.last
        self.lines[stream] += text.split("\n")


async def run(script: str) -> tuple[int | None, Output]:
    output = Output()
    request = CommandRequest(step="s", host=LOCAL_HOST, script=script)
    execution = await LocalExecutor().start(request, output)
    status = await asyncio.wait_for(execution.wait(), 60)
    return status.exit_code, output


@pytest.fixture
def pausing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_execution, "READ_PAUSE", PAUSE)
    monkeypatch.setattr(LocalExecutor, "use_pidfd", True)


def test_the_runner_pauses_its_reads() -> None:
    assert process.READ_PAUSE > 0
    assert local_execution.READ_PAUSE == 0.0  # other processes read at once (a console)


async def test_a_chatty_step_is_read_in_few_chunks_every_byte_in_order(pausing: None) -> None:
    code, out = await run(CHATTY)
    assert code == 0
    assert out.lines["stdout"] == [f"line {i}" for i in range(1, LINES + 1)] + ["no newline"]
    assert out.lines["stderr"] == [f"err {i}" for i in range(25_000, LINES + 1, 25_000)]
    # each pipe is read at most once per PAUSE while it keeps coming (and a full
    # read goes on at once): not a read per line or two (thousands here otherwise)
    span = out.last - out.first
    assert out.calls <= 2 * (span / PAUSE + 2) + 8, (out.calls, span)


async def test_a_flood_written_at_once_is_not_slowed_by_the_pause(pausing: None) -> None:
    code, out = await run("seq 1 2000000")
    assert code == 0
    assert len(out.lines["stdout"]) == 2_000_000 and out.lines["stdout"][-1] == "2000000"
    # full reads (READ_SIZE) go on without a pause: ~15 MB come in far fewer reads than
    # a pause each would allow in the time it took
    assert out.calls * PAUSE > out.last - out.first or out.calls < 200


async def test_paused_pipes_hold_more(pausing: None) -> None:
    sizes: list[int] = []
    original = local_execution.PidfdWatch.__init__

    def spy(self: local_execution.PidfdWatch, loop: asyncio.AbstractEventLoop,
            execution: local_execution.LocalExecution, process: object, stdout: int,
            stderr: int, on_output: object) -> None:
        original(self, loop, execution, process, stdout, stderr, on_output)  # type: ignore[arg-type]
        sizes.extend(fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) for fd in (stdout, stderr))

    local_execution.PidfdWatch.__init__ = spy  # type: ignore[method-assign]
    try:
        code, out = await run("echo one; sleep 0.05; echo two")
    finally:
        local_execution.PidfdWatch.__init__ = original  # type: ignore[method-assign]
    assert code == 0 and out.lines["stdout"] == ["one", "two"]
    most = Path("/proc/sys/fs/pipe-max-size")
    limit = int(most.read_text()) if most.exists() else 0
    assert sizes and all(size >= min(limit, local_execution.PAUSED_PIPE_SIZE)
                         for size in sizes), sizes


async def test_a_quiet_step_is_not_held_back(pausing: None) -> None:
    """Output that comes slowly is read as it comes (a pause is a few ms, once)."""
    out = Output()
    times: list[float] = []

    def note(stream: str, text: str) -> None:
        times.append(time.monotonic())
        out(stream, text)

    request = CommandRequest(step="s", host=LOCAL_HOST,
                             script="for i in 1 2 3; do echo $i; sleep 0.2; done")
    execution = await LocalExecutor().start(request, note)
    await asyncio.wait_for(execution.wait(), 10)
    assert out.lines["stdout"] == ["1", "2", "3"]
    assert len(times) == 3 and all(b - a > 0.1 for a, b in itertools.pairwise(times))


async def test_a_runner_prints_no_event_and_still_records_every_line(tmp_path: Path) -> None:
    """The runner's stdout is /dev/null: it subscribes no printer (whose commit before
    each pass's output made the loop wait for the log writer thread), and the history
    still holds the run and its output."""
    import io

    from console.engine.run import Run, RunOptions
    from console.headless import execute_headless
    from console.model.loader import load_workflow
    from console.store import Store

    path = tmp_path / "wf.toml"
    path.write_text('[workflow]\nname = "w"\n[steps.s]\nrun = "seq 1 3"\n')
    store = Store.open(tmp_path / "home")
    try:
        printed: list[bytes] = []
        for printing in (True, False):
            run = Run(load_workflow(path), RunOptions(approval="auto"))
            out = io.BytesIO()
            code = await execute_headless(run, out=out, err=io.StringIO(), store=store,
                                          printing=printing)
            assert code == 0
            printed.append(out.getvalue())
            log = store.home / "logs" / run.id
            assert [p.read_text() for p in log.glob("s@*.log")] == ["1\n2\n3\n"]
        assert b"s | 3" in printed[0].replace(b"  ", b" ")
        assert printed[1] == b""
    finally:
        store.close()
