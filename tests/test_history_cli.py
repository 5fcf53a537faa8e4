"""Run history through the `baton` command: every run is stored; `runs`, `show`, `resume`,
the live-run lock and a store that cannot be used (issue 5)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, baton, baton_env, write_workflow

OK = """
[workflow]
name = "Alpha"

[params]
who = "ops"

[steps.hello]
run = "echo hello {{ params.who }}"

[steps.gate]
needs = ["hello"]
confirm = "Go?"
run = "echo gated"
"""

FAILS = """
[workflow]
name = "Beta"

[steps.boom]
run = "exit 3"
"""

# `work` appends to a file given as a param, then waits for a marker file: a run that
# stays live until the test lets it go (or kills it).
WAITS = """
[workflow]
name = "Waits"

[params]
dir = { type = "string", required = true }

[steps.first]
run = "echo first >> {{ params.dir }}/side; echo first-out"

[steps.work]
needs = ["first"]
run = "echo work >> {{ params.dir }}/side; while [ ! -e {{ params.dir }}/go ]; do sleep 0.05; done"

[steps.after]
needs = ["work"]
run = "echo after >> {{ params.dir }}/side; echo saw {{ steps.first.stdout | trim }}"
"""


def run_id_of(result: subprocess.CompletedProcess[str]) -> str:
    return json.loads(result.stdout.splitlines()[0])["run_id"]


def json_run(path: Path, *args: str) -> str:
    result = baton("run", path, "--headless", "--json", *args)
    assert result.returncode in (0, 1), result.stderr
    return run_id_of(result)


def runs_json(*args: str) -> list[dict]:
    result = baton("runs", "--json", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


# --- every run is stored -------------------------------------------------------------


def test_a_run_is_stored_and_its_id_is_on_stderr_in_human_mode(tmp_path: Path,
                                                               baton_home: Path) -> None:
    path = write_workflow(tmp_path, OK)
    result = baton("run", path, "--headless", "--yes")
    assert result.returncode == 0, result.stderr
    [run] = runs_json()
    assert result.stderr.startswith(f"run {run['id']} (baton show {run['id']})\n")
    assert run["workflow"] == "Alpha" and run["state"] == "succeeded"
    assert run["path"] == str(path.resolve())
    assert (baton_home / "history.sqlite").stat().st_mode & 0o777 == 0o600
    assert baton_home.stat().st_mode & 0o777 == 0o700


def test_json_mode_keeps_the_run_id_off_stdout_except_in_events(tmp_path: Path,
                                                                baton_home: Path) -> None:
    result = baton("run", write_workflow(tmp_path, OK), "--headless", "--json", "--yes")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]  # only JSON
    [run] = runs_json()
    assert events[0] == {**events[0], "type": "run", "run_id": run["id"]}
    assert f"baton show {run['id']}" not in result.stderr


def test_a_dry_run_is_not_history(tmp_path: Path, baton_home: Path) -> None:
    result = baton("run", write_workflow(tmp_path, OK), "--headless", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert runs_json() == []


def test_no_history_runs_are_not_recorded(tmp_path: Path, baton_home: Path) -> None:
    path = write_workflow(tmp_path, OK)
    result = baton("run", path, "--headless", "--yes", "--no-history")
    assert result.returncode == 0, result.stderr
    assert runs_json() == []
    assert baton("run", path, "--headless", "--yes").returncode == 0
    assert len(runs_json()) == 1


# --- runs ----------------------------------------------------------------------------


def test_runs_lists_newest_first_and_filters(tmp_path: Path, baton_home: Path) -> None:
    ok = write_workflow(tmp_path, OK, "alpha.toml")
    fails = write_workflow(tmp_path, FAILS, "beta.toml")
    first = json_run(ok, "--yes")
    failed = json_run(fails)
    last = json_run(ok, "--yes")

    assert [r["id"] for r in runs_json()] == [last, failed, first]
    table = baton("runs")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "WORKFLOW", "STARTED", "DURATION", "STATUS", "USER"]
    assert [line.split()[0] for line in lines[1:]] == [last, failed, first]
    assert lines[2].split()[4] == "failed"

    assert [r["id"] for r in runs_json("--workflow", "Alpha")] == [last, first]
    # as an operator types it: any part of the name or file name, any case (issue 10)
    assert [r["id"] for r in runs_json("--workflow", "alp")] == [last, first]
    assert [r["id"] for r in runs_json("--workflow", "LPH")] == [last, first]
    assert [r["id"] for r in runs_json("--workflow", "beta.to")] == [failed]
    assert [r["id"] for r in runs_json("--workflow", "ET")] == [failed]
    assert runs_json("--workflow", "gamma") == []
    assert [r["id"] for r in runs_json("--workflow", str(fails))] == [failed]
    assert [r["id"] for r in runs_json("--status", "failed")] == [failed]
    assert [r["id"] for r in runs_json("--status", "succeeded", "--limit", "1")] == [last]
    assert len(runs_json("--since", "1h")) == 3
    assert runs_json("--since", "2999-01-01") == []
    nothing = baton("runs", "--since", "2999-01-01T00:00")
    assert nothing.returncode == 0 and nothing.stdout == ""
    assert "no run matches" in nothing.stderr


@pytest.mark.parametrize("args, message", [
    (["--status", "sleepy"], "unknown status 'sleepy'"),
    (["--since", "yesterday"], "--since: expected an age"),
    (["--limit", "0"], "--limit must be at least 1"),
    (["--prune"], "--prune needs --older-than"),
    (["--older-than", "30d"], "--older-than only applies with --prune"),
    (["--prune", "--older-than", "a month"], "--older-than: expected an age"),
])
def test_runs_rejects_bad_options(args: list[str], message: str, baton_home: Path) -> None:
    result = baton("runs", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_prune_removes_runs_older_than_the_age(tmp_path: Path, baton_home: Path) -> None:
    path = write_workflow(tmp_path, OK)
    ids = [json_run(path, "--yes") for _ in range(2)]
    kept = baton("runs", "--prune", "--older-than", "30d")
    assert kept.returncode == 0
    assert kept.stdout == "pruned 0 runs older than 30d\n"
    assert len(runs_json()) == 2
    time.sleep(0.05)
    gone = baton("runs", "--prune", "--older-than", "0.01s")
    assert gone.stdout == "pruned 2 runs older than 0.01s\n"
    assert runs_json() == []
    assert not any((baton_home / "logs" / run_id).exists() for run_id in ids)
    empty = baton("runs")
    assert empty.returncode == 0 and f"no runs recorded in {baton_home}" in empty.stderr


# --- show ----------------------------------------------------------------------------


def test_show_in_three_formats(tmp_path: Path, baton_home: Path) -> None:
    run_id = json_run(write_workflow(tmp_path, OK), "--yes", "--param", "who=alice")

    table = baton("show", run_id[:9])
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == f"run {run_id}  Alpha  succeeded"
    assert any(line.split()[:3] == ["hello", "local", "succeeded"] for line in lines)
    assert any(line.split()[:3] == ["gate", "local", "succeeded"] for line in lines)
    assert any("approve" in line and "--yes" in line for line in lines)

    data = json.loads(baton("show", run_id, "--json").stdout)
    assert data["run"]["id"] == run_id and data["run"]["params"] == {"who": "alice"}
    assert [(t["step"], t["state"]) for t in data["tasks"]] == [("hello", "succeeded"),
                                                                ("gate", "succeeded")]
    assert data["tasks"][0]["attempts"][0]["command"] == "echo hello alice"
    assert [(a["action"], a["step"]) for a in data["actions"]] == [("approve", "gate")]

    markdown = baton("show", run_id, "--markdown").stdout
    assert markdown.startswith("# Incident timeline: Alpha\n")
    assert f"`{run_id}`" in markdown and "| who | `alice` |" in markdown
    assert "| hello | local | succeeded | 1 |" in markdown


def test_show_errors_are_one_line(tmp_path: Path, baton_home: Path) -> None:
    path = write_workflow(tmp_path, OK)
    ids = [json_run(path, "--yes") for _ in range(2)]
    common = ids[0][:next(i for i, (a, b) in enumerate(zip(*ids, strict=True)) if a != b)]
    for args, message in ((["nope"], f"baton: no run 'nope' in {baton_home / 'history.sqlite'}"),
                          ([common], f"baton: run id '{common}' is ambiguous: "),
                          (["x", "--json", "--markdown"],
                           "baton: choose one of --json and --markdown")):
        result = baton("show", *args)
        assert result.returncode == 2
        assert result.stderr.startswith(message)
        assert len(result.stderr.splitlines()) == 1


# --- resume and the live-run lock ----------------------------------------------------


def start_waiting(tmp_path: Path) -> tuple[subprocess.Popen[str], str, Path]:
    """Start WAITS headless (JSON); return once `work` runs, with the run id."""
    path = write_workflow(tmp_path, WAITS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "run", str(path), "--headless", "--json",
         "--param", f"dir={tmp_path}"],
        cwd=REPO, env=baton_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    run_id = None
    for line in proc.stdout:
        event = json.loads(line)
        run_id = run_id or event.get("run_id")
        if event == {**event, "type": "task", "step": "work", "state": "running"}:
            assert run_id is not None
            deadline = time.monotonic() + 10
            while "work" not in side(tmp_path) and time.monotonic() < deadline:
                time.sleep(0.02)  # the shell has started
            return proc, run_id, path
    raise AssertionError("`work` never started")


def side(tmp_path: Path) -> list[str]:
    path = tmp_path / "side"
    return path.read_text().split() if path.exists() else []


def test_resume_of_a_live_run_is_refused(tmp_path: Path, baton_home: Path) -> None:
    proc, run_id, _ = start_waiting(tmp_path)
    try:
        result = baton("resume", run_id, "--headless", "--yes")
        assert result.returncode == 2
        assert result.stderr.startswith(f"baton: run {run_id} is live in process {proc.pid} ")
        assert len(result.stderr.splitlines()) == 1
        (tmp_path / "go").touch()
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.wait()
    assert side(tmp_path) == ["first", "work", "after"]


def test_a_run_whose_owner_died_is_interrupted_for_every_command(tmp_path: Path,
                                                                 baton_home: Path) -> None:
    proc, run_id, _ = start_waiting(tmp_path)
    try:
        # alive: every command says running
        assert [r["state"] for r in runs_json()] == ["running"]
        assert json.loads(baton("show", run_id, "--json").stdout)["run"]["state"] == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # dead (its lock is free): every command says interrupted, without a console
    listing = baton("runs")
    assert listing.returncode == 0 and "interrupted" in listing.stdout
    assert "running" not in listing.stdout
    assert [r["state"] for r in runs_json()] == ["interrupted"]
    assert [r["id"] for r in json.loads("[" + ",".join(
        baton("runs", "--status", "interrupted", "--json").stdout.split("\n")[:-1]) + "]")
    ] == [run_id]
    data = json.loads(baton("show", run_id, "--json").stdout)
    assert data["run"]["state"] == "interrupted"
    work = next(t for t in data["tasks"] if t["step"] == "work")
    assert work["state"] == "interrupted"
    assert f"baton (pid {proc.pid}) stopped while it ran" in work["reason"]
    table = baton("show", run_id).stdout
    assert "interrupted" in table and "running" not in table
    markdown = baton("show", run_id, "--markdown").stdout
    assert "interrupted" in markdown and "| running |" not in markdown
    (tmp_path / "go").touch()  # the orphaned step (baton was killed) ends itself


@pytest.mark.parametrize(("signum", "code", "why"), [(signal.SIGINT, 130, "Ctrl-C"),
                                                     (signal.SIGTERM, 143, "SIGTERM")])
def test_a_run_stopped_by_a_signal_resumes_like_an_interrupted_one(
        tmp_path: Path, baton_home: Path, signum: int, code: int, why: str) -> None:
    proc, run_id, _ = start_waiting(tmp_path)
    proc.send_signal(signum)
    assert proc.wait(timeout=20) == code
    [stored] = runs_json()
    assert stored["state"] == "interrupted"
    tasks = {t["step"]: t for t in json.loads(baton("show", run_id, "--json").stdout)["tasks"]}
    assert (tasks["work"]["state"], tasks["work"]["reason"]) == ("interrupted",
                                                                f"stopped by {why}")
    (tmp_path / "go").touch()
    done = baton("resume", run_id, "--headless", "--yes")
    assert done.returncode == 0, done.stderr
    assert side(tmp_path) == ["first", "work", "work", "after"]  # work re-ran, first did not
    assert runs_json()[0]["state"] == "succeeded"


def test_resume_continues_with_the_last_reloaded_definition(tmp_path: Path,
                                                           baton_home: Path) -> None:
    import asyncio

    from console.store import Store
    from tests.history_helpers import record_reloaded

    path = tmp_path / "reloaded.toml"
    with Store.open(baton_home) as store:
        asyncio.run(record_reloaded(store, path, "r0000rel01"))
    path.write_text(path.read_text().replace("v4", "on-disk"))  # the file moved on since
    done = baton("resume", "r0000rel01", "--headless", "--yes")
    assert done.returncode == 0, done.stderr
    assert "shipping v4" in done.stdout
    assert "shipping v1" not in done.stdout and "on-disk" not in done.stdout
    assert "built" not in done.stdout  # build finished before: not re-run


def test_resume_after_a_kill(tmp_path: Path, baton_home: Path) -> None:
    proc, run_id, path = start_waiting(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [r["state"] for r in runs_json()] == ["interrupted"]  # its owner is dead

    # no --yes, no terminal: the interrupted task stays interrupted, the run fails
    held = baton("resume", run_id, "--headless")
    assert held.returncode == 1
    # what the killed baton left running is reported and ended first (issue 11, item 9)
    assert held.stderr.startswith("baton: attempt 1 of work was interrupted but left "
                                  "processes running: ")
    assert f"\nresuming run {run_id} (baton show {run_id})\n" in held.stderr
    assert "use --yes to retry interrupted tasks" in held.stderr
    assert any(line.split()[:3] == ["work", "local", "interrupted"]
               for line in held.stdout.splitlines())
    assert side(tmp_path) == ["first", "work"]

    # the file changed meanwhile: the run goes on with the definition it ran with
    path.write_text(path.read_text().replace("echo saw", "echo CHANGED"))
    (tmp_path / "go").touch()
    done = baton("resume", run_id[:10], "--headless", "--yes")
    assert done.returncode == 0, done.stderr
    assert f"{path.resolve()} changed since run {run_id} ran" in done.stderr
    assert "» retry work by" in done.stdout
    assert "after | saw first-out" in done.stdout  # outputs of finished steps restored
    assert side(tmp_path) == ["first", "work", "work", "after"]  # first never re-ran

    again = baton("resume", run_id, "--headless")
    assert again.returncode == 0
    assert "already succeeded; nothing to resume" in again.stderr
    [stored] = runs_json()
    assert stored["state"] == "succeeded"
    actions = json.loads(baton("show", run_id, "--json").stdout)["actions"]
    assert [(a["action"], a["step"], a["reason"]) for a in actions] == [
        ("retry", "work", "--yes")]


def test_resume_on_a_terminal_asks_before_re_running(tmp_path: Path, baton_home: Path) -> None:
    proc, run_id, _ = start_waiting(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (tmp_path / "go").touch()
    primary, secondary = os.openpty()
    resume = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "resume", run_id, "--headless"],
        cwd=REPO, env=baton_env(), stdin=secondary, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    os.close(secondary)
    try:
        os.write(primary, b"y\n")
        stdout, stderr = resume.communicate(timeout=30)
    finally:
        os.close(primary)
        if resume.poll() is None:
            resume.kill()
    assert "'work' was running when baton stopped; run it again? [y/N]" in stderr
    assert resume.returncode == 0, stderr
    assert "» retry work by" in stdout
    assert side(tmp_path) == ["first", "work", "work", "after"]


@pytest.mark.parametrize("args, message", [
    (["--param", "dir=/tmp"], "--param cannot change a run being resumed"),
    (["--limit", "web"], "--limit cannot change a run being resumed"),
])
def test_resume_keeps_what_the_run_started_with(args: list[str], message: str,
                                                baton_home: Path) -> None:
    result = baton("resume", "abc", "--headless", *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_resume_of_an_unknown_run(baton_home: Path) -> None:
    result = baton("resume", "nope", "--headless")
    assert result.returncode == 2
    assert result.stderr == f"baton: no run 'nope' in {baton_home / 'history.sqlite'}\n"


# --- a store that cannot be used -----------------------------------------------------


def test_an_unwritable_home_is_one_line_and_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    home = blocker / "home"
    path = write_workflow(tmp_path, OK)
    for args in (["run", path, "--headless", "--yes"], ["runs"], ["show", "x"],
                 ["resume", "x", "--headless"]):
        result = baton(*args, env={"BATON_HOME": str(home)})
        assert result.returncode == 2, args
        assert result.stdout == ""
        verb = "read" if args[0] in ("runs", "show") else "write to"  # reading needs no write
        assert result.stderr.startswith(f"baton: cannot {verb} baton home {home}"), args
        assert len(result.stderr.splitlines()) == 1, result.stderr


def test_a_corrupt_database_is_named_and_exit_2(tmp_path: Path, baton_home: Path) -> None:
    baton_home.mkdir(mode=0o700)
    db = baton_home / "history.sqlite"
    db.write_bytes(b"this is not sqlite at all" * 200)
    for args in (["run", write_workflow(tmp_path, OK), "--headless", "--yes"], ["runs"]):
        result = baton(*args)
        assert result.returncode == 2
        assert str(db) in result.stderr and "not a valid baton database" in result.stderr
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_printed_event_is_already_in_the_store(tmp_path: Path, baton_home: Path,
                                                 unbuffered: str) -> None:
    """Whatever a reader of the output has seen is committed: the store's commit of an
    event comes before its line leaves the process (also under PYTHONUNBUFFERED)."""
    import sqlite3

    path = write_workflow(tmp_path, """
        [workflow]
        name = "order"
        [steps.first]
        run = "echo first"
        [steps.slow]
        needs = ["first"]
        run = "sleep 5"
        """)
    env = baton_env()
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-m", "console.cli", "run", str(path), "--headless", "--json"],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            event = json.loads(line)
            if event["type"] == "task":
                seen.append((event["step"], event["state"]))
            if seen and seen[-1] == ("slow", "running"):
                break
        proc.kill()
        proc.wait()
        db = sqlite3.connect(baton_home / "history.sqlite")
        run_id = db.execute("SELECT id FROM runs ORDER BY started DESC LIMIT 1").fetchone()[0]
        stored = dict(db.execute("SELECT step, state FROM tasks WHERE run_id = ?", (run_id,)))
        db.close()
        assert stored == {"first": "succeeded", "slow": "running"}


def test_show_markdown_has_the_last_stderr_lines_of_each_failed_attempt(
        tmp_path: Path, baton_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PM_TOKEN", "s3cr3t-value")
    path = write_workflow(tmp_path, """
        [workflow]
        name = "Postmortem"
        [secrets]
        token = { env = "PM_TOKEN" }
        [steps.boom]
        run = '''for i in $(seq 1 15); do echo "out $i"; echo "err $i {{ secrets.token }}" >&2; done
        printf '\\033]0;evil title\\007oops\\n' >&2
        exit 3'''
    """)
    run_id = json_run(path)
    markdown = baton("show", run_id, "--markdown").stdout
    failures = markdown.split("## Failures\n", 1)[1].split("\n## ", 1)[0]
    assert "### `boom` attempt 1: exit 3" in failures
    assert "err 15 ***" in failures and "err 7 ***" in failures and "err 6 " not in failures
    assert "oops" in failures and "evil title" not in failures and "\x1b" not in markdown
    assert "out 15" not in failures and "s3cr3t-value" not in markdown
    assert 'for i in $(seq 1 15); do echo "out $i"' in markdown  # the whole command
