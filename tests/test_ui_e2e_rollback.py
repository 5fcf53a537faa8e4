"""End to end (issue 13): the real `baton run FILE` console in tmux on a rollout over two
real sshd hosts; the second batch fails; `u` on the failed step shows the plan, `y`
approves it, the undos run (the hosts' journal proves the order) and the run ends
rolled_back, recorded in the history."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

from tests.sshd import Fleet
from tests.test_ssh_recovery import host_table
from tests.test_ui_e2e import Tmux, _baton, _env, _tmux, _wait_file  # noqa: F401 (fixture)


def test_u_on_a_failed_rollout_rolls_it_back(sshd_fleet: Fleet, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    hosts = "".join(host_table(sshd_fleet, f"web{i + 1}", s, '"web"')
                    for i, s in enumerate(sshd_fleet.servers[:2]))
    fail = "{% if host.name == 'web2' %}exit 1{% endif %}"
    flow = tmp_path / "flow.toml"
    flow.write_text(f'''
[workflow]
name = "E2E rollback"

{hosts}
[steps.drain]
on = "web"
run = 'echo drain {{{{ host.name }}}} >> {journal}'
undo = 'echo undo-drain {{{{ host.name }}}} >> {journal}'

[steps.deploy]
name = "Deploy release"
on = "web"
needs = ["drain"]
run = """echo deploy {{{{ host.name }}}} >> {journal}
{fail}"""
undo = 'echo undo-deploy {{{{ host.name }}}} >> {journal}'

[rollouts.web]
steps = ["drain", "deploy"]
serial = 1
''', encoding="utf-8")
    exit_file = tmp_path / "exit-code"
    command = (f"sh -c '{sys.executable} -m console run {flow}; "
               f"echo $? > {exit_file}; sleep 30'")
    tmux = Tmux(f"baton-e2e-{uuid.uuid4().hex[:8]}")
    tmux.start(command, _env(tmp_path))
    try:
        tmux.wait_for("FAILED", timeout=40)
        tmux.keys("Down", "Down", "Down")  # drain, web1, web2 -> Deploy release
        tmux.wait_for("Deploy release  (deploy)")
        tmux.keys("u")
        screen = tmux.wait_for("Rollback plan (step deploy)")
        assert "deploy@web1 [batch 1] (succeeded): echo undo-deploy web1" in screen
        assert "Roll back (y)" in screen
        tmux.keys("y")
        tmux.wait_for("ROLLED_BACK", timeout=30)
        tmux.keys("C-u")  # then the rest: drain on both hosts, newest batch first
        tmux.wait_for("Rollback plan (whole run): 2 undos")
        tmux.keys("y")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and journal.read_text().count("undo-drain") < 2:
            time.sleep(0.1)
        tmux.wait_for("ROLLED_BACK", timeout=30)
        tmux.keys("q")
        _wait_file(exit_file)
    finally:
        tmux.kill()
    lines = journal.read_text().split("\n")
    undos = [line for line in lines if line.startswith("undo")]
    assert undos == ["undo-deploy web1", "undo-drain web2", "undo-drain web1"]
    [run] = [json.loads(line) for line in _baton(tmp_path, "runs", "--json").stdout.splitlines()]
    shown = json.loads(_baton(tmp_path, "show", run["id"], "--json").stdout)
    assert shown["run"]["state"] == "rolled_back"
    assert [a["action"] for a in shown["actions"] if a["action"] == "rollback"] == \
        ["rollback", "rollback"]
