"""Issue 10 item 1: gate prompts, manual-step descriptions and step names are templates,
rendered with the task's context (params, host, steps outputs; secrets masked) in every
place that shows them: the engine's reason (events, JSON, history, ``show``), the headless
prompt and the console. A template that cannot be rendered says why, never raises."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, baton, baton_env, write_workflow

from console.engine.events import TaskEvent, TaskState
from console.engine.run import Run, RunOptions
from console.model.workflow import Host, Step, Workflow
from tests.fakes import ScriptedWorld

S = TaskState


def _workflow() -> Workflow:
    hosts = {h: Host(name=h, address=f"10.0.0.{i}", groups=("web",), vars={"weight": i})
             for i, h in enumerate(("web1", "web2"), start=1)}
    steps = {
        "probe": Step(id="probe", name="Probe", run="echo 42"),
        "drain": Step(id="drain", name="Drain {{ host.name }} for {{ params.release }}",
                      on=("web",), needs=("probe",),
                      confirm="Drain {{ host.name }} (weight {{ host.vars.weight }}) for "
                              "{{ params.release }} with {{ secrets.token }}, probe said "
                              "{{ steps.probe.stdout | trim }}?",
                      run="echo draining"),
        "check": Step(id="check", name="Check {{ params.nope }}", needs=("drain",),
                      description="Look at **{{ params.release }}** on {{ host.name }}",
                      confirm="Go {{ params.nope }}?", run="echo ok"),
    }
    return Workflow(name="w", steps=steps, hosts=hosts, digest="d1")


async def test_the_engine_renders_prompts_names_and_descriptions_masked() -> None:
    world = ScriptedWorld()
    run = Run(_workflow(), RunOptions(params={"release": "1.2"}, secrets={"token": "hunter2"}),
              executor_for=world.factory())
    events: list = []
    run.subscribe(events.append)
    import asyncio

    task = asyncio.get_running_loop().create_task(run.execute())
    for _ in range(500):
        if run.tasks[("drain", "web2")].state is S.AWAITING_APPROVAL:
            break
        await asyncio.sleep(0.005)
    reason = run.tasks[("drain", "web2")].reason
    assert reason == "Drain web2 (weight 2) for 1.2 with ***, probe said 42?"
    waiting = [e for e in events if isinstance(e, TaskEvent) and e.state is S.AWAITING_APPROVAL]
    assert {e.reason for e in waiting} == {
        "Drain web1 (weight 1) for 1.2 with ***, probe said 42?",
        "Drain web2 (weight 2) for 1.2 with ***, probe said 42?"}
    assert run.step_name("drain", "web1") == "Drain web1 for 1.2"
    # the step's own line speaks for both hosts: the host's part stays as written
    assert run.step_name("drain") == "Drain {{ host.name }} for 1.2"
    assert run.step_name("probe") == "Probe"
    assert run.step_description("check") == "Look at **1.2** on local"
    # an undefined name: the source and why, never an exception
    assert run.step_name("check") == ("Check {{ params.nope }} [not rendered: "
                                      "'dict object' has no attribute 'nope']")
    run.approve("drain")
    for _ in range(500):
        if run.tasks[("check", "local")].state is S.AWAITING_APPROVAL:
            break
        await asyncio.sleep(0.005)
    assert run.tasks[("check", "local")].reason.startswith("Go {{ params.nope }}? [not rendered")
    run.close()
    await task
    assert "hunter2" not in repr(events)


LOG_ROTATION = REPO / "workflows" / "log-rotation.toml"


def _pty_run(path: Path, *args: str, answer: str = "y\n") -> tuple[str, str]:
    """``baton run PATH --headless ARGS`` with a terminal on stdin (the prompt asks)."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "console.cli", "run", str(path),
                                 "--headless", *args],
                                cwd=REPO, env=baton_env(), stdin=slave,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.close(slave)
        slave = -1
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            os.write(master, answer.encode())
            time.sleep(0.3)
        out, err = proc.communicate(timeout=30)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    return out, err


def test_headless_prompt_json_reason_and_show_carry_the_rendered_prompt(
        tmp_path: Path, baton_home: Path) -> None:
    logs = tmp_path / "logs"
    args = ("--param", f"dir={logs}", "--param", "keep_days=3")
    out, err = _pty_run(LOG_ROTATION, *args)
    rendered = f"Delete rotated logs older than 3 days in {logs}?"
    assert f"prune awaiting_approval ({rendered})" in out, out
    assert "{{" not in out + err

    out, err = _pty_run(LOG_ROTATION, "--json", *args)
    events = [json.loads(line) for line in out.splitlines()]
    waiting = [e for e in events if e["type"] == "task" and e["state"] == "awaiting_approval"]
    assert [e["reason"] for e in waiting] == [rendered]
    assert rendered in err  # the prompt on the terminal says what it approves
    run_id = events[0]["run_id"]
    data = json.loads(baton("show", run_id, "--json").stdout)
    reasons = [str(e) for e in data["events"] if "awaiting_approval" in str(e)]
    assert reasons and all(rendered in r and "{{" not in r for r in reasons), reasons
    markdown = baton("show", run_id, "--markdown").stdout
    assert rendered in markdown and "older than {{" not in markdown


def test_a_broken_prompt_template_is_one_clear_line(tmp_path: Path, baton_home: Path) -> None:
    path = write_workflow(tmp_path, """
        [workflow]
        name = "Broken prompt"
        [steps.probe]
        run = "echo not-json"
        [steps.go]
        needs = ["probe"]
        confirm = "Deploy {{ steps.probe.json.version }}?"
        run = "true"
    """)
    out, err = _pty_run(path, "--json")
    assert "Traceback" not in out + err
    waiting = [json.loads(line) for line in out.splitlines() if "awaiting_approval" in line]
    reason = waiting[0]["reason"]
    assert reason.startswith("Deploy {{ steps.probe.json.version }}? [not rendered: ")
    assert "\n" not in reason


def test_headless_manual_step_shows_its_rendered_description(tmp_path: Path,
                                                            baton_home: Path) -> None:
    path = write_workflow(tmp_path, """
        [workflow]
        name = "Manual"
        [params]
        release = "4.2"
        [steps.verify]
        description = "Open the dashboard of release {{ params.release }} and check errors."
    """)
    _out, err = _pty_run(path)
    assert "verify: Open the dashboard of release 4.2 and check errors." in err
    assert "{{" not in err


def test_command_groups_name_exactly_the_hosts_of_each_command_and_follow_changes() -> None:
    """Item 2: a gate over several hosts shows each host's command (grouped when equal);
    the cached renderings follow params and the outputs of the steps a command reads."""
    from console.engine.outputs import Outputs

    hosts = {h: Host(name=h, address=h, groups=("web",)) for h in ("web1", "web2", "web3")}
    steps = {
        "probe": Step(id="probe", name="probe", run="echo v"),
        "drain": Step(id="drain", name="drain", on=("web",), needs=("probe",),
                      run="{% if host.name == 'web2' %}echo special{% else %}"
                          "echo {{ params.mode }} {{ steps.probe.stdout | trim }}{% endif %}"),
    }
    run = Run(Workflow(name="w", steps=steps, hosts=hosts, digest="d"),
              RunOptions(params={"mode": "slow"}))
    [waiting] = run.command_groups("drain", ["web1", "web2", "web3"])  # probe not run yet
    assert waiting.hosts == ("web1", "web2", "web3")
    assert waiting.command.endswith("# rendered once probe ran")
    run.tasks[("probe", "local")].outputs = Outputs("succeeded", 0, "v1\n")
    groups = run.command_groups("drain", ["web1", "web2", "web3"])
    assert [(g.hosts, g.command) for g in groups] == [(("web1", "web3"), "echo slow v1"),
                                                      (("web2",), "echo special")]
    run.set_params({"mode": "fast"})
    run.tasks[("probe", "local")].outputs = Outputs("succeeded", 0, "v2\n")
    groups = run.command_groups("drain", ["web1", "web2", "web3"])
    assert [(g.hosts, g.command) for g in groups] == [(("web1", "web3"), "echo fast v2"),
                                                      (("web2",), "echo special")]
