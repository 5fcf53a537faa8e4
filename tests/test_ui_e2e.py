"""End to end: the real `baton run FILE` console in a tmux pseudo-terminal, driven by keys,
read back from the screen."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
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


POLL = 0.1
"""How often a wait looks at the terminal or a file (some tests sleep a fixed time after a
wait: polling faster made their races with the console more likely)."""


class Tmux:
    def __init__(self, name: str, server: str | None = None) -> None:
        self.name = name
        self.tmux = ["tmux"] if server is None else ["tmux", "-L", server]
        """A server of its own (-L): killing it is closing the terminal."""

    def start(self, command: str, env: dict[str, str]) -> None:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        tmux = self.tmux
        # The command starts only once its terminal has the final size (tmux applies a
        # resize to the pane a moment after resize-window returns): a console that starts
        # before that reads 80x24, and a SIGWINCH during its start-up is lost.
        wait = 'while [ "$(stty size 2>/dev/null)" != "36 120" ]; do sleep 0.02; done'
        subprocess.run([*tmux, "new-session", "-d", "-s", self.name, "-x", "120", "-y", "36",
                        f"sh -c {shlex.quote(f'{wait}; exec env {exports} {command}')}"],
                       check=True)
        # a detached session keeps its size only when told so (window-size "latest" follows
        # whatever client attaches, and the default is 80x24)
        subprocess.run([*tmux, "set-option", "-t", self.name, "window-size", "manual"],
                       check=True)
        subprocess.run([*tmux, "resize-window", "-t", self.name, "-x", "120", "-y", "36"],
                       check=True)

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def screen(self) -> str:
        done = subprocess.run([*self.tmux, "capture-pane", "-p", "-t", self.name],
                              capture_output=True, text=True)
        return done.stdout

    def wait_for(self, text: str, *more: str, timeout: float = 20) -> str:
        """The first whole screen showing ``text`` (and every one of ``more``): a capture
        that shows them is taken again, as tmux can capture a frame the console is still
        writing (the header and a few lines, then blank: a test once failed on one)."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(t in screen for t in (text, *more)):
                time.sleep(0.05)
                if self.screen() == screen:
                    return screen
                continue
            time.sleep(POLL)
        raise AssertionError(f"{[text, *more]!r} never appeared together; screen:\n{screen}")

    def pane_pid(self) -> int:
        done = subprocess.run([*self.tmux, "display-message", "-p", "-t", self.name,
                               "#{pane_pid}"], capture_output=True, text=True, check=True)
        return int(done.stdout)

    def kill(self) -> None:
        subprocess.run([*self.tmux, "kill-session", "-t", self.name], capture_output=True)

    def kill_server(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


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
        _wait_file(exit_file)
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


def _baton(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console", *args], cwd=REPO,
                          env={**os.environ, **_env(tmp_path)}, capture_output=True,
                          text=True, timeout=60)


def _wait_file(path: Path, timeout: float = 20) -> None:
    """Until ``path`` holds a whole line (the shell makes the file before it writes it)."""
    deadline = time.monotonic() + timeout
    while not _written(path) and time.monotonic() < deadline:
        time.sleep(POLL)
    assert _written(path), f"{path} never got its line"


def _written(path: Path) -> bool:
    return path.exists() and path.read_text().endswith("\n")


STEPPED = '''
[workflow]
name = "E2E step mode"

[steps.one]
name = "First thing"
run = "echo one-ran"

[steps.two]
name = "Second thing"
run = "echo two-ran"
'''


def test_step_mode_off_and_breakpoint_removal_release_held_tasks(tmp_path):
    """Item 9 through the real command: `--step` holds both tasks; a breakpoint on the
    first, then `t` (step mode off) releases only the second; `b` releases the first."""
    flow = tmp_path / "flow.toml"
    flow.write_text(STEPPED, encoding="utf-8")
    exit_file = tmp_path / "exit-code"
    command = (f"sh -c '{sys.executable} -m console run {flow} --step; "
               f"echo $? > {exit_file}; sleep 30'")
    tmux = Tmux(f"baton-e2e-{uuid.uuid4().hex[:8]}")
    tmux.start(command, _env(tmp_path))
    try:
        tmux.wait_for("awaiting approval")
        tmux.wait_for("First thing")
        tmux.keys("b")  # breakpoint on the selected step (the first)
        time.sleep(0.3)
        tmux.keys("t")  # step mode off: the second goes on, the first stays held
        tmux.wait_for("1 succeeded")
        assert "awaiting approval" in tmux.screen()
        tmux.keys("b")  # breakpoint removed: the first goes on without an approval
        tmux.wait_for("2 succeeded")
        tmux.wait_for("SUCCEEDED")
        tmux.keys("q")
        _wait_file(exit_file)
        assert exit_file.read_text().strip() == "0"
    finally:
        tmux.kill()
    [run] = [json.loads(line) for line in _baton(tmp_path, "runs", "--json").stdout.splitlines()]
    actions = json.loads(_baton(tmp_path, "show", run["id"], "--json").stdout)["actions"]
    assert [a["action"] for a in actions] == ["breakpoint", "step_mode", "breakpoint"]


LIVE = '''
[workflow]
name = "E2E killed"

[steps.wait]
name = "Wait for the stop file"
run = "while [ ! -e STOP ]; do sleep 0.1; done"
'''


def test_a_run_outlives_its_terminal_and_a_killed_runner_is_interrupted(tmp_path):
    """Issue 15 through the real command: the terminal of `baton run` goes away (its tmux
    server is killed); the runner goes on, `baton runs` marks it live and `baton attach`
    from another tmux server shows it. Then the runner is killed (-9): `baton runs` and
    `baton show` say interrupted (issue 5 item 11), and resume re-runs the task."""
    stop = tmp_path / "stop"
    flow = tmp_path / "flow.toml"
    flow.write_text(LIVE.replace("STOP", str(stop)), encoding="utf-8")
    first = Tmux(f"baton-e2e-{uuid.uuid4().hex[:8]}", server=f"baton-a-{uuid.uuid4().hex[:6]}")
    first.start(f"{sys.executable} -m console run {flow}", _env(tmp_path))
    second = Tmux(f"baton-e2e-{uuid.uuid4().hex[:8]}", server=f"baton-b-{uuid.uuid4().hex[:6]}")
    try:
        first.wait_for("running")
        console = psutil.Process(first.pane_pid())
        first.kill_server()  # the terminal goes away (SIGHUP to the console)
        console.wait(timeout=5)  # the console detaches and ends (it once hung on the dead tty)
        listing = _baton(tmp_path, "runs")
        assert "running (live)" in listing.stdout, listing.stdout
        [run] = [json.loads(line) for line in
                 _baton(tmp_path, "runs", "--json").stdout.splitlines()]
        second.start(f"{sys.executable} -m console attach", _env(tmp_path))
        screen = second.wait_for("Wait for the stop file")
        assert run["id"] in screen and "RUNNING" in screen
        runner = json.loads(_baton(tmp_path, "show", run["id"], "--json").stdout)["run"]["pid"]
        os.kill(runner, signal.SIGKILL)
        second.wait_for("interrupted")  # the console: the run's process is gone
        listing = _baton(tmp_path, "runs")
        assert "interrupted" in listing.stdout and "running" not in listing.stdout
        shown = _baton(tmp_path, "show", run["id"])
        assert "interrupted" in shown.stdout and "running" not in shown.stdout
        data = json.loads(_baton(tmp_path, "show", run["id"], "--json").stdout)
        assert data["run"]["state"] == "interrupted"
        assert "interrupted" in _baton(tmp_path, "show", run["id"], "--markdown").stdout
        stop.touch()
        resumed = _baton(tmp_path, "resume", run["id"], "--headless", "--yes")
        assert resumed.returncode == 0, resumed.stderr
    finally:
        stop.touch()  # the orphaned step ends itself
        first.kill_server()
        second.kill_server()


DRY = '''
[workflow]
name = "E2E dry"

[steps.touch]
name = "Touch the marker"
run = "touch MARKER"
'''


def test_console_dry_run_executes_nothing(tmp_path):
    """Item 22 through the real command: `baton run FILE --dry-run` opens the console,
    shows what would run, creates nothing, records nothing."""
    marker = tmp_path / "touched"
    flow = tmp_path / "flow.toml"
    flow.write_text(DRY.replace("MARKER", str(marker)), encoding="utf-8")
    command = f"sh -c '{sys.executable} -m console run {flow} --dry-run; sleep 30'"
    tmux = Tmux(f"baton-e2e-{uuid.uuid4().hex[:8]}")
    tmux.start(command, _env(tmp_path))
    try:
        tmux.wait_for("Touch the marker")
        tmux.wait_for("would run")
        time.sleep(0.5)
        assert not marker.exists()
    finally:
        tmux.kill()
    assert not marker.exists()
    assert _baton(tmp_path, "runs", "--json").stdout == ""


def test_outside_the_repository_baton_opens_the_bundled_examples(tmp_path):
    """Item 23: with no ./workflows, `baton` opens the bundled examples and says where
    they live and how to start your own."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = f"sh -c 'cd {elsewhere} && {sys.executable} -m console; sleep 30'"
    tmux = Tmux(f"baton-e2e-{uuid.uuid4().hex[:8]}")
    tmux.start(command, _env(tmp_path))
    try:
        tmux.wait_for("bundled examples")
        screen = tmux.wait_for("log-rotation.toml")
        assert "service-rollout.toml" in screen
        flat = "".join(line.strip() for line in screen.splitlines())  # the note may wrap
        assert "no such file or folder" not in flat
        assert "`baton new NAME` starts your own" in flat
        assert f"{REPO}/workflows" in flat  # where they live (the source tree here)
    finally:
        tmux.kill()


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
        screen = tmux.wait_for("detach, cancel it, or stay?")
        assert "1 waiting for an operator: prune" in screen
        tmux.keys("n")
        time.sleep(0.5)
        tmux.keys("q")
        tmux.wait_for("detach, cancel it, or stay?")
        tmux.keys("y")
        _wait_file(exit_file)
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


def test_sigterm_stops_a_runner_resumably(tmp_path):
    """Item 24 with a runner (issue 15): SIGTERM to the process that owns the run stops the
    running task's process tree and stores the run interrupted; the attached console shows
    it; `baton resume RUN --headless --yes` re-runs the task."""
    stop = tmp_path / "stop"
    starts = tmp_path / "starts"
    flow = tmp_path / "flow.toml"
    step_pid = tmp_path / "step-pid"
    flow.write_text(LIVE.replace("while", f"echo $$ > {step_pid}; echo start >> {starts}; "
                                          f"while").replace("STOP", str(stop)),
                    encoding="utf-8")
    exit_file = tmp_path / "exit-code"
    command = (f"sh -c '{sys.executable} -m console run {flow}; echo $? > {exit_file}; "
               f"sleep 30'")
    tmux = Tmux(f"baton-e2e-{uuid.uuid4().hex[:8]}")
    tmux.start(command, _env(tmp_path))
    try:
        tmux.wait_for("running")
        _wait_file(starts)
        [run] = [json.loads(line) for line in
                 _baton(tmp_path, "runs", "--json").stdout.splitlines()]
        runner = json.loads(_baton(tmp_path, "show", run["id"], "--json").stdout)["run"]["pid"]
        os.kill(runner, signal.SIGTERM)
        tmux.wait_for("INTERRUPTED")
        deadline = time.monotonic() + 5
        while _alive(int(step_pid.read_text())) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(int(step_pid.read_text())), "the step outlived the runner"
        tmux.keys("q")
        _wait_file(exit_file)
        assert exit_file.read_text().strip() == "1"
        assert starts.read_text().split() == ["start"]
        [run] = [json.loads(line) for line in
                 _baton(tmp_path, "runs", "--json").stdout.splitlines()]
        assert run["state"] == "interrupted"
        task = json.loads(_baton(tmp_path, "show", run["id"], "--json").stdout)["tasks"][0]
        assert (task["state"], task["reason"]) == ("interrupted", "stopped by SIGTERM")
        stop.touch()
        resumed = _baton(tmp_path, "resume", run["id"], "--headless", "--yes")
        assert resumed.returncode == 0, resumed.stderr
        assert starts.read_text().split() == ["start", "start"]
    finally:
        stop.touch()
        tmux.kill()
