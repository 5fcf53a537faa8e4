"""Hot reload in the console, with real file writes through watchfiles: the open workflow
file (during a run and before it starts), the folder view, and theme files."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.color import Color

from console.engine.events import TaskState
from console.store import Store
from console.ui import app as app_module
from console.ui.app import BatonApp, LaunchOptions
from console.ui.palette import palette
from console.ui.screens.folder import FolderScreen
from console.ui.screens.run_screen import RunScreen
from console.ui.system import SystemStats, fixed_sampler
from console.ui.widgets.banner import ReloadBanner
from console.ui.widgets.dag_tree import DagTree, Selection
from console.ui.widgets.step_detail import StepDetail
from tests.fakes import ScriptedWorld
from tests.ui_helpers import SIZE, FrozenClock, run_screen, select, state, until

S = TaskState

BASE = """\
[workflow]
name = "Live fix"

[steps.long]
name = "Long step"
run = "hold long"

[steps.quick]
name = "Quick"
run = "echo quick"

[steps.later]
name = "Later"
description = "Runs after the long step."
needs = ["long"]
run = "echo later"
"""

BROKEN = BASE + """
[steps.bad]
run = "echo bad"
needs = ["nope"]
"""
BROKEN_LINE = BROKEN.splitlines().index('needs = ["nope"]') + 1


class RecordingApp(BatonApp):
    """The console, keeping every notification it shows (title, message, severity)."""

    CSS_PATH = str(Path(app_module.__file__).parent / "baton.tcss")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.notices: list[tuple[str, str, str]] = []

    def notify(self, message: str, *, title: str = "", severity: Any = "information",
               **kwargs: Any) -> None:
        self.notices.append((title, message, severity))
        super().notify(message, title=title, severity=severity, **kwargs)

    def noticed(self, fragment: str) -> bool:
        return any(fragment in f"{title}: {message}" for title, message, _ in self.notices)


def console(tmp_path: Path, text: str = BASE, *, start: bool = True,
            theme: str | None = None, theme_folders: list[Path] | None = None,
            target: Path | None = None, store: Store | None = None,
            ) -> tuple[RecordingApp, ScriptedWorld, Path]:
    path = tmp_path / "live.toml"
    path.write_text(text, encoding="utf-8")
    world = ScriptedWorld()
    app = RecordingApp(target or path, LaunchOptions(run_id="r1", user="alice", start=start),
                       executor_for=world.factory(), clock=FrozenClock(),
                       sampler=fixed_sampler(SystemStats(1.0, 2.0, (0.1, 0.1, 0.1))),
                       config_file=tmp_path / "config.toml", theme=theme,
                       theme_folders=theme_folders, blink=False, store=store)
    return app, world, path


def write(path: Path, text: str, *, rename: bool = False) -> None:
    """Save ``text`` in place, or like vim and most editors: a new file renamed over."""
    if rename:
        temporary = path.with_name(f".{path.name}.swp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    else:
        path.write_text(text, encoding="utf-8")


async def save(path: Path, text: str, done: Callable[[], object], *, rename: bool = False,
               timeout: float = 20.0) -> None:
    """Save until ``done()``: a save made before the watcher listens is not seen, so it is
    repeated (the watcher ignores a save that changes nothing it has not reported). The
    first repeat comes soon (the first save usually lands while the watcher starts, and a
    3 s wait for it cost most of these tests' time), later ones less and less often."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    patience = 0.25
    while True:
        write(path, text, rename=rename)
        try:
            await until(done, timeout=patience)
            return
        except TimeoutError:
            if loop.time() > deadline:
                raise
            patience = min(patience * 2, 3.0)


def label(screen: RunScreen, step: str) -> Text | None:
    for node in screen.query_one(DagTree).root.children:
        if node.data is not None and node.data.step == step:
            return node.label
    return None


def tree_steps(screen: RunScreen) -> list[str]:
    return [node.data.step for node in screen.query_one(DagTree).root.children if node.data]


async def running(app: RecordingApp) -> RunScreen:
    screen = await run_screen(app)
    await until(lambda: state(screen, "long") is S.RUNNING
                and state(screen, "quick") is S.SUCCEEDED)
    return screen


async def test_invalid_save_shows_the_banner_the_run_goes_on_and_a_fix_clears_it(tmp_path):
    app, world, path = console(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await running(app)
        banner = screen.query_one(ReloadBanner)
        assert not banner.display
        await save(path, BROKEN, lambda: banner.display)
        where = f"{path.resolve()}:{BROKEN_LINE}: steps.bad.needs: unknown step 'nope'"
        assert banner.error == where
        assert where in str(banner.content)
        assert "bad" not in screen.run.workflow.steps
        assert tree_steps(screen) == ["long", "quick", "later"]
        refused = [e.text for e in screen.session.timeline if e.kind == "reload"]
        assert refused == [f"reload refused: {where}"]
        # the run carries on with the last good definition
        world.release("long")
        await until(lambda: state(screen, "later") is S.SUCCEEDED)
        assert state(screen, "long") is S.SUCCEEDED
        # a fix (saved by rename, as vim does) takes the banner away
        fixed = BROKEN.replace('needs = ["nope"]', 'needs = ["quick"]')
        await save(path, fixed, lambda: not banner.display, rename=True)
        await pilot.pause()
        assert banner.error is None
        await until(lambda: state(screen, "bad") is S.SUCCEEDED)
        assert app.noticed("live.toml reloaded: +bad")


async def test_a_valid_save_shows_the_diff_and_an_added_step_runs(tmp_path):
    app, world, path = console(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await running(app)
        text = BASE.replace('run = "echo later"', 'run = "echo later, changed"') + """
[steps.extra]
name = "Extra step"
needs = ["quick"]
run = "echo extra"
"""
        await save(path, text, lambda: "extra" in tree_steps(screen))
        await pilot.pause()
        assert app.noticed("live.toml reloaded: +extra ~later")
        await until(lambda: state(screen, "extra") is S.SUCCEEDED)
        assert [r.script for r in world.starts("extra")] == ["echo extra"]
        extra = label(screen, "extra")
        assert extra is not None and "Extra step" in extra.plain
        reload = next(e for e in screen.session.timeline if e.kind == "reload")
        assert reload.text == (f"reload +extra ~later "
                               f"(definition {screen.run.workflow.digest[:12]})")
        assert reload.user == "alice"
        # "later" had not started: it takes the new definition, no marker
        later = label(screen, "later")
        assert later is not None and "changed on disk" not in later.plain
        world.release("long")
        await until(lambda: state(screen, "later") is S.SUCCEEDED)
        assert [r.script for r in world.starts("later")] == ["echo later, changed"]



async def test_the_store_records_each_reload_with_the_definition_hash(tmp_path):
    with Store.open(tmp_path / "home") as store:
        app, world, path = console(tmp_path, store=store)
        async with app.run_test(size=SIZE) as pilot:
            screen = await running(app)
            banner = screen.query_one(ReloadBanner)
            await save(path, BROKEN, lambda: banner.display)
            text = BASE + '\n[steps.extra]\nrun = "echo extra"\n'
            await save(path, text, lambda: "extra" in tree_steps(screen))
            digest = screen.run.workflow.digest
            world.release("long")
            await until(lambda: state(screen, "extra") is S.SUCCEEDED)
            await pilot.press("q")
            await until(lambda: app.return_code is not None)
        stored = store.load("r1")
    reloads = [a.reason for a in stored.actions if a.action == "reload"]
    where = f"{path.resolve()}:{BROKEN_LINE}: steps.bad.needs: unknown step 'nope'"
    assert reloads == [f"refused: {where}", f"+extra (definition {digest[:12]})"]
    assert stored.definitions[digest] == text

async def test_a_step_changed_on_disk_after_it_started_is_marked_and_a_retry_uses_it(tmp_path):
    failing = BASE.replace('run = "hold long"', 'run = """hold long\nexit 1"""')
    app, world, path = console(tmp_path, failing)
    async with app.run_test(size=SIZE) as pilot:
        screen = await running(app)
        fixed = BASE.replace('run = "hold long"', 'run = "echo fixed"')
        await save(path, fixed, lambda: "long" in screen.run.changed_steps)
        await pilot.pause()
        marked = label(screen, "long")
        assert marked is not None and "changed on disk" in marked.plain
        assert app.noticed("live.toml reloaded: ~long")
        # the running attempt keeps the definition it started with
        assert state(screen, "long") is S.RUNNING
        world.release("long")
        await until(lambda: state(screen, "long") is S.FAILED)
        await select(pilot, screen, "long")
        await pilot.press("r")
        await until(lambda: state(screen, "long") is S.SUCCEEDED)
        assert [r.script for r in world.starts("long")] == ["hold long\nexit 1", "echo fixed"]
        assert "changed on disk" in (label(screen, "long") or Text()).plain


async def test_steps_removed_from_the_file(tmp_path):
    app, _world, path = console(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await running(app)
        await select(pilot, screen, "later")
        text = BASE[: BASE.index("[steps.quick]")]  # quick (finished) and later (pending) go
        await save(path, text, lambda: "later" not in tree_steps(screen))
        await pilot.pause()
        assert app.noticed("live.toml reloaded: -quick -later")
        assert tree_steps(screen) == ["long", "quick"]
        quick = label(screen, "quick")
        assert quick is not None and "removed from file" in quick.plain
        name_style = next(s.style for s in quick.spans if quick.plain[s.start:s.end] == "Quick")
        assert name_style.strike  # type: ignore[union-attr]
        assert state(screen, "quick") is S.SUCCEEDED
        # the highlighted step left the run: its neighbour is shown instead
        assert screen.query_one(DagTree).selection == Selection("quick")
        assert screen.query_one(StepDetail).selection == Selection("quick")
        assert screen.query_one(DagTree).selection == screen._selection


async def test_before_the_run_starts_the_tree_and_detail_update_and_keep_the_selection(
        tmp_path):
    app, world, path = console(tmp_path, start=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await select(pilot, screen, "later")
        text = BASE.replace('"Runs after the long step."', '"Runs last, after the check."')
        text = text.replace('name = "Later"', 'name = "Later, renamed"') + """
[steps.check]
name = "Check"
run = "echo check"
"""
        await save(path, text, lambda: "check" in tree_steps(screen))
        await pilot.pause()
        assert screen.query_one(DagTree).selection == Selection("later")
        later = label(screen, "later")
        assert later is not None and "Later, renamed" in later.plain
        detail = screen.query_one(StepDetail)
        assert detail.selection == Selection("later")
        assert "Runs last, after the check." in detail._description  # type: ignore[operator]
        assert "changed on disk" not in later.plain
        await pilot.press("g")
        await until(lambda: state(screen, "check") is S.SUCCEEDED)
        assert world.starts("check")


async def test_a_deleted_workflow_file_is_reported_and_the_run_goes_on(tmp_path):
    app, world, path = console(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await running(app)
        banner = screen.query_one(ReloadBanner)
        await pilot.pause(0.5)  # let the watcher listen: a delete cannot be repeated
        path.unlink()
        await until(lambda: banner.display, timeout=10)
        assert app.noticed("live.toml was deleted")
        assert banner.error == f"{path.resolve()}: file deleted"
        world.release("long")
        await until(lambda: state(screen, "later") is S.SUCCEEDED)
        await save(path, BASE, lambda: not banner.display)


THEME = """\
name = "reload-test"
dark = true
primary = "#5fa8ff"
background = "#14171c"
surface = "{surface}"
panel = "#242a33"
foreground = "#dfe3ea"

[variables]
state-succeeded = "{succeeded}"
"""


def near(colour: Color, expected: str) -> bool:
    """Equal but for rounding (Textual's colour system may move a channel by one)."""
    other = Color.parse(expected)
    return all(abs(a - b) <= 1 for a, b in zip(colour.rgb, other.rgb, strict=True))


async def test_editing_a_theme_file_restyles_the_console(tmp_path):
    themes = tmp_path / "themes"
    themes.mkdir()
    theme_file = themes / "reload-test.toml"
    theme_file.write_text(THEME.format(surface="#1b1f26", succeeded="#5fd38d"))
    app, _world, _path = console(tmp_path, theme="reload-test", theme_folders=[themes])
    async with app.run_test(size=SIZE) as pilot:
        screen = await running(app)
        tree = screen.query_one(DagTree)
        assert near(tree.styles.background, "#1b1f26")
        await save(theme_file, THEME.format(surface="#402020", succeeded="#00ff00"),
                   lambda: app.current_theme.surface == "#402020")
        await pilot.pause()
        assert app.theme == "reload-test"
        assert near(tree.styles.background, "#402020")
        assert palette(app).style("state-succeeded").color.name == "#00ff00"  # type: ignore[union-attr]
        quick = label(screen, "quick")
        assert quick is not None
        assert any(str(s.style).find("#00ff00") >= 0 for s in quick.spans)
        # a broken theme file: a notification naming it, the look stays
        await save(theme_file, 'name = "reload-test"\nprimary = \n',
                   lambda: app.noticed("invalid TOML"))
        _title, message, severity = next(n for n in app.notices if "invalid TOML" in n[1])
        assert str(theme_file) in message and severity == "error"
        await pilot.pause(0.3)
        assert app.theme == "reload-test"
        assert near(tree.styles.background, "#402020")


async def test_the_folder_view_follows_files_added_broken_and_removed(tmp_path):
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "a.toml").write_text('[workflow]\nname = "Alpha"\n[steps.x]\nrun = "echo"\n')
    app, _world, _path = console(tmp_path, target=folder)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: isinstance(app.screen, FolderScreen))
        screen = app.screen
        assert isinstance(screen, FolderScreen)
        names = lambda: [e.name for e in screen.entries]  # noqa: E731
        await save(folder / "b.toml", '[workflow]\nname = "Beta"\n[steps.x]\nrun = "echo"\n',
                   lambda: names() == ["Alpha", "Beta"])
        await save(folder / "c.toml", '[workflow]\nname = "Gamma"\n[steps.x]\nneeds = ["no"]\n',
                   lambda: len(screen.entries) == 3)
        broken = screen.entries[2]
        assert broken.error is not None and "unknown step 'no'" in broken.error
        await pilot.pause(0.5)
        (folder / "a.toml").unlink()
        await until(lambda: names() == ["Beta", "c"], timeout=10)
