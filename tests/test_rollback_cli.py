"""`baton rollback RUN` from history (issue 13 item 2): plan, approval, undo order, record."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import baton, write_workflow

# Each step appends to a journal when it runs and when it is undone; `web` fans out over
# two "hosts" that are both this machine (local steps per host are not a thing): a rollout
# is covered by the engine and SSH tests.
JOURNAL = """
[workflow]
name = "Journal"

[params]
dir = {{ type = "string", required = true }}

[secrets]
tok = {{ env = "ROLLBACK_TOKEN" }}

[steps.build]
run = "echo build >> {{{{ params.dir }}}}/journal"
undo = "echo undo-build >> {{{{ params.dir }}}}/journal"

[steps.config]
needs = ["build"]
run = "echo config >> {{{{ params.dir }}}}/journal"
undo = "echo undo-config {{{{ secrets.tok }}}} >> {{{{ params.dir }}}}/journal"

[steps.notify]
needs = ["config"]
run = "echo notify >> {{{{ params.dir }}}}/journal"

[steps.deploy]
needs = ["config"]
run = "echo deploy >> {{{{ params.dir }}}}/journal{fail}"
undo = "echo undo-deploy >> {{{{ params.dir }}}}/journal"
{extra}
"""

ENV = {"ROLLBACK_TOKEN": "hunter2-secret"}


def journal_run(tmp_path: Path, fail: str = "", extra: str = "") -> tuple[str, Path]:
    path = write_workflow(tmp_path, JOURNAL.format(fail=fail, extra=extra))
    result = baton("run", path, "--headless", "--json", "--param", f"dir={tmp_path}", env=ENV)
    run_id = json.loads(result.stdout.splitlines()[0])["run_id"]
    return run_id, tmp_path / "journal"


def test_rollback_from_history_undoes_every_task_in_reverse_order(tmp_path: Path) -> None:
    run_id, journal = journal_run(tmp_path)
    assert journal.read_text().split() == ["build", "config", "notify", "deploy"] or \
        journal.read_text().split() == ["build", "config", "deploy", "notify"]
    journal.write_text("")
    result = baton("rollback", run_id, "--yes", "--headless", env=ENV)
    assert result.returncode == 1, result.stderr  # a rolled-back run exits 1
    assert journal.read_text().split() == ["undo-deploy", "undo-config", "hunter2-secret",
                                           "undo-build"]
    # the plan was shown first, masked, with the step without undo
    assert "1. deploy (succeeded): echo undo-deploy" in result.stderr
    assert "hunter2-secret" not in result.stderr + result.stdout
    assert "undo-config *** >>" in result.stderr
    assert "notify: nothing to undo" in result.stderr
    shown = json.loads(baton("show", run_id, "--json").stdout)
    assert shown["run"]["state"] == "rolled_back"
    states = {t["step"]: t["state"] for t in shown["tasks"]}
    assert states == {"build": "undone", "config": "undone", "notify": "succeeded",
                      "deploy": "undone"}
    actions = [a for a in shown["actions"] if a["action"] == "rollback"]
    assert json.loads(actions[0]["reason"]) == {"step": None, "host": None,
                                                "downstream": False}
    # a second rollback has nothing left to undo
    again = baton("rollback", run_id, "--yes", "--headless", env=ENV)
    assert again.returncode == 0 and "nothing to undo" in again.stderr
    # and a rolled-back run never goes forward again
    resumed = baton("resume", run_id, "--yes", "--headless", env=ENV)
    assert resumed.returncode == 1 and "was rolled back; nothing to resume" in resumed.stderr
    assert journal.read_text().split() == ["undo-deploy", "undo-config", "hunter2-secret",
                                           "undo-build"]


def test_rollback_json_and_step_scope_after_a_failed_run(tmp_path: Path) -> None:
    run_id, journal = journal_run(tmp_path, fail="; exit 3")
    journal.write_text("")
    result = baton("rollback", run_id, "--step", "config", "--downstream", "--yes", "--json",
                   env=ENV)
    assert result.returncode == 1, result.stderr
    assert journal.read_text().split() == ["undo-config", "hunter2-secret"]  # deploy failed
    events = [json.loads(line) for line in result.stdout.splitlines()]
    tasks = [(e["step"], e["state"]) for e in events if e["type"] == "task"]
    assert tasks == [("config", "undoing"), ("config", "undone")]
    action = next(e for e in events if e["type"] == "action" and e["action"] == "rollback")
    assert json.loads(action["reason"]) == {"step": "config", "host": None, "downstream": True}
    assert events[-1] == {**events[-1], "type": "run", "state": "rolled_back"}


def test_rollback_needs_approval_without_a_terminal(tmp_path: Path) -> None:
    run_id, journal = journal_run(tmp_path)
    journal.write_text("")
    result = baton("rollback", run_id, "--headless", env=ENV)
    assert result.returncode == 2
    assert "add --yes" in result.stderr and "Traceback" not in result.stderr
    assert journal.read_text() == ""
    bad = baton("rollback", run_id, "--step", "nope", "--yes", env=ENV)
    assert bad.returncode == 2 and "unknown step 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_plan_names_a_rollouts_on_failure(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, """
        [workflow]
        name = "p"
        [hosts.web1]
        [hosts.web2]
        [steps.deploy]
        on = ["web1", "web2"]
        run = "echo deploy"
        undo = "echo undo {{ host.name }}"
        [rollouts.web]
        steps = ["deploy"]
        on_failure = "rollback"
    """)
    result = baton("plan", path)
    assert result.returncode == 0, result.stderr
    assert "rollout web: deploy  (max_fail 0, on failure: rollback)" in result.stdout
    bad = write_workflow(tmp_path, path.read_text().replace('"rollback"', '"undo"'), "bad.toml")
    checked = baton("check", bad)
    assert checked.returncode == 1
    assert "bad.toml:11:1: rollouts.web.on_failure: must be one of stop, pause, rollback" \
        in checked.stdout + checked.stderr
