"""A stored run turned back into engine events (console.store.replay, issue 12 item 6: the
conversion lives in the store; the console only feeds the events to its session)."""

from __future__ import annotations

from console.engine.events import ActionEvent, LogEvent, RunEvent, RunState, TaskEvent, TaskState
from console.store import Store, replay
from tests.test_store import INCIDENT_ID, incident_run, store  # noqa: F401  (fixture)


async def test_a_stored_run_replays_as_the_events_that_made_it(store: Store) -> None:  # noqa: F811
    await incident_run(store)
    stored = store.load(INCIDENT_ID)
    events = list(replay.stored_events(stored, replay.read_logs(store, stored)))

    runs = [e.state for e in events if isinstance(e, RunEvent)]
    assert runs[0] is RunState.RUNNING and runs[-1] is RunState.SUCCEEDED
    last: dict[tuple[str, str], TaskEvent] = {}
    for event in events:
        if isinstance(event, TaskEvent):
            last[(event.step, event.host)] = event
    assert {key: (e.state, e.attempt, e.exit_code) for key, e in last.items()} == {
        (t.step, t.host): (TaskState(t.state), t.attempt, t.exit_code) for t in stored.tasks}
    assert last[("deploy", "web2")].reason == ("marked succeeded by alice: deployed by hand "
                                               "after disk cleanup")
    actions = [(e.action, e.step, e.host, e.user) for e in events if isinstance(e, ActionEvent)]
    assert actions == [("approve", "drain", None, "alice"),
                       ("mark_succeeded", "deploy", "web2", "alice"),
                       ("note", "deploy", None, "alice"), ("done", "verify", None, "alice")]
    logs = {(e.step, e.host, e.attempt): (i, e.text) for i, e in enumerate(events)
            if isinstance(e, LogEvent)}
    assert {key: text for key, (_, text) in logs.items()} == {
        ("preflight", "local", 1): "checks ok", ("drain", "web1", 1): "draining",
        ("drain", "web2", 1): "draining", ("deploy", "web1", 1): "deployed",
        ("deploy", "web2", 1): "disk full", ("deploy", "web2", 2): "disk full",
        ("cleanup", "local", 1): "cleanup"}
    for (step, host, attempt), (index, _) in logs.items():  # right after its attempt started
        started = events[index - 1]
        assert isinstance(started, TaskEvent) and started.state is TaskState.RUNNING
        assert (started.step, started.host, started.attempt) == (step, host, attempt)
        assert events[index].time == started.time


async def test_a_long_log_replays_its_tail_and_says_what_it_skipped(store: Store,  # noqa: F811
                                                                    monkeypatch) -> None:
    await incident_run(store)
    stored = store.load(INCIDENT_ID)
    path = store.log_path(INCIDENT_ID, "preflight", "local", 1)
    path.write_text("".join(f"line {n}\n" for n in range(100)))
    monkeypatch.setattr(replay, "LOG_TAIL_BYTES", 40)
    text = replay.read_logs(store, stored)[("preflight", "local", 1)]
    head, _, rest = text.partition("\n")
    size = path.stat().st_size
    assert head == f"… {size - 40:,} earlier bytes in {path} (o opens the whole log)"
    assert rest.splitlines()[-1] == "line 99" and "line 90" not in rest
