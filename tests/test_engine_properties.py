"""Property-based scheduler checks over random DAGs (hypothesis)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.engine.events import RunState, TaskState
from console.engine.run import Run, RunOptions
from console.model.workflow import Step, Workflow
from tests.fakes import ScriptedWorld, check_need_counters

S = TaskState


@st.composite
def dags(draw):
    n = draw(st.integers(min_value=1, max_value=18))
    steps = []
    for i in range(n):
        needs = draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=3)) if i else set()
        outcome = draw(st.sampled_from(["ok", "ok", "ok", "fail", "flaky"]))
        script = {"ok": "sleep 0.001", "fail": "exit 1", "flaky": "exit 2"}[outcome]
        steps.append(Step(
            id=f"s{i}", name=f"s{i}", run=script,
            needs=tuple(f"s{j}" for j in sorted(needs)),
            continue_on_error=draw(st.booleans()) if outcome != "ok" else False,
            retries=1 if outcome == "flaky" else 0,
        ))
    concurrency = draw(st.integers(min_value=1, max_value=6))
    return Workflow(name="random", steps={s.id: s for s in steps}, concurrency=concurrency)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_random_dags_settle_in_order_within_concurrency(wf: Workflow):
    world = ScriptedWorld()
    run = Run(wf, RunOptions(), executor_for=world.factory())
    with pytest.MonkeyPatch.context() as patch:
        check_need_counters(patch)  # every O(1) answer is also checked against a walk
        final = asyncio.run(asyncio.wait_for(run.execute(), 10))

    # every task reaches a terminal state
    assert all(t.state.finished for t in run.tasks.values())
    assert final in (RunState.SUCCEEDED, RunState.FAILED)

    # no task starts before every task it needs has ended
    ends: dict[str, int] = {}
    for record in world.records:
        ends[record.step] = max(ends.get(record.step, 0), record.end_seq)
    for record in world.records:
        for need in wf.steps[record.step].needs:
            assert need in ends, f"{record.step} started although {need} never ran"
            assert record.start_seq > ends[need]

    # the concurrency limit is never exceeded
    assert world.max_running <= wf.concurrency

    # a task runs only if its needs were done; blocked exactly when a need is bad
    for sid, step in wf.steps.items():
        task = run.tasks[(sid, "local")]
        bad_need = any(run.step_status(n) == "bad" for n in step.needs)
        if bad_need:
            assert task.state is S.BLOCKED
            assert not world.starts(sid)
        else:
            assert task.state in (S.SUCCEEDED, S.FAILED)

    expected = RunState.SUCCEEDED if all(
        t.state is S.SUCCEEDED or (t.state is S.FAILED and wf.steps[t.step].continue_on_error)
        for t in run.tasks.values()
    ) else RunState.FAILED
    assert final is expected


@st.composite
def graphs(draw):
    """Random needs maps, cycles, unknown and repeated needs allowed."""
    n = draw(st.integers(min_value=0, max_value=14))
    ids = [f"s{i}" for i in range(n)]
    order = draw(st.permutations(ids))
    needs = {}
    for sid in order:
        pool = [*ids, "gone"] if ids else ["gone"]
        needs[sid] = draw(st.lists(st.sampled_from(pool), max_size=4))
    return needs


def _graphlib_order(needs):
    from graphlib import TopologicalSorter

    sorter = TopologicalSorter({s: [n for n in ns if n in needs] for s, ns in needs.items()})
    sorter.prepare()
    position = {sid: i for i, sid in enumerate(needs)}
    out = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        out.extend(ready)
        sorter.done(*ready)
    return out


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_dependency_order_matches_graphlib_and_detects_every_cycle(needs):
    from graphlib import CycleError

    from console.model.workflow import dependency_order

    order = dependency_order(needs)
    try:
        expected = _graphlib_order(needs)
    except CycleError:
        assert len(order) < len(needs)
        return
    assert order == expected
