"""The run store: recording a real run, history queries, pruning, show formats, the live-run
lock, permissions, bad homes, corrupt files and migrations."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.engine.events import TaskEvent, TaskState
from console.engine.run import Run, RunOptions, new_run_id
from console.model.workflow import Host, Step, Workflow
from console.store import LiveRunError, Store, StoreError, acquire_run_lock, show
from tests.conftest import REPO
from tests.fakes import ScriptedWorld
from tests.helpers import FrozenClock, until

EXPECTED = REPO / "tests" / "expected" / "show.md"
FIXTURE_V1 = REPO / "tests" / "fixtures" / "store_v1.sqlite"

SOURCE = "# the workflow text as loaded\n[workflow]\nname = 'Rolling restart'\n"


def make_workflow(name: str, *steps: Step, hosts: dict[str, Host] | None = None,
                  source: str = SOURCE, path: str = "/srv/runbooks/restart.toml") -> Workflow:
    return Workflow(name=name, path=Path(path), steps={s.id: s for s in steps},
                    hosts=hosts or {}, source=source,
                    digest=hashlib.sha256(source.encode()).hexdigest())


# ---------------------------------------------------------------------------- the incident run

INCIDENT_ID = "0m40abcd0wxyz"
WEB = {name: Host(name, f"10.0.0.{i}", groups=("web",)) for i, name in
       enumerate(("web1", "web2"), 11)}
DEPLOY = ("{% if host.name == 'web2' %}err disk full\nexit 3"
          "{% else %}echo deployed{% endif %}")


def incident_workflow() -> Workflow:
    return make_workflow(
        "Rolling restart",
        Step("preflight", "Preflight", run="echo checks ok\nhold pre"),
        Step("drain", "Drain", run="echo draining", on=("web",), needs=("preflight",),
             confirm="Drain web hosts?"),
        Step("deploy", "Deploy", run=DEPLOY, on=("web",), needs=("drain",), retries=1),
        Step("verify", "Verify by hand", run=None, needs=("deploy",)),
        Step("cleanup", "Cleanup", run="echo cleanup", needs=("verify",)),
        hosts=WEB,
    )


async def incident_run(store: Store) -> tuple[Run, ScriptedWorld]:
    """A run with a gate, a failing host retried automatically, an operator override with a
    reason, a note and a manual step; every phase at a known time.

    The clock moves only once a phase has settled. deploy@web2 turns failed in its task
    runner; blocking verify and cleanup and failing the run come in the scheduler's next pass,
    so waiting for that task alone let a poll land in between and stamp those events with the
    next phase's time (a flake under load). Waiting for the run's own state closes the gap."""
    clock = FrozenClock(1732600000.0)
    world = ScriptedWorld()
    options = RunOptions(run_id=INCIDENT_ID, user="alice",
                         params={"release": "2024.11.3", "db_url": "postgres://app:hunter2@db",
                                 "canary": 1},
                         secrets={"db_password": "hunter2"}, keep_alive=True)
    run = Run(incident_workflow(), options, executor_for=world.factory(), clock=clock)
    recorder = store.record(run)
    task = asyncio.get_running_loop().create_task(run.execute())
    tasks = run.tasks
    await until(lambda: tasks[("preflight", "local")].state is TaskState.RUNNING)
    clock.now += 4
    world.release("pre")
    await until(lambda: all(tasks[("drain", h)].state is TaskState.AWAITING_APPROVAL
                            for h in WEB))
    clock.now += 6
    run.approve("drain")
    await until(lambda: run.state == "failed")  # settled: every task ended or blocked
    assert tasks[("deploy", "web2")].state is TaskState.FAILED
    clock.now += 20
    run.mark_succeeded("deploy", "web2", reason="deployed by hand after disk cleanup")
    await until(lambda: tasks[("verify", "local")].state is TaskState.AWAITING_OPERATOR)
    clock.now += 10
    run.note("customer notified", step="deploy")
    clock.now += 5
    run.done("verify")
    await until(lambda: run.state == "succeeded")
    run.close()  # the console quits
    await asyncio.wait_for(task, 5)
    recorder.close()
    return run, world


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "home") as s:
        s.machine = "ops1"
        yield s


async def test_a_recorded_run_reads_back_whole(store: Store):
    run, _ = await incident_run(store)
    stored = store.load(INCIDENT_ID[:6])
    assert stored.id == INCIDENT_ID
    r = stored.run
    assert (r.workflow, r.state, r.user, r.machine, r.pid) == ("Rolling restart", "succeeded",
                                                                "alice", "ops1", os.getpid())
    assert r.path == "/srv/runbooks/restart.toml" and r.digest == run.workflow.digest
    assert r.params == {"release": "2024.11.3", "db_url": "postgres://app:***@db", "canary": 1}
    assert r.options["secrets"] == ["db_password"] and r.options["approval"] == "wait"
    assert r.started == 1732600000.0 and r.ended == 1732600045.0
    assert stored.definition == SOURCE

    states = {t.label: (t.state, t.attempt, t.exit_code) for t in stored.tasks}
    assert states == {
        "preflight": ("succeeded", 1, 0),
        "drain@web1": ("succeeded", 1, 0), "drain@web2": ("succeeded", 1, 0),
        "deploy@web1": ("succeeded", 1, 0), "deploy@web2": ("succeeded", 2, 3),
        "verify": ("succeeded", 0, None), "cleanup": ("succeeded", 1, 0),
    }
    assert [t.label for t in stored.tasks][:3] == ["preflight", "drain@web1", "drain@web2"]
    web2 = next(t for t in stored.tasks if t.label == "deploy@web2")
    assert web2.reason == "marked succeeded by alice: deployed by hand after disk cleanup"
    preflight = stored.tasks[0]
    assert preflight.outputs == {"status": "succeeded", "exit_code": 0, "stdout": "checks ok\n"}
    assert preflight.duration == 4.0

    attempts = stored.attempts_of("deploy", "web2")
    assert [(a.number, a.exit_code, a.state) for a in attempts] == [(1, 3, "failed"),
                                                                   (2, 3, "failed")]
    assert all(a.digest == run.workflow.digest for a in stored.attempts)
    assert "err disk full" in attempts[0].command

    actions = [(a.action, a.step, a.host, a.user, a.reason) for a in stored.actions]
    assert actions == [
        ("approve", "drain", None, "alice", None),
        ("mark_succeeded", "deploy", "web2", "alice", "deployed by hand after disk cleanup"),
        ("note", "deploy", None, "alice", "customer notified"),
        ("done", "verify", None, "alice", None),
    ]
    assert [n.reason for n in stored.notes] == ["customer notified"]
    seqs = [e.seq for e in stored.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert stored.events[0].payload["state"] == "running"
    assert stored.events[-1].payload == {"type": "run", "run_id": INCIDENT_ID,
                                         "state": "succeeded", "time": 1732600045.0}
    assert not [e for e in stored.events if e.type == "log"]

    assert store.read_log(INCIDENT_ID, "preflight", "local", 1) == "checks ok\n"
    assert store.read_log(INCIDENT_ID, "deploy", "web2", 1) == "disk full\n"
    assert store.read_log(INCIDENT_ID, "deploy", "web2", 2) == "disk full\n"
    assert store.read_log(INCIDENT_ID, "deploy", "web1", 1) == "deployed\n"
    assert store.log_path(INCIDENT_ID, "deploy", "web2", 2).name == "deploy@web2.2.log"

    raw = b"".join(p.read_bytes() for p in store.home.rglob("*") if p.is_file())
    assert b"hunter2" not in raw


def stderr_of(store: Store, stored):
    return lambda a: store.stderr_tail(stored.id, a.step, a.host, a.number)


async def test_markdown_is_fit_for_a_postmortem(store: Store):
    """Issue 10 item 20: each failed attempt's last stderr lines (masked, at most 10),
    whole commands, deny and quit reasons, no `pending: approved` noise."""
    long_line = "echo " + " ".join(f"--flag-{i}=value-{i}" for i in range(20))
    noisy = "\n".join([long_line, *(f"err problem {i} token=hunter2" if i % 2 else
                                   f"echo progress {i}" for i in range(30)), "exit 2"])
    wf = make_workflow("Postmortem", Step("boom", "boom", run=noisy),
                       Step("gate", "gate", run="echo never", confirm="Apply?"),
                       Step("ok", "ok", run="echo fine"),
                       Step("hold", "hold", run="hold forever", needs=("ok",)))
    clock = FrozenClock(1732600000.0)
    run = Run(wf, RunOptions(run_id="0m40post0mort", user="dana", keep_alive=True,
                             secrets={"tok": "hunter2"}),
              executor_for=ScriptedWorld().factory(), clock=clock)
    recorder = store.record(run)
    execution = asyncio.get_running_loop().create_task(run.execute())
    await until(lambda: run.tasks[("boom", "local")].state is TaskState.FAILED
                and run.tasks[("gate", "local")].state is TaskState.AWAITING_APPROVAL
                and run.tasks[("hold", "local")].state is TaskState.RUNNING)
    run.deny("gate", reason="change freeze until 14:00")
    run.answer_quit(cancel=True)
    run.close()
    await asyncio.wait_for(execution, 5)
    recorder.close()

    stored = store.load("0m40post0mort")
    markdown = show.render_markdown(stored, stderr=stderr_of(store, stored))
    failures = markdown.split("## Failures\n", 1)[1].split("\n## ", 1)[0]
    assert "### `boom` attempt 1: exit 2" in failures
    shown = [f"problem {i} token=***" for i in range(11, 30, 2)]
    assert all(line in failures for line in shown)  # the last 10 stderr lines
    assert "problem 9 " not in failures and "progress" not in failures  # stderr only
    assert "hunter2" not in markdown
    assert "### `hold` attempt 1: run cancelled" in failures
    assert long_line in markdown and "…" not in markdown  # whole commands, never cut
    commands = markdown.split("## Commands\n", 1)[1].split("\n## ", 1)[0]
    assert "`ok` #1:\n\n```sh\necho fine\n```" in commands
    assert "echo never" not in commands  # denied: it never ran
    assert "change freeze until 14:00" in markdown.split("## Operator actions", 1)[1]
    assert "dana **deny** `gate`: change freeze until 14:00" in markdown
    assert "dana **quit**: cancel the run" in markdown
    assert "pending" not in markdown.split("## Timeline", 1)[1]


async def test_show_in_three_formats(store: Store):
    await incident_run(store)
    stored = store.load(INCIDENT_ID)
    markdown = show.render_markdown(stored, stderr=stderr_of(store, stored))
    if os.environ.get("BATON_REGEN_EXPECTED"):
        EXPECTED.write_text(markdown, encoding="utf-8")
    assert markdown == EXPECTED.read_text(encoding="utf-8")

    table = show.render_table(stored)
    assert table.splitlines()[0] == f"run {INCIDENT_ID}  Rolling restart  succeeded"
    assert "2024-11-26T05:46:40Z by alice on ops1" in table
    row = next(line for line in table.splitlines() if line.startswith("deploy  ")
               and " web2 " in line)
    assert row.split()[:6] == ["deploy", "web2", "succeeded", "2", "20s", "3"]
    assert "mark_succeeded  deploy@web2  deployed by hand after disk cleanup" in table

    data = json.loads(json.dumps(show.to_json(stored)))
    assert data["run"]["id"] == INCIDENT_ID and data["run"]["duration"] == 45.0
    web2 = next(t for t in data["tasks"] if t["step"] == "deploy" and t["host"] == "web2")
    assert [a["number"] for a in web2["attempts"]] == [1, 2]
    assert data["actions"][1]["reason"] == "deployed by hand after disk cleanup"
    assert data["events"][-1]["state"] == "succeeded"


# ---------------------------------------------------------------------------- durability


async def test_actions_are_committed_at_once_and_task_states_before_what_follows(
        store: Store):
    """Actions are durable before the action returns; a task state before anything the
    event sets in motion: a dependent's launch, any callback scheduled after it."""
    world = ScriptedWorld()
    wf = make_workflow("t", Step("a", "a", run="echo x"), Step("m", "m", run=None),
                       Step("b", "b", run="hold b", needs=("a",)))
    reader = sqlite3.connect(store.db_path)
    seen: list[tuple] = []
    scripted = world.factory()

    def stored_state(step: str) -> str:
        return reader.execute("SELECT state FROM tasks WHERE step = ?", (step,)).fetchone()[0]

    class CheckingExecutor:
        """Looks at the store the moment a command is launched: `running` is committed."""

        def __init__(self, host) -> None:
            self.inner = scripted(host)

        async def start(self, request, on_output):
            seen.append((request.step, "launched", stored_state(request.step)))
            for need in wf.steps[request.step].needs:
                seen.append((need, "needed by a launch", stored_state(need)))
            return await self.inner.start(request, on_output)

        async def close(self) -> None:
            await self.inner.close()

    run = Run(wf, RunOptions(user="carol"), executor_for=CheckingExecutor)
    recorder = store.record(run)

    def check(event) -> None:
        if isinstance(event, TaskEvent) and event.state.finished:
            state = str(event.state)
            asyncio.get_running_loop().call_soon(
                lambda: seen.append((event.step, state, stored_state(event.step))))

    run.subscribe(check)
    execution = asyncio.get_running_loop().create_task(run.execute())
    await until(lambda: run.tasks[("b", "local")].state is TaskState.RUNNING)
    run.note("looked at it")
    assert reader.execute("SELECT user, reason FROM actions WHERE action = 'note'"
                          ).fetchall() == [("carol", "looked at it")]
    run.skip("m", reason="not today")
    assert reader.execute("SELECT action, reason FROM actions ORDER BY id").fetchall()[-1] == (
        "skip", "not today")
    world.release("b")
    await asyncio.wait_for(execution, 5)
    recorder.close()
    assert ("a", "succeeded", "succeeded") in seen
    assert ("a", "needed by a launch", "succeeded") in seen
    assert ("a", "launched", "running") in seen and ("b", "launched", "running") in seen
    expected = {"launched": "running", "needed by a launch": "succeeded"}
    assert all(stored == expected.get(state, state) for _, state, stored in seen)
    reader.close()


class _CheckedOutput:
    """A binary stdout that, at every write, finds each task line's state in the store."""

    def __init__(self, db_path: Path, json_mode: bool) -> None:
        self.reader = sqlite3.connect(db_path)
        self.json_mode = json_mode
        self.writes = 0
        self.checked = 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        for line in data.decode().splitlines():
            if self.json_mode:
                event = json.loads(line)
                if event["type"] != "task":
                    continue
                step, state = event["step"], event["state"]
            else:
                words = line.split()  # "● a running (attempt 1)", "✓ a succeeded 0.00s"
                if (len(words) < 3 or words[0].isalnum()
                        or words[2] not in ("running", "succeeded", "failed")):
                    continue
                step, state = words[1], words[2]
            stored = self.reader.execute("SELECT state FROM tasks WHERE step = ?",
                                         (step,)).fetchone()
            assert stored == (state,), f"printed {step} {state}, the store has {stored}"
            self.checked += 1
        return len(data)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("json_mode", [False, True])
async def test_no_printed_line_gets_ahead_of_the_store(store: Store, monkeypatch,
                                                       json_mode: bool):
    """The headless printer commits the store before any byte leaves, even when its buffer
    overflows in the middle of a pass (a limit of one byte: every write is a flush)."""
    from console.headless import execute_headless
    from console.printers.writer import ByteWriter as _Writer

    monkeypatch.setattr(_Writer, "LIMIT", 1)
    world = ScriptedWorld()
    layer = [Step(f"a{i}", f"a{i}", run="echo x") for i in range(6)]
    after = [Step(f"b{i}", f"b{i}", run="exit 1" if i == 0 else "echo y",
                  needs=tuple(s.id for s in layer)) for i in range(6)]
    run = Run(make_workflow("t", *layer, *after), RunOptions(),
              executor_for=world.factory())
    out = _CheckedOutput(store.db_path, json_mode)
    code = await asyncio.wait_for(
        execute_headless(run, json_mode=json_mode, out=out, err=io.StringIO(), store=store),
        10)
    assert code == 1
    assert out.checked == 24 and out.writes >= 24  # running + finished, 12 tasks
    out.reader.close()


async def test_a_failed_write_is_reported_once_and_the_run_goes_on(store: Store):
    errors: list[StoreError] = []
    world = ScriptedWorld()
    wf = make_workflow("t", Step("a", "a", run="echo x"), Step("b", "b", run="echo y",
                                                               needs=("a",)))
    run = Run(wf, RunOptions(), executor_for=world.factory())
    recorder = store.record(run, on_error=errors.append)
    other = sqlite3.connect(store.db_path)
    other.execute("DROP TABLE events")
    other.commit()
    other.close()
    assert (await asyncio.wait_for(run.execute(), 5)) == "succeeded"
    recorder.close()
    assert len(errors) == 1
    assert str(errors[0]).startswith(f"cannot record run {run.id} in {store.db_path}: ")
    assert "no such table: events" in str(errors[0])


async def test_mark_interrupted_after_the_console_died(store: Store):
    world = ScriptedWorld()
    wf = make_workflow("t", Step("a", "a", run="echo x"), Step("b", "b", run="hold b",
                                                               needs=("a",)),
                       Step("c", "c", run="echo z", needs=("b",)))
    run = Run(wf, RunOptions(), executor_for=world.factory())
    recorder = store.record(run)
    execution = asyncio.get_running_loop().create_task(run.execute())
    await until(lambda: run.tasks[("b", "local")].state is TaskState.RUNNING)
    recorder.close()  # as if the process had died here: nothing more is written
    assert store.mark_interrupted(run.id, now=5.0) == [("b", "local")]
    stored = store.load(run.id)
    assert stored.run.state == "interrupted"
    assert [(t.step, t.state) for t in stored.tasks] == [("a", "succeeded"),
                                                         ("b", "interrupted"),
                                                         ("c", "pending")]
    (attempt,) = stored.attempts_of("b", "local")
    assert (attempt.state, attempt.ended) == ("interrupted", 5.0)
    assert stored.events[-1].payload["state"] == "interrupted"
    assert stored.tasks[0].outputs["stdout"] == "x\n"
    world.release("b")
    await asyncio.wait_for(execution, 5)


# ---------------------------------------------------------------------------- history


async def record_simple(store: Store, name: str, started: float, fail: bool = False,
                        path: str | None = None) -> str:
    wf = make_workflow(name, Step("s", "s", run="exit 1" if fail else "echo ok"),
                       source=f"name = '{name}'", path=path or f"/wf/{name}.toml")
    run = Run(wf, RunOptions(run_id=new_run_id(started)), executor_for=ScriptedWorld().factory(),
              clock=lambda: started)
    with store.record(run):
        await run.execute()
    return run.id


async def test_runs_newest_first_with_filters(store: Store):
    a = await record_simple(store, "alpha", 1000.0)
    b = await record_simple(store, "beta", 2000.0, fail=True)
    c = await record_simple(store, "alpha", 3000.0, fail=True)
    ids = lambda runs: [r.id for r in runs]  # noqa: E731
    assert ids(store.runs()) == [c, b, a]
    assert ids(store.runs(workflow="alpha")) == [c, a]
    assert ids(store.runs(workflow="/wf/beta.toml")) == [b]
    assert ids(store.runs(status="failed")) == [c, b]
    assert ids(store.runs(status="succeeded")) == [a]
    assert ids(store.runs(since=1500.0)) == [c, b]
    assert ids(store.runs(workflow="alpha", status="failed", since=500.0)) == [c]
    assert ids(store.runs(limit=1)) == [c]
    summary = store.runs(workflow="beta")[0]
    assert (summary.workflow, summary.state, summary.started, summary.duration) == (
        "beta", "failed", 2000.0, 0.0)
    with pytest.raises(ValueError, match="unknown status 'exploded'"):
        store.runs(status="exploded")


async def test_run_ids_resolve_by_unique_prefix(store: Store):
    a = await record_simple(store, "alpha", 1000.0)
    b = await record_simple(store, "alpha", 1000.0)
    assert a[:9] == b[:9] and a != b
    assert store.resolve(a) == a and store.load(b).id == b
    with pytest.raises(StoreError, match=f"run id '{a[:9]}' is ambiguous: "):
        store.resolve(a[:9])
    with pytest.raises(StoreError, match="no run 'zzz' in "):
        store.load("zzz")


async def test_prune_deletes_old_runs_and_their_logs(store: Store):
    old = await record_simple(store, "alpha", 1000.0)
    older = await record_simple(store, "beta", 500.0)
    new = await record_simple(store, "alpha", 3000.0)
    assert (store.home / "logs" / old).is_dir()
    assert store.prune(older_than=1500.0, now=3600.0) == 2
    assert [r.id for r in store.runs()] == [new]
    assert not (store.home / "logs" / old).exists()
    assert not (store.home / "logs" / older).exists()
    assert store.read_log(new, "s", "local", 1) == "ok\n"
    with pytest.raises(StoreError, match="no run"):
        store.load(old)
    counts = [store._db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("tasks", "attempts", "events", "definitions")]
    assert counts == [1, 1, 4, 1]  # run running, task running, task succeeded, run succeeded
    with store.acquire_run_lock(new):
        assert store.prune(older_than=0, now=10_000.0) == 0  # live runs are kept
    assert store.prune(older_than=0, now=10_000.0) == 1


# ---------------------------------------------------------------------------- files


async def test_folders_are_0700_and_files_0600_whatever_the_umask(tmp_path: Path):
    old = os.umask(0)
    try:
        with Store.open(tmp_path / "a" / "home") as store:
            run_id = await record_simple(store, "alpha", 1000.0)
            files = [p for p in store.home.rglob("*") if p.is_file()]
            dirs = [p for p in store.home.rglob("*") if p.is_dir()]
            names = {p.name for p in files}
            assert {"history.sqlite", "history.sqlite-wal", "history.sqlite-shm",
                    "s@local.1.log", f"{run_id}.lock"} <= names
            assert {p.name for p in dirs} == {"logs", run_id, "locks"}
            for path in [*dirs, store.home, tmp_path / "a"]:
                assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
            for path in files:
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        os.umask(old)


def test_a_home_that_cannot_be_created_is_a_clear_error(tmp_path: Path):
    (tmp_path / "file").write_text("not a folder")
    home = tmp_path / "file" / "sub"
    with pytest.raises(StoreError) as info:
        Store.open(home)
    assert str(info.value) == f"cannot write to baton home {home}: Not a directory"


def test_a_full_home_is_a_clear_error(tmp_path: Path):
    """RLIMIT_FSIZE=0 makes every write fail like a full disk, even for root."""
    home = tmp_path / "home"
    script = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        from console.store import Store, StoreError
        try:
            Store.open({str(home)!r})
        except StoreError as exc:
            print(exc)
            sys.exit(1)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 1, done.stderr
    assert done.stdout == f"cannot write to baton home {home}: File too large\n"
    assert done.stderr == ""


@pytest.mark.parametrize("content", [b"garbage, not sqlite" * 100, b"sqlite"])
def test_a_corrupt_database_is_named_and_left_alone(tmp_path: Path, content: bytes):
    home = tmp_path / "home"
    home.mkdir()
    db = home / "history.sqlite"
    db.write_bytes(content)
    for _ in range(2):  # the same clear error every time, no crash loop
        with pytest.raises(StoreError) as info:
            Store.open(home)
        message = str(info.value)
        assert message.startswith(f"{db} is not a valid baton database (")
        assert message.endswith("); move it aside")
    assert db.read_bytes() == content


def test_a_foreign_sqlite_file_is_not_a_baton_database(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    other = sqlite3.connect(home / "history.sqlite")
    other.execute("CREATE TABLE photos (id INTEGER)")
    other.commit()
    other.close()
    with pytest.raises(StoreError, match=r"is not a valid baton database \(no schema_version "
                                         r"table\); move it aside"):
        Store.open(home)


def test_a_newer_schema_is_refused(tmp_path: Path):
    with Store.open(tmp_path / "home") as store:
        store._db.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match=r"was written by a newer baton \(schema 99"):
        Store.open(tmp_path / "home")


def test_a_version_1_database_is_migrated_and_its_runs_load(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(FIXTURE_V1, home / "history.sqlite")
    with Store.open(home) as store:
        version = store._db.execute("SELECT version FROM schema_version").fetchone()[0]
        assert version == 3
        runs = store.runs(workflow="Nightly backup")
        assert [(r.id, r.state, r.user) for r in runs] == [("0m3vq9z00efgh", "failed", "bob"),
                                                          ("0m3vq1a00abcd", "succeeded",
                                                           "alice")]
        assert [r.id for r in store.runs(status="failed")] == ["0m3vq9z00efgh"]
        stored = store.load("0m3vq1")
        assert [(t.step, t.state) for t in stored.tasks] == [("dump", "succeeded"),
                                                            ("upload", "succeeded")]
        assert stored.tasks[0].outputs["stdout"] == "dump done\n"
        assert [a.digest for a in stored.attempts] == ["aa11", "aa11"]
        assert [n.reason for n in stored.notes] == ["started by cron"]
        assert stored.definitions == {}
        assert "# Incident timeline: Nightly backup" in show.render_markdown(stored)
    with Store.open(home) as store:  # opening again is a no-op
        assert len(store.runs()) == 2


def test_a_history_created_by_another_process_meanwhile_is_used_not_created_again(
        tmp_path: Path):
    """A run starting and a `baton runs` watching it both open a new home at once: the
    one that finds the tables missing while the other is creating them waits, then uses
    them (it used to fail: "table schema_version already exists", and the run never
    started). The other process is held mid-creation here, its transaction open."""
    import threading

    from console.store import migrations

    home = tmp_path / "home"
    Store.open(home).close()
    (home / "history.sqlite").unlink()
    for suffix in ("-wal", "-shm"):
        (home / f"history.sqlite{suffix}").unlink(missing_ok=True)
    os.close(os.open(home / "history.sqlite", os.O_CREAT | os.O_WRONLY, 0o600))
    other = sqlite3.connect(home / "history.sqlite", isolation_level=None)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("BEGIN IMMEDIATE")
    for statement in filter(str.strip, migrations.SCHEMA.split(";")):
        other.execute(statement)
    other.execute(f"INSERT INTO schema_version VALUES ({migrations.CURRENT})")
    outcome: list[object] = []

    def open_meanwhile() -> None:
        try:
            with Store.open(home) as store:
                outcome.append(store.runs())
        except Exception as exc:
            outcome.append(exc)

    opener = threading.Thread(target=open_meanwhile)
    opener.start()
    opener.join(0.5)  # it found no tables and waits for the write lock
    other.execute("COMMIT")
    other.close()
    opener.join(10)
    assert outcome == [[]]


# ---------------------------------------------------------------------------- the lock

HOLDER = """
import sys, time
from console.store import acquire_run_lock
lock = acquire_run_lock(sys.argv[1])
print("locked", flush=True)
time.sleep(60)
"""


async def test_a_live_run_is_locked_until_its_process_dies(tmp_path: Path, baton_home: Path):
    run_id = new_run_id()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, run_id], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(LiveRunError) as info:
            acquire_run_lock(run_id)
        assert str(info.value).startswith(f"run {run_id} is live in process {holder.pid} (on ")
        assert str(info.value).endswith("close that console first")
        with Store.open() as store:
            run = Run(make_workflow("t", Step("s", "s", run="echo ok")),
                      RunOptions(run_id=run_id), executor_for=ScriptedWorld().factory())
            with pytest.raises(LiveRunError, match=f"run {run_id} is live in process"):
                store.record(run)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with acquire_run_lock(run_id) as lock:
        assert lock.held
        with pytest.raises(LiveRunError, match="already open in this process"):
            acquire_run_lock(run_id)
    assert not lock.held
    acquire_run_lock(run_id).release()


async def test_mark_interrupted_is_refused_while_another_process_records(tmp_path: Path,
                                                                         baton_home: Path):
    with Store.open() as store:
        run_id = await record_simple(store, "alpha", 1000.0)
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, run_id], cwd=REPO,
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline() == "locked\n"
            with pytest.raises(LiveRunError, match=f"run {run_id} is live in another process"):
                store.mark_interrupted(run_id)
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
        assert store.mark_interrupted(run_id) == []


async def test_reloads_are_recorded_with_their_definition(store: Store):
    from console.model.loader import load_text

    v1 = "[workflow]\nname = 'live'\n[steps.long]\nrun = 'hold long'\n"
    v2 = v1 + "[steps.extra]\nrun = 'echo extra'\n"
    world = ScriptedWorld()
    run = Run(load_text(v1, "/srv/live.toml"), RunOptions(user="carol", keep_alive=True),
              executor_for=world.factory())
    recorder = store.record(run)
    task = asyncio.get_running_loop().create_task(run.execute())
    await until(lambda: run.tasks[("long", "local")].state is TaskState.RUNNING)
    run.reload_failed("/srv/live.toml:3: steps.bad.needs: unknown step 'nope'")
    new = load_text(v2, "/srv/live.toml")
    run.reload(new)
    await until(lambda: run.tasks[("extra", "local")].state is TaskState.SUCCEEDED)
    world.release("long")
    await until(lambda: run.state == "succeeded")
    run.close()
    await asyncio.wait_for(task, 5)
    recorder.close()

    stored = store.load(run.id)
    reloads = [(a.action, a.user, a.reason) for a in stored.actions if a.action == "reload"]
    assert reloads == [
        ("reload", "carol", "refused: /srv/live.toml:3: steps.bad.needs: unknown step 'nope'"),
        ("reload", "carol", f"+extra (definition {new.digest[:12]})"),
    ]
    assert stored.definitions[new.digest] == v2
    assert [e.payload for e in stored.events if e.type == "reload"][-1] == {
        "type": "reload", "added": ["extra"], "changed": [], "removed": [],
        "digest": new.digest}
    assert stored.last_definition() == (new.digest, v2)
    markdown = show.render_markdown(stored)
    assert f"carol reloaded the workflow: +extra (definition {new.digest[:12]})" in markdown


@settings(max_examples=300, deadline=None)
@given(step=st.text(), host=st.text(), state=st.sampled_from(list(TaskState)),
       attempt=st.integers(min_value=0, max_value=10**6),
       exit_code=st.none() | st.integers(min_value=-(2**31), max_value=2**31),
       reason=st.none() | st.text(),
       time=st.floats(min_value=0, max_value=1e11, allow_nan=False))
def test_the_stored_task_event_is_exactly_json_dumps(step, host, state, attempt, exit_code,
                                                     reason, time):
    from console.store.recorder import task_event_json

    event = TaskEvent(step, host, state, attempt, exit_code, reason, time)
    assert task_event_json(event) == json.dumps(event.to_dicts()[0])


async def test_last_definition_of_runs_stored_before_reload_events_named_their_digest(
        store: Store, tmp_path: Path):
    from tests.history_helpers import record_reloaded

    await record_reloaded(store, tmp_path / "reloaded.toml", "r0000old01", versions=3)
    assert "shipping v3" in store.load("r0000old01").last_definition()[1]
    # as an older baton stored them: the reload event without its digest
    store._db.execute("UPDATE events SET payload = json_remove(payload, '$.digest') "
                      "WHERE run_id = 'r0000old01' AND type = 'reload'")
    stored = store.load("r0000old01")
    assert all("digest" not in e.payload for e in stored.events if e.type == "reload")
    digest, text = stored.last_definition()
    assert "shipping v3" in text and digest in stored.definitions


async def test_a_dead_owner_shows_interrupted_on_a_read_only_store_too(store: Store,
                                                                       tmp_path: Path):
    from tests.history_helpers import flow_file, record_run

    await record_run(store, flow_file(tmp_path), "r0000dead1", started=1732600000.0,
                     stop_at="ship")
    store.read_only = True  # as Store.open_read gives on a home it cannot write
    assert [r.state for r in store.runs()] == ["interrupted"]
    assert [r.id for r in store.runs(status="interrupted")] == ["r0000dead1"]
    assert store.runs(status="running") == []
    stored = store.load("r0000dead1")
    assert stored.run.state == "interrupted"
    ship = next(t for t in stored.tasks if t.step == "ship")
    assert (ship.state, ship.reason) == ("interrupted",
                                         f"baton (pid {os.getpid()}) stopped while it ran")
    assert stored.attempts_of("ship", "local")[-1].state == "interrupted"
    raw = store._db.execute("SELECT state FROM runs WHERE id = 'r0000dead1'").fetchone()
    assert raw == ("running",)  # nothing was written
    store.read_only = False
    assert [r.state for r in store.runs()] == ["interrupted"]
    raw = store._db.execute("SELECT state FROM runs WHERE id = 'r0000dead1'").fetchone()
    assert raw == ("interrupted",)  # a writable store marks it


@pytest.mark.parametrize("folder", ["home", "owned by nobody", "a symbolic link"])
def test_open_read_falls_back_on_the_error_type_not_on_words_in_the_path(tmp_path: Path,
                                                                         folder: str):
    """Only an unsafe path (UnsafePathError) is refused outright; any other StoreError of
    Store.open falls back to reading, whatever the home is called (the words of the
    message were matched, and a home named "owned by …" was refused)."""
    home = tmp_path / folder
    with Store.open(home) as store:
        store._db.execute("UPDATE schema_version SET version = 99")
    with Store.open_read(home) as store:
        assert store.read_only and store.runs() == []
    home.chmod(0o777)
    with pytest.raises(StoreError, match=r"writable by group or others"):
        Store.open_read(home)
