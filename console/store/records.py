"""What the store gives back when it is read: runs, tasks, attempts, actions, events.

Only ``baton runs`` / ``show`` / ``resume`` and the console's history read them, so they
live apart from the writing side: a run that only records never builds these classes
(dataclass creation is a noticeable share of start-up).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from console.engine.task import task_label


def _span(started: float | None, ended: float | None) -> float | None:
    """Seconds between two stored times, None while either is missing."""
    return None if started is None or ended is None else ended - started


@dataclass(frozen=True)
class RunSummary:
    id: str
    workflow: str
    path: str | None
    state: str
    user: str
    started: float | None
    ended: float | None

    @property
    def duration(self) -> float | None:
        return _span(self.started, self.ended)


@dataclass(frozen=True)
class RunRecord(RunSummary):
    digest: str | None
    params: dict[str, Any]
    """Secrets masked."""
    machine: str | None
    pid: int | None
    options: dict[str, Any]


@dataclass(frozen=True)
class TaskRecord:
    step: str
    host: str
    state: str
    attempt: int
    exit_code: int | None
    reason: str | None
    started: float | None
    ended: float | None
    outputs: dict[str, Any] | None
    """``{"status", "exit_code", "stdout"}`` (stdout: last 64 KiB), or None if none yet."""

    @property
    def label(self) -> str:
        return task_label(self.step, self.host)

    @property
    def duration(self) -> float | None:
        return _span(self.started, self.ended)


@dataclass(frozen=True)
class AttemptRecord:
    step: str
    host: str
    number: int
    started: float | None
    ended: float | None
    exit_code: int | None
    signal: int | None
    state: str | None
    reason: str | None
    command: str | None
    """Secrets masked."""
    digest: str | None

    @property
    def duration(self) -> float | None:
        return _span(self.started, self.ended)


@dataclass(frozen=True)
class ActionRecord:
    time: float
    user: str
    action: str
    step: str | None
    host: str | None
    reason: str | None


@dataclass(frozen=True)
class EventRecord:
    seq: int
    time: float
    type: str
    payload: dict[str, Any]


@dataclass
class StoredRun:
    """Everything the store knows about one run: enough to show it and to resume it."""

    run: RunRecord
    tasks: list[TaskRecord]
    """In run order (dependency order, then host order)."""
    attempts: list[AttemptRecord]
    actions: list[ActionRecord]
    events: list[EventRecord]
    definitions: dict[str, str] = field(default_factory=dict)
    """Workflow text by digest, for every definition version the run used."""

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def definition(self) -> str | None:
        """The text of the workflow the run started with."""
        return self.definitions.get(self.run.digest or "")

    def last_definition(self) -> tuple[str | None, str | None]:
        """(digest, text) of the latest definition the run accepted: the last hot reload
        applied to it (whether or not an attempt ran with it since), else the newest one an
        attempt ran with, else the one it started with."""
        seen: list[tuple[float, int, str]] = []
        for a in self.attempts:
            if a.digest in self.definitions and a.started:
                seen.append((a.started, 0, a.digest))
        for e in self.events:
            digest = e.payload.get("digest") if e.type == "reload" else None
            if digest in self.definitions:
                seen.append((e.time, 1, digest))
        for action in self.actions:
            for prefix in reload_prefixes([action]):
                found = [d for d in self.definitions if d.startswith(prefix)]
                if found:
                    seen.append((action.time, 1, found[0]))
        digest = max(seen)[2] if seen else self.run.digest
        return digest, self.definitions.get(digest or "")

    def attempts_of(self, step: str, host: str) -> list[AttemptRecord]:
        return [a for a in self.attempts if a.step == step and a.host == host]

    @property
    def notes(self) -> list[ActionRecord]:
        return [a for a in self.actions if a.action == "note"]


_RELOAD_DIGEST = re.compile(r"\(definition ([0-9a-f]{6,})\)$")


def reload_prefixes(actions: Iterable[ActionRecord]) -> list[str]:
    """The definition digest prefixes named by accepted ``reload`` actions, in order."""
    out = []
    for action in actions:
        if action.action == "reload" and action.reason:
            match = _RELOAD_DIGEST.search(action.reason)
            if match:
                out.append(match.group(1))
    return out
