"""What a console replays from a snapshot before the events that follow it
(docs/attach-protocol.md): a resumed run's timeline from before the resume (``past``)
with each stored attempt's tail lines right after its start, as the in-process resume
replays a stored run (:func:`console.store.replay.stored_events`); then this process's
run and task events (``timeline``) with its operator actions (``actions``) where they came
among them, again each attempt's tail lines after its start; then the tail lines of
attempts neither holds (:func:`tail_events`); then the actions after the last of those
events (all of them from a runner older than ``timeline``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from console.engine.events import ActionEvent, Event, RunEvent, RunState, TaskEvent, TaskState
from console.runner.tail_events import tail_events

Key = tuple[str, str]


def snapshot_events(snap: dict[str, Any], attempt_of: Callable[[str, str], int]
                    ) -> Iterator[Event]:
    """The events of ``snap``'s ``past``, ``timeline`` (with ``actions``) and ``logs``;
    ``attempt_of(step, host)``: the task's current attempt (for lines that carry none)."""
    tails: dict[Key, list[dict[str, Any]]] = {
        (e["step"], e["host"]): list(e["lines"]) for e in snap.get("logs", ())}
    started: dict[Key, set[int]] = {}
    run_id = snap["run"]["id"]
    past = snap.get("past") or []
    yield from _omitted(snap.get("past_omitted") or 0, past, run_id)
    for entry in past:
        yield from _with_lines(_event(entry), tails, started)
    # this process's: its run and task events, its actions where they came among them
    actions = list(snap.get("actions", ()))
    timeline = snap.get("timeline") or []
    yield from _omitted(snap.get("timeline_omitted") or 0, timeline, run_id)
    done = 0
    for entry in timeline:
        before = entry.get("actions_before")
        upto = min(before, len(actions)) if isinstance(before, int) else done
        for action in actions[done:upto]:
            yield from _with_lines(_event(action), tails, started)
        done = max(done, upto)
        yield from _with_lines(_event(entry), tails, started)
    for key, lines in tails.items():
        yield from _lines(key, lines, attempt_of(*key), started)
    for action in actions[done:]:
        yield from _with_lines(_event(action), tails, started)


def _omitted(count: int, entries: list[dict[str, Any]], run_id: str) -> Iterator[Event]:
    """The line that says a bound left ``count`` entries out before ``entries``."""
    if count and entries:
        yield ActionEvent("omitted", None, None, "", f"{count:,} earlier timeline "
                          f"entries (baton show {run_id} has them)",
                          float(entries[0].get("time") or 0.0))


def _with_lines(event: Event | None, tails: dict[Key, list[dict[str, Any]]],
                started: dict[Key, set[int]]) -> Iterator[Event]:
    """``event``, and if it starts an attempt, that attempt's tail lines right after."""
    if event is None:
        return
    yield event
    if type(event) is TaskEvent and event.state is TaskState.RUNNING and event.attempt:
        key = (event.step, event.host)
        started.setdefault(key, set()).add(event.attempt)
        lines = tails.get(key)
        if lines:
            own = [x for x in lines if x.get("attempt") == event.attempt]
            tails[key] = [x for x in lines if x.get("attempt") != event.attempt]
            yield from _lines(key, own, event.attempt, started)


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
