"""bench/attach.py measures the runner's overhead on bench/console_flood.py's workload
(issue 15): both consoles run it and the ratio is printed with its target."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_attach_bench_prints_the_runner_overhead_against_the_in_process_console() -> None:
    done = subprocess.run([sys.executable, "bench/attach.py", "--only", "overhead",
                           "--overhead-lines", "3000", "--presses", "2"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    out = done.stdout
    assert done.returncode in (0, 1), done.stderr
    assert "3,000 lines, in-process console" in out, out + done.stderr
    assert "3,000 lines, runner + attached console" in out, out
    assert "3,000 lines shown" in out
    assert re.search(r"runner overhead [\d.]+ s / [\d.]+ s = [\d.]+x \(target <= 1\.2x\)",
                     out), out
