"""Engine: task states, scheduler ordering, every operator action (legal and illegal)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from console.engine.events import ActionEvent, LogEvent, RunState, TaskEvent, TaskState
from console.engine.run import APPROVAL_REQUIRED, ActionError, Run, RunOptions, new_run_id
from console.model.workflow import Host, Step, Workflow
from tests.fakes import ScriptedWorld, check_need_counters
from tests.helpers import until


@pytest.fixture(autouse=True)
def counter_answers(monkeypatch) -> list[int]:
    """Every test checks each O(1) need answer against a walk; this counts the answers."""
    return check_need_counters(monkeypatch)

S = TaskState


def workflow(*steps: Step, concurrency: int = 16, hosts: dict[str, Host] | None = None,
             params=None) -> Workflow:
    return Workflow(name="t", steps={s.id: s for s in steps}, concurrency=concurrency,
                    hosts=hosts or {}, params=params or {}, digest="d1")


def step(sid: str, run: str | None = "ok", **kw) -> Step:
    return Step(id=sid, name=sid, run=run, **kw)


class Harness:
    """A run on the scripted executor, with its events collected."""

    def __init__(self, wf: Workflow, **options) -> None:
        self.world = ScriptedWorld()
        self.run = Run(wf, RunOptions(**options), executor_for=self.world.factory())
        self.events: list = []
        self.run.subscribe(self.events.append)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run.execute())

    async def finish(self, timeout: float = 5) -> RunState:
        if self._task is None:
            self.start()
        return await asyncio.wait_for(self._task, timeout)

    async def until(self, predicate, timeout: float = 5) -> None:
        await until(predicate, timeout)

    async def state_of(self, sid: str, state: TaskState, host: str = "local") -> None:
        await self.until(lambda: self.run.tasks[(sid, host)].state is state)

    def states(self, sid: str, host: str = "local") -> list[TaskState]:
        return [e.state for e in self.events
                if isinstance(e, TaskEvent) and e.step == sid and e.host == host]

    def state(self, sid: str, host: str = "local") -> TaskState:
        return self.run.tasks[(sid, host)].state

    def actions(self) -> list[ActionEvent]:
        return [e for e in self.events if isinstance(e, ActionEvent)]


async def test_the_need_counters_answer_on_a_layered_graph(counter_answers):
    first = [step(f"a{i}") for i in range(4)]
    second = [step(f"b{i}", needs=tuple(s.id for s in first)) for i in range(4)]
    h = Harness(workflow(*first, *second, step("c", needs=("b0", "b3")), concurrency=2))
    assert await h.finish() is RunState.SUCCEEDED
    assert set(h.world.order()[:4]) == {"a0", "a1", "a2", "a3"}
    assert h.world.order()[-1] == "c"
    assert len(counter_answers) >= 5  # and each one agreed with the walk


async def test_linear_run_succeeds_in_dependency_order():
    h = Harness(workflow(step("c", needs=("b",)), step("a"), step("b", needs=("a",))))
    assert await h.finish() is RunState.SUCCEEDED
    assert h.world.order() == ["a", "b", "c"]
    assert h.states("b") == [S.RUNNING, S.SUCCEEDED]
    runs = [e for e in h.events if e.type == "run"]
    assert [e.state for e in runs] == [RunState.RUNNING, RunState.SUCCEEDED]


async def test_no_task_starts_before_its_needs_finish():
    h = Harness(workflow(step("a", run="sleep 0.05"), step("b", run="sleep 0.01"),
                         step("c", needs=("a", "b"))))
    await h.finish()
    a, b, c = (h.world.starts(x)[0] for x in "abc")
    assert c.start_seq > a.end_seq and c.start_seq > b.end_seq


async def test_concurrency_limit_is_never_exceeded():
    h = Harness(workflow(*(step(f"s{i}", run="sleep 0.02") for i in range(12)), concurrency=3))
    await h.finish()
    assert h.world.max_running == 3
    assert len(h.world.records) == 12


async def test_failure_blocks_dependents_and_fails_run():
    h = Harness(workflow(step("a", run="exit 3"), step("b", needs=("a",)),
                         step("c", needs=("b",)), step("d")))
    assert await h.finish() is RunState.FAILED
    assert h.state("a") is S.FAILED and h.run.tasks[("a", "local")].exit_code == 3
    assert h.run.tasks[("a", "local")].reason == "exit 3"
    assert h.state("b") is S.BLOCKED and h.run.tasks[("b", "local")].reason == "needs a (failed)"
    assert h.state("c") is S.BLOCKED and h.state("d") is S.SUCCEEDED
    assert h.world.order() == ["a", "d"] or h.world.order() == ["d", "a"]


async def test_continue_on_error_counts_as_done():
    h = Harness(workflow(step("a", run="exit 1", continue_on_error=True), step("b", needs=("a",))))
    assert await h.finish() is RunState.SUCCEEDED
    assert h.state("a") is S.FAILED
    assert "ignored: continue_on_error" in h.run.tasks[("a", "local")].reason
    assert h.state("b") is S.SUCCEEDED


async def test_automatic_retries_with_backoff():
    loop = asyncio.get_running_loop()
    h = Harness(workflow(step("a", run="exit 1", retries=2, retry_delay=0.05, retry_backoff=2.0)))
    t0 = loop.time()
    assert await h.finish() is RunState.FAILED
    elapsed = loop.time() - t0
    assert h.states("a") == [S.RUNNING, S.RETRYING, S.RUNNING, S.RETRYING, S.RUNNING, S.FAILED]
    assert h.run.tasks[("a", "local")].attempt == 3
    assert len(h.run.tasks[("a", "local")].attempts) == 3
    assert 0.15 <= elapsed < 1.0  # 0.05 + 0.10
    retrying = [e.reason for e in h.events if isinstance(e, TaskEvent) and e.state is S.RETRYING]
    assert retrying == ["exit 1; retry 1/2 in 0.05s", "exit 1; retry 2/2 in 0.1s"]


async def test_timeout_fails_the_attempt():
    h = Harness(workflow(step("a", run="sleep 10", timeout=0.05)))
    assert await h.finish() is RunState.FAILED
    assert h.run.tasks[("a", "local")].reason == "timed out after 0.05s"
    assert h.world.terminated == ["a"]


async def test_when_false_skips_and_satisfies_dependents():
    from console.model.workflow import Param

    wf = workflow(step("a", when="params.target == 'prod'"), step("b", needs=("a",)),
                  params={"target": Param("target", default="staging")})
    h = Harness(wf, params={"target": "staging"})
    assert await h.finish() is RunState.SUCCEEDED
    assert h.state("a") is S.SKIPPED and "is false" in h.run.tasks[("a", "local")].reason
    assert h.state("b") is S.SUCCEEDED


async def test_outputs_flow_into_templates():
    h = Harness(workflow(step("a", run="echo hello"),
                         step("b", run="echo {{ steps.a.stdout }}", needs=("a",))))
    await h.finish()
    assert h.world.starts("b")[0].script == "echo 'hello\n'"
    out = h.run.tasks[("a", "local")].outputs
    assert (out.status, out.exit_code, out.stdout) == ("succeeded", 0, "hello\n")


async def test_outputs_survive_retry_and_json_parses():
    h = Harness(workflow(step("a", run='echo {"n": 3}\nexit 1')))
    await h.finish()
    task = h.run.tasks[("a", "local")]
    assert task.outputs.json == {"n": 3} and task.outputs.status == "failed"
    h2 = Harness(workflow(step("a", run='echo {"n": 3}')), approval="wait")
    await h2.finish()
    assert h2.run.tasks[("a", "local")].outputs.json == {"n": 3}


async def test_manual_step_waits_for_done():
    h = Harness(workflow(step("m", run=None), step("b", needs=("m",))))
    h.start()
    await h.state_of("m", S.AWAITING_OPERATOR)
    with pytest.raises(ActionError, match="cannot approve 'm': it is awaiting_operator"):
        h.run.approve("m")
    h.run.done("m")
    assert await h.finish() is RunState.SUCCEEDED
    assert h.state("b") is S.SUCCEEDED
    assert [a.action for a in h.actions()] == ["done"]


async def test_gate_waits_then_approve():
    h = Harness(workflow(step("g", confirm="Drain?"), step("b", needs=("g",))))
    h.start()
    await h.state_of("g", S.AWAITING_APPROVAL)
    assert h.run.tasks[("g", "local")].reason == "Drain?"
    assert h.world.records == []
    h.run.approve("g")
    assert await h.finish() is RunState.SUCCEEDED
    assert h.states("g") == [S.AWAITING_APPROVAL, S.PENDING, S.RUNNING, S.SUCCEEDED]


async def test_deny_fails_the_gate():
    h = Harness(workflow(step("g", dangerous=True), step("b", needs=("g",))), user="alice")
    h.start()
    await h.state_of("g", S.AWAITING_APPROVAL)
    h.run.deny("g", reason="not now")
    assert await h.finish() is RunState.FAILED
    assert h.run.tasks[("g", "local")].reason == "denied by alice: not now"
    assert h.state("b") is S.BLOCKED
    action = h.actions()[0]
    assert (action.action, action.step, action.user, action.reason) == ("deny", "g", "alice",
                                                                       "not now")


@pytest.mark.parametrize("approval", ["auto", "fail"])
async def test_gates_and_manual_steps_with_yes_and_without_tty(approval):
    h = Harness(workflow(step("g", confirm="ok?"), step("m", run=None, needs=("g",))),
                approval=approval)
    final = await h.finish()
    if approval == "auto":
        assert final is RunState.SUCCEEDED
        assert [(a.action, a.reason) for a in h.actions()] == [("approve", "--yes"),
                                                               ("done", "--yes")]
    else:
        assert final is RunState.FAILED
        assert h.run.tasks[("g", "local")].reason == APPROVAL_REQUIRED
        assert h.state("m") is S.BLOCKED
        assert h.world.records == []


async def test_step_mode_requires_approval_for_every_task():
    h = Harness(workflow(step("a"), step("b", needs=("a",))), step_mode=True)
    h.start()
    await h.state_of("a", S.AWAITING_APPROVAL)
    assert h.run.tasks[("a", "local")].reason == "step mode"
    h.run.approve("a")
    await h.state_of("b", S.AWAITING_APPROVAL)
    h.run.toggle_step_mode()  # releases b: it was held only by step mode
    assert await h.finish() is RunState.SUCCEEDED
    assert [a.action for a in h.actions()] == ["approve", "step_mode"]


async def test_breakpoint_holds_before_start():
    h = Harness(workflow(step("a", run="hold a"), step("b", needs=("a",))))
    assert h.run.toggle_breakpoint("b") is True
    h.start()
    h.world.release("a")
    await h.state_of("b", S.AWAITING_APPROVAL)
    assert h.run.tasks[("b", "local")].reason == "breakpoint"
    h.run.approve("b")
    assert await h.finish() is RunState.SUCCEEDED
    assert h.run.toggle_breakpoint("b") is False  # it was on: toggling turns it off
    with pytest.raises(ActionError, match="unknown step 'zz'"):
        h.run.toggle_breakpoint("zz")


async def test_pause_stops_new_starts_and_resume_continues():
    h = Harness(workflow(step("a", run="hold a"), step("b", needs=("a",))))
    h.start()
    await h.state_of("a", S.RUNNING)
    h.run.pause()
    assert h.run.state is RunState.PAUSED
    with pytest.raises(ActionError, match="cannot pause: the run is paused"):
        h.run.pause()
    h.world.release("a")
    await h.state_of("a", S.SUCCEEDED)
    await asyncio.sleep(0.05)
    assert h.state("b") is S.PENDING and len(h.world.records) == 1
    h.run.resume()
    with pytest.raises(ActionError, match="cannot resume: the run is running"):
        h.run.resume()
    assert await h.finish() is RunState.SUCCEEDED


async def test_retry_unblocks_dependents():
    h = Harness(workflow(step("a", run="exit 2"), step("b", needs=("a",)),
                         step("c", needs=("b",))), keep_alive=True)
    h.start()
    await h.state_of("c", S.BLOCKED)
    await h.until(lambda: h.run.state is RunState.FAILED)
    # make the retry succeed: swap in a passing definition of 'a'
    h.run.workflow.steps["a"].__dict__["run"] = "ok"
    h.run.retry("a")
    await h.state_of("c", S.SUCCEEDED)
    assert h.states("b") == [S.BLOCKED, S.PENDING, S.RUNNING, S.SUCCEEDED]
    assert h.run.tasks[("a", "local")].attempt == 2
    await h.until(lambda: h.run.state is RunState.SUCCEEDED)
    h.run.close()
    assert await h.finish() is RunState.SUCCEEDED


async def test_skip_failed_satisfies_dependents():
    h = Harness(workflow(step("a", run="exit 2"), step("b", needs=("a",))), keep_alive=True)
    h.start()
    await h.state_of("b", S.BLOCKED)
    h.run.skip("a", reason="known flaky")
    await h.state_of("b", S.SUCCEEDED)
    assert h.run.tasks[("a", "local")].reason.endswith(": known flaky")
    h.run.close()
    assert await h.finish() is RunState.SUCCEEDED


async def test_retry_downstream_resets_every_descendant():
    h = Harness(workflow(step("a"), step("b", needs=("a",)), step("c", needs=("b",)),
                         step("x")), keep_alive=True)
    h.start()
    await h.until(lambda: h.run.state is RunState.SUCCEEDED)
    h.run.retry_downstream("a")
    await h.until(lambda: h.run.state is RunState.SUCCEEDED and
                  len(h.world.starts("c")) == 2)
    assert [len(h.world.starts(s)) for s in "abcx"] == [2, 2, 2, 1]
    assert h.states("c")[-3:] == [S.PENDING, S.RUNNING, S.SUCCEEDED]
    with pytest.raises(ActionError, match="cannot retry 'a': it is succeeded"):
        h.run.retry("a")
    h.run.close()
    await h.finish()


async def test_retry_downstream_refuses_while_descendant_runs():
    h = Harness(workflow(step("a"), step("b", run="hold b", needs=("a",))), keep_alive=True)
    h.start()
    await h.state_of("b", S.RUNNING)
    with pytest.raises(ActionError, match="b is running"):
        h.run.retry_downstream("a")
    assert h.state("a") is S.SUCCEEDED
    h.world.release("b")
    h.run.close()
    await h.finish()


async def test_mark_succeeded_and_mark_failed():
    h = Harness(workflow(step("a", run="exit 1"), step("b", needs=("a",)), step("m", run=None)),
                keep_alive=True)
    h.start()
    await h.state_of("b", S.BLOCKED)
    h.run.mark_succeeded("a", reason="fixed by hand")
    await h.state_of("b", S.SUCCEEDED)
    await h.state_of("m", S.AWAITING_OPERATOR)
    h.run.mark_failed("m", reason="disk still full")
    await h.until(lambda: h.run.state is RunState.FAILED)
    assert h.run.tasks[("m", "local")].reason.endswith("disk still full")
    with pytest.raises(ActionError, match="cannot mark succeeded 'b': it is succeeded"):
        h.run.mark_succeeded("b")
    h.run.close()
    assert await h.finish() is RunState.FAILED


async def test_cancel_running_task_terminates_it():
    h = Harness(workflow(step("a", run="sleep 30"), step("b", needs=("a",))))
    h.start()
    await h.state_of("a", S.RUNNING)
    h.run.cancel("a")
    assert await h.finish() is RunState.FAILED
    assert h.state("a") is S.CANCELLED and h.world.terminated == ["a"]
    assert h.run.tasks[("a", "local")].reason == "cancelled by operator"
    assert h.state("b") is S.BLOCKED


async def test_cancel_while_retrying():
    h = Harness(workflow(step("a", run="exit 1", retries=3, retry_delay=5)))
    h.start()
    await h.state_of("a", S.RETRYING)
    h.run.cancel("a")
    assert await h.finish(timeout=2) is RunState.FAILED
    assert h.state("a") is S.CANCELLED


@pytest.mark.parametrize(
    ("action", "state_needed"),
    [("approve", "awaiting_approval"), ("deny", "awaiting_approval"), ("done", "awaiting_operator"),
     ("retry", "failed"), ("skip", "pending"), ("mark_failed", "succeeded"),
     ("mark_succeeded", "failed"), ("cancel", "running")],
)
async def test_illegal_actions_change_nothing(action, state_needed):
    h = Harness(workflow(step("a", run="hold a"), step("b", needs=("a",)), step("c")))
    h.start()
    await h.state_of("a", S.RUNNING)
    await h.state_of("c", S.SUCCEEDED)
    target = {"awaiting_approval": "c", "awaiting_operator": "c", "failed": "c",
              "pending": "c", "succeeded": "b", "running": "c"}[state_needed]
    before = [(t.key, t.state, t.reason) for t in h.run.tasks.values()]
    n_events = len(h.events)
    with pytest.raises(ActionError, match=f"cannot {action.replace('_', ' ')} '{target}'"):
        getattr(h.run, action)(target)
    assert [(t.key, t.state, t.reason) for t in h.run.tasks.values()] == before
    assert len(h.events) == n_events
    with pytest.raises(ActionError, match="unknown step 'nope'"):
        getattr(h.run, action)("nope")
    with pytest.raises(ActionError, match="has no task on host 'web9'"):
        getattr(h.run, action)("a", "web9")
    h.world.release("a")
    await h.finish()


async def test_actions_after_the_run_ended_are_refused():
    h = Harness(workflow(step("a", run="exit 1")))
    await h.finish()
    with pytest.raises(ActionError, match="the run has ended"):
        h.run.retry("a")


async def test_note_is_recorded_and_empty_note_refused():
    h = Harness(workflow(step("a", run="hold a")), user="bob")
    h.start()
    await h.state_of("a", S.RUNNING)
    h.run.note("  paged the DBA  ", step="a")
    with pytest.raises(ActionError, match="the note is empty"):
        h.run.note("   ")
    h.world.release("a")
    await h.finish()
    (note,) = h.actions()
    assert (note.action, note.step, note.user, note.reason) == ("note", "a", "bob",
                                                               "paged the DBA")


async def test_start_at_skips_upstream_only():
    h = Harness(workflow(step("a"), step("b", needs=("a",)), step("c", needs=("b",)),
                         step("side")), start_at="c")
    assert await h.finish() is RunState.SUCCEEDED
    assert h.state("a") is S.SKIPPED and h.state("b") is S.SKIPPED
    assert h.run.tasks[("a", "local")].reason == "before --start-at c"
    assert sorted(h.world.order()) == ["c", "side"]


async def test_start_at_unknown_step_is_an_error():
    with pytest.raises(ValueError, match="unknown step 'zz'"):
        Run(workflow(step("a")), RunOptions(start_at="zz"))


async def test_dry_run_runs_nothing_and_shows_commands():
    h = Harness(workflow(step("a", run="echo {{ secrets.tok }}"), step("m", run=None),
                         step("g", confirm="sure?", needs=("a",))),
                dry_run=True, secrets={"tok": "hunter2"})
    assert await h.finish() is RunState.SUCCEEDED
    assert h.world.records == []
    logs = {e.step: e.text for e in h.events if isinstance(e, LogEvent)}
    assert logs["a"] == "would run: echo ***"
    reasons = {sid: h.run.tasks[(sid, "local")].reason for sid in "amg"}
    assert all(t.state is S.SKIPPED for t in h.run.tasks.values())
    assert reasons == {"a": "dry run: would run", "m": "dry run: would wait for the operator",
                       "g": "dry run: would run"}


async def test_dry_run_evaluates_when_with_the_params():
    h = Harness(workflow(step("prod", run="echo prod", when="params.target == 'prod'"),
                         step("stage", run="echo stage", when="params.target != 'prod'"),
                         step("late", run="echo x", when="steps.stage.stdout != ''")),
                dry_run=True, params={"target": "staging"})
    assert await h.finish() is RunState.SUCCEEDED
    assert h.world.records == []
    logs = {e.step: e.text for e in h.events if isinstance(e, LogEvent)}
    assert "prod" not in logs and logs["stage"] == "would run: echo stage"
    assert h.run.tasks[("prod", "local")].reason == "when: params.target == 'prod' is false"
    assert h.run.tasks[("stage", "local")].reason == "dry run: would run"


async def test_secrets_masked_in_logs_and_reasons():
    h = Harness(workflow(step("a", run="echo token=hunter2 ok\nerr bad hunter2\nexit 1")),
                secrets={"tok": "hunter2"})
    await h.finish()
    logs = [e.text for e in h.events if isinstance(e, LogEvent)]
    assert logs == ["token=*** ok", "bad ***"]
    assert "hunter2" not in repr(h.events)
    assert h.run.tasks[("a", "local")].outputs.stdout == "token=*** ok\n"


async def test_attempt_records_never_hold_a_secret_even_transformed():
    """Issue 11 items 1-2: the attempt's reason and command (what the store writes) are
    masked like the task's; commands are the placeholder rendering, the executor alone
    gets the real script."""
    h = Harness(workflow(step("lookup", run="echo {{ params[secrets.tok | upper] }}"),
                         step("enc", run="echo {{ secrets.tok | urlencode }} "
                                         "{{ secrets.tok | upper }} {{ secrets.tok }}"),
                         step("fail", run="echo x\nexit 2", retries=1),
                         step("cancel", run="hold c")),
                secrets={"tok": "hun ter2"}, params={"n": 1})
    h.start()
    await h.state_of("cancel", S.RUNNING)
    h.run.cancel("cancel", reason="stop hun ter2 now")
    await h.finish()
    lookup = h.run.tasks[("lookup", "local")]
    assert lookup.reason == "template error: 'dict object' has no attribute '***'"
    assert lookup.attempts[-1].reason == lookup.reason
    enc = h.run.tasks[("enc", "local")]
    assert enc.attempts[-1].command == "echo *** *** ***"
    assert h.world.starts("enc")[0].script == "echo hun%20ter2 'HUN TER2' 'hun ter2'"
    cancel = h.run.tasks[("cancel", "local")]
    assert "hun ter2" not in str(cancel.attempts[-1].reason)
    records = [(a.reason, a.command) for t in h.run.tasks.values() for a in t.attempts]
    assert not any(form in repr(records) + repr(h.events)
                   for form in ("hun ter2", "HUN TER2", "hun%20ter2"))


async def test_a_slice_or_replacement_of_a_secret_is_masked_in_the_output():
    """A template can make a value of a secret that no placeholder survives (a slice, a
    replace): it is found by rendering with two sets of placeholders (the twins differ)
    and masked in the output like the secret."""
    h = Harness(workflow(step("a", run="echo {{ secrets.tok[:6] }} "
                                       "{{ secrets.tok | replace('-', '') }} "
                                       "{{ secrets.tok | length }} "
                                       "{{ 'set' if secrets.tok else 'unset' }}")),
                secrets={"tok": "qx7-hunter-2"})
    await h.finish()
    logs = [e.text for e in h.events if isinstance(e, LogEvent)]
    assert logs == ["*** *** 12 set"]
    assert "qx7-hu" not in repr(h.events) and "qx7hunter2" not in repr(h.events)


async def test_executor_error_naming_a_secret_is_masked_in_the_attempt():
    class Refusing:
        async def start(self, request, on_output):
            raise RuntimeError(f"cwd {request.cwd} does not exist")

        async def close(self) -> None:
            return None

    run = Run(workflow(step("a", run="true", cwd="/x/{{ secrets.tok }}")),
              RunOptions(secrets={"tok": "hunter2"}), executor_for=lambda host: Refusing())
    assert await run.execute() is RunState.FAILED
    task = run.tasks[("a", "local")]
    assert task.reason == task.attempts[-1].reason == "cwd /x/*** does not exist"


async def test_template_error_fails_the_task_with_reason():
    h = Harness(workflow(step("a", run="echo {{ params.nope }}")))
    assert await h.finish() is RunState.FAILED
    assert h.run.tasks[("a", "local")].reason.startswith("template error:")
    assert h.world.records == []


def _fleet(n: int) -> dict[str, Host]:
    return {f"web{i}": Host(f"web{i}", f"127.0.0.{i + 1}", groups=("web",)) for i in range(n)}


async def test_fan_out_serial_and_whole_step_barrier():
    wf = workflow(step("a", run="sleep 0.01", on=("web",), serial=2),
                  step("b", on=("web",), needs=("a",), serial="50%"), hosts=_fleet(6))
    h = Harness(wf)
    assert await h.finish() is RunState.SUCCEEDED
    assert h.world.max_by_step == {"a": 2, "b": 3}
    last_a = max(r.end_seq for r in h.world.starts("a"))
    assert min(r.start_seq for r in h.world.starts("b")) > last_a


async def test_max_fail_stops_launching_hosts():
    wf = workflow(step("a", run="exit 1", on=("web",), serial=1, max_fail=1),
                  step("b", needs=("a",)), hosts=_fleet(5))
    h = Harness(wf)
    assert await h.finish() is RunState.FAILED
    states = [h.state("a", f"web{i}") for i in range(5)]
    assert states == [S.FAILED, S.FAILED, S.BLOCKED, S.BLOCKED, S.BLOCKED]
    assert h.run.tasks[("a", "web4")].reason == "max_fail reached (2 failed)"
    assert h.state("b") is S.BLOCKED


async def test_failures_within_max_fail_let_dependents_go_on():
    wf = workflow(step("a", run="exit 1", on=("web1",)), step("z", on=("web0", "web2")),
                  step("b", needs=("a",)), hosts=_fleet(3))
    wf.steps["a"].__dict__["max_fail"] = 1
    h = Harness(wf)
    assert await h.finish() is RunState.FAILED  # the run still fails
    assert h.state("b") is S.SUCCEEDED


async def test_limit_narrows_hosts():
    wf = workflow(step("a", on=("all",)), step("l"), hosts=_fleet(4))
    h = Harness(wf, limit=("web1", "web3"))
    await h.finish()
    assert sorted(r.host for r in h.world.starts("a")) == ["web1", "web3"]
    assert h.world.starts("l")[0].host == "local"


async def test_interrupt_stops_running_tasks_and_leaves_the_run_resumable():
    h = Harness(workflow(step("a", run="sleep 30"), step("b", run="sleep 30"),
                         step("c", needs=("a",)), step("g", confirm="go?"),
                         step("r", run="exit 1", retries=1, retry_delay=60)))
    h.start()
    await h.state_of("a", S.RUNNING)
    await h.state_of("b", S.RUNNING)
    await h.state_of("g", S.AWAITING_APPROVAL)
    await h.state_of("r", S.RETRYING)
    h.run.interrupt("stopped by SIGTERM")
    assert await h.finish() is RunState.INTERRUPTED
    assert {h.state(s) for s in "abr"} == {S.INTERRUPTED}
    assert h.run.tasks[("a", "local")].reason == "stopped by SIGTERM"
    assert h.run.tasks[("r", "local")].reason == "stopped by SIGTERM"
    assert h.state("c") is S.BLOCKED  # by the interrupted need, decided again on resume
    assert h.state("g") is S.AWAITING_APPROVAL  # not started: keeps its state
    assert sorted(h.world.terminated) == ["a", "b"]
    h.run.close()  # a console closing the run afterwards changes nothing
    assert h.state("g") is S.AWAITING_APPROVAL and h.state("a") is S.INTERRUPTED


async def test_close_still_cancels_everything():
    h = Harness(workflow(step("a", run="sleep 30"), step("c", needs=("a",))))
    h.start()
    await h.state_of("a", S.RUNNING)
    h.run.close()
    await h.finish()
    assert {h.state(s) for s in "ac"} == {S.CANCELLED}


def test_run_ids_are_unique_and_sortable():
    ids = [new_run_id(1_700_000_000 + i) for i in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50 and all(len(i) == 13 for i in ids)


def test_engine_imports_without_textual():
    import subprocess

    code = ("import sys, console.model, console.model.loader, console.engine.run, "
            "console.executors.local; assert 'textual' not in sys.modules, 'textual imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_workflow_without_templates_loads_and_runs_without_jinja(tmp_path):
    """Jinja costs 30 ms of start-up; plain commands never need it (a template does)."""
    import subprocess

    plain = '[workflow]\nname = "p"\n[steps.a]\nrun = "true"\n[steps.b]\nrun = "echo hi"\n'
    code = ("import asyncio, sys; from pathlib import Path; "
            "from console.model.loader import load_workflow; "
            "from console.engine.run import Run, RunOptions; "
            "wf = load_workflow(Path(sys.argv[1])); loaded = 'jinja2' in sys.modules; "
            "state = asyncio.run(Run(wf, RunOptions(approval='auto')).execute()); "
            "print(loaded, 'jinja2' in sys.modules, state)")
    for name, text, expected in (
        ("plain.toml", plain, "False False succeeded"),
        ("templated.toml", plain + '[steps.c]\nrun = "echo {{ steps.b.stdout }}"\n'
                                   'needs = ["b"]\n', "True True succeeded"),
    ):
        path = tmp_path / name
        path.write_text(text)
        result = subprocess.run([sys.executable, "-c", code, str(path)], check=True,
                                capture_output=True, text=True)
        assert result.stdout.strip() == expected, name


def _rollout_workflow(n: int, serial, *, max_fail: int = 0, pause_between: bool = False,
                      deploy: str = "sleep 0.005") -> Workflow:
    from console.model.workflow import Rollout

    wf = workflow(step("drain", run="sleep 0.005", on=("web",)),
                  step("deploy", run=deploy, on=("web",), needs=("drain",)),
                  step("report", needs=("deploy",)), hosts=_fleet(n))
    rollouts = {"web": Rollout("web", ("drain", "deploy"), tuple(serial), max_fail,
                               pause_between)}
    return Workflow(name=wf.name, steps=wf.steps, hosts=wf.hosts, rollouts=rollouts,
                    concurrency=16, digest="d1")


async def test_rollout_canary_finishes_before_any_other_host_starts():
    h = Harness(_rollout_workflow(6, [1, "100%"]))
    assert await h.finish() is RunState.SUCCEEDED
    canary_end = max(r.end_seq for r in h.world.records if r.host == "web0")
    others = [r.start_seq for r in h.world.records if r.host not in ("web0", "local")]
    assert len(others) == 10 and min(others) > canary_end
    # whole-step need outside the rollout: report waits for every host
    report = h.world.starts("report")[0]
    assert report.start_seq > max(r.end_seq for r in h.world.starts("deploy"))


async def test_rollout_needs_are_per_host_inside_a_batch():
    wf = _rollout_workflow(2, ["100%"], deploy="sleep 0.001")
    wf.steps["drain"].__dict__["run"] = "{% if host.name == 'web1' %}hold web1{% endif %}"
    h = Harness(wf)
    h.start()
    await h.state_of("deploy", S.SUCCEEDED, "web0")  # web0 deploys while web1 still drains
    assert h.state("drain", "web1") is S.RUNNING
    h.world.release("web1")
    assert await h.finish() is RunState.SUCCEEDED


async def test_rollout_pause_between_batches_needs_approval():
    h = Harness(_rollout_workflow(3, [1, 2], pause_between=True))
    h.start()
    await h.state_of("drain", S.AWAITING_APPROVAL, "web1")
    assert h.state("drain", "web2") is S.AWAITING_APPROVAL
    assert h.run.tasks[("drain", "web1")].reason == "rollout web: start batch 2/2 (web1, web2)?"
    assert {r.host for r in h.world.records} == {"web0"}
    h.run.approve("drain")
    assert await h.finish() is RunState.SUCCEEDED


async def test_rollout_max_fail_blocks_later_batches_until_retried():
    wf = _rollout_workflow(4, [1, "100%"],
                           deploy="{% if host.name == 'web0' %}exit 1{% endif %}")
    h = Harness(wf, keep_alive=True)
    h.start()
    await h.until(lambda: h.run.state is RunState.FAILED)
    assert h.state("deploy", "web0") is S.FAILED
    for i in (1, 2, 3):
        assert h.state("drain", f"web{i}") is S.BLOCKED
        assert "max_fail reached (rollout web" in h.run.tasks[("drain", f"web{i}")].reason
    assert h.state("report") is S.BLOCKED
    h.run.workflow.steps["deploy"].__dict__["run"] = "ok"
    h.run.retry("deploy", "web0")
    await h.until(lambda: h.run.state is RunState.SUCCEEDED)
    assert all(t.state is S.SUCCEEDED for t in h.run.tasks.values())
    h.run.close()
    await h.finish()


async def test_rollout_failures_within_max_fail_continue():
    wf = _rollout_workflow(4, [1, "100%"], max_fail=1,
                           deploy="{% if host.name == 'web2' %}exit 1{% endif %}")
    h = Harness(wf)
    assert await h.finish() is RunState.FAILED  # a failure still fails the run
    assert h.state("deploy", "web3") is S.SUCCEEDED
    assert h.state("report") is S.SUCCEEDED


def test_split_batches():
    from console.engine.rollout import split_batches

    hosts = [f"h{i}" for i in range(8)]
    assert [len(b) for b in split_batches([1, "50%", "100%"], hosts)] == [1, 4, 3]
    assert [len(b) for b in split_batches([2], hosts)] == [2, 2, 2, 2]
    assert [len(b) for b in split_batches(["30%"], hosts)] == [2, 2, 2, 2]
    assert split_batches([1, "100%"], []) == []


async def test_restore_keeps_finished_work_and_interrupts_running_tasks():
    from types import SimpleNamespace as R

    wf = workflow(step("a", run="echo A"), step("b", run="echo B", needs=("a",)),
                  step("c", run="echo {{ steps.a.stdout }}", needs=("b",)))
    records = [
        R(step="a", host="local", state="succeeded", attempt=1, exit_code=0, reason=None,
          started=1.0, ended=2.0, outputs={"status": "succeeded", "exit_code": 0, "stdout": "A\n"}),
        R(step="b", host="local", state="running", attempt=2, exit_code=None, reason=None,
          started=2.0, ended=None, outputs={}),
        R(step="c", host="local", state="pending", attempt=0, exit_code=None, reason=None,
          started=None, ended=None, outputs={}),
    ]
    h = Harness(wf, run_id="r1", keep_alive=True)
    interrupted = h.run.restore(records)
    assert [t.key for t in interrupted] == [("b", "local")]
    h.start()
    await h.until(lambda: h.run.state is RunState.FAILED)  # waits for a decision
    assert h.state("b") is S.INTERRUPTED and h.world.records == []
    assert h.run.tasks[("b", "local")].reason == "was running when baton stopped (attempt 2)"
    h.run.retry("b")
    await h.state_of("c", S.SUCCEEDED)
    assert h.world.order() == ["b", "c"]  # 'a' never re-runs
    assert h.run.tasks[("b", "local")].attempt == 3
    assert h.world.starts("c")[0].script == "echo 'A\n'"  # outputs restored
    h.run.close()
    await h.finish()


async def test_restore_with_yes_retries_interrupted_tasks():
    from types import SimpleNamespace as R

    h = Harness(workflow(step("a"), step("b", needs=("a",))), approval="auto")
    h.run.restore([R(step="a", host="local", state="retrying", attempt=1, exit_code=1,
                     reason=None, started=1.0, ended=None, outputs={})])
    assert await h.finish() is RunState.SUCCEEDED
    assert [(a.action, a.step, a.reason) for a in h.actions()] == [("retry", "a", "--yes")]
    assert h.world.order() == ["a", "b"]


async def test_allowed_and_preview_command():
    h = Harness(workflow(step("a", run="echo {{ secrets.tok }} {{ params.n }}"),
                         step("b", run="echo {{ steps.a.stdout }}", needs=("a",), confirm="go?")),
                secrets={"tok": "hunter2"}, params={"n": 3}, keep_alive=True)
    assert h.run.preview_command("a", "local") == "echo *** 3"
    assert h.run.preview_command("b", "local") == "echo {{ steps.a.stdout }}\n# rendered once a ran"
    h.start()
    await h.state_of("b", S.AWAITING_APPROVAL)
    assert h.run.allowed("approve", "b") and h.run.allowed("skip", "b")
    assert not h.run.allowed("retry", "b") and not h.run.allowed("approve", "nope")
    assert h.run.preview_command("b", "local") == "echo '*** 3\n'"
    h.run.approve("b")
    await h.until(lambda: h.run.state is RunState.SUCCEEDED)
    assert h.run.preview_command("a", "local") == "echo *** 3"  # the attempt's own command
    h.run.close()
    await h.finish()


async def test_step_mode_off_releases_the_tasks_it_held_but_not_real_gates():
    h = Harness(workflow(step("a"), step("b"), step("g", confirm="sure?"),
                         step("c", needs=("a",))), step_mode=True)
    h.start()
    for sid in "abg":
        await h.state_of(sid, S.AWAITING_APPROVAL)
    assert h.run.toggle_step_mode() is False
    await h.state_of("c", S.SUCCEEDED)  # a, b released; c is not held either
    assert h.state("a") is S.SUCCEEDED and h.state("b") is S.SUCCEEDED
    assert h.state("g") is S.AWAITING_APPROVAL and h.run.tasks[("g", "local")].reason == "sure?"
    assert [a.action for a in h.actions()] == ["step_mode"]
    h.run.approve("g")
    assert await h.finish() is RunState.SUCCEEDED


async def test_removing_a_breakpoint_releases_its_held_tasks_unless_step_mode_holds_them():
    hosts = {f"h{i}": Host(f"h{i}", f"127.0.0.{i + 1}") for i in range(3)}
    h = Harness(workflow(step("a", on=("h0", "h1", "h2")), step("b", needs=("a",)),
                         hosts=hosts))
    h.run.toggle_breakpoint("a")
    h.run.toggle_breakpoint("b")
    h.start()
    for i in range(3):
        await h.state_of("a", S.AWAITING_APPROVAL, f"h{i}")
    assert h.run.toggle_breakpoint("a") is False
    await h.state_of("b", S.AWAITING_APPROVAL)  # a ran on every host; b's breakpoint holds
    assert all(h.state("a", f"h{i}") is S.SUCCEEDED for i in range(3))
    h.run.toggle_step_mode()
    assert h.run.toggle_breakpoint("b") is False
    await asyncio.sleep(0.02)
    assert h.state("b") is S.AWAITING_APPROVAL  # still held: step mode is on
    assert h.run.tasks[("b", "local")].reason == "step mode"
    h.run.toggle_step_mode()
    assert await h.finish() is RunState.SUCCEEDED
