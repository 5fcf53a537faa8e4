"""Snapshot scenes of the console (pytest-textual-snapshot), stored as SVG under the
top-level snapshots/ folder. Deterministic: scripted executor, frozen clock, fixed host
stats, fixed run id and user, UTC, 120x36, no cursor blink.

Update after an intended change with ``pytest tests/test_ui_snapshots.py --snapshot-update``
and look at every changed SVG before committing it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension

from console.engine.events import TaskState
from console.ui.app import BatonApp
from console.ui.screens.params_form import ParamsForm
from console.ui.screens.run_screen import RunScreen
from tests.fakes import ScriptedWorld
from tests.ui_helpers import SIZE, T0, FrozenClock, make_app, run_screen, select, settle, until

S = TaskState
SNAPSHOTS = Path(__file__).resolve().parent.parent / "snapshots"


class TopLevelSVG(SVGImageExtension):
    """pytest-textual-snapshot's SVG extension, writing to the top-level snapshots/."""

    @classmethod
    def dirname(cls, *, test_location: Any) -> str:
        return str(SNAPSHOTS / Path(str(test_location.filepath)).stem)


class _SnapshotsAtTopLevel:
    """Hands ``snap_compare`` our extension whenever it asks for its own."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def use_extension(self, extension_class: object = None) -> object:
        return self._inner.use_extension(TopLevelSVG)  # type: ignore[attr-defined]


@pytest.fixture
def snapshot(snapshot):  # overrides syrupy's fixture for this module only
    return _SnapshotsAtTopLevel(snapshot)


@pytest.fixture(autouse=True)
def _deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_TEST_TOKEN", "s3cr3t-value")
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def demo(tmp_path: Path, **launch: object) -> tuple[BatonApp, FrozenClock]:
    clock = FrozenClock()
    app, _ = make_app(tmp_path, clock=clock, **launch)
    return app, clock


async def settled(pilot, clock: FrozenClock, *, elapsed: float = 83.0) -> RunScreen:
    screen = await run_screen(pilot.app)
    await settle(pilot.app, screen)
    clock.now = T0 + elapsed
    screen.query_one("RunHeader").refresh()
    return screen


async def frame(pilot) -> None:
    """Let the 30 fps frame and the 1 s tick draw what changed."""
    await pilot.pause(0.1)
    screen = next(s for s in pilot.app.screen_stack if isinstance(s, RunScreen))
    screen.refresh_second()  # durations at the frozen time, not a second later
    await pilot.pause()


def test_fresh_run(snap_compare, tmp_path):
    app, _clock = demo(tmp_path, start=False)

    async def before(pilot):
        await run_screen(app)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_mixed_states(snap_compare, tmp_path):
    app, clock = demo(tmp_path, start=True)

    async def before(pilot):
        screen = await settled(pilot, clock)
        await select(pilot, screen, "drain")
        await frame(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_fan_out_per_host(snap_compare, tmp_path):
    app, clock = demo(tmp_path, start=True)

    async def before(pilot):
        screen = await settled(pilot, clock)
        screen.run.approve("drain")
        await until(lambda: screen.run.tasks[("deploy", "web1")].state is S.AWAITING_APPROVAL)
        screen.run.approve("deploy")
        await until(lambda: screen.run.tasks[("verify", "local")].state is S.AWAITING_OPERATOR)
        await select(pilot, screen, "deploy", "web2")
        await frame(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_log_filter_with_stderr(snap_compare, tmp_path):
    app, clock = demo(tmp_path, start=True)

    async def before(pilot):
        screen = await settled(pilot, clock)
        await select(pilot, screen, "preflight")
        await pilot.press("slash", *"disk", "enter")
        await frame(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_failed_step_detail(snap_compare, tmp_path):
    app, clock = demo(tmp_path, start=True)

    async def before(pilot):
        screen = await settled(pilot, clock)
        await select(pilot, screen, "migrate")
        await frame(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_modal_gate(snap_compare, tmp_path):
    app, clock = demo(tmp_path, start=True)

    async def before(pilot):
        screen = await settled(pilot, clock)
        await select(pilot, screen, "drain")
        await frame(pilot)
        await pilot.press("a")

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_modal_dangerous(snap_compare, tmp_path):
    app, clock = demo(tmp_path, start=True)

    async def before(pilot):
        screen = await settled(pilot, clock)
        screen.run.approve("drain")
        await until(lambda: screen.run.tasks[("deploy", "web1")].state is S.AWAITING_APPROVAL)
        await select(pilot, screen, "deploy")
        await frame(pilot)
        await pilot.press("a", *"deplo", "enter")

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_modal_reason(snap_compare, tmp_path):
    app, clock = demo(tmp_path, start=True)

    async def before(pilot):
        screen = await settled(pilot, clock)
        await select(pilot, screen, "migrate")
        await frame(pilot)
        await pilot.press("S", *"fixed the lock by hand")

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_modal_note(snap_compare, tmp_path):
    app, clock = demo(tmp_path, start=True)

    async def before(pilot):
        await settled(pilot, clock)
        await frame(pilot)
        await pilot.press("n", *"paged the DBA")

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_modal_quit(snap_compare, tmp_path):
    app, clock = demo(tmp_path, start=True)

    async def before(pilot):
        await settled(pilot, clock)
        await frame(pilot)
        await pilot.press("q")

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_modal_host_key(snap_compare, tmp_path):
    """Issue 10 item 19: an unknown SSH host key asked in the console."""
    from console.executors.base import HostKeyQuestion
    from console.ui.screens.hostkey import HostKeyModal

    app, clock = demo(tmp_path, start=True)
    question = HostKeyQuestion("web1", "[10.0.0.11]:2222", "ssh-ed25519",
                               "SHA256:Jt3yq4cq6PeCkqvJ1wdb8bAMgZsv4H0L0GkZfRzKc2Y",
                               "/home/alice/.ssh/known_hosts")

    async def before(pilot):
        await settled(pilot, clock)
        await frame(pilot)
        pilot.app.push_screen(HostKeyModal(question))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_modal_quit_with_only_a_gate_waiting(snap_compare, tmp_path):
    """Issue 10 item 4: nothing runs, a gate waits: the run is live, q asks."""
    app, clock = demo(tmp_path, start=True)

    async def before(pilot):
        screen = await settled(pilot, clock)
        screen.run.cancel("notify")
        screen.run.skip("flaky")
        await until(lambda: not screen.running_tasks())
        await frame(pilot)
        await pilot.press("q")

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_paused(snap_compare, tmp_path):
    app, clock = demo(tmp_path, start=True)

    async def before(pilot):
        await settled(pilot, clock)
        await pilot.press("p")
        await frame(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_step_mode_and_breakpoint(snap_compare, tmp_path):
    app, _clock = demo(tmp_path, start=False)

    async def before(pilot):
        screen = await run_screen(app)
        await select(pilot, screen, "cleanup")
        await pilot.press("b", "t", "g", "ctrl+s")  # g shows the params form first
        held = ("preflight", "notify", "migrate", "flaky")
        await until(lambda: all(screen.run.tasks[(s, "local")].state is S.AWAITING_APPROVAL
                                for s in held)
                    and screen.run.tasks[("cache", "local")].state is S.SKIPPED)
        await frame(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_timeline(snap_compare, tmp_path):
    app, clock = demo(tmp_path, start=True)

    async def before(pilot):
        screen = await settled(pilot, clock)
        screen.run.note("paged the DBA about the lock", "migrate")
        screen.run.pause()
        screen.run.resume()
        await pilot.press("l")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_folder_with_broken_file(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = Path("workflows")
    folder.mkdir()
    (folder / "restart-web.toml").write_text(
        '[workflow]\nname = "Rolling restart of the web tier"\n'
        'description = "Restart every web host, one batch at a time."\n'
        '[steps.x]\nrun = "echo hi"\n')
    (folder / "rotate-certs.toml").write_text(
        '[workflow]\nname = "Rotate TLS certificates"\ndescription = "Yearly."\n'
        '[steps.x]\nrun = "echo hi"\n')
    (folder / "broken.toml").write_text(
        '[workflow]\nname = "Broken"\n[steps.x]\nrun = "echo"\nneeds = ["nope"]\n')
    world = ScriptedWorld()
    app = BatonApp(folder, executor_for=world.factory(), config_file=tmp_path / "c.toml",
                   clock=FrozenClock(), blink=False)

    async def before(pilot):
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_help(snap_compare, tmp_path):
    app, clock = demo(tmp_path, start=True)

    async def before(pilot):
        await settled(pilot, clock)
        await pilot.press("question_mark")

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_params_form(snap_compare, tmp_path):
    text = '''
[workflow]
name = "Failover the database"
[params]
ticket = { type = "string", required = true, description = "Incident ticket" }
target = { type = "choice", choices = ["staging", "prod"], default = "staging" }
replicas = { type = "int", default = 2, description = "Replicas to promote" }
dry = { type = "bool", default = true }
[steps.a]
run = "echo {{ params.ticket }}"
'''
    clock = FrozenClock()
    app, _ = make_app(tmp_path, text, clock=clock, start=True)

    async def before(pilot):
        await until(lambda: isinstance(app.screen, ParamsForm))
        await pilot.pause()
        app.screen.query_one("#param-replicas").value = "two"
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


@pytest.mark.parametrize("theme", ["dark", "light", "high-contrast"])
def test_theme(snap_compare, tmp_path, theme):
    clock = FrozenClock()
    app, _ = make_app(tmp_path, clock=clock, theme=theme, start=True)

    async def before(pilot):
        screen = await settled(pilot, clock)
        await select(pilot, screen, "migrate")
        await frame(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


# --- hot reload (the same calls the file watcher makes: load, then Run.reload or
# Run.reload_failed, then RunScreen.show_reload; no file write, so no watcher timing) ---

BROKEN_DEMO = "\n".join(["[steps.bad]", 'run = "echo bad"', 'needs = ["nope"]'])
EDITED_DEMO = '''
[steps.rollback]
name = "Roll back"
needs = ["deploy"]
run = "echo rolling back"
'''


def reload_text(screen: RunScreen, text: str) -> None:
    """What the watcher does with a saved file, from the text instead of the file."""
    from console.model.loader import WorkflowError, load_text
    from console.workflow_watch import first_problem

    try:
        workflow = load_text(text, "demo.toml")
    except WorkflowError as exc:
        screen.show_reload(screen.run.reload_failed(first_problem(exc)))
        return
    screen.show_reload(screen.run.reload(workflow))


def edited_demo() -> str:
    from tests.ui_helpers import DEMO

    text = DEMO.replace('run = "hold notify"', 'run = "echo notified"')
    text = text.replace('exit 3"""', 'echo unlocked"""')  # migrate: failed, fixed on disk
    text = text.replace('run = "echo cleanup"', 'run = "echo cleanup --all"')
    start = text.index("[steps.cache]")
    text = text[:start] + text[text.index("[steps.flaky]"):]  # cache (skipped) goes
    return text + EDITED_DEMO


def test_reload_error_banner(snap_compare, tmp_path):
    app, clock = demo(tmp_path, start=True)

    async def before(pilot):
        from tests.ui_helpers import DEMO

        screen = await settled(pilot, clock)
        await select(pilot, screen, "migrate")
        reload_text(screen, DEMO + "\n" + BROKEN_DEMO + "\n")
        await frame(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_reload_diff_notice(snap_compare, tmp_path):
    app, clock = demo(tmp_path, start=True)

    async def before(pilot):
        screen = await settled(pilot, clock)
        await select(pilot, screen, "cleanup")
        reload_text(screen, edited_demo())
        await frame(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_reload_changed_on_disk(snap_compare, tmp_path):
    app, clock = demo(tmp_path, start=True)

    async def before(pilot):
        screen = await settled(pilot, clock)
        await select(pilot, screen, "notify")
        reload_text(screen, edited_demo())
        await pilot.pause()
        app.clear_notifications()  # the notice has its own scene
        await frame(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_fan_out_1000_hosts_collapsed(snap_compare, tmp_path):
    """Issue 10 item 21: a fan-out of 1,000 hosts is one summary line until expanded."""
    from tests.test_ui_view import fleet

    clock = FrozenClock()
    app, _ = make_app(tmp_path, fleet(1000), clock=clock, start=True)

    async def before(pilot):
        screen = await run_screen(app)
        await until(lambda: sum(t.state.finished for t in screen.run.tasks.values()) == 900,
                    timeout=60)
        clock.now = T0 + 42.0
        await pilot.pause(0.4)
        await frame(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_run_screen_80x24(snap_compare, tmp_path):
    """Issue 10 item 17: the run screen at 80x24 keeps ? and q in the footer."""
    app, clock = demo(tmp_path, start=True)

    async def before(pilot):
        screen = await settled(pilot, clock)
        await select(pilot, screen, "migrate")
        await frame(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)
