"""The timeline a resumed run had before this process started, for the snapshot's ``past``
(docs/attach-protocol.md): a console attached to a resumed run shows the run, task and
operator-action entries from before the resume, as the in-process resume replays them
(:func:`console.store.replay.stored_events`).

Read once from the history when the serving process starts (before it records anything
of its own), masked as stored and masked again with the run's masker. Bounded: the last
:data:`PAST_ENTRIES` entries, and every operator action before them up to
:data:`PAST_ACTIONS` (an incident's record of who did what outlives its task churn);
``omitted`` counts what is left out.

:class:`LiveTimeline` keeps the same kind of entries for this process (its ``run`` and
``task`` events, as they are emitted) for the snapshot's ``timeline``, so a console that
attaches late shows what the first one saw live; the operator actions stay in the
snapshot's ``actions``, each entry says how many of them came before it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from console.engine.events import Event, RunEvent, TaskEvent

if TYPE_CHECKING:
    from console.engine.run import Run
    from console.store.records import StoredRun

PAST_ENTRIES = 20_000
"""At most this many of the latest timeline entries from before the resume (~3 MB)."""

PAST_ACTIONS = 5_000
"""Operator actions older than those entries kept as well, at most this many (newest)."""


@dataclass(slots=True)
class PastTimeline:
    """What a snapshot carries of the timeline from before this process."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    """Oldest first, each an event as the protocol sends it (``run``, ``task``,
    ``action``; a stored reload is an ``action`` named ``reload``, as the replay shows it)."""
    omitted: int = 0
    """Entries from before the resume left out by the bound."""


def past_timeline(run: Run, stored: StoredRun) -> PastTimeline:
    """The timeline ``stored`` (the history of ``run`` before this process) holds."""
    from console.store.replay import stored_events

    mask = run.masker.mask
    every: list[dict[str, Any]] = []
    for event in stored_events(stored, {}):
        for entry in event.to_dicts():
            if entry["type"] == "log":
                continue
            for key in ("reason", "user"):
                if isinstance(entry.get(key), str):
                    entry[key] = mask(entry[key])
            every.append(entry)
    return bounded(every)


def bounded(every: list[dict[str, Any]], entries: int = PAST_ENTRIES,
            actions: int = PAST_ACTIONS) -> PastTimeline:
    """The last ``entries`` of ``every`` and up to ``actions`` operator actions before."""
    cut = max(0, len(every) - entries)
    older = [e for e in every[:cut] if e["type"] == "action"][-actions:] if actions else []
    return PastTimeline(older + every[cut:], cut - len(older))


class LiveTimeline:
    """This process's ``run`` and ``task`` events, for the snapshot's ``timeline``: the
    last ``entries`` (:data:`PAST_ENTRIES`, the bound of ``past``), ``omitted`` counting
    the older ones left out. Each entry is the event as the protocol sends it, plus
    ``actions_before``: how many of this process's operator actions (the snapshot's
    ``actions``) came before it."""

    def __init__(self, entries: int = PAST_ENTRIES) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=entries)
        self.omitted = 0

    def add(self, event: Event, actions_before: int) -> None:
        """Keep ``event`` if it is a run or task event."""
        if type(event) is not TaskEvent and type(event) is not RunEvent:
            return
        for entry in event.to_dicts():
            if len(self.entries) == self.entries.maxlen:
                self.omitted += 1
            entry["actions_before"] = actions_before
            self.entries.append(entry)
