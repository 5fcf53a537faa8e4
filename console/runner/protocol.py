"""The attach protocol, version 1 (docs/attach-protocol.md): newline-delimited JSON over a
Unix socket ``$BATON_HOME/live/RUN.sock``.

This module holds what both ends share: where the sockets live, how a message is framed,
the operator actions a client may ask for (and how the runner applies one to a Run), and
the snapshot a client receives on connect.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.engine.events import ActionEvent, Event, LogEvent
from console.runner.log_tail import LogTail, TailLine
from console.runner.past_timeline import LiveTimeline

if TYPE_CHECKING:
    from console.engine.run import Run

VERSION = 1
"""Bumped on any incompatible change; a peer speaking another version is refused."""

MAX_LINE = 1 << 20
"""The longest message a peer accepts (bytes, newline included), but for a snapshot."""

MAX_SNAPSHOT = 64 << 20
"""The longest message a client accepts from the run: a snapshot carries every task's
tail (up to :data:`TAIL_LINES` lines each), many times :data:`MAX_LINE` in a wide run."""

TAIL_LINES = 200
"""Lines of each task's log carried in a snapshot."""

SUFFIX = ".sock"


class ProtocolError(Exception):
    """A malformed message or a refused connection: one line, for the operator."""


def live_dir(home: Path) -> Path:
    return home / "live"


def socket_path(home: Path, run_id: str) -> Path:
    return live_dir(home) / f"{run_id}{SUFFIX}"


MAX_SOCKET_PATH = 100
"""AF_UNIX paths hold at most 107 bytes; a longer one is reached through its folder's fd."""


@contextlib.contextmanager
def short_path(path: Path) -> Iterator[str]:
    """A path to bind or connect ``path`` with: itself, or when it is too long for AF_UNIX
    (a deep ``$BATON_HOME``), ``/proc/self/fd/N/NAME`` through a descriptor of its folder,
    open for the duration of the block."""
    text = str(path)
    if len(text.encode()) <= MAX_SOCKET_PATH:
        yield text
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not a JSON message: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("a message is a JSON object with a string 'type'")
    return message


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def event_bytes(event: Event) -> bytes:
    """One engine event, framed: SPEC section 4's object, except that a chunk of log output
    is one ``log`` message whose ``lines`` list holds what section 4 prints as one object
    per ``line`` (the server merges chunks first: :mod:`console.runner.log_batch`)."""
    if type(event) is LogEvent:
        return encode({"type": "log", "step": event.step, "host": event.host,
                       "stream": event.stream, "lines": event.lines, "time": event.time})
    return b"".join(encode(d) for d in event.to_dicts())


# --------------------------------------------------------------------------- actions

TASK_ACTIONS = ("approve", "deny", "done", "retry", "retry_downstream", "skip",
                "mark_succeeded", "mark_failed", "cancel")
WITH_REASON = frozenset({"deny", "skip", "mark_succeeded", "mark_failed", "cancel"})
RUN_ACTIONS = ("pause", "resume", "toggle_step_mode", "toggle_breakpoint", "note",
               "exclude_host", "cancel_run", "stay", "rollback")
ACTIONS = frozenset(TASK_ACTIONS + RUN_ACTIONS)


@dataclass(frozen=True, slots=True)
class Action:
    """One operator action as a client asks for it."""

    action: str
    step: str | None = None
    host: str | None = None
    reason: str | None = None

    def to_message(self, request_id: int) -> dict[str, Any]:
        return {"type": "action", "id": request_id, "action": self.action, "step": self.step,
                "host": self.host, "reason": self.reason}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Action:
        action = message.get("action")
        if action not in ACTIONS:
            raise ProtocolError(f"unknown action {action!r}; known: "
                                f"{', '.join(sorted(ACTIONS))}")
        fields = {}
        for name in ("step", "host", "reason"):
            value = message.get(name)
            if value is not None and not isinstance(value, str):
                raise ProtocolError(f"action field '{name}' must be a string or null")
            fields[name] = value
        return cls(str(action), **fields)


def apply_action(run: Run, action: Action, user: str) -> None:
    """Apply ``action`` to ``run`` as ``user`` (the peer's login name): the run records it
    under that name. Raises the engine's ActionError (or ProtocolError) when it does not
    apply."""
    saved = run.user
    run.user = user
    try:
        _apply(run, action, user)
    finally:
        run.user = saved


def _apply(run: Run, a: Action, user: str) -> None:
    name = a.action
    if name in TASK_ACTIONS:
        if a.step is None:
            raise ProtocolError(f"action '{name}' needs a step")
        method: Callable[..., Any] = getattr(run, name)
        if name in WITH_REASON:
            method(a.step, a.host, a.reason)
        else:
            method(a.step, a.host)
    elif name in ("pause", "resume", "toggle_step_mode"):
        getattr(run, name)()
    elif name == "toggle_breakpoint":
        if a.step is None:
            raise ProtocolError("action 'toggle_breakpoint' needs a step")
        run.toggle_breakpoint(a.step)
    elif name == "note":
        if not a.reason:
            raise ProtocolError("action 'note' needs its text in 'reason'")
        run.note(a.reason, a.step, a.host)
    elif name == "exclude_host":
        if a.host is None:
            raise ProtocolError("action 'exclude_host' needs a host")
        run.exclude_host(a.host, user, a.reason)
    elif name == "rollback":
        _rollback(run, a)
    elif name == "cancel_run":
        run.answer_quit(True)
        run.close()
    else:  # stay
        run.answer_quit(False)


def _rollback(run: Run, a: Action) -> None:
    """Plan the rollback of the scope in ``reason`` (``RollbackScope.to_json``) and start
    it, as the console's ``u`` does on an in-process run."""
    from console.engine.rollback import start_rollback
    from console.engine.rollback_plan import RollbackScope, plan_rollback

    try:
        data = json.loads(a.reason or "{}")
        scope = RollbackScope(data.get("step"), data.get("host"), bool(data.get("downstream")),
                              data.get("rollout"))
    except (ValueError, AttributeError, TypeError):
        raise ProtocolError("action 'rollback' needs its scope as JSON in 'reason'") from None
    try:
        plan = plan_rollback(run, scope)
    except ValueError as exc:
        raise ProtocolError(str(exc)) from None
    start_rollback(run, plan)


# --------------------------------------------------------------------------- snapshot


class Tails:
    """The last :data:`TAIL_LINES` lines of each task's log, every action so far and the
    run and task events (bounded), kept by the server from the run's events (what a late
    client is sent)."""

    def __init__(self, limit: int = TAIL_LINES) -> None:
        self.limit = limit
        self.logs: dict[tuple[str, str], LogTail] = {}
        self.actions: list[dict[str, Any]] = []
        self.past_timeline: list[dict[str, Any]] = []
        """A resumed run's timeline from before this process (set once, by the server)."""
        self.past_omitted = 0
        self.timeline = LiveTimeline()
        """This process's run and task events (the snapshot's ``timeline``)."""

    def __call__(self, event: Event) -> None:
        if type(event) is LogEvent:
            tail = self.logs.get((event.step, event.host))
            if tail is None:
                tail = self.logs[(event.step, event.host)] = LogTail(self.limit)
            tail.add(event.stream, event.text, event.time, event.attempt)
        elif type(event) is ActionEvent:
            self.actions.extend(event.to_dicts())
        else:
            self.timeline.add(event, len(self.actions))

    def past(self, step: str, host: str, lines: list[TailLine]) -> None:
        """Put ``lines`` (output written before this process started: a resumed run's
        earlier attempts, from the history) before what the task printed since, within
        the same bound."""
        if not lines:
            return
        tail = LogTail(self.limit, lines[-self.limit:])
        tail.extend(self.logs.get((step, host), ()))
        self.logs[(step, host)] = tail


def snapshot(run: Run, tails: Tails, resync: bool = False) -> dict[str, Any]:
    """Everything a console needs to draw the run as it is now."""
    wf = run.workflow
    return {
        "type": "snapshot",
        "resync": resync,
        "run": {
            "id": run.id, "workflow": wf.name,
            "path": str(wf.path) if wf.path is not None else None,
            "state": str(run.state), "user": run.user, "pid": os.getpid(),
            "started": run.started, "ended": run.ended,
            "step_mode": run.step_mode, "breakpoints": sorted(run.breakpoints),
            "excluded_hosts": dict(run.excluded_hosts),
            "options": _options(run),
        },
        "tasks": [_task(t) for t in run.tasks_in_order()],
        "logs": [{"step": step, "host": host,
                  "lines": [{"stream": s, "line": line, "time": t, "attempt": a}
                            for s, line, t, a in tail]}
                 for (step, host), tail in tails.logs.items()],
        "actions": list(tails.actions),
        "past": tails.past_timeline,
        "past_omitted": tails.past_omitted,
        "timeline": list(tails.timeline.entries),
        "timeline_omitted": tails.timeline.omitted,
    }


def _options(run: Run) -> dict[str, Any]:
    opts = run.options
    mask = run.masker.mask
    return {"params": {k: mask(v) if isinstance(v, str) else v
                       for k, v in opts.params.items()},
            "limit": list(opts.limit), "start_at": opts.start_at, "dry_run": opts.dry_run,
            "approval": opts.approval, "keep_alive": opts.keep_alive}


def _task(task: Any) -> dict[str, Any]:
    return {
        "step": task.step, "host": task.host, "state": str(task.state),
        "attempt": task.attempt, "exit_code": task.exit_code, "reason": task.reason,
        "started": task.started, "ended": task.ended,
        "attempts": [{"number": a.number, "started": a.started, "ended": a.ended,
                      "exit_code": a.exit_code,
                      "state": str(a.state) if a.state is not None else None,
                      "reason": a.reason, "command": a.command} for a in task.attempts],
    }


def hello(run_id: str, user: str) -> dict[str, Any]:
    from console import __version__

    return {"type": "hello", "protocol": VERSION, "baton": __version__, "run_id": run_id,
            "user": user}


def check_hello(message: dict[str, Any]) -> None:
    if message.get("type") != "hello":
        raise ProtocolError(f"expected a hello, got {message.get('type')!r}")
    if message.get("protocol") != VERSION:
        raise ProtocolError(f"protocol version {message.get('protocol')!r} is not supported "
                            f"(this baton speaks {VERSION})")
