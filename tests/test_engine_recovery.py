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
    await h.until(lambda: h.run.agenda.unfinished == 2 and not h.run.agenda.ready)
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
    from console.store.show import render_markdown, render_table, to_json

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


# ------------------------------------------------------------------ health polls

def _logs(h: Harness, sid: str, host: str = "local") -> list[str]:
    from console.engine.events import LogEvent

    return [line for e in h.events if isinstance(e, LogEvent) and e.step == sid
            and e.host == host for line in e.lines]


def _reasons(h: Harness, sid: str, host: str = "local") -> list[str | None]:
    from console.engine.events import TaskEvent

    return [e.reason for e in h.events if isinstance(e, TaskEvent) and e.step == sid
            and e.host == host]


async def test_a_poll_succeeds_on_the_nth_poll_in_one_attempt() -> None:
    h = Harness(workflow(step("health", "echo checking\nfail_until h 4\necho healthy",
                              poll=0.02, within=5.0),
                         step("after", needs=("health",))))
    assert await h.finish() is RunState.SUCCEEDED
    task = h.run.tasks[("health", "local")]
    assert len(h.world.starts("health")) == 4
    assert task.attempt == 1 and len(task.attempts) == 1
    assert h.states("health") == [S.RUNNING] * 5 + [S.SUCCEEDED]  # 4 polls, no failure
    reasons = _reasons(h, "health")
    assert [r.split(" · ")[0] for r in reasons[1:5]] == [
        "polling 1/250", "polling 2/250", "polling 3/250", "polling 4/250"]
    assert reasons[1].endswith("s left")
    logs = _logs(h, "health")
    assert logs[:3] == ["polling 1/250 · 5s left · exit 1 · checking",
                        "polling 2/250 · 5s left · exit 1 · checking",
                        "polling 3/250 · 5s left · exit 1 · checking"]
    assert logs[3:] == ["checking", "healthy"]  # the poll that counts, whole
    assert task.outputs.stdout == "checking\nhealthy\n"
    assert h.world.order()[-1] == "after"


async def test_a_poll_still_failing_at_within_fails_with_the_last_output() -> None:
    h = Harness(workflow(step("health", "echo down\nerr connection refused\nexit 7",
                              poll=0.05, within=0.2),
                         step("after", needs=("health",))))
    assert await h.finish() is RunState.FAILED
    task = h.run.tasks[("health", "local")]
    polls = len(h.world.starts("health"))
    assert 2 <= polls <= 4  # every 0.05 s for 0.2 s: fewer when the machine is slow
    assert task.reason == f"still failing after 0.2s ({polls} polls): exit 7"
    assert task.exit_code == 7 and task.attempt == 1
    assert task.outputs.stdout == "down\n"
    logs = _logs(h, "health")
    assert len(logs) == polls - 1 + 2  # a compact line per poll, then the last one whole
    assert logs[0].startswith("polling 1/4 · ") and logs[0].endswith(
        "s left · exit 7 · connection refused")
    assert logs[-2:] == ["down", "connection refused"]
    assert h.state("after") is S.BLOCKED


async def test_a_poll_attempt_is_retried_as_a_whole() -> None:
    # one poll per attempt: the next one would start after within
    h = Harness(workflow(step("health", "fail_until h 2", poll=1.0, within=0.5, retries=1)))
    assert await h.finish() is RunState.SUCCEEDED
    task = h.run.tasks[("health", "local")]
    assert task.attempt == 2
    assert [a.state for a in task.attempts] == [S.FAILED, S.SUCCEEDED]
    assert task.attempts[0].reason == "still failing after 0.5s (1 poll): exit 1"
    assert S.RETRYING in h.states("health")


async def test_a_poll_waits_delay_first_and_timeout_bounds_each_poll() -> None:
    import time

    h = Harness(workflow(step("health", "fail_until h 2\nsleep 5", poll=0.01, within=5.0,
                              delay=0.2, timeout=0.05)))
    h.start()
    began = time.monotonic()
    await h.until(lambda: h.world.records)
    assert time.monotonic() - began >= 0.19
    assert "waiting 0.2s before the first poll" in _reasons(h, "health")
    await h.until(lambda: len(h.world.records) >= 3)
    h.run.cancel("health")
    assert await h.finish() is RunState.FAILED
    assert "s left · timed out after 0.05s" in _logs(h, "health")[1]
    assert _logs(h, "health")[1].startswith("polling 2/500 · ")


async def test_cancel_mid_poll_acts_at_once_between_and_during_polls() -> None:
    import time

    h = Harness(workflow(step("health", "exit 1", poll=30.0, within=600.0)))
    h.start()
    await h.until(lambda: h.world.records and h.world.records[0].end_seq is not None)
    await h.until(lambda: h.run.tasks[("health", "local")].execution is not None)
    began = time.monotonic()
    h.run.cancel("health")
    assert await h.finish(timeout=2) is RunState.FAILED
    assert time.monotonic() - began < 1
    assert h.state("health") is S.CANCELLED
    assert h.run.tasks[("health", "local")].reason == "cancelled by operator"

    h = Harness(workflow(step("health", "hold forever", poll=0.01, within=600.0)))
    h.start()
    await h.state_of("health", S.RUNNING)
    await h.until(lambda: h.world.records)
    h.run.cancel("health")
    assert await h.finish(timeout=2) is RunState.FAILED
    assert h.state("health") is S.CANCELLED and h.world.terminated == ["health"]
    assert len(h.world.records) == 1


async def test_pause_mid_poll_holds_the_next_poll_and_the_within_clock() -> None:
    import asyncio

    h = Harness(workflow(step("health", "fail_until h 6", poll=0.05, within=1.0)))
    h.start()
    await h.until(lambda: len(h.world.records) == 2)
    h.run.pause()
    await h.until(lambda: (_reasons(h, "health")[-1] or "").startswith("polling paused"))
    polls = len(h.world.records)
    await asyncio.sleep(1.2)  # longer than within: a pause does not use it up
    assert len(h.world.records) == polls
    assert h.state("health") is S.RUNNING
    h.run.resume()
    assert await h.finish() is RunState.SUCCEEDED
    assert len(h.world.records) == 6


async def test_in_a_rollout_a_poll_counts_for_its_host() -> None:
    steps = [step("deploy", "ok", on=("web",)),
             step("health", "{{ ('exit 1' if host.name == 'web2' else 'fail_until '"
                            " ~ host.name ~ ' 3') | raw }}", on=("web",), needs=("deploy",),
                  poll=0.01, within=1.0),
             step("undrain", "ok", on=("web",), needs=("health",))]
    h = Harness(rollout_workflow(steps, ("deploy", "health", "undrain"), hosts=3,
                                 serial=(1,)))
    assert await h.finish() is RunState.FAILED
    assert h.state("health", "web1") is S.SUCCEEDED
    assert h.state("health", "web2") is S.FAILED
    assert h.state("undrain", "web2") is S.BLOCKED
    assert h.state("deploy", "web3") is S.BLOCKED  # past the rollout's max_fail
    web1 = [r for r in h.world.records if r.host == "web1"]
    assert [r.step for r in web1] == ["deploy", "health", "health", "health", "undrain"]
    assert max(r.start_seq for r in web1) < min(r.start_seq for r in h.world.records
                                                if r.host == "web2")


# ------------------------------------------------------------------ delegation

async def test_delegated_rollout_steps_run_on_the_delegate_as_their_hosts_tasks() -> None:
    steps = [step("drain", "echo drain {{ host.name }}", on=("web",), delegate="lb1"),
             step("deploy", "echo deploy {{ host.name }}", on=("web",), needs=("drain",)),
             step("undrain", "echo undrain {{ host.name }}\nfail_until u-{{ host.name }} 2",
                  on=("web",), needs=("deploy",), delegate="lb1", retries=1)]
    h = Harness(rollout_workflow(steps, ("drain", "deploy", "undrain"), hosts=4,
                                 serial=(2,), delegate_hosts=True))
    assert await h.finish() is RunState.SUCCEEDED
    # the tasks belong to their own hosts; lb1 has none
    assert {t.host for t in h.run.tasks.values()} == {"web1", "web2", "web3", "web4"}
    records = sorted(h.world.records, key=lambda r: r.start_seq)
    on_lb1 = [r.script.split("\n")[0] for r in records if r.executor == "lb1"]
    assert all(r.host == "lb1" for r in records if r.step != "deploy")
    assert [r.executor for r in records if r.step == "deploy"] == [
        "web1", "web2", "web3", "web4"]
    assert sorted(on_lb1) == sorted([f"echo drain web{i}" for i in (1, 2, 3, 4)]
                                    + [f"echo undrain web{i}" for i in (1, 2, 3, 4)] * 2)
    for host in ("web1", "web2", "web3", "web4"):  # per host: drain, deploy, undrain
        mine = [r.script.split("\n")[0].split()[1] for r in records
                if r.script.split("\n")[0].endswith(host)]
        assert mine == ["drain", "deploy", "undrain", "undrain"], (host, mine)  # + retry
        task = h.run.tasks[("undrain", host)]
        assert task.attempt == 2 and task.state is S.SUCCEEDED
    # batch 2 is drained only after batch 1 is back in the load balancer
    last_undrain_b1 = max(r.end_seq or 0 for r in records if r.step == "undrain"
                          and r.script.split("\n")[0].split()[-1] in ("web1", "web2"))
    first_drain_b2 = min(r.start_seq for r in records if r.step == "drain"
                         and r.script.split()[-1] in ("web3", "web4"))
    assert last_undrain_b1 < first_drain_b2
    assert h.run.preview_command("drain", "web3") == "echo drain web3"


async def test_delegate_local_runs_a_remote_hosts_task_here() -> None:
    h = Harness(workflow(step("silence", "echo {{ host.name }}", on=("web",),
                              delegate="local"), hosts=dict(list(WEB.items())[:2])))
    assert await h.finish() is RunState.SUCCEEDED
    assert [(r.executor, r.host, r.script) for r in h.world.records] == [
        ("local", "local", "echo web1"), ("local", "local", "echo web2")]
    assert [t.key for t in h.run.tasks_in_order()] == [("silence", "web1"),
                                                       ("silence", "web2")]
    assert h.run.tasks[("silence", "web2")].outputs.stdout == "web2\n"


async def test_a_hung_poll_without_timeout_is_ended_at_within() -> None:
    import time

    h = Harness(workflow(step("health", "echo probing\nsleep 30", poll=0.05, within=0.2)))
    began = time.monotonic()
    assert await h.finish() is RunState.FAILED
    assert time.monotonic() - began < 2
    task = h.run.tasks[("health", "local")]
    assert task.reason == "still failing after 0.2s (1 poll): timed out after 0.2s"
    assert task.outputs.stdout == "probing\n" and h.world.terminated == ["health"]


async def test_cancel_and_close_during_the_delay_before_the_first_poll() -> None:
    h = Harness(workflow(step("health", "ok", poll=0.01, within=1.0, delay=30.0)))
    h.start()
    await h.until(lambda: "waiting 30s before the first poll" in _reasons(h, "health"))
    h.run.cancel("health")
    assert await h.finish(timeout=2) is RunState.FAILED
    assert h.state("health") is S.CANCELLED and h.world.records == []

    h = Harness(workflow(step("health", "exit 1", poll=30.0, within=60.0),
                         step("cleanup", "echo c", needs=("health",), when="always()")))
    h.start()
    await h.until(lambda: h.world.records and h.world.records[0].end_seq is not None)
    h.run.interrupt()  # Ctrl-C: the wait between polls ends at once
    assert await h.finish(timeout=2) is RunState.INTERRUPTED
    assert h.state("health") is S.INTERRUPTED and h.state("cleanup") is S.BLOCKED


async def test_retry_downstream_does_not_revive_an_excluded_hosts_tasks() -> None:
    steps = [step("build", "ok"),
             step("deploy", "ok", on=("web",), needs=("build",))]
    h = Harness(workflow(*steps, hosts=dict(list(WEB.items())[:2])), keep_alive=True)
    h.start()
    await h.until(lambda: h.run.settled and h.run.state is RunState.SUCCEEDED)
    h.run.exclude_host("web2")
    h.run.retry_downstream("build")
    await h.until(lambda: len(h.world.starts("build")) == 2 and h.run.settled)
    assert h.state("deploy", "web2") is S.SKIPPED
    assert h.run.tasks[("deploy", "web2")].reason == "host excluded"
    assert [r.host for r in h.world.starts("deploy")] == ["web1", "web2", "web1"]
    h.run.close()
    await h.finish()


def test_the_human_printer_leaves_poll_progress_to_the_log_lines() -> None:
    import io

    from console.engine.events import LogEvent, TaskEvent
    from console.printers import HumanPrinter

    out = io.BytesIO()
    printer = HumanPrinter(out)
    for reason in (None, "waiting 10s before the first poll", "polling 1/24 · 2m00s left"):
        printer(TaskEvent("health", "web1", S.RUNNING, 1, None, reason, 1.0))
    printer(LogEvent("health", "web1", "stdout", "polling 1/24 · 1m55s left · exit 7 · down",
                     2.0))
    printer(TaskEvent("health", "web1", S.RUNNING, 1, None, "polling paused · 1m50s left",
                      3.0))
    printer.flush()
    assert out.getvalue().decode().splitlines() == [
        "● health@web1 running (attempt 1)",
        "● health@web1 running (attempt 1) (waiting 10s before the first poll)",
        "health@web1 | polling 1/24 · 1m55s left · exit 7 · down",
        "● health@web1 running (attempt 1) (polling paused · 1m50s left)",
    ]


async def test_an_interrupted_need_holds_a_cleanup_step_until_the_operator_decides() -> None:
    """After a crash, build was running: it is interrupted (not terminal). The cleanup
    step is blocked by it, so the resumed run ends; once the operator skips build, the
    cleanup step runs."""
    from types import SimpleNamespace

    steps = (step("build", "ok"), step("cleanup", "echo c", needs=("build",),
                                       when="always()"))
    record = SimpleNamespace(step="build", host="local", state="running", attempt=1,
                             exit_code=None, reason=None, started=1.0, ended=None,
                             outputs=None)
    h = Harness(workflow(*steps))
    h.run.restore([record])
    assert await h.finish() is RunState.FAILED
    assert h.state("build") is S.INTERRUPTED
    assert h.state("cleanup") is S.BLOCKED
    assert h.run.tasks[("cleanup", "local")].reason == "needs build (interrupted)"
    assert h.world.records == []

    h = Harness(workflow(*steps), keep_alive=True)
    h.run.restore([record])
    h.start()
    await h.state_of("cleanup", S.BLOCKED)
    h.run.skip("build", reason="built by hand")
    await h.state_of("cleanup", S.SUCCEEDED)
    h.run.close()
    await h.finish()


async def test_a_polls_compact_line_and_output_are_masked() -> None:
    secret = "hunter2\nline-two-of-it"
    h = Harness(workflow(step("health", "echo token hunter2\necho line-two-of-it\nexit 1",
                              poll=0.01, within=0.03)), secrets={"tok": secret})
    assert await h.finish() is RunState.FAILED
    logs = _logs(h, "health")
    assert logs and all("hunter2" not in line and "line-two-of-it" not in line
                        for line in logs), logs
    assert "hunter2" not in (h.run.tasks[("health", "local")].outputs.stdout or "")
