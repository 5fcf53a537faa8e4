"""Live runs owned by a runner process (issue 15): the attach protocol over the real socket
of a real runner, durable acks, several clients, signals, kill -9, other uids."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from console.runner import protocol as p
from console.runner.client import ConnectError, SocketClient, connect
from console.runner.daemon import Spawned, SpawnError, spawn
from tests.conftest import baton

GATED = """
[workflow]
name = "attach demo"

[steps.first]
run = "for i in 1 2 3; do echo line $i; done"

[steps.gate]
needs = ["first"]
run = "echo approved"
confirm = true

[steps.last]
needs = ["gate"]
run = "sleep ${BATON_TEST_SLEEP:-30}"
"""


@pytest.fixture
def runner(tmp_path: Path, baton_home: Path) -> Iterator[Callable[..., Spawned]]:
    started: list[Spawned] = []

    def start(text: str = GATED, *args: str) -> Spawned:
        path = tmp_path / "wf.toml"
        path.write_text(text)
        spawned = spawn([str(path), *args], baton_home)
        started.append(spawned)
        return spawned

    yield start
    for spawned in started:
        try:
            os.kill(spawned.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def _until(client: SocketClient, seen: list[dict[str, Any]],
                 test: Callable[[dict[str, Any]], bool], timeout: float = 10.0
                 ) -> dict[str, Any]:
    for message in seen:
        if test(message):
            return message

    async def wait() -> dict[str, Any]:
        async for message in client.events():
            seen.append(message)
            if test(message):
                return message
        raise AssertionError(f"connection ended before the event; saw {seen[-5:]}")

    return await asyncio.wait_for(wait(), timeout)


def _seen(client: SocketClient) -> list[dict[str, Any]]:
    """The snapshot's tasks as task events: a wait may be over before it starts."""
    return [{"type": "task", **t} for t in client.snapshot()["tasks"]]


def _task(step: str, state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("type") == "task" and m["step"] == step and m["state"] == state


def _actions(home: Path, run_id: str) -> list[tuple[str, str, str | None]]:
    db = sqlite3.connect(home / "history.sqlite")
    try:
        return db.execute("SELECT action, user, step FROM actions WHERE run_id = ? ORDER BY "
                          "time", (run_id,)).fetchall()
    finally:
        db.close()


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:  # our own child (spawn's Popen): reap it
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"process {pid} still alive")


async def test_snapshot_events_and_durable_ack(runner: Callable[..., Spawned],
                                               baton_home: Path) -> None:
    spawned = runner()
    mode = stat.S_IMODE(os.stat(spawned.socket).st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(os.stat(spawned.socket.parent).st_mode) == 0o700
    client = await connect(spawned.socket)
    assert client.hello["protocol"] == p.VERSION and client.run_id == spawned.run_id
    snap = client.snapshot()
    assert snap["run"]["id"] == spawned.run_id
    assert [t["step"] for t in snap["tasks"]] == ["first", "gate", "last"]
    seen = _seen(client)
    await _until(client, seen, _task("gate", "awaiting_approval"))
    # a late client sees the finished step and the tail of its log in its snapshot
    late = await connect(spawned.socket)
    tasks = {t["step"]: t for t in late.snapshot()["tasks"]}
    assert tasks["first"]["state"] == "succeeded"
    assert tasks["first"]["attempts"][0]["exit_code"] == 0
    logs = {(lg["step"], lg["host"]): lg["lines"] for lg in late.snapshot()["logs"]}
    assert [x["line"] for x in logs[("first", "local")]] == ["line 1", "line 2", "line 3"]
    await late.close()

    refused = await client.act(p.Action("approve", "last"))
    assert not refused.ok and "cannot approve 'last'" in (refused.error or "")
    ack = await client.act(p.Action("approve", "gate"))
    assert ack.ok
    # acknowledged means recorded: the history holds it now, under the peer's user name
    user = p.user_name(os.getuid())
    assert ("approve", user, "gate") in _actions(baton_home, spawned.run_id)
    await _until(client, seen, _task("last", "running"))
    assert (await client.act(p.Action("cancel_run"))).ok
    final = await _until(client, seen, lambda m: m.get("type") == "run")
    assert final["state"] == "cancelled"
    await client.close()
    _wait_gone(spawned.pid)
    assert not spawned.socket.exists()


async def test_two_clients_see_each_others_actions(runner: Callable[..., Spawned]) -> None:
    spawned = runner()
    one = await connect(spawned.socket)
    two = await connect(spawned.socket)
    seen_one = _seen(one)
    seen_two = _seen(two)
    await _until(one, seen_one, _task("gate", "awaiting_approval"))
    await _until(two, seen_two, _task("gate", "awaiting_approval"))
    sent = time.monotonic()
    assert (await one.act(p.Action("note", reason="looking at the gate"))).ok
    note = await _until(two, seen_two, lambda m: m.get("type") == "action")
    assert time.monotonic() - sent < 0.2
    assert note["action"] == "note" and note["user"] == p.user_name(os.getuid())
    sent = time.monotonic()
    assert (await two.act(p.Action("approve", "gate"))).ok
    approve = await _until(one, seen_one, lambda m: m.get("action") == "approve")
    assert time.monotonic() - sent < 0.2
    assert approve["user"] == p.user_name(os.getuid())
    await _until(one, seen_one, _task("gate", "succeeded"))
    assert (await one.act(p.Action("cancel_run"))).ok
    await one.close()
    await two.close()


async def test_protocol_errors_are_one_line(runner: Callable[..., Spawned]) -> None:
    spawned = runner()
    with p.short_path(spawned.socket) as where:  # xdist's tmp paths are deep
        reader, writer = await asyncio.open_unix_connection(where)
    assert json.loads(await reader.readline())["type"] == "hello"
    assert json.loads(await reader.readline())["type"] == "snapshot"
    writer.write(b'{"type":"action","id":7,"action":"launch_missiles"}\nnot json\n')
    await writer.drain()
    answers = []
    while len(answers) < 2:
        message = json.loads(await asyncio.wait_for(reader.readline(), 5))
        if message["type"] in ("ack", "error"):
            answers.append(message)
    assert answers[0]["id"] == 7 and not answers[0]["ok"]
    assert "unknown action 'launch_missiles'" in answers[0]["error"]
    assert answers[1]["type"] == "error" and "not a JSON message" in answers[1]["error"]
    writer.write(b'{"type":"hello","protocol":99}\n')
    await writer.drain()
    message = json.loads(await asyncio.wait_for(reader.readline(), 5))
    while message["type"] != "error":
        message = json.loads(await asyncio.wait_for(reader.readline(), 5))
    assert "protocol version 99 is not supported" in message["error"]
    assert await asyncio.wait_for(reader.read(), 5) == b""  # and the runner hangs up
    writer.close()
    os.kill(spawned.pid, signal.SIGTERM)


async def test_read_only_client_cannot_act(runner: Callable[..., Spawned]) -> None:
    spawned = runner()
    client = await connect(spawned.socket, read_only=True)
    ack = await client.act(p.Action("pause"))
    assert not ack.ok and ack.error == "this connection is read-only"
    await client.close()
    os.kill(spawned.pid, signal.SIGTERM)


def test_runner_ignores_sighup_and_sigterm_interrupts(runner: Callable[..., Spawned],
                                                      baton_home: Path) -> None:
    spawned = runner(GATED, "--yes")
    _wait_for_state(spawned, "last", "running")
    os.kill(spawned.pid, signal.SIGHUP)
    time.sleep(0.2)
    os.kill(spawned.pid, 0)  # still there
    asyncio.run(_connect_and_close(spawned.socket))
    os.kill(spawned.pid, signal.SIGTERM)
    _wait_gone(spawned.pid)
    shown = json.loads(baton("show", spawned.run_id, "--json").stdout)
    assert shown["run"]["state"] == "interrupted"
    last = next(t for t in shown["tasks"] if t["step"] == "last")
    assert last["state"] == "interrupted"
    assert "SIGTERM" in (last["reason"] or "")


def test_kill_9_gives_interrupted_and_resume(runner: Callable[..., Spawned],
                                             baton_home: Path) -> None:
    spawned = runner(GATED, "--yes")
    _wait_for_state(spawned, "last", "running")
    os.kill(spawned.pid, signal.SIGKILL)
    _wait_gone(spawned.pid)
    with pytest.raises(ConnectError, match="gone"):
        asyncio.run(connect(spawned.socket))
    runs = baton("runs")
    line = next(x for x in runs.stdout.splitlines() if spawned.run_id in x)
    assert "interrupted" in line
    resumed = baton("resume", spawned.run_id, "--headless", "--yes", timeout=30,
                    env={"BATON_TEST_SLEEP": "0"})
    assert resumed.returncode == 0, resumed.stderr
    assert "last succeeded" in resumed.stdout


def _wait_for_state(spawned: Spawned, step: str, state: str) -> None:
    async def wait() -> None:
        client = await connect(spawned.socket)
        await _until(client, _seen(client), _task(step, state))
        await client.close()

    asyncio.run(wait())


async def _connect_and_close(path: Path) -> None:
    client = await connect(path)
    await client.close()


def test_spawn_reports_an_invalid_workflow(tmp_path: Path, baton_home: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[workflow]\nname = "x"\n[steps.a]\nrun = "true"\nneedz = []\n')
    with pytest.raises(SpawnError, match="unknown key 'needz'"):
        spawn([str(path)], baton_home)


# --------------------------------------------------------------------------- other uids

NOBODY = 65534


def _in_child_as_nobody(work: Callable[[], str]) -> tuple[int, int]:
    """Fork; the child drops to uid/gid nobody, runs ``work`` and writes what it returns
    to the pipe it returns the read end of (with the child's pid)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(write_end, work().encode() + b"\n")
        except BaseException as exc:
            os.write(write_end, f"child failed: {exc!r}\n".encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, read_end


def _first_line(fd: int) -> str:
    with os.fdopen(fd) as pipe:
        return pipe.readline().strip()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to switch uids")
def test_another_uid_cannot_connect(runner: Callable[..., Spawned]) -> None:
    """The folder (0700) and socket (0600) keep another user out."""
    spawned = runner()

    def attempt() -> str:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(5)
        try:
            with p.short_path(spawned.socket) as where:
                sock.connect(where)
        except OSError as exc:
            return f"connect: {type(exc).__name__}"
        return f"read: {sock.recv(4096)!r}"

    pid, fd = _in_child_as_nobody(attempt)
    assert _first_line(fd) == "connect: PermissionError"
    os.waitpid(pid, 0)
    os.kill(spawned.pid, signal.SIGTERM)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to switch uids")
def test_peer_uid_is_checked(tmp_path: Path) -> None:
    """Whoever gets through the file modes (here root) is still refused by SO_PEERCRED
    when it is not the runner's uid: the run is served by nobody, root connects."""
    import tempfile

    from console.engine.run import Run, RunOptions
    from console.model.loader import load_workflow
    from console.runner.server import RunServer

    wf = tmp_path / "wf.toml"
    wf.write_text(GATED)
    workflow = load_workflow(wf)
    home = Path(tempfile.mkdtemp(prefix="baton-nobody-"))
    os.chown(home, NOBODY, NOBODY)

    def serve() -> str:
        async def main() -> None:
            server = RunServer(Run(workflow, RunOptions(run_id="nobodysrun")), home)
            path = await server.start()
            ready.set_result(str(path))
            await asyncio.sleep(20)

        loop = asyncio.new_event_loop()
        ready: asyncio.Future[str] = loop.create_future()
        main_task = loop.create_task(main())
        path = loop.run_until_complete(ready)
        os.write(write_back, path.encode() + b"\n")
        loop.run_until_complete(main_task)
        return "done"

    read_back, write_back = os.pipe()
    pid, fd = _in_child_as_nobody(serve)
    os.close(write_back)
    try:
        path = _first_line(read_back)
        assert path.endswith("nobodysrun.sock"), path
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(5)
        with p.short_path(Path(path)) as where:
            sock.connect(where)
        answer = json.loads(sock.makefile().readline())
        assert answer == {"type": "error",
                          "error": "refused: uid 0 does not own run nobodysrun"}
        assert sock.recv(10) == b""
        sock.close()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)


FLOOD = ("""
[workflow]
name = "flood"

[steps.flood]
run = "seq -f '%g PADDING' 1 400000"

[steps.gate]
needs = ["flood"]
run = "true"
confirm = true
""").replace("PADDING", "x" * 90)  # ~39 MB: far more than a client's queue (8 MiB)
# and the buffers before it (150,000 lines did not always overflow it under load)


async def test_a_client_that_does_not_read_never_stalls_the_run(
        runner: Callable[..., Spawned], baton_home: Path) -> None:
    spawned = runner(FLOOD)
    with p.short_path(spawned.socket) as where:
        reader, writer = await asyncio.open_unix_connection(where, limit=1 << 20)
    writer.write(b'{"type":"hello","protocol":1}\n')
    await writer.drain()
    # this client reads nothing while 400,000 lines (~39 MB) go by
    deadline = time.monotonic() + 18
    while True:
        shown = json.loads(baton("show", spawned.run_id, "--json").stdout)
        states = {t["step"]: t["state"] for t in shown["tasks"]}
        if states["gate"] == "awaiting_approval":
            break
        assert time.monotonic() < deadline, states
        await asyncio.sleep(0.1)
    assert states["flood"] == "succeeded"
    # once it reads, it gets what it missed as a fresh snapshot (then events on top)
    resyncs = 0
    states = {}
    while states.get("gate") != "awaiting_approval":
        message = json.loads(await asyncio.wait_for(reader.readline(), 10))
        if message["type"] == "snapshot":
            states = {t["step"]: t["state"] for t in message["tasks"]}
            if message["resync"]:
                resyncs += 1
                tail = next(lg["lines"] for lg in message["logs"] if lg["step"] == "flood")
                numbers = [int(x["line"].split()[0]) for x in tail]
                assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        elif message["type"] == "task":
            states[message["step"]] = message["state"]
    assert resyncs >= 1
    assert states["flood"] == "succeeded"
    # and the connection still works
    writer.write(b'{"type":"action","id":1,"action":"approve","step":"gate"}\n')
    await writer.drain()
    while True:
        message = json.loads(await asyncio.wait_for(reader.readline(), 10))
        if message["type"] == "ack":
            assert message == {"type": "ack", "id": 1, "ok": True}
            break
    writer.close()
    await writer.wait_closed()
    # the run is over and no console is attached: the runner leaves after a grace period
    await asyncio.to_thread(_wait_gone, spawned.pid)


async def test_local_client_is_the_same_api_in_process(tmp_path: Path) -> None:
    """The in-process case satisfies the same client API: snapshot, events, act -> ack."""
    from console.engine.run import Run, RunOptions
    from console.model.loader import load_workflow
    from console.runner.client import LocalClient, RunClient

    path = tmp_path / "wf.toml"
    path.write_text(GATED)
    run = Run(load_workflow(path), RunOptions(user="alice"))
    client: RunClient = LocalClient(run, user="bob")
    assert [t["step"] for t in client.snapshot()["tasks"]] == ["first", "gate", "last"]
    executing = asyncio.create_task(run.execute())
    seen: list[dict[str, Any]] = []

    async def wait(test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        async def loop() -> dict[str, Any]:
            async for message in client.events():
                seen.append(message)
                if test(message):
                    return message
            raise AssertionError("events ended")
        return await asyncio.wait_for(loop(), 10)

    await wait(_task("gate", "awaiting_approval"))
    refused = await client.act(p.Action("approve", "last"))
    assert not refused.ok and "cannot approve 'last'" in (refused.error or "")
    assert (await client.act(p.Action("approve", "gate"))).ok
    approve = await wait(lambda m: m.get("action") == "approve")
    assert approve["user"] == "bob" and run.user == "alice"
    assert [x["line"] for x in client.snapshot()["logs"][0]["lines"]] == [
        "line 1", "line 2", "line 3"]
    await wait(_task("last", "running"))
    assert (await client.act(p.Action("cancel_run"))).ok
    assert await executing == "cancelled"
    await client.close()


def test_a_deep_baton_home_still_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    """A socket path longer than AF_UNIX allows (108 bytes) is bound and reached through
    its folder's descriptor: a run in a deep $BATON_HOME can still be attached to."""
    home = tmp_path / ("deep-" + "d" * 60) / ("deeper-" + "e" * 60) / "home"
    monkeypatch.setenv("BATON_HOME", str(home))
    path = tmp_path / "wf.toml"
    path.write_text(GATED)
    spawned = spawn([str(path)], home)
    try:
        assert len(str(spawned.socket)) > 108

        async def check() -> None:
            client = await connect(spawned.socket)
            assert client.run_id == spawned.run_id
            assert (await client.act(p.Action("cancel_run"))).ok
            await client.close()

        asyncio.run(check())
        _wait_gone(spawned.pid)
    finally:
        if not _gone(spawned.pid):
            os.kill(spawned.pid, signal.SIGKILL)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


CRASHING = """
[workflow]
name = "crash demo"

[steps.slow]
run = "for i in $(seq 1 250); do echo before crash $i; done; sleep 30"
"""


def _kill_once_logged(spawned: Spawned, home: Path, last: dict[str, str]) -> None:
    """kill -9 the runner once each step's attempt-1 log holds its ``last`` line."""
    from console.store.logs import log_path

    deadline = time.monotonic() + 20
    for step, line in last.items():
        stored = log_path(home, spawned.run_id, step, "local", 1)
        while f"{line}\n" not in (stored.read_text() if stored.exists() else ""):
            assert time.monotonic() < deadline, f"{step}'s output never reached its log"
            time.sleep(0.05)
    os.kill(spawned.pid, signal.SIGKILL)


def test_a_resumed_runs_snapshot_holds_the_output_from_before_the_resume(
        runner: Callable[..., Spawned], baton_home: Path) -> None:
    """kill -9 of the runner while a step that printed runs; `baton resume` in a runner:
    every client (the first, a late one) gets the step's earlier lines in its snapshot,
    from the history, bounded like the live tail and marked with their attempt."""
    spawned = runner(CRASHING)
    _kill_once_logged(spawned, baton_home, {"slow": "before crash 250"})
    _wait_gone(spawned.pid)
    resumed = spawn([spawned.run_id], baton_home, command="resume")
    try:
        async def snapshots() -> list[dict[str, Any]]:
            first = await connect(resumed.socket)
            late = await connect(resumed.socket)
            snaps = [first.snapshot(), late.snapshot()]
            await first.close()
            await late.close()
            return snaps

        for snap in asyncio.run(snapshots()):
            tasks = {t["step"]: t for t in snap["tasks"]}
            assert tasks["slow"]["state"] == "interrupted"
            logs = {(lg["step"], lg["host"]): lg["lines"] for lg in snap["logs"]}
            lines = logs[("slow", "local")]
            assert [x["line"] for x in lines] == \
                [f"before crash {i}" for i in range(51, 251)]  # the last TAIL_LINES
            assert {x["attempt"] for x in lines} == {1}
            assert {x["stream"] for x in lines} == {"stdout"}
    finally:
        os.kill(resumed.pid, signal.SIGKILL)
        _wait_gone(resumed.pid)


async def _first_snapshot(path: Path) -> dict[str, Any]:
    """The snapshot on connect; asserts a requested one (read by the client's thread, as a
    resync's is) is the same."""
    client = await connect(path)
    snap = client.snapshot()
    await client.request_snapshot()
    again = await _until(client, [], lambda m: m.get("type") == "snapshot")
    await client.close()
    assert again["logs"] == snap["logs"]
    return snap


def test_a_snapshot_larger_than_a_message_line_still_attaches(
        runner: Callable[..., Spawned], baton_home: Path) -> None:
    """Six tasks printed 200 lines of 1,000 characters each before a kill -9: the resumed
    run's snapshot (1.2 MB of tails, over the 1 MiB of any other message) reaches a
    client whole."""
    wide = "".join(f'[steps.w{i}]\nrun = "for i in $(seq 1 200); do '
                   f'printf \'{i}-%04d-%0990d\\\\n\' $i 0; done; sleep 30"\n'
                   for i in range(6))
    spawned = runner(f'[workflow]\nname = "wide"\n{wide}')
    _kill_once_logged(spawned, baton_home, {f"w{i}": f"{i}-0200-{0:0990d}" for i in range(6)})
    _wait_gone(spawned.pid)
    resumed = spawn([spawned.run_id], baton_home, command="resume")
    try:
        snap = asyncio.run(_first_snapshot(resumed.socket))
        logs = {lg["step"]: [x["line"] for x in lg["lines"]] for lg in snap["logs"]}
        assert sorted(logs) == [f"w{i}" for i in range(6)]
        for i in range(6):
            assert logs[f"w{i}"] == [f"{i}-{n:04d}-{0:0990d}" for n in range(1, 201)]
        assert len(p.encode(snap)) > p.MAX_LINE
    finally:
        os.kill(resumed.pid, signal.SIGKILL)
        _wait_gone(resumed.pid)


def test_a_resumed_runs_snapshot_holds_the_timeline_from_before_the_resume(
        runner: Callable[..., Spawned], baton_home: Path) -> None:
    """An approval and a note through the first runner, then kill -9 and `baton resume`
    in a runner: every client's snapshot (the first, a late one, one after a requested
    resync) holds the timeline from before the resume — task state changes and the
    operator actions with their user, time and reason — in order, as stored."""
    spawned = runner(GATED)
    me = p.user_name(os.getuid())

    async def act() -> None:
        client = await connect(spawned.socket)
        seen: list[dict[str, Any]] = []
        await _until(client, seen, lambda m: m.get("type") == "task" and m["step"] == "gate"
                     and m["state"] == "awaiting_approval")
        assert (await client.act(p.Action("note", reason="paging the db on-call"))).ok
        assert (await client.act(p.Action("approve", "gate"))).ok
        await _until(client, seen, lambda m: m.get("type") == "task" and m["step"] == "last"
                     and m["state"] == "running")
        await client.close()

    asyncio.run(act())
    os.kill(spawned.pid, signal.SIGKILL)
    _wait_gone(spawned.pid)
    resumed = spawn([spawned.run_id], baton_home, command="resume")
    try:
        async def snapshots() -> list[dict[str, Any]]:
            first = await connect(resumed.socket)
            late = await connect(resumed.socket)
            snaps = [first.snapshot(), late.snapshot()]
            await late.request_snapshot()
            snaps.append(await _until(late, [], lambda m: m.get("type") == "snapshot"))
            await first.close()
            await late.close()
            return snaps

        for snap in asyncio.run(snapshots()):
            past = snap["past"]
            assert snap["past_omitted"] == 0
            actions = [(e["action"], e["step"], e["user"], e["reason"])
                       for e in past if e["type"] == "action"]
            assert actions == [("note", None, me, "paging the db on-call"),
                               ("approve", "gate", me, None)]
            assert all(e["time"] > 0 for e in past)
            tasks = [(e["step"], e["state"]) for e in past if e["type"] == "task"]
            for earlier, later in [(("gate", "awaiting_approval"), ("gate", "succeeded")),
                                   (("gate", "succeeded"), ("last", "running")),
                                   (("last", "running"), ("last", "interrupted"))]:
                assert tasks.index(earlier) < tasks.index(later), tasks
            kinds = [e["type"] for e in past]
            note = kinds.index("action")
            assert ("gate", "awaiting_approval") in \
                [(e.get("step"), e.get("state")) for e in past[:note]]
            assert snap["actions"] == []  # this process's own: none yet
    finally:
        os.kill(resumed.pid, signal.SIGKILL)
        _wait_gone(resumed.pid)


def test_a_run_resumed_before_any_task_started_still_carries_its_past(
        runner: Callable[..., Spawned], baton_home: Path) -> None:
    """kill -9 while the first step awaits approval, after a note: no task has an attempt
    (no output to carry), yet the resumed runner's snapshot holds the note and the gate."""
    spawned = runner('[workflow]\nname = "gate first"\n[steps.gate]\nrun = "true"\n'
                     'confirm = true\n')

    async def note() -> None:
        client = await connect(spawned.socket)
        seen: list[dict[str, Any]] = []
        gate = client.snapshot()["tasks"][0]
        if gate["state"] != "awaiting_approval":
            await _until(client, seen, lambda m: m.get("state") == "awaiting_approval")
        assert (await client.act(p.Action("note", reason="waiting on the CAB"))).ok
        await client.close()

    asyncio.run(note())
    os.kill(spawned.pid, signal.SIGKILL)
    _wait_gone(spawned.pid)
    resumed = spawn([spawned.run_id], baton_home, command="resume")
    try:
        async def snapshot() -> dict[str, Any]:
            client = await connect(resumed.socket)
            snap = client.snapshot()
            await client.close()
            return snap

        past = asyncio.run(snapshot())["past"]
        assert [(e["action"], e["user"], e["reason"]) for e in past if e["type"] == "action"] \
            == [("note", p.user_name(os.getuid()), "waiting on the CAB")]
        assert ("gate", "awaiting_approval") in \
            [(e.get("step"), e.get("state")) for e in past if e["type"] == "task"]
    finally:
        os.kill(resumed.pid, signal.SIGKILL)
        _wait_gone(resumed.pid)


def _timeline(snap: dict[str, Any], live: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The run, task and action entries a console shows: its snapshot replayed (as the
    mirror does), then the events that followed it."""
    from console.runner.snapshot_replay import snapshot_events

    shown = [d for e in snapshot_events(snap, lambda step, host: 1) for d in e.to_dicts()]
    shown += live
    keys = ("type", "step", "host", "state", "attempt", "action", "user", "reason", "time")
    return [tuple(m.get(k) for k in keys) for m in shown
            if m.get("type") in ("run", "task", "action")]


async def test_a_late_client_replays_the_timeline_the_first_one_saw_live(
        runner: Callable[..., Spawned]) -> None:
    """Issue 15: the first client follows the run live; a second attaches once a step
    succeeded, the gate waits and a note was made: its snapshot replayed (this process's
    run and task events, the note among them where it came), then what follows, is the
    first client's timeline entry for entry — and the note is not shown twice."""
    spawned = runner()
    first = await connect(spawned.socket)
    first_seen: list[dict[str, Any]] = []
    await _until(first, first_seen, _task("gate", "awaiting_approval"))
    assert (await first.act(p.Action("note", reason="checking the first step"))).ok
    await _until(first, first_seen, lambda m: m.get("action") == "note")
    late = await connect(spawned.socket)
    late_seen: list[dict[str, Any]] = []
    assert (await late.act(p.Action("approve", "gate"))).ok
    for client, seen in ((first, first_seen), (late, late_seen)):
        await _until(client, seen, _task("last", "running"))
    first_timeline = _timeline(first.snapshot(), first_seen)
    late_timeline = _timeline(late.snapshot(), late_seen)
    assert late_timeline == first_timeline
    kinds = [(e[0], e[1], e[3] or e[5]) for e in late_timeline]
    for entry in [("task", "first", "running"), ("task", "first", "succeeded"),
                  ("task", "gate", "awaiting_approval"), ("action", None, "note"),
                  ("action", "gate", "approve"), ("task", "last", "running")]:
        assert kinds.count(entry) == 1, (entry, kinds)
    assert kinds.index(("task", "first", "succeeded")) < kinds.index(("action", None, "note"))
    assert late.snapshot()["timeline_omitted"] == 0
    assert (await first.act(p.Action("cancel_run"))).ok
    await first.close()
    await late.close()
