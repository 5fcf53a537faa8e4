"""Issue 13 rollback on the real sshd farm (tests/sshd.py): a rollout's automatic rollback
and `baton rollback` from history. The journal lines carry the hosts' own timestamps."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from conftest import baton

from console.engine.events import RunState, TaskState
from console.engine.run import Run, RunOptions
from console.executors.ssh import ssh_executor_factory
from console.model.loader import load_text
from tests.sshd import Fleet
from tests.test_ssh_recovery import TEST_OPTIONS, host_table

pytestmark = pytest.mark.timeout(120)


def rollout_text(fleet: Fleet, journal: Path, *, fail_on: str, on_failure: str) -> str:
    hosts = "".join(host_table(fleet, f"web{i + 1}", s, '"web"')
                    for i, s in enumerate(fleet.servers[:6]))
    line = '"{verb} {{{{ host.name }}}} $(date +%s.%N)"'
    fail = f"{{% if host.name == '{fail_on}' %}}exit 1{{% endif %}}" if fail_on else ""
    return f'''
[workflow]
name = "rollout with rollback"

{hosts}
[steps.drain]
on = "web"
run = 'echo {line.format(verb="drain")} >> {journal}'
undo = 'echo {line.format(verb="undo-drain")} >> {journal}; sleep 0.05'

[steps.deploy]
on = "web"
needs = ["drain"]
run = """echo {line.format(verb="deploy")} >> {journal}
{fail}"""
undo = 'echo {line.format(verb="undo-deploy")} >> {journal}; sleep 0.05'

[rollouts.web]
steps = ["drain", "deploy"]
serial = 2
on_failure = "{on_failure}"
'''


def journal_lines(path: Path) -> list[tuple[str, str, float]]:
    out = []
    for line in path.read_text().splitlines():
        verb, host, stamp = line.split()
        out.append((verb, host, float(stamp)))
    return out


async def test_rollout_on_failure_rollback_undoes_touched_hosts_newest_batch_first(
        sshd_fleet: Fleet, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    text = rollout_text(sshd_fleet, journal, fail_on="web3", on_failure="rollback")
    wf = load_text(text, tmp_path / "wf.toml")
    run = Run(wf, RunOptions(approval="auto"),
              executor_for=ssh_executor_factory(wf, **TEST_OPTIONS))
    assert await asyncio.wait_for(run.execute(), 100) is RunState.ROLLED_BACK
    undos = [(v, h, t) for v, h, t in journal_lines(journal) if v.startswith("undo")]
    touched = {("undo-drain", h) for h in ("web1", "web2", "web3", "web4")} | {
        ("undo-deploy", h) for h in ("web1", "web2", "web4")}  # deploy@web3 failed
    assert {(v, h) for v, h, _ in undos} == touched
    when = {(v, h): t for v, h, t in undos}
    assert min(t for (v, h), t in when.items() if h in ("web1", "web2")) > \
        max(t for (v, h), t in when.items() if h in ("web3", "web4"))  # newest batch first
    for host in ("web1", "web2", "web4"):
        assert when[("undo-deploy", host)] < when[("undo-drain", host)]
    assert not any(h in ("web5", "web6") for _, h, _ in journal_lines(journal))
    assert run.tasks[("deploy", "web3")].state is TaskState.FAILED
    assert run.tasks[("drain", "web5")].state is TaskState.BLOCKED


def test_baton_rollback_step_from_history_undoes_every_host(sshd_fleet: Fleet,
                                                            tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    path = tmp_path / "wf.toml"
    path.write_text(rollout_text(sshd_fleet, journal, fail_on="", on_failure="stop"))
    first = baton("run", path, "--headless", "--json", timeout=100)
    assert first.returncode == 0, first.stderr
    run_id = json.loads(first.stdout.splitlines()[0])["run_id"]
    journal.write_text("")
    result = baton("rollback", run_id, "--step", "deploy", "--yes", "--headless", timeout=100)
    assert result.returncode == 1, result.stderr
    undone = journal_lines(journal)
    assert sorted(h for _, h, _ in undone) == [f"web{i}" for i in range(1, 7)]
    assert {v for v, _, _ in undone} == {"undo-deploy"}
    stamps = {h: t for _, h, t in undone}
    # newest batch first: web5/web6 before web3/web4 before web1/web2
    assert max(stamps["web5"], stamps["web6"]) < min(stamps["web3"], stamps["web4"])
    assert max(stamps["web3"], stamps["web4"]) < min(stamps["web1"], stamps["web2"])
    shown = json.loads(baton("show", run_id, "--json").stdout)
    assert shown["run"]["state"] == "rolled_back"
    states = {(t["step"], t["host"]): t["state"] for t in shown["tasks"]}
    assert all(states[("deploy", f"web{i}")] == "undone" for i in range(1, 7))
    assert all(states[("drain", f"web{i}")] == "succeeded" for i in range(1, 7))
