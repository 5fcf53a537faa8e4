"""Hot reload in the console: watchers of the open workflow file (and its inventory), of
the folder view's folder, and of the ``themes/`` folders.

Every watcher is a Textual worker of the node that owns it (the run screen watches its
workflow, the folder screen its folder, the app the themes) around ``watchfiles.awatch``
on the parent folder, so saves by rename are seen and bursts of saves are debounced into
one reload. Each watcher gets a stop event that its owner sets when it unmounts: the
watchfiles thread then ends within one step instead of holding the exit for its
five-second timeout. A watcher that fails reports it once and stops; it never takes the
console down. Nothing here knows a screen: owners hand in what to do on a change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.theme import Theme

from console import themes
from console.engine.events import ReloadEvent
from console.workflow_watch import DEBOUNCE_MS, QUIET_MS, watch

if TYPE_CHECKING:
    from textual.app import App
    from textual.dom import DOMNode

    from console.engine.run import Run


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


def watch_workflow(owner: DOMNode, run: Run,
                   on_reload: Callable[[ReloadEvent], None]) -> Watchers:
    """Apply every save of the run's workflow file (or its inventory) to the run, as a
    worker of ``owner``; each reload, applied or refused, goes to ``on_reload``."""
    watchers = Watchers()
    path = run.workflow.path
    if path is None:
        return watchers
    stop = watchers.new_stop_event()
    _start(owner, path.name,
           lambda: watch(run, path, on_reload=on_reload, stop_event=stop))
    return watchers


def watch_folder(owner: DOMNode, folder: Path, on_change: Callable[[], None]) -> Watchers:
    """Call ``on_change`` (as a worker of ``owner``) when a workflow file in ``folder`` is
    added, removed or changed."""
    from watchfiles import awatch

    watchers = Watchers()
    stop = watchers.new_stop_event()

    async def loop() -> None:
        async for _changes in awatch(folder, watch_filter=_toml_only,
                                     debounce=DEBOUNCE_MS, step=QUIET_MS,
                                     stop_event=stop, recursive=False):
            on_change()

    _start(owner, str(folder), loop)
    return watchers


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
    """Re-apply the current theme after its definition changed in place: the CSS
    variables, then ``theme_changed_signal``, on which every widget that draws Rich
    colours of the theme redraws itself."""
    app.refresh_css(animate=False)
    app.theme_changed_signal.publish(app.current_theme)
