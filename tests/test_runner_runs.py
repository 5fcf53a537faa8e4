"""Issue 15: `baton runs --json` says which runs are live (a runner or a headless run
serving them: `baton attach RUN` reaches them), as the table's `(live)` mark does."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from console.runner.daemon import spawn
from tests.conftest import baton
from tests.test_runner import GATED, _wait_gone


def _runs(home: Path) -> dict[str, dict[str, object]]:
    listed = baton("runs", "--json", env={"BATON_HOME": str(home)})
    assert listed.returncode == 0, listed.stderr
    return {r["id"]: r for r in map(json.loads, listed.stdout.splitlines())}


def test_runs_json_marks_the_live_runs(tmp_path: Path, baton_home: Path) -> None:
    done = tmp_path / "done.toml"
    done.write_text('[workflow]\nname = "done"\n[steps.a]\nrun = "true"\n')
    finished = baton("run", done, "--headless", env={"BATON_HOME": str(baton_home)})
    assert finished.returncode == 0, finished.stderr
    flow = tmp_path / "gated.toml"
    flow.write_text(GATED)
    spawned = spawn([str(flow)], baton_home)
    try:
        runs = _runs(baton_home)
        assert runs[spawned.run_id]["live"] is True
        assert runs[spawned.run_id]["state"] == "running"
        [other] = [r for r in runs.values() if r["id"] != spawned.run_id]
        assert other["live"] is False and other["state"] == "succeeded"
        os.kill(spawned.pid, signal.SIGKILL)
        _wait_gone(spawned.pid)
        runs = _runs(baton_home)
        assert runs[spawned.run_id]["live"] is False
        assert runs[spawned.run_id]["state"] == "interrupted"
    finally:
        try:
            os.kill(spawned.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_resume_of_a_live_run_in_the_console_points_to_attach(tmp_path: Path,
                                                              baton_home: Path) -> None:
    flow = tmp_path / "gated.toml"
    flow.write_text(GATED)
    spawned = spawn([str(flow)], baton_home)
    try:
        resumed = baton("resume", spawned.run_id, env={"BATON_HOME": str(baton_home)})
        assert resumed.returncode == 2
        assert resumed.stderr == (f"baton: run {spawned.run_id} is live (its process goes on "
                                  f"with it): baton attach {spawned.run_id} opens it\n")
    finally:
        os.kill(spawned.pid, signal.SIGKILL)
