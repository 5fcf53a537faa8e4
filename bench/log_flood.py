"""Log flood: `seq 1 1000000` as one step through `baton run --headless` to /dev/null.

Measures lines/s of the human printer and of `--json`, against the shell baseline
`seq 1 1000000 | cat > /dev/null`, and the peak RSS of each baton process.

    python bench/log_flood.py [--lines N] [--repeat K]

"end to end" includes interpreter start-up and workflow loading (timed separately with a
one-step `true` workflow and subtracted for the "in run" column). Targets (SPEC'd by the
project): >= 2,000,000 lines/s human, >= 1,000,000 lines/s JSON, <= 100 MB peak RSS.
Each baton row is measured with the run history store on (the default) and with
``--no-history``. Always exits 0 unless baton itself fails; read the table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench._common import baton_env  # noqa: E402

HUMAN_TARGET = 2_000_000
JSON_TARGET = 1_000_000
RSS_TARGET_MB = 100


def timed(argv: list[str], *, shell: bool = False) -> tuple[float, float]:
    """Run a command with stdout to /dev/null; returns (seconds, peak RSS in MB)."""
    env = baton_env()
    with open(os.devnull, "wb") as devnull:
        start = time.perf_counter()
        proc = subprocess.Popen(argv if not shell else argv[0], shell=shell, stdout=devnull,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                                cwd=REPO)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{argv} failed ({proc.returncode}): {err.decode(errors='replace')[-500:]}")
    return elapsed, usage.ru_maxrss / 1024  # Linux: KiB


def best(argv: list[str], repeat: int, *, shell: bool = False) -> tuple[float, float]:
    runs = [timed(argv, shell=shell) for _ in range(repeat)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


def write_workflows(folder: Path, lines: int) -> tuple[Path, Path]:
    flood = folder / "flood.toml"
    flood.write_text(f'[workflow]\nname = "flood"\n[steps.flood]\nrun = "seq 1 {lines}"\n')
    empty = folder / "empty.toml"
    empty.write_text('[workflow]\nname = "empty"\n[steps.flood]\nrun = "true"\n')
    return flood, empty


def sanity_check(flood: Path, lines: int) -> None:
    """Not timed: the human output really carries every line, prefixed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "run", str(flood), "--headless"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        text=True, cwd=REPO, env=baton_env(),
    )
    assert proc.stdout is not None
    count, last = 0, ""
    for line in proc.stdout:  # streamed: this process stays small
        if line.startswith("flood | "):
            count += 1
            last = line.rstrip("\n")
    code = proc.wait()
    if code != 0 or count != lines or last != f"flood | {lines}":
        sys.exit(f"sanity check failed: exit {code}, {count} lines, last {last!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.lines
    baton = [sys.executable, "-m", "console.cli", "run"]
    with tempfile.TemporaryDirectory(prefix="baton-bench-") as tmp:
        os.environ["BATON_HOME"] = str(Path(tmp) / "home")  # the runs' history: thrown away
        flood, empty = write_workflows(Path(tmp), n)
        baseline, _ = best([f"seq 1 {n} | cat > /dev/null"], args.repeat, shell=True)
        startup, _ = best([*baton, str(empty), "--headless"], args.repeat + 2)
        human, human_rss = best([*baton, str(flood), "--headless"], args.repeat)
        js, json_rss = best([*baton, str(flood), "--headless", "--json"], args.repeat)
        bare = [str(flood), "--headless", "--no-history"]
        human_bare, human_bare_rss = best([*baton, *bare], args.repeat)
        js_bare, json_bare_rss = best([*baton, *bare, "--json"], args.repeat)
        sanity_check(flood, n)

    def rate(seconds: float) -> float:
        return n / seconds if seconds > 0 else float("inf")

    def in_run(seconds: float) -> float | None:
        """Lines/s without start-up; None when start-up noise swamps the difference."""
        return rate(seconds - startup) if seconds - startup > 0.02 else None

    rows = [
        ("shell: seq | cat", baseline, rate(baseline), None, None, None),
        ("baton --headless", human, rate(human), in_run(human), human_rss, HUMAN_TARGET),
        ("  (--no-history)", human_bare, rate(human_bare), in_run(human_bare), human_bare_rss,
         HUMAN_TARGET),
        ("baton --headless --json", js, rate(js), in_run(js), json_rss, JSON_TARGET),
        ("  (--no-history)", js_bare, rate(js_bare), in_run(js_bare), json_bare_rss,
         JSON_TARGET),
    ]
    print(f"log flood: seq 1 {n} -> /dev/null, best of {args.repeat}; "
          f"baton start-up (one `true` step) {startup:.3f}s")
    print(f"{'':26}{'seconds':>9}{'lines/s e2e':>14}{'lines/s in run':>16}{'x baseline':>12}"
          f"{'peak RSS':>10}  target")
    for name, seconds, e2e, steady, rss, target in rows:
        ratio = seconds / baseline if baseline else float("inf")
        in_run_text = f"{steady:>16,.0f}" if steady else f"{'-' if target else '':>16}"
        rss_text = f"{rss:>8.1f}MB" if rss else f"{'':>10}"
        verdict = ""
        if target:
            ok = e2e >= target and (rss or 0) <= RSS_TARGET_MB
            verdict = f"  >= {target:,}/s, <= {RSS_TARGET_MB}MB: {'PASS' if ok else 'FAIL'}"
            if not ok and steady and steady >= target and (rss or 0) <= RSS_TARGET_MB:
                verdict += " (PASS without start-up)"
        print(f"{name:26}{seconds:>9.3f}{e2e:>14,.0f}{in_run_text}{ratio:>11.1f}x{rss_text}"
              f"{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
