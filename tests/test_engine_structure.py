"""Engine structure (issue 12, items 1, 4 and 6): small modules, a task group that owns
every attempt loop, step statuses as an enum, and one engine method that sets task states
read from the history."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from console.engine.events import RunState, TaskEvent, TaskState
from console.engine.scheduler import StepStatus
from tests.test_engine import Harness, step, workflow

S = TaskState
ENGINE = Path(__file__).resolve().parent.parent / "console" / "engine"


def test_engine_modules_stay_small() -> None:
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines())
             for p in ENGINE.glob("*.py")}
    assert sizes["run.py"] < 400, sizes["run.py"]
    assert {name: n for name, n in sizes.items() if n > 450} == {}


async def test_cancelling_execute_ends_every_attempt_loop_and_its_process() -> None:
    """The attempt loops belong to execute's task group: cancelling the run's coroutine
    (an app torn down) cancels them, which ends each process tree, instead of leaving
    them running unowned."""
    h = Harness(workflow(step("a", "hold a"), step("b", "hold b")))
    h.start()
    await h.state_of("a", S.RUNNING)
    await h.state_of("b", S.RUNNING)
    await h.until(lambda: len(h.world.records) == 2)
    loops = [t.attempt_loop for t in h.run.tasks.values()]
    assert all(loop is not None for loop in loops)
    assert h._task is not None
    h._task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await h._task
    assert sorted(h.world.terminated) == ["a", "b"]
    assert all(loop is not None and loop.done() for loop in loops)
    assert all(t.attempt_loop is None for t in h.run.tasks.values())


async def test_a_cancelled_task_is_terminated_before_execute_returns() -> None:
    """The operator's cancel terminates the process in a task the run keeps (and awaits
    before it closes its executors), never a fire-and-forget one."""
    h = Harness(workflow(step("a", "hold a")), keep_alive=False)
    h.start()
    await h.state_of("a", S.RUNNING)
    await h.until(lambda: len(h.world.records) == 1)
    h.run.cancel("a")
    assert await h.finish() is RunState.FAILED
    assert h.state("a") is S.CANCELLED
    assert h.world.terminated == ["a"]
    assert not h.run._background  # nothing left running beside the run
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert all(t.done() for t in others)


async def test_step_statuses_are_an_enum() -> None:
    h = Harness(workflow(step("a"), step("b", "exit 3"), step("c", needs=("b",))))
    assert h.run.step_status("a") is StepStatus.WAIT
    await h.finish()
    assert h.run.step_status("a") is StepStatus.DONE
    assert h.run.step_status("b") is StepStatus.BAD
    assert h.run.step_status("b") == "bad"  # a StrEnum: stored and printed as before


def _records(*rows: tuple[str, str, str | None]) -> list[SimpleNamespace]:
    return [SimpleNamespace(step=sid, host="local", state=state, reason=reason, attempt=1,
                            exit_code=None, started=1.0, ended=None, outputs={})
            for sid, state, reason in rows]


async def test_states_from_history_keep_the_scheduler_books_and_emit_nothing() -> None:
    """``restore`` (to resume) and ``restore_as_recorded`` (to look at, or roll back) are
    the engine's one way to set states read from the history: no events (they are the
    history already), and what the run counts (settled, step statuses) follows them."""
    h = Harness(workflow(step("a"), step("b", needs=("a",)), step("c", needs=("b",))))
    records = _records(("a", "succeeded", None), ("b", "running", None),
                       ("c", "pending", None))
    interrupted = h.run.restore(records)
    assert [t.step for t in interrupted] == ["b"]
    assert h.state("b") is S.INTERRUPTED
    assert not h.run.settled  # c is still to be decided
    h.run.restore_as_recorded(records)
    assert (h.state("a"), h.state("b"), h.state("c")) == (S.SUCCEEDED, S.RUNNING, S.PENDING)
    assert h.run.step_status("b") is StepStatus.WAIT
    assert not h.run.settled
    done = _records(("a", "succeeded", None), ("b", "failed", "exit 1"),
                    ("c", "blocked", "needs b (failed)"))
    h.run.restore(done)
    assert h.state("c") is S.PENDING  # blocked is decided again on resume
    h.run.restore_as_recorded(done, only_pending=True)  # what was not decided: as it was
    assert h.state("c") is S.BLOCKED and h.run.tasks[("c", "local")].reason == \
        "needs b (failed)"
    assert h.state("b") is S.FAILED
    assert h.run.settled
    assert not [e for e in h.events if isinstance(e, TaskEvent)]


def test_the_engine_imports_only_what_its_docstring_allows() -> None:
    """console/engine/__init__.py: model, executors and sanitize, never store, ui or the
    CLI; and no part of the engine imports the facade (run.py), even for the checker."""
    from tests.test_import_hygiene import import_graph

    graph = import_graph(types=True)
    allowed = ("console.engine", "console.model", "console.executors", "console.sanitize")
    for module, targets in graph.items():
        if not module.startswith("console.engine"):
            continue
        assert {t for t in targets if not t.startswith(allowed)} == set(), module
        if module != "console.engine.run":
            assert "console.engine.run" not in targets, module


async def test_an_error_in_the_scheduler_loop_is_raised_as_it_was() -> None:
    """The task group does not wrap what the loop itself raises (here a subscriber's
    error while a pass skips a task) in an ExceptionGroup: callers see it unchanged."""
    h = Harness(workflow(step("a", when="false"), step("b", "hold b")))

    def broken(event: object) -> None:
        if isinstance(event, TaskEvent) and event.state is S.SKIPPED:
            raise ValueError("subscriber broke")

    h.run.subscribe(broken)
    with pytest.raises(ValueError, match="subscriber broke"):
        await h.finish()


async def test_a_terminate_that_fails_leaves_the_run_going() -> None:
    """A cancel's terminate runs in the run's task group; when it fails (a lost SSH
    connection) the task keeps running until it ends, and the run ends as it would."""
    from tests.fakes import ScriptedExecutor

    async def lost(grace: float = 0) -> None:
        raise OSError("connection lost")

    class StubbornExecutor(ScriptedExecutor):
        async def start(self, request, on_output):  # type: ignore[no-untyped-def]
            execution = await super().start(request, on_output)
            execution.terminate = lost  # type: ignore[method-assign]
            return execution

    h = Harness(workflow(step("a", "hold a")))
    h.run._executor_for = lambda host: StubbornExecutor(h.world, host)
    h.start()
    await h.state_of("a", S.RUNNING)
    await h.until(lambda: h.run.tasks[("a", "local")].execution is not None)
    h.run.cancel("a")
    await asyncio.sleep(0.05)
    assert h.state("a") is S.RUNNING  # not ended: still shown running
    h.world.release("a")
    assert await h.finish() is RunState.FAILED
    assert h.state("a") is S.CANCELLED
