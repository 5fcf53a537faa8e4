"""The Baton console: a Textual app on the engine's public Run API.

``run_console`` is the entry point the CLI calls. The app opens a workflow file (params
form first when a required param has no value) or a folder of them, builds the Run with
``keep_alive`` so the operator can still act after every task has finished, and hands it
to a run screen, which runs ``Run.execute()`` as its worker in the app's own event loop.

Attributes down, messages up: the app hands each screen what it needs (the run, the
clock, the history service) and handles what screens ask of it as messages
(``FolderScreen.Open``/``Quit``, ``RunScreen.Quit``, ``signals.Terminated``, and those of
:class:`HistoryActions`); no screen calls the app's own methods.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import SystemCommand
from textual.screen import Screen

from console import themes
from console.engine.events import RunState
from console.engine.run import Run
from console.executors.base import Executor
from console.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from console.launch import Frontend, LaunchError, load_file, params_for, secrets_for
from console.model.loader import WorkflowError
from console.model.params import missing_required
from console.model.workflow import Host, Workflow
from console.store import LiveRunError, Store, StoreError
from console.ui import signals
from console.ui.history_actions import HistoryActions
from console.ui.history_service import History
from console.ui.launch_options import LaunchOptions, RunOwner
from console.ui.screens.folder import FolderScreen
from console.ui.screens.params_form import ParamsForm
from console.ui.screens.run_screen import RunScreen
from console.ui.system import Clock, Sampler, psutil_sampler
from console.ui.watchers import ThemeWatch, Watchers


def exit_code_for(state: RunState | None) -> int:
    if state is None or state is RunState.SUCCEEDED:
        return EXIT_OK
    return EXIT_FAILED


class BatonApp(HistoryActions):
    CSS_PATH = "baton.tcss"
    TITLE = "Baton"

    def __init__(
        self,
        path: Path | str,
        launch: LaunchOptions | None = None,
        *,
        theme: str | None = None,
        executor_for: Callable[[Host], Executor] | None = None,
        clock: Clock = time.time,
        sampler: Sampler | None = None,
        config_file: Path | None = None,
        theme_folders: Iterable[Path] | None = None,
        blink: bool = True,
        store: Store | None = None,
        owner: RunOwner | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.owner = owner
        """Who owns the runs started from the folder view or resumed from the history
        (None: this process)."""
        self.launch = launch or LaunchOptions()
        self.executor_for = executor_for
        self.clock = clock
        self.sampler = sampler
        self.blink = blink
        self.config_file = config_file or themes.config_path()
        self.keymap_overrides: dict[str, str] = {}
        self.run_state: RunState | None = None
        self.history = History(store) if store is not None else None
        """Run history (None: runs are not recorded); ``run_console`` opens the store."""
        self.theme_folders = list(theme_folders) if theme_folders is not None else None
        found, self.theme_errors = themes.discover_themes(self.theme_folders)
        self.watchers = Watchers()
        self.theme_watch = ThemeWatch(
            self, self.theme_folders or themes.theme_folders(), self.theme_errors)
        for item in found.values():
            self.register_theme(item)
        wanted = theme or themes.remembered_theme(self.config_file) or themes.DEFAULT_THEME
        if wanted not in self.available_themes:
            self.theme_errors.append(f"unknown theme '{wanted}' "
                                     f"(known: {', '.join(sorted(found))})")
            wanted = themes.DEFAULT_THEME if themes.DEFAULT_THEME in found else self.theme
        self.theme = wanted
        self._theme_shown = wanted

    # ------------------------------------------------------------------ startup

    def on_mount(self) -> None:
        signals.stop_on_sigterm(self)
        for error in self.theme_errors:
            self.notify(error, severity="warning")
        keys = themes.read_config(self.config_file).get("keys")
        if isinstance(keys, dict):
            self.keymap_overrides = {str(k): str(v) for k, v in keys.items()}
            self.set_keymap(self.keymap_overrides)
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        self.theme_watch.start(self.watchers)
        if self.launch.rollback is not None:
            self.run_worker(self.open_rollback(self.launch.rollback), group="open",
                            exclusive=True)
        elif self.launch.resume is not None:
            opener = self.open_stored if self.launch.read_only else self.resume_run
            opener(self.launch.resume, from_cli=True)
        elif self.path.is_dir():
            self.push_screen(FolderScreen(self.path, note=self.launch.folder_note,
                                          history=self.history, clock=self.clock))
        else:
            self.open_workflow(self.path, from_folder=False)

    def on_unmount(self) -> None:
        signals.remove()
        self.watchers.stop()

    def _remember_theme(self, theme: Any) -> None:
        if theme.name == self._theme_shown:  # its file was edited (ThemeWatch): same choice
            return
        self._theme_shown = theme.name
        try:
            themes.remember_theme(self.config_file, theme.name)
        except OSError as exc:
            self.notify(f"cannot remember the theme: {exc}", severity="warning")

    def _fail(self, message: str, *, from_folder: bool) -> None:
        """A workflow that cannot be opened: a notification in the folder view, else exit 2."""
        if from_folder:
            self.notify(message, severity="error", timeout=10)
        else:
            self.exit(EXIT_USAGE, return_code=EXIT_USAGE, message=f"baton: {message}")

    @work(exclusive=True, group="open")
    async def open_workflow(self, path: Path, *, from_folder: bool) -> None:
        """Load, ask for missing params, resolve secrets, show the run screen."""
        try:
            workflow = await asyncio.to_thread(load_file, path)
        except WorkflowError as exc:
            first = str(exc.problems[0]) if exc.problems else str(exc)
            count = len(exc.problems)
            more = f" (and {count - 1} more)" if count > 1 else ""
            self._fail(f"invalid workflow: {first}{more}", from_folder=from_folder)
            return
        params = await self._params(workflow, from_folder=from_folder)
        if params is None:
            return
        launch = self.launch
        if from_folder and self.owner is not None and not (launch.read_only or launch.dry_run):
            await self._open_owned(self.owner.open_file(path, params, launch, clock=self.clock,
                                                        sampler=self.sampler), from_folder)
            return
        frontend = Frontend.console(yes=launch.yes, user=launch.user,
                                    executor_for=self.executor_for, clock=self.clock)
        try:
            secrets = {} if launch.read_only else await asyncio.to_thread(
                secrets_for, workflow)
            run = frontend.new_run(workflow, params=params, secrets=secrets, limit=launch.limit,
                                   step_mode=launch.step_mode, start_at=launch.start_at,
                                   run_id=launch.run_id, dry_run=launch.dry_run)
        except LaunchError as exc:
            self._fail(str(exc), from_folder=from_folder)
            return
        screen = RunScreen(run, clock=self.clock,
                           sampler=self.sampler if self.sampler is not None else psutil_sampler(),
                           read_only=launch.read_only,
                           start=(launch.start or from_folder) and not launch.read_only,
                           history=self.history)
        await self.push_screen(screen)
        if launch.dry_run:
            self.notify("dry run: every task shows what it would run; nothing is executed "
                        "or recorded", timeout=10)
        self.check_interrupted(workflow.path)

    async def _open_owned(self, opening: Any, from_folder: bool) -> None:
        """Show the screen of a run its owner (a runner) started."""
        try:
            screen = await opening
        except LaunchError as exc:
            self._fail(str(exc), from_folder=from_folder)
            return
        await self.push_screen(screen)

    async def _params(self, workflow: Workflow, *, from_folder: bool) -> dict[str, Any] | None:
        given = dict(self.launch.params)
        unknown = [name for name in given if name not in workflow.params]
        # from the folder view a run starts at once: show every param first (item 15)
        ask = missing_required(workflow.params, given) or (from_folder and workflow.params)
        if not ask or unknown:
            try:
                return params_for(workflow, given)
            except LaunchError as exc:
                self._fail(str(exc), from_folder=from_folder)
                return None
        values = await self.push_screen_wait(ParamsForm(workflow, given))
        if values is None:
            self._fail("cancelled: the run was not started", from_folder=from_folder)
            return None
        try:
            return params_for(workflow, values)
        except LaunchError as exc:  # the form validated already; keep the message if not
            self._fail(str(exc), from_folder=from_folder)
            return None

    # ------------------------------------------------------------------ messages up

    @on(FolderScreen.Open)
    def _open_from_folder(self, message: FolderScreen.Open) -> None:
        self.open_workflow(message.path, from_folder=True)

    @on(FolderScreen.Quit)
    def _quit_from_folder(self) -> None:
        self.finish(None)

    @on(RunScreen.Quit)
    def _quit_from_run(self, message: RunScreen.Quit) -> None:
        self.finish(message.run)

    @on(signals.Terminated)
    def _terminated(self) -> None:
        """SIGTERM: stop the live run as Ctrl-C does headless, then leave (exit 143)."""
        screen = self._run_screen()
        if screen is not None:
            screen.interrupt("stopped by SIGTERM")
        self.run_worker(self._leave_on_sigterm(), name="sigterm", group="sigterm",
                        exclusive=True, exit_on_error=False)

    async def _leave_on_sigterm(self) -> None:
        screen = self._run_screen()
        if screen is not None:
            await screen.close_run()  # waits for the process trees, the recorder writes the rest
        if self.history is not None:
            self.history.close()
        self.exit(signals.EXIT_SIGTERM, return_code=signals.EXIT_SIGTERM)

    # ------------------------------------------------------------------ exit

    def finish(self, run: Run | None) -> None:
        """Leave the console; the exit code follows the run's final state."""
        self.run_state = None if run is None else run.state
        if self.history is not None:
            self.history.close()
        code = exit_code_for(self.run_state)
        self.exit(code, return_code=code)

    async def action_quit(self) -> None:
        """ctrl+q and the palette's Quit ask the run screen first (tasks may be running)."""
        screen = self._run_screen()
        if screen is not None:
            screen.action_quit()
        else:
            self.finish(None)

    def _run_screen(self) -> RunScreen | None:
        for screen in reversed(self.screen_stack):
            if isinstance(screen, RunScreen) and not screen.stored:
                return screen
        return None

    # ------------------------------------------------------------------ keys & palette

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if not isinstance(screen, RunScreen):
            return
        for binding in screen.BINDINGS:
            if isinstance(binding, tuple) or binding.action in ("quit", "help"):
                continue
            if screen.check_action(binding.action, ()) is not True:
                continue
            action = binding.action
            yield SystemCommand(binding.description, binding.tooltip,
                                lambda action=action: screen.run_action(action))


def run_console(
    path: Path | str,
    *,
    params: dict[str, str] | None = None,
    limit: tuple[str, ...] = (),
    step_mode: bool = False,
    start_at: str | None = None,
    theme: str | None = None,
    read_only: bool = False,
    start: bool = False,
    resume: str | None = None,
    dry_run: bool = False,
    yes: bool = False,
    folder_note: str | None = None,
    owner: RunOwner | None = None,
) -> int:
    """Open the console on a workflow file or folder; returns the process exit code.

    ``start=True`` (``baton run FILE``) starts the run at once; otherwise ``g`` starts it.
    ``resume``: a stored run's id (a unique prefix is enough) to continue, or with
    ``read_only`` to look at; ``path`` is then ignored. ``owner``: who owns the runs
    started from the folder view or resumed from the history (None: this process).
    Invalid workflows and params, an unusable store, an unknown or live run end with a
    one-line message on stderr and exit code 2, before the console starts.
    """
    target = Path(path) if path is not None else Path.cwd()
    if resume is None and not target.exists():
        sys.stderr.write(f"baton: {target}: no such file or folder\n")
        return EXIT_USAGE
    try:
        store = Store.open()
    except StoreError as exc:
        sys.stderr.write(f"baton: {exc}\n")
        return EXIT_USAGE
    launch = LaunchOptions(params=dict(params or {}), limit=tuple(limit), step_mode=step_mode,
                           start_at=start_at, read_only=read_only, start=start,
                           dry_run=dry_run, yes=yes, folder_note=folder_note)
    app = BatonApp(target, launch, theme=theme, store=store, owner=owner)
    try:
        if resume is not None:
            launch.resume = store.resolve(resume)
            if not read_only:  # refuse a live run before the console starts
                assert app.history is not None
                app.history.lock(launch.resume)
        app.run()
    except (LiveRunError, StoreError) as exc:
        sys.stderr.write(f"baton: {exc}\n")
        return EXIT_USAGE
    finally:
        if app.history is not None:
            app.history.close()
        store.close()
    return app.return_code if app.return_code is not None else EXIT_OK
