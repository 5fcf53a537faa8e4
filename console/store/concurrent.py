"""Two live runs of one workflow on this machine: a warning, or a refusal when the
workflow says ``[workflow] exclusive = true``.

Live runs are found in the history (state ``running`` or ``paused`` and a held run lock).
An exclusive run also holds an ``flock`` on ``locks/workflow-<hash>.lock`` for as long as
it is live, so two exclusive runs started at the same instant cannot both pass the check.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from console.store import logs
from console.store.errors import LiveRunError

if TYPE_CHECKING:
    from console.engine.run import Run
    from console.store.store import Store


@dataclass
class WorkflowClaim:
    """What :func:`claim_workflow` found; ``release()`` when the run is over."""

    warnings: list[str] = field(default_factory=list)
    fd: int | None = None

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


def live_runs_of(store: Store, run: Run) -> list[tuple[str, int | None]]:
    """(id, pid) of the other live runs of ``run``'s workflow recorded on this machine."""
    wf = run.workflow
    path = str(wf.path) if wf.path is not None else None
    with store.database.guard() as db:
        rows = db.execute(
            "SELECT id, pid, host FROM runs WHERE state IN ('running', 'paused') AND id != ? "
            "AND (path = ? OR (? IS NULL AND path IS NULL AND workflow = ?)) "
            "ORDER BY started", (run.id, path, path, wf.name)).fetchall()
    return [(rid, pid) for rid, pid, host in rows
            if host in (None, store.machine) and store.is_live(rid)]


def claim_workflow(store: Store, run: Run) -> WorkflowClaim:
    """Warn about other live runs of the workflow, or refuse (:class:`LiveRunError`, one
    line naming the live run) when the workflow is exclusive."""
    wf = run.workflow
    claim = WorkflowClaim()
    if getattr(wf, "exclusive", False):
        claim.fd = _lock(store, run)
    try:
        others = live_runs_of(store, run)
    except BaseException:
        claim.release()
        raise
    if others and claim.fd is not None:
        claim.release()
        rid, pid = others[0]
        raise LiveRunError(f"workflow '{wf.name}' is exclusive and run {rid} of it is live "
                           f"(pid {pid}); wait for it to end or cancel it (baton attach "
                           f"{rid})")
    for rid, pid in others:
        claim.warnings.append(f"run {rid} of workflow '{wf.name}' is live too (pid {pid}): "
                              f"both run at once (exclusive = true in [workflow] refuses "
                              f"this)")
    return claim


def _lock(store: Store, run: Run) -> int:
    wf = run.workflow
    key = str(wf.path) if wf.path is not None else f"name:{wf.name}"
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    path = store.home / "locks" / f"workflow-{digest}.lock"
    logs.ensure_dir(path.parent)
    fd = logs.open_private(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise LiveRunError(f"workflow '{wf.name}' is exclusive and run {holder} of it is "
                           f"live; wait for it to end or cancel it") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"run": run.id, "pid": os.getpid()}).encode(), 0)
    return fd


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"{info['run']} (pid {int(info['pid'])})"
    except (ValueError, KeyError, TypeError, OSError):
        return "(unknown: lock file unreadable)"
