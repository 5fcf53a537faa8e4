"""Hot-reload rules applied to a live run: every step state x every kind of change."""

from __future__ import annotations

import dataclasses

import pytest

from console.engine.diff import diff_steps
from console.engine.events import ReloadEvent, RunState, TaskState
from tests.fakes import check_need_counters
from tests.test_engine import Harness, step, workflow


@pytest.fixture(autouse=True)
def _need_counters_agree_with_a_walk(monkeypatch):
    check_need_counters(monkeypatch)

S = TaskState

# how to bring step "x" into each state, and what else the workflow holds
SETUPS = {
    "pending": dict(x=step("x", needs=("gate",)), extra=[step("gate", run="hold gate")]),
    "awaiting_approval": dict(x=step("x", confirm="go?"), extra=[]),
    "running": dict(x=step("x", run="hold x"), extra=[]),
    "retrying": dict(x=step("x", run="exit 1", retries=5, retry_delay=30), extra=[]),
    "finished": dict(x=step("x", run="ok"), extra=[]),
    "blocked": dict(x=step("x", needs=("bad",)), extra=[step("bad", run="exit 1")]),
}


async def _live(state: str) -> Harness:
    setup = SETUPS[state]
    wf = workflow(setup["x"], *setup["extra"], step("keep", run="hold keep"))
    h = Harness(wf, keep_alive=True)
    h.start()
    await h.state_of("x", S(state) if state != "finished" else S.SUCCEEDED)
    return h


def _with(h: Harness, **steps) -> object:
    """The run's current workflow with steps replaced (None removes), as a reload would."""
    current = {sid: s for sid, s in h.run.workflow.steps.items() if sid not in h.run.removed_steps}
    for sid, new in steps.items():
        if new is None:
            current.pop(sid, None)
        else:
            current[sid] = new
    return dataclasses.replace(h.run.workflow, steps=current, digest="d2")


async def _close(h: Harness) -> None:
    h.world.release("keep")
    h.world.release("gate")
    h.world.release("x")
    h.run.close()
    await h.finish()


@pytest.mark.parametrize("state", list(SETUPS))
async def test_added_step_joins_as_pending_and_runs(state):
    h = await _live(state)
    event = h.run.reload(_with(h, added=step("added", run="echo new")))
    assert isinstance(event, ReloadEvent) and event.added == ["added"] and event.digest == "d2"
    await h.state_of("added", S.SUCCEEDED)
    assert h.state("x") is not S.PENDING or state == "pending"
    await _close(h)


@pytest.mark.parametrize("state", list(SETUPS))
async def test_removed_step(state):
    h = await _live(state)
    before = h.state("x")
    event = h.run.reload(_with(h, x=None))
    assert event.removed == ["x"]
    if state in ("pending", "awaiting_approval", "blocked"):
        # never started: it leaves the run
        assert ("x", "local") not in h.run.tasks and "x" not in h.run.workflow.steps
    else:
        # started or finished: it stays, marked removed, with its state
        assert h.state("x") is before and "x" in h.run.removed_steps
    await _close(h)


@pytest.mark.parametrize("state", list(SETUPS))
async def test_changed_step(state):
    h = await _live(state)
    new_x = dataclasses.replace(h.run.workflow.steps["x"], run="echo v2", confirm=None,
                                needs=(), retries=0)
    event = h.run.reload(_with(h, x=new_x))
    assert event.changed == ["x"]
    if state in ("pending", "awaiting_approval", "blocked"):
        # not started: takes the new definition and runs it
        await h.state_of("x", S.SUCCEEDED)
        assert h.world.starts("x")[-1].script == "echo v2"
        assert "x" not in h.run.changed_steps
    else:
        # started: keeps what it ran with, marked changed; a retry uses the new one
        assert "x" in h.run.changed_steps
        assert all(r.script != "echo v2" for r in h.world.starts("x"))
        if state == "running":
            h.world.release("x")
        if state == "retrying":
            h.run.cancel("x")
        await h.until(lambda: h.state("x").finished)
        if h.state("x") is not S.SUCCEEDED:
            h.run.retry("x")
        else:
            h.run.retry_downstream("x")
        await h.until(lambda: h.world.starts("x")[-1].script == "echo v2")
        await h.state_of("x", S.SUCCEEDED)
    await _close(h)


@pytest.mark.parametrize("state", list(SETUPS))
async def test_invalid_reload_changes_nothing(state):
    h = await _live(state)
    snapshot = [(t.key, t.state) for t in h.run.tasks.values()]
    event = h.run.reload_failed("wf.toml:3: dependency cycle: a -> b -> a")
    assert event.to_dicts() == [{"type": "reload",
                                 "error": "wf.toml:3: dependency cycle: a -> b -> a"}]
    assert [(t.key, t.state) for t in h.run.tasks.values()] == snapshot
    assert h.run.workflow.digest == "d1"
    await _close(h)


async def test_removing_a_step_others_needed_unblocks_nothing_wrongly():
    # 'b' needs 'a' (failed); the new file drops 'a' and b's need on it: b may run
    h = Harness(workflow(step("a", run="exit 1"), step("b", needs=("a",))), keep_alive=True)
    h.start()
    await h.state_of("b", S.BLOCKED)
    h.run.reload(_with(h, a=None, b=step("b")))
    await h.state_of("b", S.SUCCEEDED)
    assert "a" in h.run.removed_steps  # it had run: it stays, marked removed
    h.run.close()
    assert await h.finish() is RunState.FAILED  # a's failure still counts


def test_reload_json_shape_and_diff_summary():
    old = workflow(step("a"), step("b"))
    new = workflow(step("a", run="changed"), step("c"))
    diff = diff_steps(old, new)
    assert (diff.added, diff.changed, diff.removed) == (("c",), ("a",), ("b",))
    assert diff.summary() == "+c ~a -b"
    event = ReloadEvent(["c"], ["a"], ["b"], "h", None, 1.0)
    assert event.to_dicts() == [{"type": "reload", "added": ["c"], "changed": ["a"],
                                 "removed": ["b"]}]


async def test_reload_adds_params_and_secrets(monkeypatch):
    from console.model.workflow import Param, Secret

    monkeypatch.setenv("NEW_TOKEN", "s3cr3t-value")
    h = await _live("running")
    wf = _with(h, added=step("added", run="echo {{ params.region }} {{ secrets.token }}"))
    wf = dataclasses.replace(wf, params={"region": Param("region", default="eu-west")},
                             secrets={"token": Secret("token", "env", "NEW_TOKEN")})
    event = h.run.reload(wf)
    assert event.error is None and event.added == ["added"]
    await h.state_of("added", S.SUCCEEDED)
    assert h.world.starts("added")[0].script == "echo eu-west s3cr3t-value"
    assert h.run.preview_command("added", "local") == "echo eu-west ***"
    await _close(h)


async def test_reload_with_a_new_required_param_is_refused():
    from console.model.workflow import Param

    h = await _live("running")
    wf = _with(h, added=step("added", run="echo {{ params.ticket }}"))
    wf = dataclasses.replace(wf, params={"ticket": Param("ticket", required=True)})
    event = h.run.reload(wf)
    assert event.error is not None and "ticket" in event.error and "restart" in event.error
    assert ("added", "local") not in h.run.tasks and h.run.workflow.digest == "d1"
    await _close(h)


async def test_a_host_gone_from_the_file_keeps_the_tasks_that_ran_there():
    """An inventory edit takes host b out while its task runs: the task stays in the run
    (it was dropped, its process left untracked) and ends as it ends; b gets no new task;
    the host that came in gets its tasks."""
    from console.model.workflow import Host

    def web(*names: str) -> dict[str, Host]:
        return {n: Host(n, "127.0.0.1", groups=("web",)) for n in names}

    wf = workflow(step("s", run="hold s", on=("web",)), step("t", needs=("s",), on=("web",)),
                  hosts=web("a", "b"))
    h = Harness(wf, keep_alive=True)
    h.start()
    await h.state_of("s", S.RUNNING, "b")
    h.run.reload(dataclasses.replace(h.run.workflow, hosts=web("a", "c"), digest="d2"))
    assert h.run.tasks[("s", "b")].state is S.RUNNING
    assert set(h.run.tasks) == {("s", "a"), ("s", "b"), ("s", "c"), ("t", "a"), ("t", "c")}
    assert h.run.workflow.host("b").name == "b"  # still described, for what ran there
    h.world.release("s")
    for host in ("a", "c"):
        await h.state_of("t", S.SUCCEEDED, host)
    assert h.run.tasks[("s", "b")].state is S.SUCCEEDED
    # b back in the file: targeted again like any host
    h.run.reload(dataclasses.replace(h.run.workflow, hosts=web("a", "b", "c"), digest="d3"))
    await h.state_of("t", S.SUCCEEDED, "b")
    assert not h.run.departed_hosts
    h.run.close()
    await h.finish()


async def test_a_step_that_no_longer_targets_a_host_keeps_the_task_that_ran_there():
    from console.model.workflow import Host

    hosts = {n: Host(n, "127.0.0.1") for n in ("a", "b")}
    h = Harness(workflow(step("s", run="hold s", on=("a", "b")), hosts=hosts), keep_alive=True)
    h.start()
    await h.state_of("s", S.RUNNING, "b")
    h.run.reload(_with(h, s=step("s", run="hold s", on=("a",))))
    assert h.run.tasks[("s", "b")].state is S.RUNNING
    assert "s" in h.run.changed_steps
    h.world.release("s")
    await h.state_of("s", S.SUCCEEDED, "b")
    h.run.close()
    await h.finish()


async def test_a_task_on_a_host_gone_from_the_file_is_not_retried():
    from console.engine.run import ActionError
    from console.model.workflow import Host

    def web(*names: str) -> dict[str, Host]:
        return {n: Host(n, "127.0.0.1", groups=("web",)) for n in names}

    h = Harness(workflow(step("s", run="exit 1", on=("web",)), hosts=web("a", "b")),
                keep_alive=True)
    h.start()
    for host in ("a", "b"):
        await h.state_of("s", S.FAILED, host)
    h.run.reload(dataclasses.replace(h.run.workflow, hosts=web("a"), digest="d2"))
    with pytest.raises(ActionError, match="host 'b' is no longer in the workflow file"):
        h.run.retry("s", "b")
    h.run.retry("s")  # the step's other hosts only
    await h.state_of("s", S.FAILED, "a")
    assert h.run.tasks[("s", "a")].attempt == 2 and h.run.tasks[("s", "b")].attempt == 1
    h.run.close()
    await h.finish()
