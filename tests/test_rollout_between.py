"""A step outside a rollout between two of its steps would hang the run: it is refused.

The outside step waits (whole-step ``needs``) for every host of the rollout step it needs,
while that step's later batches wait for the rollout step it feeds on the earlier batch.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import baton, write_workflow

from console.engine.events import RunState
from console.engine.run import Run
from console.model.loader import Problem, WorkflowError, load_text
from tests.test_engine import Harness, step, workflow
from tests.test_engine_rollback import web, with_rollout

BETWEEN = """
[workflow]
name = "between"

[hosts.web1]
address = "10.0.0.1"
[hosts.web2]
address = "10.0.0.2"

[steps.s0]
on = ["web1", "web2"]
delegate = "local"
run = "echo s0"

[steps.s2]
needs = ["s0"]
run = "echo s2"

[steps.s3]
on = ["web1", "web2"]
delegate = "local"
needs = ["s2"]
run = "echo s3"

[rollouts.x]
steps = ["s0", "s3"]
serial = [1]
"""


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(WorkflowError) as caught:
        load_text(text, "wf.toml")
    return caught.value.problems


def between_wf():
    wf = workflow(step("s0", "ok", on=("web1", "web2")), step("s2", "ok", needs=("s0",)),
                  step("s3", "ok", needs=("s2",), on=("web1", "web2")), hosts=web(2))
    return with_rollout(wf, ("s0", "s3"), serial=(1,))


def test_check_reports_the_step_between_at_the_rollouts_steps() -> None:
    (problem,) = problems_of(BETWEEN)
    line = BETWEEN.splitlines().index('steps = ["s0", "s3"]') + 1
    assert (problem.file, problem.line, problem.col) == ("wf.toml", line, 1)
    assert problem.message.startswith("rollouts.x.steps: step 's2' is not in the rollout")
    assert "needs 's0'" in problem.message and "'s3' needs it" in problem.message
    assert "add 's2' to the rollout" in problem.message
    assert "\n" not in str(problem)


def test_check_accepts_it_once_the_step_is_in_the_rollout_or_off_the_path() -> None:
    inside = BETWEEN.replace('steps = ["s0", "s3"]', 'steps = ["s0", "s2", "s3"]')
    assert load_text(inside, "wf.toml").rollouts["x"].steps == ("s0", "s2", "s3")
    after = BETWEEN.replace('needs = ["s2"]', "needs = []")  # s2 no longer feeds s3
    assert load_text(after, "wf.toml").steps["s3"].needs == ()


def test_a_step_of_another_rollout_between_is_refused_too() -> None:
    text = BETWEEN + '[rollouts.y]\nsteps = ["s2"]\n'
    problems = problems_of(text)
    assert [p.message.split(":")[0] for p in problems] == ["rollouts.x.steps"]


def test_a_workflow_built_in_code_is_refused_by_run_not_hung() -> None:
    with pytest.raises(ValueError, match="step 's2' is not in the rollout"):
        Run(between_wf())


async def test_no_hang_the_run_refuses_before_scheduling() -> None:
    async def attempt() -> RunState:
        return await Harness(between_wf()).finish()

    with pytest.raises(ValueError, match="deadlock"):
        await asyncio.wait_for(attempt(), timeout=5)


def test_baton_check_and_headless_run_refuse_it_without_hanging(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, BETWEEN)
    for args in (("check", path), ("run", path, "--headless", "--yes")):
        result = baton(*args, cwd=tmp_path, timeout=20)
        assert result.returncode != 0, result
        assert f"{path}:" in result.stderr + result.stdout
        assert "step 's2' is not in the rollout" in result.stderr + result.stdout
        assert "Traceback" not in result.stderr


async def test_a_reload_into_that_shape_is_refused_and_the_run_goes_on() -> None:
    wf = between_wf()
    fine = with_rollout(wf, ("s0", "s2", "s3"), serial=(1,))
    h = Harness(fine, keep_alive=True)
    h.start()
    await h.until(lambda: h.run.started is not None)
    event = h.run.reload(wf)
    assert event.error is not None and "step 's2' is not in the rollout" in event.error
    assert h.run.workflow.rollouts["r"].steps == ("s0", "s2", "s3")
    h.run.close()
    await asyncio.wait_for(h.finish(), timeout=10)
