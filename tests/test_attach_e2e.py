"""Issue 15 with the real `baton` in tmux: two consoles on one run, an approval in one
seen at once in the other (and in its timeline with the user), `q` -> detach leaves the
run going, `q` -> cancel ends it."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path

from console.runner.protocol import user_name
from tests.test_ui_e2e import WORKFLOW, Tmux, _baton, _env, _wait_file


def test_two_consoles_share_a_run_detach_and_cancel(tmp_path: Path) -> None:
    flow = tmp_path / "flow.toml"
    flow.write_text(WORKFLOW.replace('run = "echo reported"', 'run = "sleep 60"'),
                    encoding="utf-8")
    exit_a, exit_b = tmp_path / "exit-a", tmp_path / "exit-b"
    env = _env(tmp_path)
    one = Tmux(f"baton-a-{uuid.uuid4().hex[:8]}")
    two = Tmux(f"baton-b-{uuid.uuid4().hex[:8]}")
    one.start(f"sh -c '{sys.executable} -m console run {flow}; echo $? > {exit_a}; "
              f"sleep 30'", env)
    try:
        one.wait_for("awaiting approval")
        two.start(f"sh -c '{sys.executable} -m console attach; echo $? > {exit_b}; "
                  f"sleep 30'", env)
        two.wait_for("awaiting approval")
        one.keys("Down")  # "Say hello" -> "Apply change"
        one.wait_for("Apply the change now?")
        one.keys("a")
        one.wait_for("Approve (a)")
        one.keys("a")
        sent = time.monotonic()
        deadline = sent + 10
        while "▶ 1 running" not in two.screen():  # the next step runs: seen in console two
            assert time.monotonic() < deadline, two.screen()
            time.sleep(0.02)
        seen = time.monotonic() - sent
        assert seen < 1.0, f"console two saw the approval after {seen:.2f} s"
        two.keys("l")  # the timeline: the approval, with its user
        screen = two.wait_for("approve")
        assert user_name(os.getuid()) in screen
        two.keys("Escape")

        one.keys("q")  # detach (the default): console one leaves, the run goes on
        one.wait_for("detach, cancel it, or stay?")
        one.keys("Enter")
        _wait_file(exit_a)
        assert exit_a.read_text().strip() == "0"
        time.sleep(0.3)
        assert "RUNNING" in two.screen()
        assert "running (live)" in _baton(tmp_path, "runs").stdout

        two.keys("q")  # cancel: the run ends
        two.wait_for("detach, cancel it, or stay?")
        two.keys("y")
        _wait_file(exit_b)
        assert exit_b.read_text().strip() == "1"
        [run] = [json.loads(line) for line in
                 _baton(tmp_path, "runs", "--json").stdout.splitlines()]
        assert run["state"] == "cancelled"
    finally:
        one.kill()
        two.kill()


PICKED = '''
[workflow]
name = "NAME"

[steps.gate]
name = "Held NAME"
run = "echo approved"
confirm = true
'''


def test_attach_with_several_live_runs_asks_which_on_a_terminal(tmp_path: Path) -> None:
    """`baton attach` with two live runs: a numbered picker, newest first, each with its
    workflow; the number typed picks the run the console opens; a wrong number is one
    line and exit 2."""
    from console.runner.daemon import spawn

    home = Path(_env(tmp_path)["BATON_HOME"])
    started = []
    for name in ("Older flow", "Newer flow"):
        flow = tmp_path / f"{name.split()[0]}.toml"
        flow.write_text(PICKED.replace("NAME", name), encoding="utf-8")
        started.append(spawn([str(flow)], home))
    older, newer = started
    exit_file = tmp_path / "exit"
    picker = Tmux(f"baton-pick-{uuid.uuid4().hex[:8]}")
    wrong = Tmux(f"baton-pick-{uuid.uuid4().hex[:8]}")
    try:
        picker.start(f"sh -c '{sys.executable} -m console attach; echo $? > {exit_file}; "
                     f"sleep 30'", _env(tmp_path))
        screen = picker.wait_for("attach to which run? [1-2, default 1 = newest]")
        assert f"1. {newer.run_id}  Newer flow" in screen, screen
        assert f"2. {older.run_id}  Older flow" in screen, screen
        picker.keys("2", "Enter")
        screen = picker.wait_for("Held Older flow")
        assert older.run_id in screen and "Newer flow" not in screen
        picker.keys("q")
        picker.wait_for("detach, cancel it, or stay?")
        picker.keys("Enter")  # detach
        _wait_file(exit_file)
        assert exit_file.read_text().strip() == "0"

        wrong_exit = tmp_path / "exit-wrong"
        wrong.start(f"sh -c '{sys.executable} -m console attach 2>&1; echo $? > {wrong_exit};"
                    f" sleep 30'", _env(tmp_path))
        wrong.wait_for("attach to which run?")
        wrong.keys("7", "Enter")
        screen = wrong.wait_for("no run number '7'")
        _wait_file(wrong_exit)
        assert wrong_exit.read_text().strip() == "2"
        assert "Traceback" not in screen
    finally:
        picker.kill()
        wrong.kill()
        for spawned in started:
            try:
                os.kill(spawned.pid, 9)
            except ProcessLookupError:
                pass
