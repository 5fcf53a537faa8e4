"""Issue 10, the console's view of a run: the header clock after a re-open and a resume
(item 5), every attempt in the detail pane (item 7), scrolling a followed log (item 8),
navigation (item 16), width (item 17) and fleet-sized fan-outs (item 21)."""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path

import pytest
from rich.console import Console
from textual.events import MouseScrollUp

from console.engine.events import RunState, TaskState
from console.store import Store
from console.ui.app import BatonApp
from console.ui.widgets.header import RunHeader
from console.ui.widgets.step_detail import StepDetail
from tests.fakes import ScriptedExecutor, ScriptedWorld
from tests.history_helpers import flow_file, history_app, record_run
from tests.ui_helpers import SIZE, T0, FrozenClock, make_app, run_screen, select, until

S = TaskState


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_TEST_TOKEN", "s3cr3t-value")
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "home") as opened:
        yield opened


def text_of(renderable: object, width: int = 400) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def header_text(app: BatonApp) -> str:
    screen = next(s for s in app.screen_stack if hasattr(s, "run"))
    return text_of(screen.query_one(RunHeader).render())


class SecondTimeHolds(ScriptedWorld):
    """A scripted world whose steps run their script once; every later attempt holds
    until released (``hold again``): a retry that keeps running."""

    def factory(self):  # type: ignore[no-untyped-def]
        world = self

        class Executor(ScriptedExecutor):
            async def start(self, request, on_output):  # type: ignore[no-untyped-def]
                if world.starts(request.step):
                    request = dataclasses.replace(request, script="hold again")
                return await super().start(request, on_output)

        return lambda host: Executor(world, host)


# ---------------------------------------------------------------------------- item 5


async def test_header_clock_runs_again_after_a_failed_run_is_retried(tmp_path):
    clock = FrozenClock()
    text = '[workflow]\nname = "once"\n[steps.a]\nrun = "exit 3"\n'
    app, _ = make_app(tmp_path, text, clock=clock, start=True)
    world = SecondTimeHolds()
    app.executor_for = world.factory()
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await until(lambda: screen.run.state is RunState.FAILED)
        clock.now = T0 + 5
        assert "FAILED  00:00:00" in header_text(app)
        await select(pilot, screen, "a")
        await pilot.press("r")
        await until(lambda: screen.run.state is RunState.RUNNING
                    and screen.run.tasks[("a", "local")].state is S.RUNNING)
        clock.now = T0 + 65
        assert "RUNNING  00:01:05" in header_text(app)
        clock.now = T0 + 3600 + 2
        assert "RUNNING  01:00:02" in header_text(app)
        world.release("again")
        await until(lambda: screen.run.state is RunState.SUCCEEDED)
        clock.now = T0 + 7200
        assert "SUCCEEDED  01:00:02" in header_text(app)


async def test_resumed_run_clock_counts_from_the_runs_start(tmp_path, store):
    path = flow_file(tmp_path)
    await record_run(store, path, "r0000ddd1", started=T0 - 60, stop_at="ship")
    clock = FrozenClock(T0)
    world = ScriptedWorld()
    app, _ = history_app(path, store, resume="r0000ddd1", clock=clock, world=world)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: any(getattr(s, "started", False) for s in app.screen_stack))
        screen = await run_screen(app)
        # nothing can run until the operator decides: the run waits, its age shown
        assert "00:01:00" in header_text(app)
        await select(pilot, screen, "ship")
        await pilot.press("r")
        await until(lambda: screen.run.tasks[("ship", "local")].state is S.AWAITING_APPROVAL)
        clock.now = T0 + 90
        assert "RUNNING  00:02:30" in header_text(app)


# ---------------------------------------------------------------------------- item 7


def attempt_rows(app: BatonApp) -> list[str]:
    screen = next(s for s in app.screen_stack if hasattr(s, "run"))
    facts = text_of(screen.query_one(StepDetail)._facts())
    return [line.split()[0] for line in facts.splitlines() if line.strip().startswith("#")]


async def test_detail_lists_restored_and_new_attempts_after_resume(tmp_path, store):
    path = flow_file(tmp_path)
    await record_run(store, path, "r0000ddd1", started=T0 - 60, stop_at="ship")
    world = ScriptedWorld()
    world.release("ship")
    app, _ = history_app(path, store, resume="r0000ddd1", world=world)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: any(getattr(s, "started", False) for s in app.screen_stack))
        screen = await run_screen(app)
        await select(pilot, screen, "build")
        assert attempt_rows(app) == ["#1"]
        await select(pilot, screen, "ship")
        facts = text_of(screen.query_one(StepDetail)._facts())
        assert "no attempts yet" not in facts
        assert attempt_rows(app) == ["#1"] and "interrupted" in facts
        await pilot.press("r")
        await until(lambda: screen.run.tasks[("ship", "local")].state is S.AWAITING_APPROVAL)
        await pilot.press("a", "a")
        await until(lambda: screen.run.state is RunState.SUCCEEDED)
        await pilot.pause()
        assert attempt_rows(app) == ["#1", "#2"]


async def test_detail_lists_every_attempt_after_a_live_retry(tmp_path):
    text = '[workflow]\nname = "once"\n[steps.a]\nrun = "exit 3"\n'
    app, _ = make_app(tmp_path, text, start=True)
    world = SecondTimeHolds()
    app.executor_for = world.factory()
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await until(lambda: screen.run.state is RunState.FAILED)
        await select(pilot, screen, "a")
        await pilot.press("r")
        world.release("again")
        await until(lambda: screen.run.state is RunState.SUCCEEDED)
        await pilot.pause()
        assert attempt_rows(app) == ["#1", "#2"]



# ---------------------------------------------------------------------------- item 8

LONG_LOG = ('[workflow]\nname = "chatty"\n[steps.talk]\nrun = """'
            + "\n".join(f"echo line {i}" for i in range(1, 121))
            + "\nhold more\n"
            + "\n".join(f"echo later {i}" for i in range(1, 41)) + '"""\n')


async def _following_log(pilot, screen):
    from console.ui.widgets.log_pane import LogPane

    await select(pilot, screen, "talk")
    pane = screen.query_one(LogPane)
    await until(lambda: pane.view.line_count == 120)
    await pilot.pause(0.2)
    pane.view.focus()
    await pilot.pause()
    assert pane.view.follow and pane.view.scroll_y == pane.view.max_scroll_y > 0
    return pane


@pytest.mark.parametrize("keys", [("pageup",), ("up",), ("home",), ("k",)])
async def test_scrolling_up_pauses_follow_and_end_resumes_it(tmp_path, keys):
    app, world = make_app(tmp_path, LONG_LOG, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        pane = await _following_log(pilot, screen)
        view = pane.view
        await pilot.press(*keys)
        await pilot.pause(0.1)
        assert view.follow is False
        assert "follow paused" in str(pane.border_title)
        held = view.scroll_y
        assert held < view.max_scroll_y
        world.release("more")
        await until(lambda: view.line_count == 160)
        await pilot.pause(0.3)  # several frames: the view must not snap back
        assert view.scroll_y == held
        await pilot.press("end")
        await pilot.pause(0.1)
        assert view.follow is True and "following" in str(pane.border_title)
        assert view.scroll_y == view.max_scroll_y


async def test_mouse_wheel_up_pauses_follow_and_f_resumes(tmp_path):
    app, world = make_app(tmp_path, LONG_LOG, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        pane = await _following_log(pilot, screen)
        view = pane.view
        view.post_message(MouseScrollUp(view, 2, 2, 0, -1, 0, False, False, False))
        await pilot.pause(0.1)
        assert view.follow is False
        world.release("more")
        await until(lambda: view.line_count == 160)
        await pilot.pause(0.2)
        assert view.scroll_y < view.max_scroll_y
        await pilot.press("f")
        await pilot.pause(0.1)
        assert view.follow is True and view.scroll_y == view.max_scroll_y
