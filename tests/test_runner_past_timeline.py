"""Issue 15: the timeline a resumed run's snapshot carries from before the resume
(console/runner/past_timeline.py) and how a console replays it
(console/runner/snapshot_replay.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from console.engine.events import (
    ActionEvent,
    LogEvent,
    RunEvent,
    RunState,
    TaskEvent,
    TaskState,
)
from console.runner.past_timeline import bounded, past_timeline
from console.runner.snapshot_replay import snapshot_events
from console.store.records import EventRecord


def _task(step: str, state: str, when: float, attempt: int = 1) -> dict[str, Any]:
    return {"type": "task", "step": step, "host": "local", "state": state,
            "attempt": attempt, "exit_code": None, "reason": None, "time": when}


def _action(name: str, when: float, reason: str | None = None) -> dict[str, Any]:
    return {"type": "action", "action": name, "step": None, "host": None, "user": "alice",
            "reason": reason, "time": when}


def test_the_bound_keeps_the_latest_entries_and_older_actions() -> None:
    every = [_action("note", 0.0, "first"), _action("note", 1.0, "second")]
    every += [_task(f"s{i}", "succeeded", 2.0 + i) for i in range(30)]
    every += [_action("note", 40.0, "late")]
    past = bounded(every, entries=10, actions=1)
    assert past.entries[0] == every[1]  # the newest older action survives the cut
    assert past.entries[1:] == every[-10:]
    assert past.omitted == len(every) - 11
    assert bounded(every, entries=10, actions=0).entries == every[-10:]
    whole = bounded(every)
    assert whole.entries == every and whole.omitted == 0


def test_the_past_is_read_from_the_stored_events_masked() -> None:
    """Run, task, action and reload rows in order; a secret in a reason or user is masked
    again with the run's masker; log rows never come along."""
    rows = [EventRecord(0, 1.0, "run", {"state": "running"}),
            EventRecord(1, 2.0, "task", {"step": "gate", "host": "local",
                                         "state": "awaiting_approval", "attempt": 0}),
            EventRecord(2, 3.0, "action", {"action": "note", "user": "alice",
                                           "reason": "token is hunter2"}),
            EventRecord(3, 4.0, "reload", {"added": ["x"]})]
    stored = SimpleNamespace(id="r1", events=rows, actions=[],
                             run=SimpleNamespace(user="alice", ended=None))
    run = SimpleNamespace(masker=SimpleNamespace(
        mask=lambda text: text.replace("hunter2", "********")))
    past = past_timeline(run, stored)  # type: ignore[arg-type]
    assert [e["type"] for e in past.entries] == ["run", "task", "action", "action"]
    assert past.entries[2]["reason"] == "token is ********"
    assert past.entries[2]["user"] == "alice" and past.entries[2]["time"] == 3.0
    assert past.entries[3]["action"] == "reload"
    assert past.omitted == 0


def test_a_console_replays_the_past_with_each_attempts_lines_after_its_start() -> None:
    """The past in order, each stored attempt's tail lines right after its start (one
    start each, as the in-process replay); then this process's attempts; a bound that
    left entries out says so first."""
    past = [_task("slow", "running", 1.0, 1), _action("note", 2.0, "paged"),
            _task("slow", "failed", 3.0, 1), _task("slow", "running", 4.0, 2),
            _task("slow", "interrupted", 5.0, 2)]
    lines = [{"stream": "stdout", "line": f"a{n} {i}", "time": 1.0 if n == 1 else 4.0,
              "attempt": n} for n in (1, 2) for i in (1, 2)]
    lines.append({"stream": "stdout", "line": "a3 1", "time": 9.0, "attempt": 3})
    snap = {"run": {"id": "r1"}, "past": past, "past_omitted": 7,
            "logs": [{"step": "slow", "host": "local", "lines": lines}]}
    events = list(snapshot_events(snap, lambda step, host: 3))
    marker = events[0]
    assert isinstance(marker, ActionEvent) and "7 earlier timeline entries" in str(marker.reason)
    shown: list[tuple[Any, ...]] = []
    for e in events[1:]:
        if isinstance(e, TaskEvent):
            shown.append(("task", e.state, e.attempt))
        elif isinstance(e, LogEvent):
            shown.append(("log", e.text, e.attempt))
        elif isinstance(e, ActionEvent):
            shown.append(("action", e.action, e.user, e.reason))
        else:
            assert isinstance(e, RunEvent)
    assert shown == [("task", TaskState.RUNNING, 1), ("log", "a1 1\na1 2", 1),
                     ("action", "note", "alice", "paged"), ("task", TaskState.FAILED, 1),
                     ("task", TaskState.RUNNING, 2), ("log", "a2 1\na2 2", 2),
                     ("task", TaskState.INTERRUPTED, 2),
                     ("task", TaskState.RUNNING, 3), ("log", "a3 1", 3)]


def test_a_snapshot_without_a_past_replays_its_tails_as_before() -> None:
    """A runner older than ``past`` (or a run never resumed): the tails alone."""
    lines = [{"stream": "stdout", "line": "x", "time": 1.0, "attempt": 2}]
    snap = {"run": {"id": "r1"}, "logs": [{"step": "s", "host": "h", "lines": lines}]}
    events = list(snapshot_events(snap, lambda step, host: 2))
    assert [type(e) for e in events] == [TaskEvent, LogEvent]


def test_this_processs_timeline_is_bounded_and_replayed_among_its_actions() -> None:
    """The server keeps this process's run and task events (not log or action ones) with
    how many actions came before each, within a bound that counts what it left out; a
    console replays them with ``actions`` where they came (each once), after ``past``."""
    from console.runner.past_timeline import LiveTimeline

    live = LiveTimeline(entries=3)
    live.add(RunEvent("r1", RunState.RUNNING, 1.0), 0)
    for i, state in enumerate(("running", "succeeded", "running")):
        live.add(TaskEvent(f"s{i}", "local", TaskState(state), 1, None, None, 2.0 + i), i)
    live.add(LogEvent("s2", "local", "stdout", "x", 5.0, 1), 9)
    live.add(ActionEvent("note", None, None, "alice", "n", 5.0), 9)
    assert [e["type"] for e in live.entries] == ["task"] * 3 and live.omitted == 1
    assert [e["actions_before"] for e in live.entries] == [0, 1, 2]
    snap = {"run": {"id": "r1"}, "past": [_action("note", 0.5, "before")],
            "timeline": list(live.entries), "timeline_omitted": live.omitted,
            "actions": [_action("note", 2.5, "a"), _action("note", 3.5, "b"),
                        _action("note", 6.0, "c")]}
    shown = [(type(e).__name__, getattr(e, "step", None), getattr(e, "reason", None))
             for e in snapshot_events(snap, lambda step, host: 1)]
    assert shown[0] == ("ActionEvent", None, "before")
    assert "1 earlier timeline entries" in str(shown[1][2])
    assert shown[2:] == [("TaskEvent", "s0", None), ("ActionEvent", None, "a"),
                         ("TaskEvent", "s1", None), ("ActionEvent", None, "b"),
                         ("TaskEvent", "s2", None), ("ActionEvent", None, "c")]
