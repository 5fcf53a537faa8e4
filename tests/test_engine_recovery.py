"""Issue 13 on the scripted executor: status functions in `when`, exclude host, health
polls, delegation."""

from __future__ import annotations

import pytest

from console.engine.events import RunState, TaskState
from console.engine.run import ActionError
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


# ------------------------------------------------------------------ exclude host

def _web_chain(**kw) -> list[Step]:
    return [step("deploy", "echo deploy {{ host.name }}\nhold deploy-{{ host.name | raw }}",
                 on=("web",), **kw),
            step("health", "ok", on=("web",), needs=("deploy",)),
            step("undrain", "ok", on=("web",), needs=("health",))]


def _skipped_excluded(h: Harness, host: str) -> list[str]:
    return [t.step for t in h.run.tasks_in_order()
            if t.host == host and t.state is S.SKIPPED and t.reason == "host excluded"]


async def test_exclude_host_outside_a_rollout_skips_every_task_it_has_left() -> None:
    h = Harness(workflow(*_web_chain(), hosts=dict(list(WEB.items())[:3])), user="alice")
    h.start()
    await h.until(lambda: len(h.world.records) == 3)
    h.world.release("deploy-web1")
    h.world.release("deploy-web3")
    await h.state_of("deploy", S.SUCCEEDED, "web3")
    skipped = h.run.exclude_host("web2", user="bob", reason="web2 out of LB")
    assert [t.step for t in skipped] == ["health", "undrain"]  # deploy@web2 runs on
    h.world.release("deploy-web2")
    assert await h.finish() is RunState.SUCCEEDED
    assert h.state("deploy", "web2") is S.SUCCEEDED
    assert _skipped_excluded(h, "web2") == ["health", "undrain"]
    assert [r.host for r in h.world.records if r.step == "undrain"] == ["web1", "web3"]
    [action] = [a for a in h.actions() if a.action == "exclude_host"]
    assert (action.step, action.host, action.user, action.reason) == (
        None, "web2", "bob", "web2 out of LB")
    assert action.to_dicts()[0]["action"] == "exclude_host"


async def test_exclude_host_skips_pending_blocked_and_held_tasks_at_once() -> None:
    steps = [step("deploy", "{{ ('exit 1' if host.name == 'web1' else 'ok') | raw }}",
                  on=("web",)),
             step("health", "ok", on=("web",), needs=("deploy",)),
             step("gate", "ok", on=("web",), confirm="go?"),
             step("manual", None, on=("web",))]
    h = Harness(workflow(*steps, hosts=dict(list(WEB.items())[:2])))
    h.start()
    await h.state_of("health", S.BLOCKED, "web1")
    await h.state_of("gate", S.AWAITING_APPROVAL, "web1")
    await h.state_of("manual", S.AWAITING_OPERATOR, "web1")
    h.run.exclude_host("web1", reason="broken disk")
    assert sorted(_skipped_excluded(h, "web1")) == ["gate", "health", "manual"]
    assert h.state("deploy", "web1") is S.FAILED  # what already ended keeps its state
    h.run.approve("gate")
    h.run.done("manual")
    assert await h.finish() is RunState.FAILED  # the failure still counts
    assert [r.host for r in h.world.records if r.step in ("health", "gate")] == ["web2"]
    assert h.state("health", "web2") is S.BLOCKED  # deploy failed on web1: a step barrier


async def test_exclude_host_in_a_rollout_never_touches_it_again() -> None:
    """The issue's case: health@web3 fails; the operator excludes web3, then skips the
    failed health check so the rollout goes on; undrain@web3 never runs (before, skipping
    health let undrain@web3 put the host back into the load balancer)."""
    steps = [step("drain", "ok", on=("web",)),
             step("deploy", "ok", on=("web",), needs=("drain",)),
             step("health", "{{ ('exit 1' if host.name == 'web3' else 'ok') | raw }}",
                  on=("web",), needs=("deploy",)),
             step("undrain", "ok", on=("web",), needs=("health",))]
    wf = rollout_workflow(steps, ("drain", "deploy", "health", "undrain"), hosts=4,
                          serial=(1, 2, 1))
    h = Harness(wf, keep_alive=True)  # as in the console: the operator can still act
    h.start()
    await h.state_of("health", S.FAILED, "web3")
    await h.until(lambda: h.run.tasks[("undrain", "web3")].state is S.BLOCKED
                  and h.run.tasks[("drain", "web4")].state is S.BLOCKED)
    h.run.exclude_host("web3", reason="web3 out of LB")
    assert _skipped_excluded(h, "web3") == ["undrain"]
    assert h.state("drain", "web4") is S.BLOCKED  # still past max_fail: web3 failed
    h.run.skip("health", "web3", reason="web3 out of LB")
    await h.until(lambda: h.run.settled and h.run.state is RunState.SUCCEEDED)
    h.run.close()
    await h.finish()
    assert [r.step for r in h.world.records if r.host == "web3"] == [
        "drain", "deploy", "health"]
    assert h.state("undrain", "web4") is S.SUCCEEDED


async def test_exclude_host_of_a_later_batch_skips_its_rollout_steps() -> None:
    steps = [step("drain", "hold go", on=("web",)),
             step("deploy", "ok", on=("web",), needs=("drain",))]
    h = Harness(rollout_workflow(steps, ("drain", "deploy"), hosts=3, serial=(1,)))
    h.start()
    await h.state_of("drain", S.RUNNING, "web1")
    h.run.exclude_host("web2")
    assert _skipped_excluded(h, "web2") == ["drain", "deploy"]
    h.world.release("go")
    assert await h.finish() is RunState.SUCCEEDED
    assert [r.host for r in h.world.records] == ["web1", "web1", "web3", "web3"]


async def test_an_excluded_host_is_not_retried_automatically_or_by_the_operator() -> None:
    steps = [step("flaky", "echo try\nexit 1", on=("web",), retries=3, retry_delay=30.0),
             step("after", "ok", on=("web",), needs=("flaky",))]
    h = Harness(workflow(*steps, hosts=dict(list(WEB.items())[:2])))
    h.start()
    await h.state_of("flaky", S.RETRYING, "web1")
    await h.state_of("flaky", S.RETRYING, "web2")
    h.run.exclude_host("web1")
    assert h.state("flaky", "web1") is S.SKIPPED
    h.run.skip("flaky", "web2")
    assert await h.finish() is RunState.SUCCEEDED
    assert len(h.world.starts("flaky")) == 2  # one attempt each, no retry of web1
    with pytest.raises(ActionError, match="the run has ended"):
        h.run.retry_downstream("flaky", "web1")


async def test_a_running_task_of_an_excluded_host_is_not_retried() -> None:
    h = Harness(workflow(step("flaky", "hold x\nexit 1", on=("web",), retries=2),
                         hosts={"web1": WEB["web1"]}), keep_alive=True)
    h.start()
    await h.state_of("flaky", S.RUNNING, "web1")
    h.run.exclude_host("web1")
    h.world.release("x")
    await h.state_of("flaky", S.FAILED, "web1")
    assert len(h.world.starts("flaky")) == 1
    with pytest.raises(ActionError, match="host 'web1' is excluded from this run"):
        h.run.retry("flaky", "web1")
    # retry-downstream resets its dependents, which the exclusion skips again
    h.run.close()
    await h.finish()


async def test_exclude_host_refuses_what_does_not_apply() -> None:
    h = Harness(workflow(step("a", "hold a", on=("web",)), hosts={"web1": WEB["web1"]}))
    h.start()
    await h.state_of("a", S.RUNNING, "web1")
    with pytest.raises(ActionError, match="no task of this run runs on it"):
        h.run.exclude_host("web9")
    h.run.exclude_host("web1")
    with pytest.raises(ActionError, match="already excluded"):
        h.run.exclude_host("web1")
    h.world.release("a")
    await h.finish()
    with pytest.raises(ActionError, match="the run has ended"):
        h.run.exclude_host("web1")
    assert len([a for a in h.actions() if a.action == "exclude_host"]) == 1


async def test_exclusions_survive_a_resume() -> None:
    from types import SimpleNamespace

    from console.engine.exclusion import restore_exclusions

    h = Harness(workflow(*_web_chain(), hosts=dict(list(WEB.items())[:2])))
    restore_exclusions(h.run, [SimpleNamespace(action="exclude_host", host="web2",
                                               reason="gone")])
    h.run.restore([])
    h.world.release("deploy-web1")
    assert await h.finish() is RunState.SUCCEEDED
    assert _skipped_excluded(h, "web2") == ["deploy", "health", "undrain"]


async def test_exclude_host_is_recorded_in_store_timeline_json_and_printer(tmp_path) -> None:
    import io
    import json

    from console.printers import HumanPrinter, JsonPrinter
    from console.store import Store
    from console.store.timeline import render_markdown, render_table, to_json

    human_out, json_out = io.BytesIO(), io.BytesIO()
    h = Harness(workflow(*_web_chain(), hosts=dict(list(WEB.items())[:2])), user="alice")
    human, machine = HumanPrinter(human_out), JsonPrinter(json_out)
    h.run.subscribe(human)
    h.run.subscribe(machine)
    with Store.open(tmp_path / "home") as store:
        with store.record(h.run):
            h.start()
            await h.state_of("deploy", S.RUNNING, "web2")
            h.run.exclude_host("web2", reason="out of LB")
            h.world.release("deploy-web1")
            h.world.release("deploy-web2")
            await h.finish()
        stored = store.load(h.run.id)
    [action] = [a for a in stored.actions if a.action == "exclude_host"]
    assert (action.user, action.step, action.host, action.reason) == (
        "alice", None, "web2", "out of LB")
    assert {(t.step, t.host, t.state, t.reason) for t in stored.tasks if t.host == "web2"} >= {
        ("health", "web2", "skipped", "host excluded"),
        ("undrain", "web2", "skipped", "host excluded")}
    assert any(a["action"] == "exclude_host" and a["host"] == "web2"
               for a in to_json(stored)["actions"])
    markdown = render_markdown(stored)
    assert "| alice | exclude_host | web2 | out of LB |" in markdown
    assert "alice **exclude_host** `web2`: out of LB" in markdown
    assert "exclude_host" in render_table(stored)
    human.flush()
    machine.flush()
    assert "» exclude_host web2 by alice: out of LB" in human_out.getvalue().decode()
    events = [json.loads(line) for line in json_out.getvalue().decode().splitlines()]
    assert {"type": "action", "action": "exclude_host", "step": None, "host": "web2",
            "user": "alice", "reason": "out of LB"}.items() <= next(
        e for e in events if e.get("action") == "exclude_host").items()
    assert any(e["type"] == "task" and e["host"] == "web2" and e["state"] == "skipped"
               and e["reason"] == "host excluded" for e in events)
