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


# ---------------------------------------------------------------------------- item 16


def footer_keys(app: BatonApp) -> dict[str, str]:
    screen = next(s for s in app.screen_stack if hasattr(s, "run"))
    return {app.get_key_display(a.binding): a.binding.description
            for a in screen.active_bindings.values() if a.binding.show}


async def test_j_and_k_move_the_tree_cursor_like_the_arrows(tmp_path):
    from console.ui.widgets.dag_tree import DagTree

    app, _ = make_app(tmp_path, start=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await select(pilot, screen, "preflight")
        tree = screen.query_one(DagTree)
        line = tree.cursor_line
        await pilot.press("j", "j")
        assert tree.cursor_line == line + 2
        await pilot.press("k")
        assert tree.cursor_line == line + 1


async def test_n_jumps_to_each_task_that_needs_the_operator_and_footer_counts(tmp_path):
    from tests.ui_helpers import settle

    app, _ = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await settle(app, screen)
        waiting = {(t.step, t.host) for t in screen.run.tasks.values()
                   if t.state in (S.FAILED, S.AWAITING_APPROVAL, S.AWAITING_OPERATOR)}
        assert waiting == {("drain", "web1"), ("drain", "web2"), ("drain", "web3"),
                           ("migrate", "local")}
        assert "Needs you: 4" in footer_keys(app).values()
        await select(pilot, screen, "preflight")
        seen = []
        for _ in range(5):
            await pilot.press("N")
            selection = screen._selection
            seen.append((selection.step, selection.host or "local"))
        assert set(seen[:4]) == waiting and seen[4] == seen[0]
        screen.run.skip("migrate", None, "known")
        await until(lambda: screen.run.tasks[("migrate", "local")].state is S.SKIPPED)
        await pilot.pause(0.1)
        assert "Needs you: 3" in footer_keys(app).values()


FAN_OUT = '[workflow]\nname = "fleet"\n\n' + "".join(
    f'[hosts.h{i:02d}]\naddress = "127.0.0.1"\ngroups = ["web"]\n' for i in range(30)) + """
[steps.first]
run = "echo first"

[steps.deploy]
needs = ["first"]
on = "web"
run = \"\"\"echo deploy
{% if host.name == "h17" %}exit 3{% endif %}\"\"\"
"""


async def test_n_and_find_land_on_a_host_of_a_collapsed_fan_out(tmp_path):
    """30 hosts: the fan-out is collapsed and its host lines not made yet; N and / make
    them and put the cursor on the host's line at once (the cursor stayed put)."""
    from console.ui.widgets.dag_tree import DagTree

    app, _ = make_app(tmp_path, FAN_OUT, name="fleet.toml", start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await until(lambda: screen.run.tasks[("deploy", "h17")].state is TaskState.FAILED)
        tree = screen.query_one(DagTree)
        await select(pilot, screen, "deploy")
        assert not tree.cursor_node.is_expanded  # more hosts than are expanded at first
        await select(pilot, screen, "first")
        await pilot.press("N")
        assert tree.cursor_node is not None and tree.cursor_node.data == tree.selection
        assert (tree.selection.step, tree.selection.host) == ("deploy", "h17")
        tree.cursor_node.parent.collapse()
        await select(pilot, screen, "first")
        await pilot.press("ctrl+f", *"h23", "enter")
        await pilot.pause()
        assert (tree.selection.step, tree.selection.host) == ("deploy", "h23")
        assert tree.cursor_line == tree.cursor_node.line


async def test_focused_pane_is_highlighted(tmp_path):
    app, _ = make_app(tmp_path, start=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await pilot.pause()
        panes = {name: screen.query_one(f"#{name}") for name in ("tree", "detail", "log-pane")}

        def border_colors() -> dict[str, object]:
            return {name: pane.styles.border_top[1] for name, pane in panes.items()}

        for name, focus in (("detail", "#detail"), ("log-pane", "#log"), ("tree", "#tree")):
            screen.query_one(focus).focus()
            await pilot.pause()
            colors = border_colors()
            others = {colors[n] for n in colors if n != name}
            assert colors[name] not in others, name
            assert panes[name].styles.border_title_style.bold, name


async def test_find_a_step_or_host_by_name(tmp_path):
    app, _ = make_app(tmp_path, start=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await select(pilot, screen, "preflight")
        await pilot.press("ctrl+f", *"datab", "enter")
        assert screen._selection.step == "migrate"
        await pilot.press("ctrl+f", *"WEB2", "enter")
        assert (screen._selection.step, screen._selection.host) == ("drain", "web2")
        await pilot.press("ctrl+f", "enter")  # empty: the next match of the last search
        assert (screen._selection.step, screen._selection.host) == ("deploy", "web2")
        await pilot.press("ctrl+f", *"nothing like it", "enter")
        assert screen._selection.step == "deploy"


# ---------------------------------------------------------------------------- item 17

WIDE = '''
[workflow]
name = "wide"
[steps.preflight_with_a_long_id]
name = "Preflight checks of every database replica in the primary region"
run = "exit 1"
[steps.after]
name = "Then"
needs = ["preflight_with_a_long_id"]
run = "echo after"
'''


def tree_lines(app: BatonApp) -> list[str]:
    from console.ui.widgets.dag_tree import DagTree

    tree = next(s for s in app.screen_stack if hasattr(s, "run")).query_one(DagTree)
    return [tree.render_line(y).text.rstrip() for y in range(tree.last_line + 1)]


async def test_tree_pane_grows_with_the_terminal(tmp_path):
    long_name = "Preflight checks of every database replica in the primary region"
    app, _ = make_app(tmp_path, WIDE, start=False)
    async with app.run_test(size=(250, 40)) as pilot:
        await run_screen(app)
        await pilot.pause(0.1)
        lines = tree_lines(app)
        assert long_name in lines[0]
        assert "needs preflight_with_a_long_id" in lines[1]


async def test_what_the_tree_cuts_ends_with_an_ellipsis(tmp_path):
    app, _ = make_app(tmp_path, WIDE, start=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await run_screen(app)
        await pilot.pause(0.1)
        first, second = tree_lines(app)[:2]
        assert first.endswith("…") and "Preflight checks of" in first
        assert second.startswith("○ Then") and second.endswith("…")


async def test_folder_view_truncates_with_ellipsis_and_renders_markdown(tmp_path):
    from console.ui.screens.folder import FolderScreen

    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "a-workflow-with-a-rather-long-file-name.toml").write_text(
        '[workflow]\nname = "A workflow whose name is much longer than its column"\n'
        'description = """\n# Rotate\nRotates `/var/log/app` logs **every** night, see '
        '[the wiki](https://wiki/x) for the full procedure of rotation and the rest '
        'of this very long line that cannot fit anywhere\n\nSecond paragraph."""\n'
        '[steps.x]\nrun = "echo hi"\n')
    app = BatonApp(folder, executor_for=ScriptedWorld().factory(),
                   config_file=tmp_path / "c.toml")
    async with app.run_test(size=(120, 30)) as pilot:
        await until(lambda: isinstance(app.screen, FolderScreen))
        await pilot.pause(0.1)
        table = app.screen.query_one("DataTable")
        row = [str(cell) for cell in table.get_row_at(0)]
        assert row[0].endswith("…") and len(row[0]) == 22
        assert row[1].startswith("A workflow whose") and row[1].endswith("…")
        assert row[3].startswith("Rotates /var/log/app logs every night, see")
        assert "`" not in row[3] and "**" not in row[3] and row[3].endswith("…")
        assert "Second paragraph" not in row[3]


async def test_80x24_footer_keeps_help_and_quit(tmp_path):
    from console.ui.widgets.key_footer import FooterEntry
    from tests.ui_helpers import settle

    app, _ = make_app(tmp_path, start=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await run_screen(app)
        await settle(app, screen)
        await select(pilot, screen, "migrate")
        await pilot.pause(0.1)
        visible = {key.spec.key_display for key in screen.query(FooterEntry)
                   if key.region.width and key.region.right <= 80}
        assert {"?", "q"} <= visible


async def test_80x24_manual_step_instructions_scroll(tmp_path):
    steps = "\n".join(f"{i}. Check item number {i} on the dashboard" for i in range(1, 31))
    text = f'[workflow]\nname = "m"\n[steps.check]\ndescription = """{steps}"""\n'
    app, _ = make_app(tmp_path, text, start=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await run_screen(app)
        await until(lambda: screen.run.tasks[("check", "local")].state is S.AWAITING_OPERATOR)
        await select(pilot, screen, "check")
        detail = screen.query_one(StepDetail)
        await pilot.pause(0.2)
        assert detail.max_scroll_y > 0
        detail.focus()
        await pilot.press("pagedown")
        await pilot.pause(0.1)
        assert detail.scroll_y > 0


# ---------------------------------------------------------------------------- item 21


def fleet(hosts: int) -> str:
    lines = ['[workflow]', 'name = "fleet"', 'concurrency = 200']
    for i in range(1, hosts + 1):
        lines += [f'[hosts.h{i:04d}]', 'groups = ["all_hosts"]']
    lines += ['[steps.roll]', 'on = "all_hosts"',
              'run = """{% if host.name.endswith("7") %}exit 2{% elif '
              'host.name.endswith("9") %}hold h{% endif %}"""']
    return "\n".join(lines) + "\n"


async def test_fan_out_of_1000_hosts_collapses_to_a_summary_and_expands(tmp_path):
    from console.ui.widgets.dag_tree import DagTree

    app, _ = make_app(tmp_path, fleet(1000), start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await until(lambda: sum(t.state.finished for t in screen.run.tasks.values()) == 900,
                    timeout=60)
        await pilot.pause(0.4)
        tree = screen.query_one(DagTree)
        assert tree.last_line == 0  # one line: the step, collapsed
        line = tree_lines(app)[0]
        assert "800/1000 ✔ 100 ✘ 100 ▶" in line
        await select(pilot, screen, "roll")
        await pilot.press("space")
        await pilot.pause()
        assert tree.last_line == 1000
        assert tree_lines(app)[1].split()[1:3] == ["✔", "h0001"]
        await pilot.press("space")
        assert tree.last_line == 0


async def test_the_run_screen_keeps_its_objects_out_of_full_collections_while_shown(tmp_path):
    """Full collections walked every object of the console (70-100 ms on a 300-host
    fleet, keys waiting): what exists once the run screen is drawn is frozen, and given
    back to the collector when the screen goes."""
    import gc

    app, _ = make_app(tmp_path, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await run_screen(app)
        await until(lambda: gc.get_freeze_count() > 0)
        await pilot.press("q")
        await until(lambda: app.return_code is not None)
    assert gc.get_freeze_count() == 0
