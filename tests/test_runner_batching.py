"""Issue 15, the runner's cost on a flood: its output goes to clients merged (a few
hundred messages a second, not one per read of the pipe), in order, every byte, masked;
a client of the documented protocol still gets ``lines``; one that asks for
``log_bytes`` (the console) gets the output as bytes after each message; a
late client or a resync neither loses nor repeats a line; the snapshot's tails are the
same last lines as before (kept as chunks now)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from console.engine.events import LogEvent
from console.runner import protocol as p
from console.runner.client import connect
from console.runner.daemon import Spawned, spawn
from console.runner.log_batch import ENOUGH, MAX_TEXT, WINDOW, LogBatch
from console.runner.log_tail import LogTail
from console.runner.reader import Frames

LINES = 100_000
SECRET = "hunter2-s3cret"
# one write per line (awk's fflush), every 10,000th line on stderr; quotes, backslashes,
# tabs, non-ASCII text and the secret in the output
CHATTY = f"""
[workflow]
name = "chatty"

[secrets]
token = {{ env = "BATCH_TEST_TOKEN" }}

[steps.flood]
run = '''awk 'BEGIN {{ for (i = 1; i <= {LINES}; i++) {{
  line = "n=" i " \\"q\\" back\\\\slash\\ttab é ✓ {SECRET}";
  if (i % 10000 == 0) {{ print line > "/dev/stderr" }} else {{ print line }}; fflush() }} }}' '''
"""


def expected(stream: str) -> list[str]:
    return [f'n={i} "q" back\\slash\ttab é ✓ ***' for i in range(1, LINES + 1)
            if (i % 10000 == 0) == (stream == "stderr")]


def start(tmp_path: Path, home: Path, text: str, *args: str) -> Spawned:
    path = tmp_path / "wf.toml"
    path.write_text(text)
    return spawn([str(path), *args], home)


def kill(spawned: Spawned) -> None:
    try:
        os.kill(spawned.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class RawClient:
    """A script speaking the documented protocol: a hello with protocol 1 (and, with
    ``log_bytes``, that option: each log message's ``bytes`` of output follow it)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, socket: Path, log_bytes: bool = False) -> RawClient:
        with p.short_path(socket) as where:
            reader, writer = await asyncio.open_unix_connection(where, limit=p.MAX_SNAPSHOT)
        hello = {"type": "hello", "protocol": 1, **({"log_bytes": True} if log_bytes else {})}
        writer.write(json.dumps(hello).encode() + b"\n")
        await writer.drain()
        return cls(reader, writer)

    async def messages(self) -> Any:
        while line := await self.reader.readline():
            message = json.loads(line)
            if message["type"] == "log" and "bytes" in message:
                output = await self.reader.readexactly(message.pop("bytes"))
                message["text"] = output.decode()
            yield message

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def follow(messages: Any) -> tuple[dict[str, list[str]], int, float]:
    """Lines per stream until the flood step ends; the number of log messages; the span
    of their times (the runner's clock: when each message's first chunk was read)."""
    out: dict[str, list[str]] = {"stdout": [], "stderr": []}
    count, times = 0, []
    async for m in messages:
        if m["type"] == "log":
            count += 1
            times.append(m["time"])
            out[m["stream"]] += m["text"].split("\n") if "text" in m else m["lines"]
        elif m["type"] == "task" and m["step"] == "flood" and m["state"] == "succeeded":
            return out, count, max(times) - min(times)
    raise AssertionError("the connection ended before the step")


async def test_a_flood_reaches_every_client_merged_in_order_every_byte_masked(
        tmp_path: Path, baton_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_TEST_TOKEN", SECRET)
    spawned = start(tmp_path, baton_home, CHATTY, "--step")
    try:
        console = await connect(spawned.socket, host_keys=True, log_bytes=True)
        script = await RawClient.open(spawned.socket)
        raw = await RawClient.open(spawned.socket, log_bytes=True)
        assert (await console.act(p.Action("approve", "flood"))).ok
        (text, messages, span), (lines, _, _), (raw_text, _, _) = await asyncio.wait_for(
            asyncio.gather(follow(console.events()), follow(script.messages()),
                           follow(raw.messages())), 120)
        for stream in ("stdout", "stderr"):
            assert text[stream] == expected(stream), stream
            assert lines[stream] == expected(stream), stream
            assert raw_text[stream] == expected(stream), stream
        # merged: the runner sends output once per WINDOW at most, each stream's run of
        # chunks in a second as one message: over ``span`` seconds that is span / WINDOW
        # sends (and two), one more message per stream per second boundary and two more
        # per stderr line coming between stdout lines (order is kept); not one message
        # per read of the pipe (hundreds and more for this flood)
        bound = span / WINDOW + 2 + 2 * (span + 2) + 2 * len(expected("stderr"))
        assert messages <= bound, (messages, span)
        await console.close()
        await script.close()
        await raw.close()
    finally:
        kill(spawned)


SEQ = """
[workflow]
name = "seq"

[steps.flood]
run = "for i in $(seq 1 40); do seq $(( (i - 1) * 5000 + 1 )) $(( i * 5000 )); sleep 0.02; done"
"""


def numbers(lines: list[str]) -> list[int]:
    return [int(x) for x in lines]


async def test_a_late_client_and_a_resync_neither_lose_nor_repeat_a_line(
        tmp_path: Path, baton_home: Path) -> None:
    """Output held for merging when a client joins (or asks for a fresh snapshot) is in
    that snapshot's tail: the client's next line follows the tail's last one."""
    spawned = start(tmp_path, baton_home, SEQ, "--step")
    try:
        first = await connect(spawned.socket, host_keys=True, log_bytes=True)
        assert (await first.act(p.Action("approve", "flood"))).ok
        seen = 0
        async for m in first.events():
            if m["type"] == "log":
                seen += m["text"].count("\n") + 1
            if seen > 30_000:
                break
        late = await connect(spawned.socket, log_bytes=True)  # joins mid-flood
        expect = tail_end(late.snapshot())
        checked = resynced = 0
        async for m in late.events():
            if m["type"] == "log":
                got = numbers(m["text"].split("\n"))
                assert got == list(range(expect + 1, expect + 1 + len(got))), (expect, got[:3])
                expect = got[-1]
                checked += len(got)
                if not resynced and checked > 10_000:
                    await late.request_snapshot()
                    resynced = 1
            elif m["type"] == "snapshot":
                resynced += 1
                expect = tail_end(m)
            elif m["type"] == "task" and m["state"] == "succeeded":
                break
        assert resynced == 2 and expect == 200_000
        await first.close()
        await late.close()
    finally:
        kill(spawned)


def tail_end(snapshot: dict[str, Any]) -> int:
    """The number on the last line of the flood's tail (its lines contiguous)."""
    tail = next(lg["lines"] for lg in snapshot["logs"] if lg["step"] == "flood")
    got = numbers([x["line"] for x in tail])
    assert got == list(range(got[0], got[0] + len(got)))
    return got[-1]


# ------------------------------------------------------------------ units


def event(text: str, t: float = 1000.25, stream: str = "stdout", step: str = "s",
          attempt: int = 1) -> LogEvent:
    return LogEvent(step, "local", stream, text, t, attempt)  # type: ignore[arg-type]


def test_consecutive_chunks_of_one_stream_and_second_are_one_message() -> None:
    batch = LogBatch()
    for e in [event("a\nb"), event("c", 1000.5), event("d", stream="stderr"),
              event("e", 1000.9, stream="stderr"), event("f", 1001.0, stream="stderr"),
              event("g", 1001.1, step="other"), event("h", 1001.2, step="other", attempt=2)]:
        batch.add(e)
    runs = batch.take()
    assert not batch and batch.size == 0
    sent = [framed(r.message(True)) for r in runs]
    assert [(m["step"], m["stream"], m["text"], m["time"]) for m in sent] == [
        ("s", "stdout", "a\nb\nc", 1000.25),   # the time of its first chunk
        ("s", "stderr", "d\ne", 1000.25),
        ("s", "stderr", "f", 1001.0),          # another second: another message
        ("other", "stdout", "g", 1001.1),
        ("other", "stdout", "h", 1001.2),      # another attempt
    ]
    assert [json.loads(r.message(False))["lines"] for r in runs] == [
        ["a", "b", "c"], ["d", "e"], ["f"], ["g"], ["h"]]
    head, _, output = runs[0].message(True).partition(b"\n")
    assert json.loads(head) == {"type": "log", "step": "s", "host": "local",
                                "stream": "stdout", "time": 1000.25, "bytes": 5}
    assert output == b"a\nb\nc"  # as it is, no newline after it


def test_a_merged_message_stays_within_its_size_bound() -> None:
    batch = LogBatch()
    chunk = "x" * (MAX_TEXT // 3)
    for _ in range(7):
        batch.add(event(chunk))
    batch.add(event("y" * (MAX_TEXT * 2)))  # one larger chunk goes as it came
    sizes = [len(framed(r.message(True))["text"]) for r in batch.take()]
    assert sizes[-1] == MAX_TEXT * 2
    assert all(size <= MAX_TEXT for size in sizes[:-1]) and len(sizes) == 5
    assert sum(sizes[:-1]) == 7 * len(chunk) + 3  # every character, and the newlines


def framed(data: bytes) -> dict[str, Any]:
    frames = Frames()
    frames.feed(data)
    [(message, size)] = frames.messages()
    assert size == len(data) and frames.waiting == 0
    return message


@pytest.mark.parametrize("seed", range(3))
def test_framed_messages_come_out_whole_however_the_bytes_are_cut(seed: int) -> None:
    """The console's reader: JSON lines and log messages followed by their output as
    bytes (newlines, quotes, non-ASCII text in it), cut anywhere on the way."""
    rng = random.Random(seed)
    sent: list[dict[str, Any]] = []
    wire = b""
    for i in range(300):
        if rng.random() < 0.4:
            message = {"type": "task", "step": f"s{i}", "reason": 'é\n"x'}
            sent.append(message)
            wire += p.encode(message)
            continue
        text = "\n".join(rng.choice(["a", "é✓", "", "x" * rng.randint(0, 500), 'q"\\\t'])
                         for _ in range(rng.randint(1, 30)))
        batch = LogBatch()
        batch.add(event(text, stream=rng.choice(["stdout", "stderr"])))
        [run] = batch.take()
        wire += run.message(True)
        sent.append({"type": "log", "step": "s", "host": "local", "stream": run.stream,
                     "time": 1000.25, "text": text})
    frames, got, size, at = Frames(), [], 0, 0
    while at < len(wire):
        cut = rng.randint(1, 3000)
        frames.feed(wire[at:at + cut])
        at += cut
        out = frames.messages()
        got += [message for message, _ in out]
        size += sum(n for _, n in out)
    assert got == sent
    assert size == len(wire) and frames.waiting == 0


def test_a_log_message_whose_bytes_is_no_count_is_refused() -> None:
    frames = Frames()
    frames.feed(b'{"type":"log","step":"s","host":"h","stream":"stdout","bytes":-1}\n')
    with pytest.raises(p.ProtocolError, match="'bytes' must be a count"):
        frames.messages()


@pytest.mark.parametrize("seed", range(5))
def test_a_tail_kept_as_chunks_is_the_last_lines(seed: int) -> None:
    rng = random.Random(seed)
    limit = rng.randint(1, 40)
    tail, ref = LogTail(limit), deque(maxlen=limit)  # type: ignore[var-annotated]
    n = 0
    for _ in range(60):
        k = rng.randint(1, 90)
        lines = [f"l{n + i}" for i in range(k)]
        n += k
        stream = rng.choice(["stdout", "stderr"])
        ref.extend((stream, line, float(n), 1) for line in lines)
        tail.add(stream, "\n".join(lines), float(n), 1)
        assert list(tail) == list(ref) and len(tail) == len(ref)


class _Writer:
    """Stands for a client's socket: what the server writes at its close is kept."""

    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    async def drain(self) -> None: ...

    def close(self) -> None: ...


async def test_small_output_waits_for_the_window_and_big_output_goes_at_once(
        tmp_path: Path) -> None:
    from console.engine.run import Run, RunOptions
    from console.model.loader import load_workflow
    from console.runner.server import RunServer, _Client

    path = tmp_path / "wf.toml"
    path.write_text('[workflow]\nname = "w"\n[steps.s]\nrun = "true"\n')
    run = Run(load_workflow(path), RunOptions())
    server = RunServer(run, tmp_path / "home")
    client = _Client(_Writer(), "alice", server._send_logs)  # type: ignore[arg-type]
    server._clients.add(client)
    now = time.time()
    run.emit(event("first", now))  # nothing sent for a while: goes out at once
    await asyncio.sleep(0)
    assert len(client.queue) == 1
    run.emit(event("a", now))
    run.emit(event("b", now))
    assert len(client.queue) == 1  # held: merged with what follows for WINDOW
    await asyncio.sleep(WINDOW * 3)
    assert [framed(m)["lines"] for m in client.queue[1:]] == [["a", "b"]]
    run.emit(event("x" * ENOUGH, now))  # a big chunk: no reason to wait
    assert len(client.queue) == 3
    run.emit(event("held", now))
    client.reply({"type": "ack", "id": 1, "ok": True})  # what was printed goes first
    assert [framed(m).get("lines") for m in client.queue[3:]] == [["held"], None]
    await server.close()
