"""End to end (issue 13, a remaining gap): the real `baton rollback RUN --step S` opens the
console by default (SPEC section 2) in tmux, on the past run with the plan dialog of that
scope; `y` approves it, the undo runs and the run ends rolled_back, recorded."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

from tests.test_ui_e2e import Tmux, _baton, _env, _tmux, _wait_file  # noqa: F401 (fixture)


def test_baton_rollback_opens_the_console_on_the_plan(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    flow = tmp_path / "flow.toml"
    flow.write_text(f'''
[workflow]
name = "E2E console rollback"

[steps.build]
run = 'echo build >> {journal}'
undo = 'echo undo-build >> {journal}'

[steps.deploy]
name = "Deploy release"
needs = ["build"]
run = 'echo deploy >> {journal}'
undo = 'echo undo-deploy >> {journal}'
''', encoding="utf-8")
    ran = _baton(tmp_path, "run", str(flow), "--headless", "--json")
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout.splitlines()[0])["run_id"]
    exit_file = tmp_path / "exit-code"
    command = (f"sh -c '{sys.executable} -m console rollback {run_id} --step deploy; "
               f"echo $? > {exit_file}; sleep 30'")
    tmux = Tmux(f"baton-e2e-{uuid.uuid4().hex[:8]}")
    tmux.start(command, _env(tmp_path))
    try:
        screen = tmux.wait_for("Rollback plan (step deploy)", timeout=40)
        assert "echo undo-deploy" in screen and "Roll back (y)" in screen
        assert journal.read_text().split() == ["build", "deploy"]  # nothing before y
        tmux.keys("y")
        tmux.wait_for("ROLLED_BACK", timeout=30)
        tmux.keys("q")
        _wait_file(exit_file)
    finally:
        tmux.kill()
    assert journal.read_text().split() == ["build", "deploy", "undo-deploy"]
    assert exit_file.read_text().strip() == "1"  # a rolled-back run exits 1, as headless
    shown = json.loads(_baton(tmp_path, "show", run_id, "--json").stdout)
    assert shown["run"]["state"] == "rolled_back"
    assert [a["action"] for a in shown["actions"] if a["action"] == "rollback"] == ["rollback"]
