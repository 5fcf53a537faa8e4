"""Crash safety (issue 5): the headless runner is SIGKILLed at many points of a run, then
resumed. Nothing it reported is lost and every side effect happens exactly once, except
for tasks that were running at the kill: those are `interrupted` and re-run only after a
decision (`--yes`), so their side effect may appear twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import REPO, baton, baton_env

from console.store import Store

# Every command appends its step id to the side-effect file first thing, so "ran" and
# "appended" are the same moment. Two parallel branches (left, right→right2), a gate
# (--yes records an "approve" action), sleeping steps, and a template that reads the
# output of a step finished before the kill.
WORKFLOW = textwrap.dedent("""
    [workflow]
    name = "crash test"

    [params]
    side = { type = "string", required = true }

    [steps.prep]
    run = "echo prep >> {{ params.side }}; echo prepared"

    [steps.left]
    needs = ["prep"]
    run = "echo left >> {{ params.side }}; sleep 0.2; echo left-done"

    [steps.right]
    needs = ["prep"]
    run = "echo right >> {{ params.side }}; echo right-done"

    [steps.right2]
    needs = ["right"]
    run = "echo right2 >> {{ params.side }}; sleep 0.1"

    [steps.gate]
    needs = ["left", "right2"]
    confirm = "Go on?"
    run = "echo gate >> {{ params.side }}"

    [steps.slow]
    needs = ["gate"]
    run = "echo slow >> {{ params.side }}; sleep 0.3; echo slept"

    [steps.use]
    needs = ["slow"]
    run = "echo use >> {{ params.side }}; echo got {{ steps.prep.stdout | trim }}"

    [steps.last]
    needs = ["use", "right"]
    run = "echo last >> {{ params.side }}"
""").lstrip()

STEPS = ("prep", "left", "right", "right2", "gate", "slow", "use", "last")
KILL_POINTS = range(1, 24)
"""Kill after the Nth JSON event line (a full run prints 24: the last is the final run state)."""


def _start(path: Path, side: Path, home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "console.cli", "run", str(path), "--headless", "--json", "--yes",
         "--param", f"side={side}"],
        cwd=REPO, env=baton_env({"BATON_HOME": str(home)}), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )


def _kill_after(proc: subprocess.Popen[str], lines: int) -> list[dict]:
    """SIGKILL the runner once it printed ``lines`` events; every event it printed."""
    assert proc.stdout is not None
    events = []
    for _ in range(lines):
        line = proc.stdout.readline()
        if not line:
            break
        events.append(json.loads(line))
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    events += [json.loads(line) for line in proc.stdout.read().splitlines()]
    proc.wait()
    return events


def _crash_and_resume(tmp: Path, kill_after: int) -> None:
    tmp.mkdir()
    home, side, path = tmp / "home", tmp / "side.txt", tmp / "crash.toml"
    path.write_text(WORKFLOW, encoding="utf-8")
    reported = _kill_after(_start(path, side, home), kill_after)
    where = f"killed after event {kill_after}"
    run_id = reported[0]["run_id"]
    succeeded = {e["step"] for e in reported if e["type"] == "task" and e["state"] == "succeeded"}
    actions = [(e["action"], e["step"]) for e in reported if e["type"] == "action"]

    with Store.open(home) as store:  # the store opens after a SIGKILL
        stored = store.load(run_id)
    states = {t.step: t.state for t in stored.tasks}
    for step in succeeded:
        assert states[step] == "succeeded", f"{where}: {step} reported succeeded, store says " \
                                            f"{states[step]}"
    stored_actions = [(a.action, a.step) for a in stored.actions]
    for action in actions:
        assert action in stored_actions, f"{where}: {action} acknowledged but not stored"
    # the owner is dead: the store shows what was running as interrupted (issue 10, item 11)
    assert not {"running", "retrying"} & set(states.values()), where
    running = {step for step, state in states.items() if state == "interrupted"}

    result = baton("resume", run_id[:10], "--headless", "--json", "--yes",
                   env={"BATON_HOME": str(home)})
    assert result.returncode == 0, f"{where}: resume failed\n{result.stderr}"
    after = [json.loads(line) for line in result.stdout.splitlines()]
    if stored.run.state == "succeeded":
        # the kill came after the run's last commit (output leaves in batches, after the
        # store's commit): nothing is left to resume, and nothing runs again
        assert after == [] and "nothing to resume" in result.stderr, where
    else:
        assert after[-1] == {**after[-1], "type": "run", "state": "succeeded"}, where

    counts = Counter(side.read_text(encoding="utf-8").split())
    for step in STEPS:
        if step in running:  # interrupted: re-run only after the --yes decision
            assert counts[step] in (1, 2), f"{where}: {step} ran {counts[step]} times"
        else:
            assert counts[step] == 1, f"{where}: {step} ran {counts[step]} times " \
                                      f"(state at the kill: {states[step]})"
    with Store.open(home) as store:
        final = store.load(run_id)
    assert {t.state for t in final.tasks} == {"succeeded"}, where
    retried = {a.step for a in final.actions if a.action == "retry" and a.reason == "--yes"}
    assert retried == running, f"{where}: retried {retried}, interrupted {running}"
    # outputs of steps finished before the kill are restored, so templates still resolve
    used = [e["line"] for e in after if e["type"] == "log" and e["step"] == "use"]
    if used:
        assert used == ["got prepared"], f"{where}: {used}"


def test_full_run_prints_more_events_than_the_kill_points(tmp_path: Path) -> None:
    path = tmp_path / "crash.toml"
    path.write_text(WORKFLOW, encoding="utf-8")
    side = tmp_path / "side.txt"
    result = baton("run", path, "--headless", "--json", "--yes", "--param", f"side={side}")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == max(KILL_POINTS) + 1
    assert sorted(side.read_text().split()) == sorted(STEPS)


def at_every_kill_point(tmp_path: Path, points: Iterable[int],
                        scenario: Callable[[Path, int], None]) -> None:
    """Run ``scenario(folder, n)`` for each kill point, four at a time (each mostly waits:
    Python start-ups and the steps' sleeps; two at a time took 11 s here, four 7 s, for the
    same CPU); report every failure."""
    def one(n: int) -> str | None:
        try:
            scenario(tmp_path / f"kill-{n:02d}", n)
        except AssertionError as exc:
            return str(exc)
        return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = [f for f in pool.map(one, points) if f]
    assert not failures, "\n".join(failures)


@pytest.mark.timeout(120)
def test_sigkill_at_many_points_then_resume(tmp_path: Path) -> None:
    at_every_kill_point(tmp_path, KILL_POINTS, _crash_and_resume)
