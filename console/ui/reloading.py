"""Hot reload in the console: the open workflow file (and its inventory), the folder of
the folder view, and the ``themes/`` folders.

Every watcher is a Textual worker (an asyncio task in the app's own loop) around
``watchfiles.awatch`` on the parent folder, so saves by rename are seen and bursts of saves
are debounced into one reload. Each watcher gets a stop event that is set when its screen
or the app unmounts: the watchfiles thread then ends within one step instead of holding
the exit for its five-second timeout. A watcher that fails reports it once and stops;
it never takes the console down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.theme import Theme

from console import themes
from console.engine.diff import StepDiff
from console.engine.events import ReloadEvent
from console.ui import palette as palette_module
from console.ui.widgets.banner import ReloadBanner, relative_paths
from console.workflow_watch import DEBOUNCE_MS, QUIET_MS, watch

if TYPE_CHECKING:
    from textual.app import App
    from textual.dom import DOMNode

    from console.ui.screens.folder import FolderScreen
    from console.ui.screens.run_screen import RunScreen


class Watchers:
    """The stop events of the watchers one screen (or the app) started."""

    def __init__(self) -> None:
        self._stops: list[asyncio.Event] = []

    def new_stop_event(self) -> asyncio.Event:
        event = asyncio.Event()
        self._stops.append(event)
        return event

    def stop(self) -> None:
        for event in self._stops:
            event.set()


def _start(owner: DOMNode, what: str, job: Callable[[], Awaitable[None]]) -> None:
    async def guarded() -> None:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken watcher must not end the console
            owner.app.notify(f"stopped watching {what}: {exc}", severity="warning",
                             timeout=10)

    def start() -> None:  # after the first paint: starting a watcher takes a thread
        owner.run_worker(guarded(), name=f"watch {what}", group="reload",
                         exit_on_error=False)

    owner.call_after_refresh(start)


def _toml_only(_change: object, path: str) -> bool:
    return path.endswith(".toml")


# --- the workflow file ------------------------------------------------------------------


def watch_workflow(screen: RunScreen) -> Watchers:
    """Apply every save of the run's workflow file (or its inventory) to the run; each
    reload, applied or refused, goes to :meth:`RunScreen.show_reload`."""
    watchers = Watchers()
    path = screen.run.workflow.path
    if path is None:
        return watchers
    stop = watchers.new_stop_event()
    _start(screen, path.name,
           lambda: watch(screen.run, path, on_reload=screen.show_reload, stop_event=stop))
    return watchers


def announce(screen: RunScreen, event: ReloadEvent) -> None:
    """The banner for a refused reload (a toast too when the file is gone); for an applied
    one, the banner goes and a toast shows the diff."""
    banner = screen.query_one(ReloadBanner)
    path = screen.run.workflow.path
    name = path.name if path is not None else "workflow"
    if event.error is not None:
        if event.error != banner.error and path is not None and not path.exists():
            screen.notify(f"{relative_paths(str(path.resolve()))} was deleted; "
                          "the run carries on with its definition",
                          title="workflow file deleted", severity="warning", timeout=10)
        banner.show_error(event.error)
        return
    banner.clear()
    diff = StepDiff(tuple(event.added), tuple(event.changed), tuple(event.removed))
    screen.notify(diff.summary(), title=f"{name} reloaded", timeout=8)


# --- the folder view --------------------------------------------------------------------


def watch_folder(screen: FolderScreen, watchers: Watchers) -> None:
    """Re-list the folder when a workflow file in it is added, removed or changed; the
    highlighted file stays highlighted."""
    from watchfiles import awatch

    stop = watchers.new_stop_event()

    async def loop() -> None:
        async for _changes in awatch(screen.folder, watch_filter=_toml_only,
                                     debounce=DEBOUNCE_MS, step=QUIET_MS,
                                     stop_event=stop, recursive=False):
            relist(screen)

    _start(screen, str(screen.folder), loop)


def relist(screen: FolderScreen) -> None:
    from textual.widgets import DataTable

    table = screen.query_one(DataTable)
    row = table.cursor_row
    current = screen.entries[row].path if 0 <= row < len(screen.entries) else None
    screen.load()
    paths = [entry.path for entry in screen.entries]
    if current in paths:
        table.move_cursor(row=paths.index(current))
    elif paths:
        table.move_cursor(row=min(row, len(paths) - 1))


# --- themes -----------------------------------------------------------------------------


class ThemeWatch:
    """Re-reads the theme folders after a change and restyles the app."""

    def __init__(self, app: App[Any], folders: Iterable[Path],
                 known_errors: Iterable[str] = ()) -> None:
        self.app = app
        self.folders = list(folders)
        self.reported: set[str] = set(known_errors)
        """Errors already shown: a broken file is reported once, again after a fix."""

    def start(self, watchers: Watchers) -> None:
        folders = [folder for folder in self.folders if folder.is_dir()]
        if not folders:
            return
        from watchfiles import awatch

        stop = watchers.new_stop_event()

        async def loop() -> None:
            async for _changes in awatch(*folders, watch_filter=_toml_only,
                                         debounce=DEBOUNCE_MS, step=QUIET_MS,
                                         stop_event=stop, recursive=False):
                found, errors = await asyncio.to_thread(themes.discover_themes, self.folders)
                self.apply(found, errors)

        _start(self.app, "themes", loop)

    def apply(self, found: dict[str, Theme], errors: list[str]) -> None:
        """Register every theme read; re-apply the current one if its file changed.

        A broken file is a notification; its theme (if it was loaded before) stays
        registered as it was, so the console keeps its look.
        """
        app = self.app
        for error in errors:
            if error not in self.reported:
                app.notify(error, title="theme not reloaded", severity="error", timeout=10)
        self.reported = set(errors)
        before = app.current_theme
        for theme in found.values():
            app.register_theme(theme)
        if found.get(app.theme, before) != before:
            restyle(app)
            app.notify(f"theme '{app.theme}' reloaded", timeout=4)


def restyle(app: App[Any]) -> None:
    """Re-apply the current theme: CSS variables and the console's own Rich colours."""
    palette_module.forget(app)  # palette() caches by theme *name*
    app.refresh_css(animate=False)
    relabel(app)


def relabel(app: App[Any]) -> None:
    """Redraw what holds colours of the previous palette (tree labels, detail, folder)."""
    # The run screen's widgets are found by type, not through RunScreen: that screen
    # imports this module (no import cycle).
    from console.ui.screens.folder import FolderScreen
    from console.ui.widgets.dag_tree import DagTree
    from console.ui.widgets.header import RunHeader
    from console.ui.widgets.log_view import LogView
    from console.ui.widgets.step_detail import StepDetail

    for screen in app.screen_stack:
        if isinstance(screen, FolderScreen) and screen.is_mounted:
            relist(screen)
        elif screen.is_mounted:
            for tree in screen.query(DagTree):
                tree.update_steps()
            for detail in screen.query(StepDetail):
                detail.update_facts()
            for widget in (*screen.query(RunHeader), *screen.query(LogView)):
                widget.refresh()
