"""A run lock outlives its owner for a moment when a child the owner forked still holds
the lock's file (between fork and exec): kill -9 of a runner as it starts a step, then at
once ``baton resume``. That moment is waited out; a live owner is refused at once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from console.store import logs
from console.store.errors import LiveRunError

OWNER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from console.store import logs
    logs.acquire_run_lock("r1", Path(sys.argv[1]))
    if os.fork() == 0:          # the child holds the lock's file, as one between fork and exec
        os.close(1), os.close(2)  # (not the test's pipes: it waits for the owner alone)
        time.sleep(float(sys.argv[2]))
        os._exit(0)
    print("locked", flush=True)
    os._exit(0)                  # the owner dies at once
""")


def _owner_dies_child_holds(home: Path, hold: float) -> None:
    proc = subprocess.run([sys.executable, "-c", OWNER, str(home), str(hold)],
                          capture_output=True, text=True, timeout=20,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert proc.stdout == "locked\n", proc.stderr


def test_a_dead_owners_lock_held_a_moment_by_its_child_is_waited_for(tmp_path: Path) -> None:
    _owner_dies_child_holds(tmp_path, 0.3)
    started = time.monotonic()
    assert not logs.is_live("r1", tmp_path)  # it said live: "run r1 is live in process …"
    assert 0.1 < time.monotonic() - started < logs_settle() + 0.5
    _owner_dies_child_holds(tmp_path, 0.3)
    lock = logs.acquire_run_lock("r1", tmp_path)
    lock.release()


def test_a_lock_held_longer_than_the_settle_or_by_a_live_owner_is_live(tmp_path: Path) -> None:
    _owner_dies_child_holds(tmp_path, logs_settle() + 2)
    assert logs.is_live("r1", tmp_path)
    with pytest.raises(LiveRunError):
        logs.acquire_run_lock("r1", tmp_path)
    held = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from console.store import logs; logs.acquire_run_lock('r2', Path(sys.argv[1])); "
         "print('locked', flush=True); time.sleep(20)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    try:
        assert held.stdout is not None and held.stdout.readline() == "locked\n"
        started = time.monotonic()
        assert logs.is_live("r2", tmp_path)
        assert time.monotonic() - started < 0.5  # a live owner: no wait
    finally:
        held.kill()
        held.wait()


def logs_settle() -> float:
    from console.store.lock_take import SETTLE

    return SETTLE
