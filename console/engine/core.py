"""The state of one run and its events: what every part of the engine is handed.

:class:`RunCore` holds the run's tasks (through its :class:`~console.engine.graph.RunGraph`),
its options, flags and masking, the scheduler's books (:class:`Agenda`) and the executors.
Its four event methods are the only way state changes: :meth:`RunCore.set_state` (a task),
:meth:`RunCore.set_run_state`, :meth:`RunCore.emit_action` (an operator action) and
:meth:`RunCore.emit` (any event). The scheduler, the attempts, polls and rollbacks are given
the core; :class:`console.engine.run.Run` is the core plus the operator actions.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from console.engine.events import ActionEvent, Event, RunEvent, RunState, TaskEvent, TaskState
from console.engine.graph import RunGraph
from console.engine.outputs import Outputs, StepsView
from console.engine.shown import derived_secrets, shown_command
from console.engine.status import StepStatus
from console.engine.task import Attempt, Task
from console.executors.base import Executor, HostKeyAsker, HostKeyQuestion
from console.model import masking, templating
from console.model.rollout_rules import refuse_steps_between
from console.model.workflow import Host, Step, Workflow

__all__ = ["Agenda", "Approval", "RunCore", "RunOptions", "new_run_id"]

S = TaskState
T = TypeVar("T")

Approval = Literal["wait", "auto", "fail"]


@dataclass
class RunOptions:
    params: dict[str, Any] = field(default_factory=dict)
    """Resolved parameter values."""
    secrets: dict[str, str] = field(default_factory=dict)
    """Resolved secret values."""
    limit: tuple[str, ...] = ()
    """Host or group names (globs allowed) that remote steps are narrowed to."""
    approval: Approval = "wait"
    """Gates and manual steps: wait for an operator, approve them (--yes), or fail them."""
    step_mode: bool = False
    start_at: str | None = None
    dry_run: bool = False
    run_id: str | None = None
    user: str | None = None
    keep_alive: bool = False
    """Stay alive after every task has finished, so an operator can retry (the console)."""
    accept_new_host_keys: bool = False
    """Trust and record unknown SSH host keys (a changed key is always refused)."""


def new_run_id(now: float | None = None) -> str:
    """Short, unique and sortable by time: base-36 milliseconds plus 4 random characters."""
    millis = int((time.time() if now is None else now) * 1000)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while millis:
        millis, rem = divmod(millis, 36)
        out = digits[rem] + out
    # os.urandom, not the secrets module: an id needs no cryptography, start-up time counts
    return out.rjust(9, "0") + "".join(digits[byte % 36] for byte in os.urandom(4))


@dataclass
class Agenda:
    """The scheduler's books, kept up to date by every task state change."""

    status: dict[str, StepStatus] = field(default_factory=dict)
    """Each step's status as its dependents last saw it."""
    dirty_steps: set[str] = field(default_factory=set)
    """Steps whose status must be recomputed."""
    candidates: dict[tuple[str, str], Task] = field(default_factory=dict)
    """Tasks whose readiness must be re-evaluated."""
    ready: dict[tuple[str, str], Task] = field(default_factory=dict)
    """Tasks that may start as soon as concurrency allows."""
    unfinished: int = 0
    rollout_changed: dict[tuple[str, str], None] = field(default_factory=dict)
    running: int = 0
    running_by_step: dict[str, int] = field(default_factory=dict)


class RunCore:
    def __init__(self, workflow: Workflow, options: RunOptions | None = None,
                 executor_for: Callable[[Host], Executor] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        refuse_steps_between(workflow)  # it would hang (console/model/rollout_rules.py)
        self.workflow = workflow
        self.options = options or RunOptions()
        self.clock = clock
        self.id = self.options.run_id or new_run_id(clock())
        self.user = self.options.user or _login_name()
        self.state = RunState.RUNNING
        self.started: float | None = None
        self.ended: float | None = None
        self.step_mode = self.options.step_mode
        self.breakpoints: set[str] = set()
        self._secrets_changed()
        self.host_key_prompt: HostKeyAsker | None = None
        """Who answers an unknown SSH host key (the console's dialog); None refuses it."""
        self._login_users: dict[str, tuple[Host, str]] = {}
        self.refused_host_keys: set[tuple[str, str]] = set()
        """(host, fingerprint) the operator refused in this run: not asked again for the
        host's other tasks; a retry of a task on that host asks again."""
        self._executor_for = executor_for or self._default_executor
        self._ssh_factory: Callable[[Host], Executor] | None = None
        self._executors: dict[str, Executor] = {}
        self._retired: list[Executor] = []
        self._subscribers: list[Callable[[Event], None]] = []
        self.wake = asyncio.Event()
        """Set whenever something changed: the scheduler makes a pass."""
        self.started_hooks: list[Callable[[Task, Attempt], None]] = []
        """Called once an attempt's process has started (its identity is known)."""
        self.closing = False
        self.halted: str | None = None
        """Why nothing new may start (the history cannot be written); see ``Run.halt``."""
        self.interrupted = False
        self.interrupting: dict[tuple[str, str], str] = {}
        """Tasks stopped by ``Run.interrupt``: they end ``interrupted``, not cancelled."""
        self.executing = False
        self.restored = False
        self.cancelled_by: str | None = None
        """The operator who cancelled the whole run (it then ends ``cancelled``)."""
        self.excluded_hosts: dict[str, str | None] = {}
        """Excluded host -> the operator's reason (console/engine/exclusion.py)."""
        self.rollouts_failed: set[str] = set()
        """Rollouts whose ``on_failure`` has acted (past their max_fail)."""
        self.group: asyncio.TaskGroup | None = None
        """Owns every task runner while ``Run.execute`` runs (see :meth:`spawn`)."""
        self._background: set[asyncio.Task[Any]] = set()
        self.removed_steps: set[str] = set()
        """Steps a reload removed from the file that stay because they had started."""
        self.departed_hosts: set[str] = set()
        """Hosts a reload took out of the file while tasks had run there: kept (with the
        tasks that ran) and targeted by no step."""
        self.changed_steps: set[str] = set()
        """Steps whose definition changed on disk after some of their tasks started."""
        self.agenda = Agenda()
        self._base_context: dict[str, Any] | None = None
        self.graph = RunGraph.build(workflow, self.options.limit, {}, self.removed_steps)
        self._reassess()

    def reindex(self, workflow: Workflow) -> None:
        """(Re)build the graph of ``workflow``, keeping existing tasks; every step is
        re-assessed by the next scheduler pass."""
        self.workflow = workflow
        self.graph = RunGraph.build(workflow, self.options.limit, self.graph.tasks,
                                    self.removed_steps, self.departed_hosts)
        self._reassess()

    def _reassess(self) -> None:
        graph, agenda, workflow = self.graph, self.agenda, self.workflow
        for sid in graph.order:
            agenda.running_by_step.setdefault(sid, 0)
        agenda.status = {}
        agenda.rollout_changed = {}
        agenda.dirty_steps = set(workflow.steps)
        agenda.candidates = dict(graph.tasks)
        agenda.unfinished = sum(1 for t in graph.tasks.values() if not t.state.finished)
        agenda.ready = {key: task for key, task in agenda.ready.items() if key in graph.tasks}
        self._base_context = None

    def _secrets_changed(self) -> None:
        secrets = self.options.secrets
        self._derived: set[str] = set()
        """Values the templates made out of secrets, masked like them."""
        self.masker = masking.Masker(secrets.values())
        # every declared secret: a past run or --read-only resolves none, and still shows
        # its commands with *** (a placeholder needs no value)
        self.placeholders = masking.Placeholders({*self.workflow.secrets, *secrets})
        self.secret_warnings = masking.short_secret_warnings(secrets)
        """Secrets masked only as whole words (too short): shown at run start."""

    def mask_derived(self, task: Task, sources: list[tuple[str, bool]],
                     values: list[str]) -> None:
        """Mask, from now on, what the templates of this task made of a secret (e.g.
        ``{{ secrets.pw | upper }}``) wherever it appears, as the secret itself."""
        derived = derived_secrets(sources, self.context(task), self.placeholders, values)
        new = {v for v in derived if self.masker.mask(v) != masking.MASK} - self._derived
        if new:
            self._derived |= new
            self.masker = masking.Masker([*self.options.secrets.values(), *self._derived])

    # ------------------------------------------------------------------ queries

    @property
    def tasks(self) -> dict[tuple[str, str], Task]:
        return self.graph.tasks

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` synchronously for every event; returns the unsubscriber."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def tasks_in_order(self) -> list[Task]:
        return self.graph.tasks_in_order()

    def tasks_of(self, step: str) -> list[Task]:
        return self.graph.tasks_of(step)

    def step_status(self, step: str) -> StepStatus:
        """``done`` (dependents may start), ``bad`` (dependents are blocked) or ``wait``."""
        return self.graph.step_status(step)

    @property
    def settled(self) -> bool:
        """Nothing runs, waits for an operator, or can still start."""
        return self.agenda.unfinished == 0

    def is_excluded(self, host: str) -> bool:
        return host in self.excluded_hosts

    # ------------------------------------------------------------------ events

    def emit(self, event: Event) -> None:
        for callback in self._subscribers:
            callback(event)

    def set_state(self, task: Task, state: TaskState, reason: str | None = None) -> None:
        """The one way a task's state changes: books kept, a TaskEvent emitted."""
        if reason is not None and self.masker:
            reason = self.masker.mask(reason)
        agenda = self.agenda
        if task.state.finished != state.finished:
            agenda.unfinished += 1 if task.state.finished else -1
        task.state = state
        task.reason = reason
        if state.finished and state is not S.BLOCKED and task.started is not None:
            task.ended = self.clock()
        agenda.dirty_steps.add(task.step)
        plan = self.graph.rollout_of.get(task.step)
        if plan is not None:
            self.graph.batch_counts[plan.rollout.name].update(
                task.key, self.graph.task_status(task))
            agenda.rollout_changed[task.key] = None
        if state is S.PENDING:
            agenda.candidates[task.key] = task
        elif task.key in agenda.ready:
            del agenda.ready[task.key]
        self.emit(TaskEvent(task.step, task.host, state, task.attempt, task.exit_code,
                            reason, self.clock()))
        self.wake.set()

    def set_run_state(self, state: RunState) -> None:
        if state is self.state and self.started is not None:
            return
        self.state = state
        self.ended = self.clock() if state.finished else None  # a re-opened run runs on
        self.emit(RunEvent(self.id, state, self.clock()))

    def emit_action(self, action: str, step: str | None = None, host: str | None = None,
                    reason: str | None = None) -> None:
        """Record an operator action (or the run's own, e.g. ``--yes``) as an event."""
        if reason is not None and self.masker:
            reason = self.masker.mask(reason)
        self.emit(ActionEvent(action, step, host, self.user, reason, self.clock()))

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start ``coro`` owned by the run: in the task group of ``Run.execute`` while it
        runs (so it is awaited, and cancelled with it), else kept until it is done."""
        if self.group is not None:
            try:
                return self.group.create_task(coro)
            except RuntimeError:  # the group is finishing: keep it beside
                pass
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # ------------------------------------------------------------------ templates

    def context(self, task: Task) -> dict[str, Any]:
        """The template context of ``task``: params, secrets, run, workflow, host, steps."""
        if self._base_context is None:
            self._base_context = {
                "params": dict(self.options.params),
                "secrets": dict(self.options.secrets),
                "run": {"id": self.id, "started": self.started},
                "workflow": {"name": self.workflow.name},
            }
        host = self.workflow.host(task.host)
        return {
            **self._base_context,
            "host": templating.host_context(self.workflow, host, self._login_user(host)),
            "steps": StepsView(self.workflow.steps, task.host, self._outputs_of),
        }

    def _login_user(self, host: Host) -> str | None:
        """The user SSH logs in to ``host`` as when no workflow setting names it (then
        ssh_config's ``User`` decides); None for a local host or a user the workflow sets."""
        if host.is_local or host.user or self.workflow.ssh.user:
            return None
        known = self._login_users.get(host.name)
        if known is None or known[0] is not host:  # a reload makes new hosts
            from console.executors.ssh_config import login_user

            known = self._login_users[host.name] = (host, login_user(host, self.workflow.ssh))
        return known[1]

    def _outputs_of(self, step: str) -> dict[str, Outputs]:
        return {t.host: t.outputs for t in self.graph.by_step.get(step, ())}

    def shown(self, task: Task, step: Step, rendered: str | None = None) -> str:
        """The command as shown and stored: rendered with placeholders, masked."""
        source = step.run or ""
        context = self.context(task) if templating.needs_render(source) else {}
        return shown_command(source, context, self.placeholders, self.masker, rendered)

    # ------------------------------------------------------------------ executors

    def _default_executor(self, host: Host) -> Executor:
        """Local tasks run here; remote hosts share one SSH context (asyncssh is imported
        only when a workflow has remote steps: it costs 0.2 s)."""
        if host.is_local:
            from console.executors.local import LocalExecutor

            return LocalExecutor()
        if self._ssh_factory is None:
            from console.executors.ssh import ssh_executor_factory

            self._ssh_factory = ssh_executor_factory(
                self.workflow, accept_new_host_keys=self.options.accept_new_host_keys,
                ask_host_key=self.ask_host_key)
        return self._ssh_factory(host)

    def executor(self, host: str) -> Executor:
        executor = self._executors.get(host)
        if executor is None:
            executor = self._executors[host] = self._executor_for(self.workflow.host(host))
        return executor

    async def close_executors(self) -> None:
        executors, self._executors = self._executors, {}
        retired, self._retired = self._retired, []
        for executor in [*retired, *executors.values()]:
            await executor.close()

    def redefine_hosts(self, workflow: Workflow) -> None:
        """Hosts whose definition ``workflow`` changes get a new executor for their next
        task (a new address, user or key means a new connection; a new ``[ssh]`` section,
        for every remote host); the old one finishes what it runs and is closed with the
        others."""
        ssh_changed = workflow.ssh != self.workflow.ssh
        if ssh_changed:
            self._ssh_factory = None
        for name in list(self._executors):
            host = workflow.hosts.get(name)
            if host is not None and (self.workflow.hosts.get(name) != host
                                     or (ssh_changed and not host.is_local)):
                self._retired.append(self._executors.pop(name))

    async def ask_host_key(self, question: HostKeyQuestion) -> bool:
        """An SSH host key no known_hosts vouches for: ask :attr:`host_key_prompt` (the
        console's dialog). The answer is an operator action (``trust_host_key`` or
        ``refuse_host_key``) on that host; with nobody to ask the key is refused."""
        prompt = self.host_key_prompt
        refusal = (question.host, question.fingerprint)
        if prompt is None or self.closing or refusal in self.refused_host_keys:
            return False
        trusted = await prompt(question)
        what = f"{question.key_type} {question.fingerprint} of {question.label}"
        if trusted:
            self.emit_action("trust_host_key", None, question.host,
                             f"{what}, recorded in {question.known_hosts}")
        else:
            self.refused_host_keys.add(refusal)
            self.emit_action("refuse_host_key", None, question.host, what)
        return trusted


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry, no LOGNAME: still record something
        return str(os.getuid())
