"""The runner: a detached process that owns one console run (engine, executors, history,
run lock) and serves it on its socket, so the run outlives the terminal that started it.

:func:`spawn` starts ``python -m console.runner.process run FILE [options]`` in its own
session (stdin ``/dev/null``, stdout and stderr appended to
``$BATON_HOME/runners/<time>-<pid>.log``) and waits until its socket listens. The runner
ignores SIGHUP; SIGTERM or SIGINT interrupt the run as Ctrl-C does (tasks stopped end
``interrupted``; ``baton resume`` continues). Gates and manual steps wait for an attached
operator (or are approved with ``--yes``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from console.runner.server import READY_FD_ENV

START_TIMEOUT = 30.0


class SpawnError(Exception):
    """The runner did not start: its own one-line reason (e.g. an invalid workflow)."""


@dataclasses.dataclass(frozen=True)
class Spawned:
    run_id: str
    socket: Path
    pid: int
    log: Path


PARAMS_ENV = "BATON_RUNNER_PARAMS"
"""Param values the console's params form gave (JSON object): the runner reads them from
its environment (readable by its user only), never from its command line (``ps``)."""


def spawn(run_args: Sequence[str], home: Path, *, cwd: str | None = None,
          command: str = "run", params: dict[str, Any] | None = None) -> Spawned:
    """Start a runner for ``baton COMMAND ARGS`` (``run FILE …`` or ``resume RUN …``;
    ARGS without the command); return once it listens."""
    from console.store.logs import ensure_dir, open_private

    folder = ensure_dir(home / "runners")
    log = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    log_fd = open_private(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    read_end, write_end = os.pipe()
    env = dict(os.environ)
    env[READY_FD_ENV] = str(write_end)
    env["BATON_HOME"] = str(home)
    env.pop(PARAMS_ENV, None)
    if params:
        env[PARAMS_ENV] = json.dumps(params)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "console.runner.process", command, *run_args],
            stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd, cwd=cwd, env=env,
            start_new_session=True, pass_fds=(write_end,))
    finally:
        os.close(write_end)
        os.close(log_fd)
    try:
        ready = _wait_ready(read_end, proc)
    finally:
        os.close(read_end)
    if ready is None:
        try:  # it closed the pipe: it is exiting
            code: int | None = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        text = log.read_text(errors="replace").strip()
        reason = text or f"the runner exited with {code}"
        if code is None:
            proc.kill()
            reason = f"the runner did not start within {START_TIMEOUT:.0f} s (see {log})"
        raise SpawnError(reason.removeprefix("baton: "))
    return Spawned(str(ready["run_id"]), Path(ready["socket"]), proc.pid, log)


def _wait_ready(fd: int, proc: subprocess.Popen[bytes]) -> dict[str, Any] | None:
    deadline = time.monotonic() + START_TIMEOUT
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        readable, _, _ = select.select([fd], [], [], min(left, 0.5))
        if not readable:
            if proc.poll() is not None:
                return None
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        data += chunk
    try:
        message = json.loads(data.split(b"\n", 1)[0])
    except ValueError:
        return None
    return message if isinstance(message, dict) and message.get("type") == "ready" else None
