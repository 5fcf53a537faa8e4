"""A Run that mirrors a live run of another process, so the console's screens show it
unchanged: :class:`RemoteRun` is a :class:`Run` that never schedules anything. Its state
comes from the attach protocol (a snapshot, then events); its operator actions go to the
runner, which applies and records them (a refusal from the runner is reported through
:attr:`RemoteRun.on_notice`).

What the screens call synchronously is checked here first against the mirrored state
(``refusal``), so an action that cannot apply is refused at once, as in-process.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console.engine.actions import ActionError
from console.engine.events import ActionEvent, LogEvent, ReloadEvent, RunState, TaskState
from console.engine.run import Run, RunOptions
from console.engine.task import Attempt
from console.executors.base import HostKeyQuestion
from console.model.workflow import Workflow
from console.runner.client import ConnectError, SocketClient, connect
from console.runner.protocol import Action
from console.runner.snapshot_replay import snapshot_events

RETRY_FIRST = 0.1
RETRY_MOST = 2.0
"""Seconds between attempts to reconnect (doubling from the first to the most): a console
retries for as long as the runner's process lives; once it is gone the run is shown
``interrupted``."""
SLICE = 0.005
"""Seconds of applying the runner's events in one go: then the console's keys and frames
get the event loop (a burst, such as 300 hosts ending at once, arrives queued, and a
queue that holds items hands them out without ever yielding)."""

Notice = Callable[[str, str], None]
"""(message, severity: information / warning / error)."""

Connection = Callable[[str | None, str], None]
"""The connection's state for a banner: (text, severity) while it is lost or gone;
(None, "") once it is back."""


class RemoteRun(Run):
    """The console's side of a run owned by another process (see module doc)."""

    remote = True

    def __init__(self, workflow: Workflow, client: SocketClient, socket: Path,
                 read_only: bool = False) -> None:
        snap = client.snapshot()["run"]
        opts = snap.get("options") or {}
        options = RunOptions(params=dict(opts.get("params") or {}),
                             limit=tuple(opts.get("limit") or ()),
                             start_at=opts.get("start_at"), dry_run=bool(opts.get("dry_run")),
                             approval=opts.get("approval") or "wait", run_id=snap["id"],
                             keep_alive=bool(opts.get("keep_alive")),
                             user=client.user, step_mode=bool(snap.get("step_mode")))
        super().__init__(workflow, options)
        self.client = client
        self.socket = socket
        self.read_only = read_only
        self.owner_pid: int | None = snap.get("pid")
        self.on_notice: Notice | None = None
        self.on_connection: Connection | None = None
        self.detached = False
        self._cancel_asked = False
        self._sending: set[asyncio.Task[None]] = set()
        self._asking: dict[Any, asyncio.Task[None]] = {}
        """The runner's open host key questions, each a dialog of this console."""
        self._replay: dict[str, Any] | None = client.snapshot()
        self._apply_snapshot(client.snapshot())

    # ------------------------------------------------------------------ state in

    @property
    def rollback(self) -> Any:
        return None  # a rollback runs in the runner; its undos show as task events

    @rollback.setter
    def rollback(self, value: Any) -> None:
        """The console's ``u`` starts a rollback by setting one: ask the runner instead."""
        if value is not None:
            self._send(Action("rollback", reason=value.scope.to_json()))

    async def execute(self) -> RunState:
        """Follow the runner until the run ends, the console detaches or the runner is
        gone (the run is then shown ``interrupted``). A lost connection to a runner that
        lives is retried until it is back."""
        self.executing = True  # live here: the console offers what a live run allows
        self._emit_replay()
        clock = time.monotonic
        while True:
            since = clock()
            async for message in self.client.events():
                self._apply(message)
                if clock() - since > SLICE:
                    await asyncio.sleep(0)
                    since = clock()
            if self.detached or self.state.finished:
                break
            self._connection("connection to the runner lost; reconnecting…", "warning")
            client = await self._reconnect()
            if client is None:
                if self.detached:
                    break
                self.set_run_state(RunState.INTERRUPTED)
                text = (f"the run's process is gone: run {self.id} is interrupted "
                        f"(baton resume {self.id})")
                self._connection(text, "error")
                self._notice(text, "error")
                break
            self.client = client
            self._stop_asking()  # the runner asks the open questions again
            self._apply_snapshot(client.snapshot())
            self._connection(None, "")
            self._notice("reconnected to the runner", "information")
        return self.state

    async def _reconnect(self) -> SocketClient | None:
        """Connect again while the runner lives (None: it is gone, or we detached)."""
        delay, attempt = RETRY_FIRST, 0
        while not self.detached:
            if self._runner_gone():
                return None
            attempt += 1
            try:
                return await connect(self.socket, read_only=self.read_only,
                                     host_keys=not self.read_only)
            except ConnectError as exc:
                if attempt > 1:
                    self._connection(f"connection to the runner lost; reconnecting "
                                     f"(attempt {attempt}: {exc})…", "warning")
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MOST)
        return None

    def _runner_gone(self) -> bool:
        """The run's process is gone: dead (or a zombie nobody reaped: a runner whose
        console went away has no parent to), or no longer holding the run's lock."""
        from console.store.logs import is_live

        if self.owner_pid is not None and not _alive(self.owner_pid):
            return True
        return not is_live(self.id, self.socket.parent.parent)

    def _connection(self, text: str | None, severity: str) -> None:
        if self.on_connection is not None:
            self.on_connection(text, severity)

    def _emit_replay(self) -> None:
        """The snapshot's timeline (a resumed run's from before the resume first, then
        this process's events and actions) and log tails, once the screens listen."""
        snap, self._replay = self._replay, None
        if snap is None:
            return
        for action in snap.get("actions", ()):
            self._action_state(action)
        for event in snapshot_events(snap, self._attempt_of):
            self.emit(event)

    def _attempt_of(self, step: str, host: str) -> int:
        task = self.tasks.get((step, host))
        return task.attempt if task else 1

    def _apply_snapshot(self, snap: dict[str, Any]) -> None:
        run = snap["run"]
        self.step_mode = bool(run.get("step_mode"))
        self.breakpoints = set(run.get("breakpoints") or ())
        excluded = self.excluded_hosts
        excluded.clear()
        excluded.update(run.get("excluded_hosts") or {})
        for item in snap.get("tasks", ()):
            task = self.tasks.get((item["step"], item["host"]))
            if task is None:
                continue
            task.attempts = [Attempt(a["number"], a["started"] or 0.0, "", a.get("command")
                                     or "", a["ended"], a["exit_code"], None,
                                     TaskState(a["state"]) if a.get("state") else None,
                                     a.get("reason")) for a in item.get("attempts", ())]
            task.attempt = item["attempt"]
            task.exit_code = item["exit_code"]
            state = TaskState(item["state"])
            if state is not task.state or item["reason"] != task.reason:
                self.set_state(task, state, item["reason"])
            task.started, task.ended = item.get("started"), item.get("ended")
        self.started = run.get("started") or self.started
        self.set_run_state(RunState(run["state"]))
        self.ended = run.get("ended")

    def _apply(self, m: dict[str, Any]) -> None:
        kind = m.get("type")
        if kind == "log":
            task = self.tasks.get((m["step"], m["host"]))
            text = "\n".join(m["lines"]) if "lines" in m else m["line"]
            self.emit(LogEvent(m["step"], m["host"], m["stream"], text, m["time"],
                               task.attempt if task else 1))
        elif kind == "task":
            self._apply_task(m)
        elif kind == "run":
            if self.started is None:
                self.started = m["time"]
            self.set_run_state(RunState(m["state"]))
        elif kind == "action":
            self._apply_action(m)
        elif kind == "snapshot":
            self._apply_snapshot(m)
        elif kind == "reload" and "error" not in m:
            self._follow_reload()
        elif kind == "host_key":
            self._ask_host_key(m)
        elif kind == "host_key_answered":
            asking = self._asking.pop(m.get("id"), None)
            if asking is not None:  # another console answered: this dialog goes
                asking.cancel()

    # ------------------------------------------------------------------ host keys

    def _ask_host_key(self, m: dict[str, Any]) -> None:
        """The runner asks about an unknown SSH host key: this console's dialog (the
        screen's asker, as for an in-process run) answers it."""
        prompt = self.host_key_prompt
        ident = m.get("id")
        if prompt is None or not isinstance(ident, int) or ident in self._asking:
            return
        question = HostKeyQuestion(str(m["host"]), str(m["label"]), str(m["key_type"]),
                                   str(m["fingerprint"]), str(m["known_hosts"]))
        client = self.client

        async def ask() -> None:
            trusted = await prompt(question)
            self._asking.pop(ident, None)
            await client.answer_host_key(ident, trusted)

        task = asyncio.get_running_loop().create_task(ask())
        self._asking[ident] = task

    def _stop_asking(self) -> None:
        asking, self._asking = self._asking, {}
        for task in asking.values():
            task.cancel()

    def _apply_task(self, m: dict[str, Any]) -> None:
        task = self.tasks.get((m["step"], m["host"]))
        if task is None:
            return
        state = TaskState(m["state"])
        attempt = int(m["attempt"] or 0)
        if state is TaskState.RUNNING and (not task.attempts
                                           or task.attempts[-1].number < attempt):
            task.attempts.append(Attempt(attempt, m["time"], ""))
            task.started, task.ended = m["time"], None
        task.attempt = attempt
        task.exit_code = m["exit_code"]
        if task.attempts and state.finished and task.attempts[-1].ended is None:
            last = task.attempts[-1]
            last.ended, last.exit_code, last.state = m["time"], m["exit_code"], state
            last.reason = m["reason"]
        self.set_state(task, state, m["reason"])

    def _apply_action(self, m: dict[str, Any]) -> None:
        self._action_state(m)
        self.emit(ActionEvent(m["action"], m.get("step"), m.get("host"), m.get("user") or "?",
                              m.get("reason"), m.get("time") or self.clock()))

    def _action_state(self, m: dict[str, Any]) -> None:
        """What an operator action changed of the run's state (not in its task events)."""
        name, step, host, reason = m["action"], m.get("step"), m.get("host"), m.get("reason")
        if name == "breakpoint" and step is not None:
            (self.breakpoints.add if reason == "on" else self.breakpoints.discard)(step)
        elif name == "step_mode":
            self.step_mode = reason == "on"
        elif name == "exclude_host" and host is not None:
            self.excluded_hosts[host] = reason

    def _follow_reload(self) -> None:
        """The runner applied a change of the workflow file: apply the same file here."""
        from console.model.loader import WorkflowError, load_workflow

        if self.workflow.path is None:
            return
        try:
            super().reload(load_workflow(self.workflow.path))
        except (WorkflowError, OSError, ValueError) as exc:
            self._notice(f"the workflow changed but cannot be shown: {exc}", "warning")

    def reload(self, workflow: Workflow) -> ReloadEvent:
        """The console's own file watcher: the runner applies the change (and tells)."""
        return ReloadEvent([], [], [], self.workflow.digest or None, None, self.clock())

    # ------------------------------------------------------------------ actions out

    def _notice(self, text: str, severity: str) -> None:
        if self.on_notice is not None:
            self.on_notice(text, severity)

    def _send(self, action: Action) -> None:
        if self.read_only:
            raise ActionError("this console is read-only")
        task = asyncio.get_running_loop().create_task(self._sent(action))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _sent(self, action: Action) -> None:
        ack = await self.client.act(action)
        if not ack.ok:
            self._notice(ack.error or f"{action.action} refused", "error")

    def _task_action(self, name: str, step: str, host: str | None,
                     reason: str | None = None) -> None:
        refusal = self.refusal(name, step, host)
        if refusal is not None:
            raise ActionError(refusal)
        self._send(Action(name, step, host, reason))

    def approve(self, step: str, host: str | None = None) -> None:
        self._task_action("approve", step, host)

    def done(self, step: str, host: str | None = None) -> None:
        self._task_action("done", step, host)

    def retry(self, step: str, host: str | None = None) -> None:
        self._task_action("retry", step, host)

    def retry_downstream(self, step: str, host: str | None = None) -> None:
        self._task_action("retry_downstream", step, host)

    def deny(self, step: str, host: str | None = None, reason: str | None = None) -> None:
        self._task_action("deny", step, host, reason)

    def skip(self, step: str, host: str | None = None, reason: str | None = None) -> None:
        self._task_action("skip", step, host, reason)

    def mark_succeeded(self, step: str, host: str | None = None,
                       reason: str | None = None) -> None:
        self._task_action("mark_succeeded", step, host, reason)

    def mark_failed(self, step: str, host: str | None = None,
                    reason: str | None = None) -> None:
        self._task_action("mark_failed", step, host, reason)

    def cancel(self, step: str, host: str | None = None, reason: str | None = None) -> None:
        self._task_action("cancel", step, host, reason)

    def pause(self) -> None:
        if self.state is not RunState.RUNNING:
            raise ActionError(f"cannot pause: the run is {self.state}")
        self._send(Action("pause"))

    def resume(self) -> None:
        if self.state is not RunState.PAUSED:
            raise ActionError(f"cannot resume: the run is {self.state}")
        self._send(Action("resume"))

    def toggle_breakpoint(self, step: str) -> bool:
        if step not in self.workflow.steps:
            raise ActionError(f"cannot toggle breakpoint: unknown step '{step}'")
        self._send(Action("toggle_breakpoint", step))
        return step not in self.breakpoints

    def toggle_step_mode(self) -> bool:
        self._send(Action("toggle_step_mode"))
        return not self.step_mode

    def note(self, text: str, step: str | None = None, host: str | None = None) -> None:
        if not text.strip():
            raise ActionError("cannot add note: the note is empty")
        self._send(Action("note", step, host, text.strip()))

    def exclude_host(self, host: str, user: str | None = None,
                     reason: str | None = None) -> list[Any]:
        if host in self.excluded_hosts:
            raise ActionError(f"cannot exclude host '{host}': it is already excluded")
        self._send(Action("exclude_host", None, host, reason))
        return []

    def set_params(self, params: dict[str, Any]) -> None:
        raise ActionError("cannot change params: the run has started")

    def answer_quit(self, cancel: bool) -> None:
        if self.state.finished:
            raise ActionError(f"cannot quit: the run has already {self.state}")
        self._cancel_asked = cancel
        self._send(Action("cancel_run" if cancel else "stay"))

    # ------------------------------------------------------------------ leaving

    def detach(self) -> None:
        """Leave the run going: close the connection (``execute`` returns)."""
        if self.detached:
            return
        self.detached = True
        self._stop_asking()
        task = asyncio.get_running_loop().create_task(self.client.close())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def close(self) -> None:
        """Quit after "cancel the run": wait for the runner to end it; otherwise detach."""
        if not self._cancel_asked or self.state.finished:
            self.detach()

    def interrupt(self, reason: str = "stopped by Ctrl-C") -> None:
        """A signal to this console never touches the run: detach."""
        self.detach()

    def halt(self, reason: str) -> None:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


async def open_remote(socket: Path, *, read_only: bool = False) -> RemoteRun:
    """Connect to the live run at ``socket`` and build its mirror (the workflow is read
    from the file the run was started from)."""
    from console.model.loader import WorkflowError, load_workflow

    client = await connect(socket, read_only=read_only, host_keys=not read_only)
    path = client.snapshot()["run"].get("path")
    if path is None:
        await client.close()
        raise ConnectError(f"run {client.run_id} has no workflow file to show")
    try:
        workflow = await asyncio.to_thread(load_workflow, Path(path))
    except (WorkflowError, OSError) as exc:
        await client.close()
        raise ConnectError(f"run {client.run_id}: cannot read its workflow {path}: "
                           f"{exc}") from None
    return RemoteRun(workflow, client, socket, read_only=read_only)
