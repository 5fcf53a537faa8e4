"""End to end: the real `baton run FILE` console in a tmux pseudo-terminal, driven by keys,
read back from the screen."""

from __future__ import annotations

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
        assert "echo applied" in screen and "hosts: local" in screen
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
