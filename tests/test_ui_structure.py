"""Console structure (issue 12, items 3 and 4): attributes down, messages up.

Screens and widgets reach nothing of the concrete app: they are handed what they show
and post Messages for what only the app can do. So each screen works inside any Textual
app, which is what these tests do: a bare host app records the Messages a screen posts.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App
from textual.message import Message

from console.engine.run import Run, RunOptions
from console.model.loader import load_text
from console.store import Store
from console.ui.history_service import History
from console.ui.messages import PageLog, ShowHistory
from console.ui.screens.folder import FolderScreen
from console.ui.screens.history_screen import HistoryScreen
from console.ui.screens.run_screen import RunScreen
from console.ui.system import SystemStats, fixed_sampler
from tests.fakes import ScriptedWorld
from tests.helpers import parsed
from tests.history_helpers import FLOW, flow_file, record_run
from tests.ui_helpers import SIZE, T0, FrozenClock, until

UI = Path(__file__).resolve().parent.parent / "console" / "ui"


class Host(App[None]):
    """A plain Textual app showing one screen and keeping every Message it receives."""

    def __init__(self, screen: Any) -> None:
        super().__init__()
        self.first = screen
        self.received: list[Message] = []

    def on_mount(self) -> None:
        self.push_screen(self.first)

    @on(FolderScreen.Open)
    @on(FolderScreen.Quit)
    @on(HistoryScreen.Open)
    @on(HistoryScreen.Resume)
    @on(RunScreen.Quit)
    @on(ShowHistory)
    @on(PageLog)
    def keep(self, message: Message) -> None:
        self.received.append(message)

    def kinds(self) -> list[str]:
        return [type(m).__qualname__ for m in self.received]


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, TYPE_CHECKING blocks and lazy imports included."""
    out: set[str] = set()
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return out


def test_no_screen_or_widget_reaches_for_the_app() -> None:
    """Not even for the type checker: the app is their parent, not their dependency."""
    reaching = {str(p.relative_to(UI)): sorted(m for m in _imports(p) if m.startswith(
        ("console.ui.app", "console.ui.history_actions")))
        for p in [*UI.glob("screens/*.py"), *UI.glob("widgets/*.py"), UI / "watchers.py",
                  UI / "signals.py", UI / "palette.py"]}
    assert {name: mods for name, mods in reaching.items() if mods} == {}


def test_widgets_import_no_screen() -> None:
    reaching = {p.name: sorted(m for m in _imports(p) if m.startswith("console.ui.screens"))
                for p in UI.glob("widgets/*.py")}
    assert {name: mods for name, mods in reaching.items() if mods} == {}


def test_ui_modules_stay_small() -> None:
    sizes = {str(p.relative_to(UI)): len(p.read_text(encoding="utf-8").splitlines())
             for p in UI.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 450} == {}


async def test_folder_screen_asks_the_app_with_messages(tmp_path: Path) -> None:
    flow_file(tmp_path)
    host = Host(FolderScreen(tmp_path, history=None, clock=FrozenClock()))
    async with host.run_test(size=SIZE) as pilot:
        await until(lambda: isinstance(host.screen, FolderScreen))
        await pilot.press("enter")
        await pilot.press("h")
        await pilot.press("q")
        await until(lambda: len(host.received) == 3)
        opened, history, _quit = host.received
        assert host.kinds() == ["FolderScreen.Open", "ShowHistory", "FolderScreen.Quit"]
        assert isinstance(opened, FolderScreen.Open) and opened.path.name == "release.toml"
        assert isinstance(history, ShowHistory) and history.name == "Release"


async def test_history_screen_is_handed_the_history_and_asks_for_runs(tmp_path: Path) -> None:
    path = flow_file(tmp_path)
    with Store.open(tmp_path / "home") as store:
        await record_run(store, path, "r0000aaa1", started=T0 - 60, stop_at="ship")
        history = History(store)
        host = Host(HistoryScreen(path, "Release", history))
        async with host.run_test(size=SIZE) as pilot:
            screen = host.first
            await until(lambda: bool(screen.runs))
            await pilot.press("enter")
            await pilot.press("r")
            await until(lambda: len(host.received) == 2)
            assert host.kinds() == ["HistoryScreen.Open", "HistoryScreen.Resume"]
            assert [m.run_id for m in host.received] == ["r0000aaa1", "r0000aaa1"]  # type: ignore[attr-defined]
        history.close()


async def test_run_screen_asks_the_app_with_messages(tmp_path: Path) -> None:
    path = flow_file(tmp_path)
    workflow = load_text(FLOW, path)
    world = ScriptedWorld()
    run = Run(workflow, RunOptions(run_id="r1", user="alice", keep_alive=True),
              executor_for=world.factory(), clock=FrozenClock())
    screen = RunScreen(run, clock=FrozenClock(), start=False,
                       sampler=fixed_sampler(SystemStats(1.0, 2.0, (0.1, 0.1, 0.1))))
    host = Host(screen)
    async with host.run_test(size=SIZE) as pilot:
        await until(lambda: host.screen is screen)
        await pilot.press("h")
        await pilot.press("q")  # not started: nothing to ask, the run closes
        await until(lambda: len(host.received) == 2)
        shown, quit_ = host.received
        assert isinstance(shown, ShowHistory) and shown.path == path
        assert isinstance(quit_, RunScreen.Quit) and quit_.run is None  # never started
