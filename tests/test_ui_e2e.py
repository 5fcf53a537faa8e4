"""End to end: the real `baton run FILE` console in a tmux pseudo-terminal, driven by keys,
read back from the screen."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

@pytest.fixture(autouse=True)
def _tmux() -> None:
    assert shutil.which("tmux"), "tmux is needed for this test (.ci/run installs it)"

WORKFLOW = '''
[workflow]
name = "E2E gate"

[steps.hello]
name = "Say hello"
run = "echo hello-from-baton"

[steps.gate]
name = "Apply change"
needs = ["hello"]
confirm = "Apply the change now?"
run = "echo applied"

[steps.after]
name = "Report"
needs = ["gate"]
run = "echo reported"
'''


class Tmux:
    def __init__(self, name: str) -> None:
        self.name = name

    def start(self, command: str, env: dict[str, str]) -> None:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", "120", "-y", "36",
                        f"env {exports} {command}"], check=True)
        # a detached session keeps its size only when told so (window-size "latest" follows
        # whatever client attaches, and the default is 80x24)
        subprocess.run(["tmux", "set-option", "-t", self.name, "window-size", "manual"],
                       check=True)
        subprocess.run(["tmux", "resize-window", "-t", self.name, "-x", "120", "-y", "36"],
                       check=True)

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def screen(self) -> str:
        done = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name],
                              capture_output=True, text=True)
        return done.stdout

    def wait_for(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; screen:\n{screen}")

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def test_console_in_a_terminal_approves_a_gate_and_quits(tmp_path):
    flow = tmp_path / "flow.toml"
    flow.write_text(WORKFLOW, encoding="utf-8")
    exit_file = tmp_path / "exit-code"
    env = {
        "PYTHONPATH": str(REPO),
        "BATON_HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "TERM": "xterm-256color",
        "HOME": os.environ.get("HOME", str(tmp_path)),
    }
    command = (f"sh -c '{sys.executable} -m console run {flow}; "
               f"echo $? > {exit_file}; sleep 30'")
    tmux = Tmux(f"baton-e2e-{uuid.uuid4().hex[:8]}")
    tmux.start(command, env)
    try:
        screen = tmux.wait_for("awaiting approval")
        assert "E2E gate" in screen and "Say hello" in screen
        tmux.keys("Down")  # from "Say hello" to "Apply change"
        tmux.wait_for("Apply the change now?")
        tmux.keys("a")
        screen = tmux.wait_for("Approve (a)")
        assert "echo applied" in screen and "host: local" in screen
        tmux.keys("a")
        tmux.wait_for("3 succeeded")
        tmux.wait_for("SUCCEEDED")  # the run state follows the last task event
        tmux.keys("q")
        deadline = time.monotonic() + 20
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert exit_file.read_text().strip() == "0"
    finally:
        tmux.kill()


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "PYTHONPATH": str(REPO),
        "BATON_HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "TERM": "xterm-256color",
        "HOME": os.environ.get("HOME", str(tmp_path)),
    }


def test_rendered_gate_prompt_and_q_on_a_live_run_asks_and_is_recorded(tmp_path):
    """Issue 10 items 1 and 4 through the real `baton run`: the bundled log-rotation gate
    shows its prompt rendered (detail pane and dialog), and `q` while only the gate waits
    asks; both answers land in the stored run's actions with the user."""
    logs = f"/tmp/baton-e2e-{uuid.uuid4().hex[:6]}"
    exit_file = tmp_path / "exit-code"
    env = _env(tmp_path)
    flow = REPO / "workflows" / "log-rotation.toml"
    command = (f"sh -c '{sys.executable} -m console run {flow} --param dir={logs} "
               f"--param keep_days=3; echo $? > {exit_file}; sleep 30'")
    tmux = Tmux(f"baton-e2e-{uuid.uuid4().hex[:8]}")
    tmux.start(command, env)
    rendered = f"Delete rotated logs older than 3 days in {logs}?"
    try:
        tmux.wait_for("awaiting approval")
        tmux.keys("Down", "Down", "Down", "Down")  # seed, count, rotate, compress -> prune
        screen = tmux.wait_for(f"{logs}?")  # the detail pane's reason (wrapped)
        assert "than 3 days in" in screen and "{{" not in screen
        tmux.keys("a")
        screen = tmux.wait_for("Approve (a)")
        assert f"{logs}?" in screen and "3 days" in screen and "{{" not in screen
        tmux.keys("Escape")
        deadline = time.monotonic() + 10
        while "Approve (a)" in tmux.screen() and time.monotonic() < deadline:
            time.sleep(0.1)
        tmux.keys("q")  # nothing runs, the gate waits: the run is live, so it asks
        screen = tmux.wait_for("quit anyway?")
        assert "1 waiting for an operator: prune" in screen
        tmux.keys("n")
        time.sleep(0.5)
        tmux.keys("q")
        tmux.wait_for("quit anyway?")
        tmux.keys("y")
        deadline = time.monotonic() + 20
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert exit_file.read_text().strip() == "1"
    finally:
        tmux.kill()
        shutil.rmtree(logs, ignore_errors=True)
    runs = subprocess.run([sys.executable, "-m", "console", "runs", "--json"], cwd=REPO,
                          env={**os.environ, **env}, capture_output=True, text=True)
    run_id = json.loads(runs.stdout.splitlines()[0])["id"]  # one JSON object per line
    shown = subprocess.run([sys.executable, "-m", "console", "show", run_id, "--json"],
                           cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True)
    data = json.loads(shown.stdout)
    user = data["run"]["user"]
    assert [(a["action"], a["reason"], a["user"]) for a in data["actions"]] == [
        ("quit", "stay", user), ("quit", "cancel the run", user)]
    waiting = [str(e) for e in data["events"] if "awaiting_approval" in str(e)]
    assert waiting and all(rendered in e for e in waiting)
