"""After a crash: find and end what interrupted attempts left running.

When Baton is killed (``kill -9``, a lost machine session) the processes of the running
attempts live on. The store keeps each attempt's process identity (its ``BATON_ATTEMPT``
tag, the shell's pid, start time and session id; table ``processes``). Before a resume
runs anything, the live leftovers of the run's interrupted attempts are found here,
reported, and ended (headless), or ended once the operator confirms (console).

Locally a process is a leftover when it carries the attempt's tag, or is the attempt's
shell itself (same pid and start time), or belongs to the shell's session and started
after it. On a remote host the tag is looked up through an SSH session to that host.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from console.executors.base import CommandRequest
from console.executors.containment import describe, identity, tagged_pids

if TYPE_CHECKING:
    from console.model.workflow import Workflow
    from console.store.store import Store


@dataclass
class Leftover:
    """The live processes one interrupted attempt left behind."""

    step: str
    host: str
    number: int
    tag: str
    pids: list[int] = field(default_factory=list)
    names: str = ""
    """``pid 123 (sleep), …`` (remote hosts: as the host reported them)."""

    @property
    def label(self) -> str:
        where = "" if self.host == "local" else f"@{self.host}"
        return f"attempt {self.number} of {self.step}{where}"


def stored_identities(store: Store, run_id: str) -> list[tuple[Any, ...]]:
    """(step, host, number, tag, pid, started, sid) of the run's interrupted attempts
    (or open ones: a dead run not marked interrupted yet)."""
    with store.database.guard() as db:
        return db.execute(
            "SELECT p.step, p.host, p.number, p.tag, p.pid, p.started, p.sid "
            "FROM processes p JOIN attempts a ON a.run_id = p.run_id AND a.step = p.step "
            "AND a.host = p.host AND a.number = p.number "
            "WHERE p.run_id = ? AND a.state IN ('interrupted', 'running')",
            (run_id,)).fetchall()


def find_local(rows: list[tuple[Any, ...]]) -> list[Leftover]:
    """The live leftovers of local attempts."""
    found = []
    for step, host, number, tag, pid, started, sid in rows:
        if host != "local":
            continue
        pids = set(tagged_pids({tag})) if tag else set()
        if pid and started is not None:
            now = identity(pid)
            if now is not None and now[0] == started:
                pids.add(pid)
        if sid and started is not None:
            pids.update(_session_members(sid, started))
        pids.discard(os.getpid())
        if pids:
            found.append(Leftover(step, host, number, tag or "", sorted(pids),
                                  describe(sorted(pids))))
    return found


def _session_members(sid: int, not_before: float) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        ident = identity(int(name))
        if ident is not None and ident[1] == sid and ident[0] >= not_before:
            out.append(int(name))
    return out


def end_local(leftovers: list[Leftover], grace: float = 2.0) -> list[int]:
    """TERM, then KILL after ``grace`` s, every local leftover; the pids that survived."""
    import psutil

    procs = []
    for leftover in leftovers:
        for pid in leftover.pids:
            try:
                procs.append(psutil.Process(pid))
            except psutil.Error:
                continue
    for proc in procs:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    alive = _wait_ended(procs, grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    return [proc.pid for proc in _wait_ended(alive, 2.0)]


def _wait_ended(procs: list[Any], timeout: float) -> list[Any]:
    """Wait up to ``timeout`` s until every process ended; those still running. A zombie
    has ended: an orphan's parent is init, which may reap it seconds later (psutil's
    ``wait_procs`` waited for that, the whole grace, on every resume that ended one)."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    alive = [proc for proc in procs if _running(proc)]
    while alive and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
        alive = [proc for proc in alive if _running(proc)]
    return alive


def _running(proc: Any) -> bool:
    """Alive and not a zombie (a dead process its parent has not reaped yet)."""
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


REMOTE_SCRIPT = r"""
__l=
for __f in $(grep -lsxz "BATON_ATTEMPT=$T" /proc/[0-9]*/environ); do
  __p=${__f#/proc/}; __p=${__p%%/*}
  [ "$__p" = "$$" ] && continue
  __l="$__l $__p"
  printf 'left %s %s\n' "$__p" "$(cat /proc/$__p/comm 2>/dev/null)"
done
[ -n "$E" ] && [ -n "$__l" ] || exit 0
__running() {  # those still running: a zombie is dead, only not reaped yet
  for __p in $__l; do
    __s=; read -r __s 2>/dev/null < "/proc/$__p/stat" || :
    __s=${__s##*) }; __s=${__s%% *}  # the state, after the name (which may hold ") ")
    [ -n "$__s" ] && [ "$__s" != Z ] && printf '%s\n' "$__p"
  done
  return 0
}
__wait() {  # up to $1 tenths of a second, until none runs
  __i=0
  while [ "$__i" -lt "$1" ] && [ -n "$(__running)" ]; do sleep 0.1; __i=$((__i + 1)); done
}
kill -s TERM $__l 2>/dev/null; __wait 20
__k=$(__running); [ -n "$__k" ] && kill -s KILL $__k 2>/dev/null; __wait 5
for __p in $(__running); do printf 'alive %s\n' "$__p"; done
exit 0
"""


async def handle_remote(workflow: Workflow, rows: list[tuple[Any, ...]], *, end: bool,
                        executor_for: Callable[[Any], Any] | None = None,
                        ) -> tuple[list[Leftover], list[str]]:
    """Find (and with ``end``, end) the leftovers of remote attempts through an SSH
    session to each host. Returns them and the problems met (one line each)."""
    remote = [row for row in rows if row[1] != "local" and row[3]]
    if not remote:
        return [], []
    if executor_for is None:
        from console.executors.ssh import ssh_executor_factory

        executor_for = ssh_executor_factory(workflow)
    found: list[Leftover] = []
    problems: list[str] = []
    executors: dict[str, Any] = {}
    try:
        for step, host, number, tag, *_ in remote:
            if host not in workflow.hosts:
                continue
            executor = executors.get(host) or executors.setdefault(
                host, executor_for(workflow.host(host)))
            lines: list[str] = []
            script = f"T={shlex.quote(tag)}; E={'1' if end else ''}\n{REMOTE_SCRIPT}"
            request = CommandRequest("leftovers", workflow.host(host), script)
            execution = await executor.start(request, _collect(lines))
            status = await asyncio.wait_for(execution.wait(), 60)
            if not status.ok:
                problems.append(f"cannot check {host} for leftovers of attempt {number} of "
                                f"{step}: {status.error or status.exit_code}")
                continue
            left = [line.split(" ", 2) for line in lines if line.startswith("left ")]
            if left:
                names = ", ".join(f"pid {p[1]} ({p[2] if len(p) > 2 else '?'})" for p in left)
                found.append(Leftover(step, host, number, tag, [int(p[1]) for p in left],
                                      names))
            alive = [line.split()[1] for line in lines if line.startswith("alive ")]
            if alive:
                problems.append(f"{host}: could not end pid {', '.join(alive)}")
    finally:
        for executor in executors.values():
            await executor.close()
    return found, problems


def _collect(lines: list[str]) -> Callable[[str, str], None]:
    def on_output(_stream: str, text: str) -> None:
        lines.extend(text.split("\n"))

    return on_output


def settle(store: Store, run_id: str, workflow: Workflow | None, *,
           say: Callable[[str], None], ask: Callable[[str], bool] | None = None,
           executor_for: Callable[[Any], Any] | None = None) -> bool:
    """Report the live leftovers of ``run_id``'s interrupted attempts and end them: at
    once (``ask`` None: headless), or if ``ask`` (the console's operator) says yes.
    False when the operator declined: the resume must not go on."""
    rows = stored_identities(store, run_id)
    if not rows:
        return True
    found = find_local(rows)
    problems: list[str] = []
    if workflow is not None and any(row[1] != "local" for row in rows):
        remote, problems = asyncio.run(handle_remote(workflow, rows, end=False,
                                                     executor_for=executor_for))
        found += remote
    for problem in problems:
        say(f"baton: {problem}")
    if not found:
        return True
    for leftover in found:
        say(f"baton: {leftover.label} was interrupted but left processes running: "
            f"{leftover.names}")
    if ask is not None and not ask("End them before resuming? [y/N] "):
        say("baton: resume refused while they run (end them, or answer y)")
        return False
    survivors = end_local([f for f in found if f.host == "local"])
    if workflow is not None and any(f.host != "local" for f in found):
        _, problems = asyncio.run(handle_remote(workflow, rows, end=True,
                                                executor_for=executor_for))
        for problem in problems:
            say(f"baton: {problem}")
    if survivors:
        say(f"baton: could not end {describe(survivors)}")
    else:
        say("baton: ended them before resuming")
    return True
