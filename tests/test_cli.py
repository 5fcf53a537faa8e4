"""The `baton` command, end to end: real files, a real subprocess, real exit codes."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import REPO, baton, baton_env, write_workflow

GOOD = """
[workflow]
name = "Demo"

[params]
count = 2
who = "world"

[steps.build]
run = "echo building {{ params.who }}; echo line two"

[steps.test]
needs = ["build"]
run = "echo testing {{ params.count }}; echo oops >&2"
"""

BAD = """
[workflow]
name = "Broken"

[steps.build]
run = "true"
neds = ["x"]
"""

SPEC_KEYS = {
    "run": ["type", "run_id", "state", "time"],
    "task": ["type", "step", "host", "state", "attempt", "exit_code", "reason", "time"],
    "log": ["type", "step", "host", "stream", "line", "time"],
    "action": ["type", "action", "step", "host", "user", "reason", "time"],
}


def json_events(stdout: str) -> list[dict]:
    lines = stdout.splitlines()
    assert lines, "no JSON output"
    return [json.loads(line) for line in lines]


# --- check -----------------------------------------------------------------------------


def test_check_good_file_prints_no_problem_and_exits_0(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, GOOD)
    result = baton("check", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "1 file ok" in result.stderr


def test_check_reports_located_problems_and_exits_1(tmp_path: Path) -> None:
    good = write_workflow(tmp_path, GOOD, "good.toml")
    bad = write_workflow(tmp_path, BAD, "bad.toml")
    result = baton("check", good, bad)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    for line in lines:
        assert line.startswith(f"{bad}:"), line
    assert any(line.startswith(f"{bad}:6:") and "neds" in line for line in lines), lines
    assert "did you mean" in result.stdout
    assert "in 1 of 2 files" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_missing_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    result = baton("check", tmp_path / "nope.toml")
    assert result.returncode == 1
    assert "nope.toml" in result.stdout
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2_without_traceback() -> None:
    result = baton("check")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    result = baton("run", "x.toml", "--no-such-option")
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr


def test_console_on_a_missing_path_exits_2(tmp_path: Path) -> None:
    result = baton("nope", cwd=tmp_path)  # a path given that does not exist
    assert result.returncode == 2
    assert result.stderr == "baton: nope: no such file or folder\n"


def test_without_workflows_here_the_console_opens_the_bundled_examples(tmp_path: Path,
                                                                      monkeypatch) -> None:
    from console.commands.console_command import console_target
    from console.paths import bundled

    monkeypatch.chdir(tmp_path)
    path, note = console_target(None)
    assert Path(path) == bundled("workflows") and (Path(path) / "log-rotation.toml").is_file()
    assert note is not None and str(bundled("workflows")) in note
    assert "`baton new NAME` starts your own" in note
    (tmp_path / "workflows").mkdir()
    assert console_target(None) == ("workflows", None)
    assert console_target("other") == ("other", None)


def test_resume_in_the_console_of_an_unknown_run_is_one_line(baton_home: Path) -> None:
    result = baton("resume", "abc")  # the console resumes runs; this one does not exist
    assert result.returncode == 2
    assert result.stderr.startswith("baton: no run 'abc' in ")
    assert result.stderr.count("\n") == 1


# --- new -------------------------------------------------------------------------------


def test_new_writes_a_starter_that_passes_check_and_runs(tmp_path: Path) -> None:
    result = baton("new", "nightly-backup", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "nightly-backup.toml"
    text = path.read_text()
    assert text.startswith("#")
    assert text.count("\n#") > 10
    check = baton("check", path)
    assert check.returncode == 0, check.stdout + check.stderr
    run = baton("run", path, "--headless", "--yes", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^apply +\| applying to staging$", run.stdout, re.MULTILINE)


def test_new_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text("keep me")
    result = baton("new", "mine", cwd=tmp_path)
    assert result.returncode == 2
    assert "already exists" in result.stderr
    assert (tmp_path / "mine.toml").read_text() == "keep me"


def test_new_rejects_a_bad_name(tmp_path: Path) -> None:
    result = baton("new", "bad name!", cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid workflow name" in result.stderr
    assert list(tmp_path.iterdir()) == []


# --- run --headless --------------------------------------------------------------------


def test_headless_happy_path(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, GOOD)
    result = baton("run", path, "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout.splitlines()
    assert "build | building world" in out
    assert "build | line two" in out
    assert "test  | testing 2" in out
    assert "test  | oops" in out
    assert out.index("build | line two") < out.index("test  | testing 2")
    assert any(line.startswith("● build running (attempt 1)") for line in out)
    assert any(line.startswith("✓ test succeeded") for line in out)
    header = next(i for i, line in enumerate(out) if line.startswith("STEP"))
    assert out[header].split() == ["STEP", "HOST", "STATE", "ATTEMPTS", "DURATION", "RESULT"]
    assert out[header + 1].split()[:4] == ["build", "local", "succeeded", "1"]
    assert out[-1].startswith("total ") and out[-1].endswith("run succeeded")
    assert "\x1b[" not in result.stdout  # not a TTY: no colour


def test_failing_step_exits_1_and_blocks_dependents(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, """
        [workflow]
        name = "Fails"
        [steps.build]
        run = "echo half; exit 3"
        [steps.ship]
        needs = ["build"]
        run = "echo never"
    """)
    result = baton("run", path, "--headless")
    assert result.returncode == 1
    assert "✗ build failed" in result.stdout
    assert "exit 3" in result.stdout
    assert "never" not in result.stdout
    assert "⊘ ship blocked" in result.stdout
    assert result.stdout.rstrip().endswith("run failed")


def test_invalid_param_exits_2_naming_it(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, GOOD)
    result = baton("run", path, "--headless", "--param", "count=abc")
    assert result.returncode == 2
    assert "count" in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_invalid_workflow_on_run_exits_2_with_every_problem(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, BAD)
    result = baton("run", path, "--headless")
    assert result.returncode == 2
    assert f"{path}:6:" in result.stderr
    assert "invalid workflow" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_start_at_exits_2(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, GOOD)
    result = baton("run", path, "--headless", "--start-at", "tset")
    assert result.returncode == 2
    assert "unknown step 'tset'" in result.stderr
    assert "did you mean 'test'" in result.stderr


def test_start_at_skips_upstream(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, GOOD)
    result = baton("run", path, "--json", "--start-at", "test")
    assert result.returncode == 0, result.stderr
    events = json_events(result.stdout)
    build = [e for e in events if e["type"] == "task" and e["step"] == "build"]
    assert [e["state"] for e in build] == ["skipped"]
    assert not [e for e in events if e["type"] == "log" and e["step"] == "build"]


def test_unknown_limit_exits_2(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, GOOD)
    result = baton("run", path, "--headless", "--limit", "web9")
    assert result.returncode == 2
    assert "--limit 'web9' matches no host or group" in result.stderr


def test_dry_run_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "touched"
    path = write_workflow(tmp_path, f"""
        [workflow]
        name = "Dry"
        [steps.touch]
        run = "touch {marker}"
    """)
    result = baton("run", path, "--headless", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"would run: touch {marker}" in result.stdout
    assert not marker.exists()


# --- JSON ------------------------------------------------------------------------------


def test_json_stream_has_exactly_the_spec_keys(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, """
        [workflow]
        name = "Json"
        [steps.gate]
        confirm = "Go?"
        run = '''printf '%s\n' plain 'with "quotes" and \\back'; printf 'tab\tthere\n' '''
        [steps.after]
        needs = ["gate"]
        run = "echo done >&2; exit 4"
    """)
    result = baton("run", path, "--json", "--yes")
    assert result.returncode == 1
    events = json_events(result.stdout)
    for event in events:
        assert list(event) == SPEC_KEYS[event["type"]], event
    assert events[0]["type"] == "run" and events[0]["state"] == "running"
    assert events[-1] == {**events[-1], "type": "run", "state": "failed"}
    logs = [e["line"] for e in events if e["type"] == "log" and e["step"] == "gate"]
    assert logs == ["plain", 'with "quotes" and \\back', "tab\tthere"]
    stderr_logs = [e for e in events if e["type"] == "log" and e["stream"] == "stderr"]
    assert [e["line"] for e in stderr_logs] == ["done"]
    actions = [e for e in events if e["type"] == "action"]
    summary = [(a["action"], a["step"], a["reason"]) for a in actions]
    assert summary == [("approve", "gate", "--yes")]
    failed = [e for e in events if e["type"] == "task" and e["state"] == "failed"]
    assert failed and failed[0]["exit_code"] == 4 and failed[0]["step"] == "after"
    assert "STEP" in result.stderr  # the human summary goes to stderr


def test_json_masks_secrets_in_lines_and_reasons(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, """
        [workflow]
        name = "Secret"
        [secrets]
        token = { env = "BATON_TEST_TOKEN" }
        [steps.leak]
        run = 'echo "token is $T"; echo "$T" >&2; exit 1'
        env = { T = "{{ secrets.token }}" }
    """)
    value = "s3cr3t-value-42"
    result = baton("run", path, "--json", env={"BATON_TEST_TOKEN": value})
    assert result.returncode == 1
    assert value not in result.stdout
    assert value not in result.stderr
    events = json_events(result.stdout)
    lines = [e["line"] for e in events if e["type"] == "log"]
    assert "token is ***" in lines
    assert "***" in lines


def test_missing_secret_exits_2(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, """
        [workflow]
        name = "Secret"
        [secrets]
        token = { env = "BATON_TEST_UNSET_TOKEN" }
        [steps.a]
        run = "true"
    """)
    assert "BATON_TEST_UNSET_TOKEN" not in os.environ
    result = baton("run", path, "--json")
    assert result.returncode == 2
    assert "BATON_TEST_UNSET_TOKEN" in result.stderr
    assert result.stdout == ""


GATED = """
[workflow]
name = "Gated"
[steps.deploy]
confirm = "Deploy now?"
run = "echo deployed"
[steps.verify]
needs = ["deploy"]
description = "Look at the dashboard."
"""


def test_gate_without_yes_and_without_tty_fails(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, GATED)
    result = baton("run", path, "--json")
    assert result.returncode == 1
    events = json_events(result.stdout)
    deploy = [e for e in events if e["type"] == "task" and e["step"] == "deploy"]
    assert deploy[-1]["state"] == "failed"
    assert deploy[-1]["reason"] == "approval required (use --yes)"
    assert not [e for e in events if e["type"] == "log"]
    assert events[-1]["state"] == "failed"


def test_gate_and_manual_step_with_yes_succeed(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, GATED)
    result = baton("run", path, "--headless", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deploy | deployed" in result.stdout
    assert "✓ verify succeeded" in result.stdout
    assert result.stdout.rstrip().endswith("run succeeded")


# --- plan ------------------------------------------------------------------------------


def test_plan_shows_order_hosts_batches_and_masked_commands(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, """
        [workflow]
        name = "Rolling"
        [params]
        release = "1.2"
        [secrets]
        token = { env = "BATON_TEST_PLAN_TOKEN" }
        [hosts.web1]
        groups = ["web"]
        [hosts.web2]
        groups = ["web"]
        [hosts.web3]
        groups = ["web"]
        [steps.pre]
        run = "echo pre"
        [steps.deploy]
        on = "web"
        needs = ["pre"]
        confirm = true
        run = "deploy -r {{ params.release }} --token {{ secrets.token }} --on {{ host.name }}"
        [steps.report]
        needs = ["deploy"]
        run = "echo {{ steps.deploy.stdout }}"
        [rollouts.web]
        steps = ["deploy"]
        serial = [1, "100%"]
    """)
    result = baton("plan", path, "--param", "release=2.0",
                   env={"BATON_TEST_PLAN_TOKEN": "tok-value"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "tok-value" not in out
    assert "deploy -r 2.0 --token *** --on web1" in out
    assert "--on web3" in out
    assert "batch 1: web1" in out
    assert "batch 2: web2, web3" in out
    assert "rendered at run time" in out
    assert "echo {{ steps.deploy.stdout }}" in out
    order = [line.split() for line in out.splitlines() if line.startswith("  ") and
             line.split()[0].isdigit()]
    assert [row[:2] for row in order] == [["1", "pre"], ["2", "deploy"], ["3", "report"]]
    limited = baton("plan", path, "--limit", "web2")
    assert "--on web1" not in limited.stdout
    assert "batch 1: web2" in limited.stdout


# --- Ctrl-C ----------------------------------------------------------------------------


def _processes_with(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in proc.info["cmdline"] or ()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_ctrl_c_stops_everything_and_exits_130(tmp_path: Path) -> None:
    marker = f"{random.randint(100, 999)}.{random.randint(10**8, 10**9 - 1)}"
    path = write_workflow(tmp_path, f"""
        [workflow]
        name = "Slow"
        [steps.slow]
        run = "echo started; sleep {marker} & sleep {marker}; echo never"
    """)
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "run", str(path), "--headless"],
        cwd=REPO, env=baton_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while len(_processes_with(marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_processes_with(marker)) == 2, "the step's sleeps did not start"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "slow | started" in stdout
    assert "never" not in stdout
    assert "stopped by Ctrl-C" in stdout and "interrupted" in stdout
    assert "Traceback" not in stderr
    deadline = time.monotonic() + 5
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = _processes_with(marker)
    for survivor in survivors:
        survivor.kill()
    assert not survivors, f"processes survived Ctrl-C: {survivors}"


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_prompt_on_a_tty_approves_and_denies(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, """
        [workflow]
        name = "Prompted"
        [steps.first]
        confirm = "Really?"
        run = "echo first ran"
        [steps.second]
        needs = ["first"]
        confirm = true
        run = "echo second ran"
    """)
    primary, secondary = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "run", str(path), "--headless"],
        cwd=REPO, env=baton_env(), stdin=secondary,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    os.close(secondary)
    try:
        os.write(primary, b"y\n")
        time.sleep(0.5)
        os.write(primary, b"n\n")
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        os.close(primary)
        if proc.poll() is None:
            proc.kill()
    assert "Approve step 'first'? [y/N]" in stderr
    assert "Approve step 'second'? [y/N]" in stderr
    assert "first  | first ran" in stdout
    assert "second ran" not in stdout
    assert "denied" in stdout
    assert proc.returncode == 1


def test_plan_model_marks_manual_dangerous_and_limits_hosts(tmp_path: Path) -> None:
    from console.model.loader import load_workflow
    from console.plan import build_plan

    path = write_workflow(tmp_path, """
        [workflow]
        name = "Model"
        [hosts.db1]
        groups = ["db"]
        [hosts.db2]
        groups = ["db"]
        [steps.look]
        description = "Check the graphs."
        [steps.drop]
        needs = ["look"]
        on = "db"
        dangerous = true
        when = "host.name != 'db9'"
        run = "drop --host {{ host.address }}"
    """)
    plan = build_plan(load_workflow(path), {}, limit=["db2"])
    look, drop = plan.steps
    assert (look.layer, look.markers, look.commands, look.hosts) == (1, ("manual",), (), ("local",))
    assert drop.layer == 2
    assert drop.markers == ("gate", "dangerous", "conditional")
    assert drop.hosts == ("db2",)
    assert [(c.hosts, c.text, c.rendered) for c in drop.commands] == [
        (("db2",), "drop --host db2", True)
    ]


# --- issue 10, item 25: behaviour the docs describe ------------------------------------


def test_a_relative_cwd_resolves_against_the_workflow_folder(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    (flows / "work").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = write_workflow(flows, """
        [workflow]
        name = "Cwd"
        [steps.here]
        cwd = "work"
        run = "pwd"
        [steps.templated]
        cwd = "{{ params.sub }}"
        run = "pwd"
        [params]
        sub = "work"
    """)
    result = baton("run", path.relative_to(tmp_path), "--headless", "--no-history",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    lines = [line.split("| ", 1)[1] for line in result.stdout.splitlines() if "| " in line]
    assert lines == [str(flows / "work")] * 2
    moved = baton("run", path, "--headless", "--no-history", cwd=elsewhere)
    assert moved.returncode == 0, moved.stderr


def test_boolean_params_render_as_true_and_false_in_commands(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, """
        [workflow]
        name = "Bools"
        [params]
        force = false
        [steps.show]
        run = 'echo "force={{ params.force }}"; [ "{{ params.force }}" = true ] && echo forced'
        env = { FORCE = "{{ params.force }}" }
        [steps.env]
        run = 'echo "env=$FORCE"'
        env = { FORCE = "{{ params.force }}" }
    """)
    result = baton("run", path, "--headless", "--no-history", "--param", "force=true")
    assert result.returncode == 0, result.stderr
    assert "force=true" in result.stdout and "forced" in result.stdout
    assert "env=true" in result.stdout and "True" not in result.stdout
    plan = baton("plan", path)
    assert 'echo "force=false"' in plan.stdout and "False" not in plan.stdout


def test_headless_dry_run_evaluates_when(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, """
        [workflow]
        name = "Dry when"
        [params]
        target = "staging"
        [steps.prod_only]
        when = "params.target == 'prod'"
        run = "echo touching prod"
        [steps.always]
        run = "echo fine"
    """)
    result = baton("run", path, "--headless", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would run: echo fine" in result.stdout
    assert "touching prod" not in result.stdout
    prod = baton("run", path, "--headless", "--dry-run", "--param", "target=prod")
    assert "would run: echo touching prod" in prod.stdout


def test_console_refuses_no_history_before_the_screen_opens(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, """
        [workflow]
        name = "Console"
        [steps.a]
        run = "echo a"
    """)
    result = baton("run", path, "--no-history")
    assert result.returncode == 2
    assert result.stderr == "baton: --no-history only applies with --headless\n"


IMPORTED = ("import sys; from console.cli import main; code = main(sys.argv[1:]); "
            "print(*sorted(m for m in ('textual', 'asyncssh', 'asyncio') if m in sys.modules),"
            " sep=',', file=sys.stderr); sys.exit(code)")


def test_commands_import_only_what_they_need(tmp_path: Path, baton_home: Path) -> None:
    """Each `baton` a script or a test starts pays for what it imports: the headless
    commands never load Textual (nor asyncssh for a local run), nor does a console command
    refused for its flags, and the history commands (`runs`, `show`), which only read, not
    even asyncio."""
    path = write_workflow(tmp_path, """
        [workflow]
        name = "Light"
        [steps.a]
        run = "echo a"
    """)

    def loaded(*args: str, code: int = 0) -> str:
        result = subprocess.run([sys.executable, "-c", IMPORTED, *args], cwd=REPO,
                                env=baton_env(), stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == code, result.stderr
        return result.stderr.splitlines()[-1]

    assert loaded("check", str(path)) == ""
    # the console's flags are checked before Textual loads
    assert loaded("run", str(path), "--no-history", code=2) == ""
    assert loaded("run", str(path), "--param", "oops", code=2) == ""
    assert loaded("run", str(path), "--headless") == "asyncio"
    [run] = [json.loads(line)["id"] for line in baton("runs", "--json").stdout.splitlines()]
    for args in (["runs"], ["runs", "--json"], ["show", run], ["show", run, "--json"]):
        assert loaded(*args) == "", args
