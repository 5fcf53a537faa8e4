"""Issue 13 on the scripted executor: status functions in `when`, exclude host, health
polls, delegation."""

from __future__ import annotations

import pytest

from console.engine.events import RunState, TaskState
from console.model.workflow import Host, Rollout, Step
from tests.fakes import check_need_counters
from tests.test_engine import Harness, step, workflow

S = TaskState


@pytest.fixture(autouse=True)
def counter_answers(monkeypatch) -> list[int]:
    return check_need_counters(monkeypatch)


WEB = {f"web{i}": Host(f"web{i}", f"10.0.0.{i}", groups=("web",)) for i in (1, 2, 3, 4)}
HOSTS = {**WEB, "lb1": Host("lb1", "10.0.1.1")}


def rollout_workflow(steps, members, *, hosts: int = 4, serial=("100%",), max_fail: int = 0,
                     delegate_hosts: bool = False):
    chosen = dict(list(WEB.items())[:hosts])
    if delegate_hosts:
        chosen["lb1"] = HOSTS["lb1"]
    wf = workflow(*steps, hosts=chosen)
    rollout = Rollout("r", tuple(members), tuple(serial), max_fail=max_fail)
    return type(wf)(**{**wf.__dict__, "rollouts": {"r": rollout}})


# ------------------------------------------------------------------ status functions

OUTCOMES = ["succeeded", "failed", "ignored", "skipped", "blocked", "cancelled"]


async def _need_ends(h: Harness, outcome: str) -> None:
    """Drive step ``a`` (and its upstream ``up``) to ``outcome``."""
    if outcome == "skipped":
        await h.state_of("a", S.AWAITING_APPROVAL)
        h.run.skip("a", reason="not today")
    elif outcome == "cancelled":
        await h.state_of("a", S.RUNNING)
        h.run.cancel("a")


def _need_workflow(outcome: str, when: str) -> list[Step]:
    up = step("up", "exit 1" if outcome == "blocked" else "ok")
    run = {"failed": "exit 3", "ignored": "exit 3", "cancelled": "hold forever"}.get(outcome, "ok")
    a = step("a", run, needs=("up",), continue_on_error=outcome == "ignored",
             confirm="go?" if outcome == "skipped" else None)
    return [up, a, step("c", "echo cleanup", needs=("a",), when=when)]


# need outcome -> whether each function is true when c is evaluated
EXPECTED = {
    #            success failure always cancelled
    "succeeded": (True, False, True, False),
    "failed": (False, True, True, False),
    "ignored": (True, False, True, False),
    "skipped": (True, False, True, False),
    "blocked": (False, True, True, False),
    "cancelled": (False, False, True, True),
}
FUNCTIONS = ("success", "failure", "always", "cancelled")


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("function", FUNCTIONS)
async def test_status_functions_with_every_need_outcome(outcome: str, function: str) -> None:
    h = Harness(workflow(*_need_workflow(outcome, f"{function}()")))
    h.start()
    await _need_ends(h, outcome)
    await h.finish()
    truth = EXPECTED[outcome][FUNCTIONS.index(function)]
    need_done = outcome in ("succeeded", "ignored", "skipped")
    c = h.run.tasks[("c", "local")]
    if function == "success" and not need_done:
        # the default rule: not evaluated at all, blocked by the bad need
        assert c.state is S.BLOCKED, c.reason
        assert [r.step for r in h.world.records].count("c") == 0
        return
    assert c.state is (S.SUCCEEDED if truth else S.SKIPPED), (c.state, c.reason)
    assert (c.step in h.world.order()) is truth
    assert S.BLOCKED not in h.states("c")
    if not truth:
        assert c.reason == f"when: {function}() is false"
    # the run's final state still reflects the failure
    expected = RunState.SUCCEEDED if need_done else RunState.FAILED
    assert h.run.state is expected


async def test_a_cleanup_step_waits_for_every_need_to_be_terminal() -> None:
    """Two needs: one fails at once, the other is still running; the cleanup step waits
    for the second (the need counters would have skipped it) and then runs once."""
    h = Harness(workflow(step("bad", "exit 1"), step("slow", "hold slow"),
                         step("after", needs=("bad",)),
                         step("cleanup", "echo c", needs=("after", "slow"),
                              when="failure() or cancelled()")))
    h.start()
    await h.state_of("after", S.BLOCKED)
    await h.state_of("slow", S.RUNNING)
    assert h.state("cleanup") is S.PENDING
    h.world.release("slow")
    assert await h.finish() is RunState.FAILED
    assert h.state("cleanup") is S.SUCCEEDED
    assert h.states("cleanup") == [S.RUNNING, S.SUCCEEDED]
    assert h.world.order()[-1] == "cleanup"


async def test_a_cleanup_step_waits_for_a_gate_on_its_need() -> None:
    h = Harness(workflow(step("a", confirm="go?"), step("c", needs=("a",), when="always()")))
    h.start()
    await h.state_of("a", S.AWAITING_APPROVAL)
    await h.until(lambda: h.run._unfinished == 2 and not h.run._ready)
    assert h.state("c") is S.PENDING
    h.run.deny("a", reason="no")
    assert await h.finish() is RunState.FAILED
    assert h.state("c") is S.SUCCEEDED


async def test_status_functions_combine_with_other_conditions() -> None:
    h = Harness(workflow(step("a", "exit 1"),
                         step("page", needs=("a",), when="failure() and params.env == 'prod'"),
                         step("mail", needs=("a",), when="failure() and params.env == 'dev'"),
                         step("next", needs=("page",))),
                params={"env": "prod"})
    await h.finish()
    assert (h.state("page"), h.state("mail"), h.state("next")) == (S.SUCCEEDED, S.SKIPPED,
                                                                   S.SUCCEEDED)


async def test_status_functions_in_a_rollout_are_per_host() -> None:
    """undrain@web2 runs although deploy@web2 failed (always()), and only after it;
    web1's undrain does not wait for web2."""
    steps = (step("deploy", "{{ ('exit 1' if host.name == 'web2' else 'ok') | raw }}",
                  on=("web",)),
             step("undrain", "echo u", on=("web",), needs=("deploy",), when="always()"))
    wf = rollout_workflow(steps, ("deploy", "undrain"), hosts=2, max_fail=1)
    h = Harness(wf)
    assert await h.finish() is RunState.FAILED
    assert h.state("deploy", "web2") is S.FAILED
    assert h.state("undrain", "web2") is S.SUCCEEDED
    assert h.state("undrain", "web1") is S.SUCCEEDED
