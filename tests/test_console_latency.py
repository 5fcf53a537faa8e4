"""Issue 10 item 21 (a fleet-sized run stays usable): the event loop never waits on the
disk for an attempt's log file, and a keypress does not rebuild the footer's keys."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.engine.events import LogEvent
from console.engine.run import Run, RunOptions
from console.model.workflow import Host, Step
from console.store import Recorder, Store, StoreError, logs
from console.store.log_writer import LogWriter
from console.ui.widgets.key_footer import KeyFooter
from tests.fakes import ScriptedWorld
from tests.footer_helpers import footer_swapped_for_textuals
from tests.test_store import make_workflow
from tests.ui_helpers import SIZE, make_app, run_screen, select, settle, until

# ---------------------------------------------------------------------------- log files


async def test_log_files_are_created_off_the_event_loop(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch):
    """Creating a file costs milliseconds: with one per attempt, a fleet's event loop spent
    most of a keypress's latency in open(). The writer thread creates them instead."""
    opened: list[str] = []  # the threads that opened a log file
    real = logs.open_private

    def spy(path: Path, flags: int) -> int:
        if "logs" in Path(path).parts:
            opened.append(threading.current_thread().name)
        return real(path, flags)

    monkeypatch.setattr(logs, "open_private", spy)
    hosts = {f"h{i}": Host(f"h{i}", "127.0.0.1", groups=("all",)) for i in range(20)}
    wf = make_workflow("t", Step("a", "a", run="echo one\nerr two", on=("all",)),
                       hosts=hosts)
    with Store.open(tmp_path / "home") as store:
        run = Run(wf, RunOptions(), executor_for=ScriptedWorld().factory())
        loop_thread = threading.current_thread().name
        with store.record(run):
            assert await asyncio.wait_for(run.execute(), 10) == "succeeded"
        assert len(opened) == 40  # a .log and a .stderr per host
        assert loop_thread not in opened
        for host in hosts:
            assert store.read_log(run.id, "a", host, 1) == "one\ntwo\n"
            assert store.stderr_tail(run.id, "a", host, 1, 5) == ["two"]


@contextlib.asynccontextmanager
async def _recorded_run(home: Path, script: str
                        ) -> AsyncIterator[tuple[Store, Run, Recorder, ScriptedWorld,
                                                 asyncio.Task[str]]]:
    """A recorded run of one step ``a`` (scripted), once it has printed ``early``; the
    recorder is closed on the way out."""
    wf = make_workflow("t", Step("a", "a", run=script))
    world = ScriptedWorld()
    with Store.open(home) as store:
        run = Run(wf, RunOptions(), executor_for=world.factory())
        recorder = store.record(run)
        lines: list[str] = []
        run.subscribe(lambda e: lines.append(e.text) if isinstance(e, LogEvent) else None)
        execution = asyncio.get_running_loop().create_task(run.execute())
        try:
            await until(lambda: "early" in lines)
            yield store, run, recorder, world, execution
        finally:
            recorder.close()


async def test_recorder_flush_waits_for_the_writer(tmp_path: Path):
    """Recorder.flush is a barrier: what the run printed is in the files when it returns
    (the headless printer and the pager rely on it)."""
    async with _recorded_run(tmp_path / "home", "echo early\nhold a\necho late") as (
            store, run, recorder, world, execution):
        recorder.flush()
        assert store.read_log(run.id, "a", "local", 1) == "early\n"
        world.release("a")
        assert await asyncio.wait_for(execution, 5) == "succeeded"
    assert store.read_log(run.id, "a", "local", 1) == "early\nlate\n"


def test_a_write_error_of_the_writer_is_raised_on_the_callers_side(tmp_path: Path):
    home = tmp_path / "home"
    (home / "logs").mkdir(parents=True, mode=0o700)
    (home / "logs" / "r").write_text("not a folder")
    writer = LogWriter(logs.LogFiles(home, "r"))
    writer.write("a", "local", 1, "x\n")
    with pytest.raises(StoreError, match="is not a folder"):
        writer.sync()
    writer.sync()  # reported once
    writer.close()


# ---------------------------------------------------------------------------- the footer


def _footer_keys(footer: KeyFooter) -> list[tuple[str, str, bool]]:
    """The keys the footer shows, in their order on screen, and whether each is dimmed."""
    entries = sorted((e for e in footer.entries.values() if not e.spec.palette),
                     key=footer.children.index)
    entries += [e for e in footer.entries.values() if e.spec.palette]
    return [(e.spec.key, e.spec.description, e.has_class("-disabled")) for e in entries]


def _rebuilt_keys(footer: KeyFooter) -> list[tuple[str, str, bool]]:
    """The keys Textual's Footer.compose would show now."""
    seen: dict[str, tuple[str, str, bool]] = {}
    for _, binding, enabled, _tooltip in footer.screen.active_bindings.values():
        if binding.show:
            seen.setdefault(binding.action, (binding.key, binding.description, not enabled))
    keys = list(seen.values())
    palette = footer.screen.active_bindings.get(footer.app.COMMAND_PALETTE_BINDING)
    if footer.app.ENABLE_COMMAND_PALETTE and palette is not None:
        keys.append((palette.binding.key, palette.binding.description, not palette.enabled))
    return keys


async def test_moving_the_cursor_relabels_the_footer_instead_of_rebuilding_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BATON_TEST_TOKEN", "s3cr3t-value")
    app, _world = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await settle(app, screen)
        footer = screen.query_one(KeyFooter)
        await select(pilot, screen, "preflight")
        await pilot.pause()
        quit_key = next(e for e in footer.entries.values() if e.spec.key == "q")
        for step, host in (("migrate", None), ("notify", None), ("drain", "web1"),
                           ("flaky", None), ("preflight", None)):
            await select(pilot, screen, step, host)
            await pilot.pause()
            assert _footer_keys(footer) == _rebuilt_keys(footer), step
            assert quit_key in footer.children, step  # the same widget: not rebuilt
        shown = app.export_screenshot()
        await footer_swapped_for_textuals(pilot, screen)
        assert app.export_screenshot() == shown


async def test_the_detail_pane_is_redrawn_only_when_its_facts_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fleet's frame (4 a second) asks the detail pane to update; each update re-laid out
    the whole screen although nothing in it had changed."""
    from textual.widgets import Static

    from console.ui.widgets.step_detail import StepDetail

    monkeypatch.setenv("BATON_TEST_TOKEN", "s3cr3t-value")
    app, _world = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await settle(app, screen)
        await select(pilot, screen, "preflight")  # succeeded: nothing changes any more
        await pilot.pause()
        detail = screen.query_one(StepDetail)
        facts = detail.query_one("#facts", Static)
        updates: list[object] = []
        real = facts.update
        monkeypatch.setattr(facts, "update", lambda *a, **k: (updates.append(a), real(*a, **k)))
        for _ in range(3):
            detail.update_facts()
        assert updates == []
        await select(pilot, screen, "migrate")  # another step: drawn
        assert len(updates) == 1


async def test_an_action_is_committed_without_waiting_for_the_log_writer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An operator action (and a run state change) commits its row at once and does not wait
    on the UI loop for the log writer's backlog (on a 1,000-host run that wait was seconds:
    the worst keypress of bench/console_fleet.py)."""
    gate = threading.Event()
    apply = LogWriter._apply

    def slow_apply(self: LogWriter, op: tuple) -> None:  # a writer seconds behind
        gate.wait(5)
        apply(self, op)

    monkeypatch.setattr(LogWriter, "_apply", slow_apply)
    async with _recorded_run(tmp_path / "home", "echo early\nhold a") as (
            store, run, _, world, execution):
        try:
            started = asyncio.get_running_loop().time()
            run.note("still draining")
            run.pause()
            assert asyncio.get_running_loop().time() - started < 1.0
            assert [a.action for a in store.load(run.id).actions][-2:] == ["note", "pause"]
        finally:
            gate.set()
            world.release("a")
            run.resume()
            await asyncio.wait_for(execution, 5)
    assert store.read_log(run.id, "a", "local", 1) == "early\n"
