"""The workflow model: frozen dataclasses built by the loader from a TOML file.

Nothing here does I/O. Mappings are plain dicts for convenience; treat them as read-only.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

DEFAULT_LOG_LIMIT = 256 * 1024**2
"""Output kept per attempt's log unless ``[workflow] log_limit`` says otherwise."""
MIN_LOG_LIMIT = 4096

LOCAL = "local"
"""The host name of the machine baton runs on. Local steps run on this host."""

ALL = "all"
"""The implicit group holding every declared host."""

ParamType = Literal["string", "int", "float", "bool", "choice"]
SecretSource = Literal["env", "file", "command"]


@dataclass(frozen=True)
class Param:
    name: str
    type: ParamType = "string"
    default: Any = None
    required: bool = False
    choices: tuple[Any, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Secret:
    name: str
    source: SecretSource
    value: str
    """The env variable name, file path or shell command (not the secret itself)."""
    optional: bool = False
    """An unset environment variable or an empty value is allowed (it renders as "")."""


@dataclass(frozen=True)
class SSHOptions:
    """`[ssh]` defaults; every field may be overridden per host."""

    user: str | None = None
    port: int | None = None
    """None: not written (``~/.ssh/config``'s Port, else 22); a written value always wins."""
    identity: str | None = None
    known_hosts: str | None = None
    connect_timeout: float = 10.0


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    groups: tuple[str, ...] = ()
    port: int | None = None
    user: str | None = None
    identity: str | None = None
    known_hosts: str | None = None
    jump: str | None = None
    forward_agent: bool = False
    vars: dict[str, Any] = field(default_factory=dict)
    connection: str = "ssh"
    """"ssh", or "local" (run on this machine: Ansible's ``ansible_connection=local``)."""
    proxy_command: str | None = None
    """OpenSSH ProxyCommand (``%h``, ``%p``, ``%r`` expanded) instead of a direct connection."""
    origin: Mapping[str, str] = field(default_factory=dict, compare=False)
    """Where each connection value came from (``address`` -> ``hosts.ini:4 (ansible_host)``)
    and each imported variable (``vars.NAME`` -> ``group_vars/web.yml:3``); a field not
    listed came from the workflow (or is the default)."""
    notes: tuple[str, ...] = field(default=(), compare=False)
    """What the import says about this host (``ansible_become`` ignored, …)."""

    @property
    def is_local(self) -> bool:
        return self.name == LOCAL or self.connection == "local"


LOCAL_HOST = Host(name=LOCAL, address="localhost")


@dataclass(frozen=True)
class Step:
    id: str
    name: str
    description: str = ""
    run: str | None = None
    on: tuple[str, ...] = (LOCAL,)
    needs: tuple[str, ...] = ()
    when: str | None = None
    timeout: float | None = None
    retries: int = 0
    retry_delay: float = 0.0
    retry_backoff: float = 1.0
    confirm: str | None = None
    """Gate prompt text; ``confirm = true`` becomes a default prompt. None: no gate."""
    dangerous: bool = False
    continue_on_error: bool = False
    serial: int | str | None = None
    """Max hosts at once: an int, or a percentage string like "25%". None: no limit."""
    max_fail: int | None = None
    """Host failures tolerated. None: every host is tried and any failure fails the step."""
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    shell: str = "/bin/sh"
    undo: str | None = None
    """How to reverse this step on a host (a template quoted like ``run``); a rollback runs it."""
    undo_on_failure: bool = False
    """A task that failed after it started is undone too (it may have changed something)."""
    poll: float | None = None
    """Seconds between polls: ``run`` re-runs until it exits 0 or ``within`` passes."""
    within: float | None = None
    """How long polling goes on (from the first poll) before the task fails."""
    delay: float = 0.0
    """Seconds to wait before the first poll."""
    delegate: str | None = None
    """Host name (or ``local``) the command runs on instead of the task's own host."""

    @property
    def manual(self) -> bool:
        """A step without ``run`` waits for the operator to mark it done."""
        return self.run is None

    def command_host(self, host: str) -> str:
        """Where the command of this step's task on ``host`` runs: its ``delegate``, if any.
        The task still belongs to ``host`` (order, rollout batch, ``{{ host }}``, undo)."""
        return self.delegate or host

    @property
    def gated(self) -> bool:
        """Approval is needed before every task of this step starts."""
        return self.confirm is not None or self.dangerous


def upstream_of(steps: Mapping[str, Step], step_id: str) -> set[str]:
    """Every step that ``step_id`` transitively needs (unknown ids are ignored)."""
    seen: set[str] = set()
    stack = list(steps[step_id].needs)
    while stack:
        current = stack.pop()
        if current in seen or current not in steps:
            continue
        seen.add(current)
        stack.extend(steps[current].needs)
    return seen


BatchSize = int | str
"""A rollout batch size: a host count or a percentage string like "50%"."""


@dataclass(frozen=True)
class Rollout:
    name: str
    steps: tuple[str, ...]
    serial: tuple[BatchSize, ...] = ("100%",)
    max_fail: int = 0
    pause_between: bool = False
    on_failure: str = "stop"
    """Past max_fail: ``stop`` (block the rest), ``pause`` the run, or ``rollback`` every
    host the rollout touched (SPEC section 5)."""


@dataclass(frozen=True)
class Workflow:
    name: str
    path: Path | None = None
    description: str = ""
    concurrency: int = 16
    inventory: str | None = None
    log_limit: int = DEFAULT_LOG_LIMIT
    """Bytes of output kept per attempt's log (head and tail; the middle is dropped)."""
    exclusive: bool = False
    """Refuse to start a run while another run of this workflow is live on this machine."""
    params: dict[str, Param] = field(default_factory=dict)
    secrets: dict[str, Secret] = field(default_factory=dict)
    ssh: SSHOptions = field(default_factory=SSHOptions)
    hosts: dict[str, Host] = field(default_factory=dict)
    steps: dict[str, Step] = field(default_factory=dict)
    """Steps in file order."""
    rollouts: dict[str, Rollout] = field(default_factory=dict)
    source: str = ""
    """The TOML text this workflow was loaded from."""
    digest: str = ""
    """sha256 of ``source``: the definition hash recorded with every attempt."""

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Group name -> host names, including the implicit ``all`` group."""
        out: dict[str, list[str]] = {}
        for host in self.hosts.values():
            for group in host.groups:
                out.setdefault(group, []).append(host.name)
        out[ALL] = list(self.hosts)
        return {name: tuple(members) for name, members in out.items()}

    def resolve_targets(self, on: tuple[str, ...]) -> tuple[str, ...]:
        """Host names a step runs on, in declaration order, without duplicates."""
        groups = self.groups()
        names: list[str] = []
        for target in on:
            if target == LOCAL or target in self.hosts:
                members: tuple[str, ...] = (target,)
            else:
                members = groups.get(target, ())
            for name in members:
                if name not in names:
                    names.append(name)
        return tuple(names)

    def host(self, name: str) -> Host:
        return LOCAL_HOST if name == LOCAL else self.hosts[name]

    def limit_matches(self, pattern: str) -> set[str]:
        """Host names one ``--limit`` pattern selects: hosts and groups whose name matches
        it (``fnmatch`` globs, case-sensitive), a group standing for its members."""
        selected = {name for name in (LOCAL, *self.hosts) if fnmatch.fnmatchcase(name, pattern)}
        for group, members in self.groups().items():
            if fnmatch.fnmatchcase(group, pattern):
                selected.update(members)
        return selected

    def hosts_for(self, step: Step, limit: Iterable[str] = ()) -> tuple[str, ...]:
        """The hosts ``step`` runs on, in order, narrowed to the ``--limit`` patterns when
        there are any (the run's tasks, ``baton plan``); local steps are never limited."""
        targets = self.resolve_targets(step.on)
        patterns = tuple(limit)
        if not patterns:
            return targets
        allowed: set[str] = {LOCAL}
        for pattern in patterns:
            allowed |= self.limit_matches(pattern)
        return tuple(name for name in targets if name in allowed)

    def rollout_of(self, step_id: str) -> Rollout | None:
        for rollout in self.rollouts.values():
            if step_id in rollout.steps:
                return rollout
        return None

    def upstream(self, step_id: str) -> set[str]:
        """Every step that ``step_id`` transitively needs."""
        return upstream_of(self.steps, step_id)

    def downstream(self, step_id: str) -> set[str]:
        """Every step that transitively needs ``step_id``."""
        dependents: dict[str, list[str]] = {}
        for step in self.steps.values():
            for need in step.needs:
                dependents.setdefault(need, []).append(step.id)
        seen: set[str] = set()
        stack = list(dependents.get(step_id, ()))
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            stack.extend(dependents.get(current, ()))
        return seen

    def order(self) -> list[str]:
        """Step ids in dependency order (stable: file order among ready steps)."""
        return step_order(self.steps)


_orders: dict[int, tuple[tuple[Step, ...], list[str]]] = {}


def step_order(steps: Mapping[str, Step]) -> list[str]:
    """:func:`dependency_order` of ``steps``, remembered for the last few step sets: the
    loader's cycle check and the run's scheduler ask for the same one."""
    members = tuple(steps.values())
    hit = _orders.get(id(steps))
    if hit is not None and hit[0] == members:  # the same frozen steps: an identity check each
        return list(hit[1])
    order = dependency_order({s.id: s.needs for s in members})
    if len(_orders) >= 8:
        del _orders[next(iter(_orders))]
    _orders[id(steps)] = (members, order)
    return list(order)


def dependency_order(needs: Mapping[str, Iterable[str]]) -> list[str]:
    """Ids in waves: those whose needs are all met, in mapping order, then the next wave.

    Needs that are not keys of ``needs`` are ignored. Ids on or behind a cycle are left
    out, so a result shorter than ``needs`` means there is a cycle. (graphlib gives the
    same order, at several times the cost on a 1,000-step graph.)
    """
    position = {sid: i for i, sid in enumerate(needs)}
    waiting = dict.fromkeys(needs, 0)
    dependents: dict[str, list[str]] = {sid: [] for sid in needs}
    for sid, wanted in needs.items():
        for need in wanted:
            if need in position:
                waiting[sid] += 1
                dependents[need].append(sid)
    wave = [sid for sid, count in waiting.items() if not count]
    out: list[str] = []
    while wave:
        out.extend(wave)
        following = []
        for sid in wave:
            for dependent in dependents[sid]:
                waiting[dependent] -= 1
                if not waiting[dependent]:
                    following.append(dependent)
        wave = sorted(following, key=position.__getitem__)
    return out
