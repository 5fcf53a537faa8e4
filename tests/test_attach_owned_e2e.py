"""Issue 15 with the real `baton` in tmux: a run started from the console's folder view
and a run resumed with `baton resume RUN` in the console are owned by a runner, as
`baton run FILE` is: the terminal goes away and the run goes on (`baton runs` marks it
live; its pid is the runner's, not the console's)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

from tests.test_ui_e2e import REPO, Tmux, _baton, _env

WAITING = '''
[workflow]
name = "Owned wait"

[params.who]
default = "world"

[steps.wait]
name = "Wait for the stop file"
run = "echo hello-{{ params.who }}; while [ ! -e STOP ]; do sleep 0.1; done"
'''


def _live_run(tmp_path: Path, starter: subprocess.Popen[bytes] | None = None
              ) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while True:
        runs = [json.loads(line) for line in
                _baton(tmp_path, "runs", "--json").stdout.splitlines()]
        if runs and runs[0]["state"] == "running":
            return runs[0]
        ended = "" if starter is None or starter.poll() is None else (
            f"; the run's process exited {starter.returncode}: "
            f"{(tmp_path / 'first.err').read_text(errors='replace')[-2000:]}")
        assert time.monotonic() < deadline and not ended, f"{runs}{ended}"
        time.sleep(0.2)


def _close_terminal_and_check_live(tmp_path: Path, term: Tmux, run_id: str) -> None:
    console = psutil.Process(term.pane_pid())
    term.kill_server()  # the terminal goes away
    console.wait(timeout=10)
    listing = _baton(tmp_path, "runs").stdout
    assert "running (live)" in listing, listing
    shown = json.loads(_baton(tmp_path, "show", run_id, "--json").stdout)["run"]
    assert shown["state"] == "running"
    assert shown["pid"] != console.pid and psutil.pid_exists(shown["pid"])


def _stop(tmp_path: Path, stop: Path, run_id: str) -> dict[str, object]:
    stop.touch()
    deadline = time.monotonic() + 30
    while True:
        run = json.loads(_baton(tmp_path, "show", run_id, "--json").stdout)["run"]
        if run["state"] != "running":
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.2)


def test_a_run_started_from_the_folder_view_is_owned_by_a_runner(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    stop = tmp_path / "stop"
    (folder / "wait.toml").write_text(WAITING.replace("STOP", str(stop)), encoding="utf-8")
    term = Tmux(f"baton-fv-{uuid.uuid4().hex[:8]}", server=f"baton-fv-{uuid.uuid4().hex[:6]}")
    term.start(f"{sys.executable} -m console {folder}", _env(tmp_path))
    try:
        term.wait_for("Owned wait")
        term.keys("Enter")  # open it: the params form first
        term.wait_for("Parameters · Owned wait")
        for _ in range(10):  # keys typed before the first field has the focus are lost
            term.keys("C-u")
            term.keys("from-the-form")
            try:
                term.wait_for("from-the-form", timeout=2)
                break
            except AssertionError:
                continue
        term.wait_for("from-the-form")
        term.keys("Enter")
        screen = term.wait_for("hello-from-the-form")
        assert "Wait for the stop file" in screen
        run = _live_run(tmp_path)
        pid = json.loads(_baton(tmp_path, "show", str(run["id"]), "--json").stdout)["run"]["pid"]
        # the form's values reach the runner through its environment, not its command line
        assert not any("from-the-form" in part for part in psutil.Process(pid).cmdline())
        _close_terminal_and_check_live(tmp_path, term, str(run["id"]))
        done = _stop(tmp_path, stop, str(run["id"]))
        assert done["state"] == "succeeded"
    finally:
        stop.touch()
        term.kill_server()


def test_baton_resume_in_the_console_is_owned_by_a_runner(tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    flow = tmp_path / "wait.toml"
    flow.write_text(WAITING.replace("STOP", str(stop)), encoding="utf-8")
    env = {**os.environ, **_env(tmp_path)}
    errors = (tmp_path / "first.err").open("w")
    first = subprocess.Popen([sys.executable, "-m", "console", "run", str(flow), "--headless"],
                             cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=errors)
    errors.close()
    try:
        run = _live_run(tmp_path, first)
        first.send_signal(signal.SIGTERM)  # stopped as Ctrl-C: interrupted, resumable
        assert first.wait(timeout=20) == 143
    finally:
        if first.poll() is None:
            first.kill()
    run_id = str(run["id"])
    assert json.loads(_baton(tmp_path, "show", run_id, "--json").stdout)["run"]["state"] \
        == "interrupted"
    term = Tmux(f"baton-rs-{uuid.uuid4().hex[:8]}", server=f"baton-rs-{uuid.uuid4().hex[:6]}")
    term.start(f"{sys.executable} -m console resume {run_id} --yes", _env(tmp_path))
    try:
        screen = term.wait_for("RUNNING")
        assert run_id in screen
        _close_terminal_and_check_live(tmp_path, term, run_id)
        done = _stop(tmp_path, stop, run_id)
        assert done["state"] == "succeeded"
    finally:
        stop.touch()
        term.kill_server()


def test_baton_resume_of_a_finished_run_shows_it_read_only(tmp_path: Path) -> None:
    """Nothing to resume: no runner is started; the console shows the run read-only, as
    it always did."""
    flow = tmp_path / "done.toml"
    flow.write_text('[workflow]\nname = "Done flow"\n[steps.a]\nname = "Only step"\n'
                    'run = "true"\n', encoding="utf-8")
    assert _baton(tmp_path, "run", str(flow), "--headless").returncode == 0
    [run] = [json.loads(line) for line in _baton(tmp_path, "runs", "--json").stdout.splitlines()]
    term = Tmux(f"baton-rd-{uuid.uuid4().hex[:8]}")
    term.start(f"{sys.executable} -m console resume {run['id']}", _env(tmp_path))
    try:
        screen = term.wait_for("nothing to resume", "Only step")  # the notice may come first
        assert "Only step" in screen
        assert not (Path(_env(tmp_path)["BATON_HOME"]) / "runners").exists()
    finally:
        term.kill()
