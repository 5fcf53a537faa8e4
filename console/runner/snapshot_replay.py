"""What a console replays from a snapshot before the events that follow it
(docs/attach-protocol.md): a resumed run's timeline from before the resume (``past``)
with each stored attempt's tail lines right after its start, as the in-process resume
replays a stored run (:func:`console.store.replay.stored_events`); then the tail lines of
attempts the past does not hold (:func:`tail_events`). The snapshot's ``actions`` (this
process's) follow, applied by the mirror."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from console.engine.events import ActionEvent, Event, RunEvent, RunState, TaskEvent, TaskState
from console.runner.tail_events import tail_events

Key = tuple[str, str]


def snapshot_events(snap: dict[str, Any], attempt_of: Callable[[str, str], int]
                    ) -> Iterator[Event]:
    """The events of ``snap``'s ``past`` and ``logs``; ``attempt_of(step, host)``: the
    task's current attempt (for lines that carry none)."""
    tails: dict[Key, list[dict[str, Any]]] = {
        (e["step"], e["host"]): list(e["lines"]) for e in snap.get("logs", ())}
    started: dict[Key, set[int]] = {}
    past = snap.get("past") or []
    omitted = snap.get("past_omitted") or 0
    if omitted and past:
        yield ActionEvent("omitted", None, None, "", f"{omitted:,} earlier timeline "
                          f"entries (baton show {snap['run']['id']} has them)",
                          float(past[0].get("time") or 0.0))
    for entry in past:
        event = _event(entry)
        if event is None:
            continue
        yield event
        if type(event) is TaskEvent and event.state is TaskState.RUNNING and event.attempt:
            key = (event.step, event.host)
            started.setdefault(key, set()).add(event.attempt)
            lines = tails.get(key)
            if lines:
                own = [x for x in lines if x.get("attempt") == event.attempt]
                tails[key] = [x for x in lines if x.get("attempt") != event.attempt]
                yield from _lines(key, own, event.attempt, started)
    for key, lines in tails.items():
        yield from _lines(key, lines, attempt_of(*key), started)


def _lines(key: Key, lines: list[dict[str, Any]], current: int,
           started: dict[Key, set[int]]) -> Iterator[Event]:
    """The tail's events, but for the start of an attempt the past already showed."""
    shown = started.get(key, set())
    for event in tail_events(key[0], key[1], lines, current):
        if type(event) is TaskEvent and event.attempt in shown:
            continue
        yield event


def _event(m: dict[str, Any]) -> Event | None:
    """One ``past`` entry as the engine event it was (None: a kind it does not hold)."""
    try:
        kind, when = m["type"], float(m.get("time") or 0.0)
        if kind == "task":
            return TaskEvent(str(m["step"]), str(m["host"]), TaskState(m["state"]),
                             int(m.get("attempt") or 0), m.get("exit_code"), m.get("reason"),
                             when)
        if kind == "action":
            return ActionEvent(str(m["action"]), m.get("step"), m.get("host"),
                               str(m.get("user") or "?"), m.get("reason"), when)
        if kind == "run":
            return RunEvent(str(m.get("run_id") or ""), RunState(m["state"]), when)
    except (KeyError, ValueError, TypeError):
        return None
    return None
