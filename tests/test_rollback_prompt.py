"""Issue 13 (item 2, a remaining gap): headless on a terminal, a failed undo prompts the
operator like other held tasks: retry it, skip it (what it held back goes on) or stop.
SPEC section 5: "undo_failed holds back what must follow it on that host until the
operator retries or skips it"."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, baton, baton_env, write_workflow

# config's undo fails until the file "fixed" exists; build's undo must wait for it
FLAKY_UNDO = """
[workflow]
name = "Undo fails once"

[steps.build]
run = "echo build >> {dir}/journal"
undo = "echo undo-build >> {dir}/journal"

[steps.config]
needs = ["build"]
run = "echo config >> {dir}/journal"
undo = "test -f {dir}/fixed || exit 5\\necho undo-config >> {dir}/journal"
"""

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")


def _read_until(proc: subprocess.Popen[str], seen: list[str], text: str,
                timeout: float = 30) -> None:
    """Read the process's stderr into ``seen`` until ``text`` shows up."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    give_up = time.monotonic() + timeout
    while text not in "".join(seen):
        assert time.monotonic() < give_up, f"never asked {text!r}: {''.join(seen)}"
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536).decode(errors="replace")
            if not chunk:
                raise AssertionError(f"ended before asking {text!r}: {''.join(seen)}")
            seen.append(chunk)


def _rollback_on_a_terminal(tmp_path: Path, answers: list[tuple[str, str]]
                            ) -> tuple[int, str, list[str], str]:
    path = write_workflow(tmp_path, FLAKY_UNDO.format(dir=tmp_path))
    result = baton("run", path, "--headless", "--json")
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout.splitlines()[0])["run_id"]
    primary, secondary = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "rollback", run_id, "--headless"],
        cwd=REPO, env=baton_env(), stdin=secondary, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    os.close(secondary)
    seen: list[str] = []
    try:
        for prompt, answer in answers:
            _read_until(proc, seen, prompt)
            seen.append("\n-- answered --\n")
            if answer == "r":
                (tmp_path / "fixed").write_text("")
            os.write(primary, answer.encode() + b"\n")
        _, rest = proc.communicate(timeout=30)
        seen.append(rest)
    finally:
        os.close(primary)
        if proc.poll() is None:
            proc.kill()
    journal = (tmp_path / "journal").read_text().split()
    runs = [json.loads(line) for line in baton("runs", "--json").stdout.splitlines()]
    state = next(r["state"] for r in runs if r["id"] == run_id)
    return proc.returncode, "".join(seen), journal, state


ASK = "The undo of 'config' failed (exit 5): retry it, skip it, or stop the rollback? [r/s/N]"


def test_a_failed_undo_is_retried_at_the_prompt(tmp_path: Path) -> None:
    code, stderr, journal, state = _rollback_on_a_terminal(
        tmp_path, [("Run this rollback? [y/N]", "y"), (ASK, "r")])
    assert journal == ["build", "config", "undo-config", "undo-build"], stderr
    assert (code, state) == (1, "rolled_back"), stderr


def test_a_skipped_undo_lets_what_it_held_back_go(tmp_path: Path) -> None:
    code, stderr, journal, state = _rollback_on_a_terminal(
        tmp_path, [("Run this rollback? [y/N]", "y"), (ASK, "s")])
    assert journal == ["build", "config", "undo-build"], stderr
    assert (code, state) == (1, "rolled_back"), stderr  # a skipped undo counts as done


def test_no_at_the_prompt_stops_the_rollback(tmp_path: Path) -> None:
    code, stderr, journal, state = _rollback_on_a_terminal(
        tmp_path, [("Run this rollback? [y/N]", "y"), (ASK, "")])
    assert journal == ["build", "config"], stderr  # build's undo stays held back
    assert (code, state) == (1, "failed"), stderr
