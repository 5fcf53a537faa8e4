"""Start a shell in its own session with given stdin/stdout/stderr and one inherited fd.

This is ``subprocess.Popen`` (vfork, close every other fd, setsid, exec), kept in one place
so the executor's two start paths agree. Until issue 12 it called CPython's private
``_posixsubprocess.fork_exec`` directly on 3.11 to skip Popen's Python side; measured with
``bench/local_dag.py --spawn-ab`` that saved about 30 µs of CPU per step (6 % of the
engine's cost per step, about 30 ms on a 1,000-step graph) and the bench met its target
either way, so the private call went (figures in docs/architecture.md).

Errors are Popen's: ``OSError`` with errno, message and the file (the shell, or ``cwd``
when changing into it failed); ``ValueError`` for a bad environment.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping


def spawn(argv: list[str], *, stdin: int, stdout: int, stderr: int,
          env: Mapping[str, str] | None, cwd: str | None,
          keep_fd: int | None) -> subprocess.Popen[bytes]:
    """Start ``argv`` (``argv[0]`` a path); the caller reaps it and sets ``returncode``."""
    return subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr, env=env,
                            cwd=cwd, pass_fds=() if keep_fd is None else (keep_fd,),
                            start_new_session=True)
