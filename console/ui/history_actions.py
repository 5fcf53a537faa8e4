"""What the app does with the run history (the base class of
:class:`console.ui.app.BatonApp`): open the history view, show a past run read-only, resume
an interrupted run, warn about interrupted runs, and page a task's full log. Screens ask
for these with messages (``ShowHistory``, ``HistoryScreen.Open``, ``HistoryScreen.Resume``,
``PageLog``); the run screen records its own run with the :class:`History` it is handed.

Every store read runs in a worker thread (:meth:`History.read`); recording happens on the
UI thread inside the engine's own event callbacks (see :mod:`console.store.recorder`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, SuspendNotSupported

from console.engine.rollback import Rollback
from console.engine.run import Run
from console.executors.base import Executor
from console.launch import Frontend, LaunchError, not_resumable, rebuild, view_stored
from console.model.workflow import Host
from console.store import StoreError
from console.store.replay import read_logs, stored_events
from console.ui.history_service import (
    History,
    interrupted_notice,
    past_runs,
    replay,
)
from console.ui.launch_options import LaunchOptions, RunOwner
from console.ui.messages import PageLog, ShowHistory
from console.ui.rollback_launch import RollbackLaunch
from console.ui.screens.folder import FolderScreen
from console.ui.screens.history_screen import HistoryScreen
from console.ui.screens.run_screen import RunScreen
from console.ui.system import Clock, Sampler, psutil_sampler

DEFAULT_PAGER = "less"


class HistoryActions(App[int]):
    """The app's side of the run history; :class:`BatonApp` sets these attributes."""

    history: History | None
    launch: LaunchOptions
    executor_for: Callable[[Host], Executor] | None
    clock: Clock
    sampler: Sampler | None
    owner: RunOwner | None

    def _fail(self, message: str, *, from_folder: bool) -> None:
        """A run cannot be opened (the app says how: a notification, or exit 2)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ views

    @on(ShowHistory)
    def _show_history(self, message: ShowHistory) -> None:
        self.open_history(message.path, message.name)

    @on(HistoryScreen.Open)
    def _open_past_run(self, message: HistoryScreen.Open) -> None:
        self.open_stored(message.run_id)

    @on(HistoryScreen.Resume)
    def _resume_past_run(self, message: HistoryScreen.Resume) -> None:
        self.resume_run(message.run_id)

    @on(PageLog)
    def _page_log(self, message: PageLog) -> None:
        self.page_log(message.run, message.step, message.host)

    def open_history(self, path: Path | None, name: str) -> None:
        if self.history is None:
            self.notify("no run history: the store is not open", severity="warning")
            return
        if path is None:
            self.notify("this workflow has no file, so no history", severity="warning")
            return
        self.push_screen(HistoryScreen(path, name, self.history,
                                       read_only=self.launch.read_only))

    @work(group="history-notice")
    async def check_interrupted(self, path: Path | None) -> None:
        """On opening a workflow: a notice when it has an interrupted run (a ``running``
        run whose console died is marked interrupted first, unless read-only)."""
        if self.history is None or path is None:
            return
        mark = not self.launch.read_only
        try:
            runs = await self.history.read(lambda s: past_runs(s, path, limit=50, mark=mark))
        except StoreError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        notice = interrupted_notice(runs)
        if notice is not None:
            self.notify(notice, title="interrupted run", severity="warning", timeout=30)

    @work(exclusive=True, group="open")
    async def open_stored(self, run_id: str, *, from_cli: bool = False) -> None:
        """Show a stored run read-only: rebuilt, never executed, its logs and timeline."""
        history = self.history
        if history is None:
            return
        try:
            stored = await history.read(lambda s: s.load(run_id))
            frontend = Frontend.console(executor_for=self.executor_for, clock=self.clock)
            run = await asyncio.to_thread(view_stored, stored, frontend)
            logs = await history.read(lambda s: read_logs(s, stored))
        except (StoreError, LaunchError) as exc:
            self._fail(str(exc), from_folder=not from_cli)
            return
        screen = self._new_run_screen(run, read_only=True, start=False, stored=True)
        replay(screen.session.on_event, stored_events(stored, logs))
        await self.push_screen(screen)

    @work(exclusive=True, group="open")
    async def resume_run(self, run_id: str, *, from_cli: bool = False) -> None:
        """Continue a stored run like ``baton resume``: lock it (a live run is refused),
        mark what was running interrupted, rebuild it, replay its past, execute it."""
        history = self.history
        if history is None:
            return
        busy = [s for s in self.screen_stack
                if isinstance(s, RunScreen) and s.started and s.running_tasks()]
        if busy:
            self.notify(f"run {busy[0].run.id} has running tasks; quit it before resuming "
                        f"another run", severity="error", timeout=10)
            return
        if self.owner is not None and not self.launch.read_only:
            await self._resume_owned(self.owner, run_id, from_cli=from_cli)
            return
        try:
            history.lock(run_id)
            stored = await history.read(lambda s: s.load(run_id))
            done = not_resumable(stored.run.state)
            if done is not None:
                history.release(run_id)
                self.notify(f"run {run_id} {done}; nothing to resume (shown "
                            f"read-only)", severity="warning")
                self.open_stored(run_id, from_cli=from_cli)
                return
            await history.read(lambda s: s.mark_interrupted(run_id))
            stored = await history.read(lambda s: s.load(run_id))
            frontend = Frontend.console(yes=self.launch.yes, user=self.launch.user,
                                        executor_for=self.executor_for, clock=self.clock)
            run = await asyncio.to_thread(rebuild, stored, frontend, show_past=True)
            logs = await history.read(lambda s: read_logs(s, stored))
        except (StoreError, LaunchError) as exc:
            if run_id in history.locks:
                history.release(run_id)
            self._fail(str(exc), from_folder=not from_cli)
            return
        await self._leave_runs()
        screen = self._new_run_screen(run, read_only=False, start=True, stored=False)
        replay(screen.session.on_event, stored_events(stored, logs))
        await self.push_screen(screen)
        left = [t.label for t in run.tasks_in_order() if str(t.state) == "interrupted"]
        if left:
            self.notify(f"resumed run {run.id}: {', '.join(left[:5])} "
                        f"{'was' if len(left) == 1 else 'were'} interrupted — retry (r), "
                        f"skip (s) or mark (S/F) {'it' if len(left) == 1 else 'them'}",
                        severity="warning", timeout=30)

    async def _resume_owned(self, owner: RunOwner, run_id: str, *, from_cli: bool) -> None:
        """Resume ``run_id`` in its own runner (which locks it and refuses a live run)."""
        assert self.history is not None
        try:
            stored = await self.history.read(lambda s: s.load(run_id))
        except StoreError as exc:
            self._fail(str(exc), from_folder=not from_cli)
            return
        done = not_resumable(stored.run.state)
        if done is not None:
            self.notify(f"run {run_id} {done}; nothing to resume (shown read-only)",
                        severity="warning")
            self.open_stored(run_id, from_cli=from_cli)
            return
        await self._leave_runs()
        try:
            screen = await owner.open_resume(run_id, self.launch, clock=self.clock,
                                             sampler=self.sampler)
        except LaunchError as exc:
            self._fail(str(exc), from_folder=not from_cli)
            return
        await self.push_screen(screen)

    async def _leave_runs(self) -> None:
        """Close the runs open in this console and their screens (before a resume)."""
        for screen in [s for s in self.screen_stack[1:] if not isinstance(s, FolderScreen)]:
            closer = getattr(screen, "close_run", None)
            if closer is not None:
                await closer()
        while len(self.screen_stack) > 1 and not isinstance(self.screen, FolderScreen):
            await self.pop_screen()

    async def open_rollback(self, launch: RollbackLaunch) -> None:
        """``baton rollback RUN``: show the past run, then the plan dialog; the rollback
        starts once it is approved (or at once with ``--yes``)."""
        from console.ui.screens.rollback_dialog import RollbackModal

        run = launch.run
        screen = self._new_run_screen(run, read_only=False, start=False, stored=False)
        replay(screen.session.on_event, iter(launch.past))
        await self.push_screen(screen)

        def start() -> None:
            run.rollback = Rollback(run, launch.plan)
            run.rollback_only = True
            screen.start_run()

        def answered(choice: object) -> None:
            if choice == "rollback":
                start()
            else:
                self.notify("rollback not approved: nothing was undone", severity="warning",
                            timeout=20)

        if launch.approved:
            start()
        else:
            self.push_screen(RollbackModal(launch.plan), answered)

    def _new_run_screen(self, run: Run, *, read_only: bool, start: bool,
                        stored: bool) -> RunScreen:
        sampler = self.sampler if self.sampler is not None else psutil_sampler()
        return RunScreen(run, clock=self.clock, sampler=sampler, read_only=read_only,
                         start=start, stored=stored, history=self.history)

    # ------------------------------------------------------------------ logs

    @work(exclusive=True, group="pager")
    async def page_log(self, run: Run, step: str, host: str) -> None:
        """Open the task's full log in ``$PAGER`` (default ``less``): the console is
        suspended while the pager owns the terminal; the run goes on meanwhile."""
        path = None if self.history is None else self.history.attempt_log(run, step, host)
        if path is None:
            self.notify("no log on disk for this task yet", severity="warning")
            return
        if self.history is not None:
            self.history.flush(run.id)
        if not path.exists():
            self.notify(f"attempt {run.tasks[(step, host)].attempt} printed nothing ({path})")
            return
        command = [*shlex.split(os.environ.get("PAGER") or DEFAULT_PAGER), str(path)]
        try:
            code = await self._suspended(lambda: _spawn(command))
        except SuspendNotSupported:
            self.notify(f"cannot hand the terminal to a pager here; the log is {path}",
                        severity="warning", timeout=15)
            return
        except OSError as exc:
            self.notify(f"cannot start the pager {command[0]!r}: {exc.strerror or exc}; the "
                        f"log is {path}", severity="error", timeout=15)
            return
        if code not in (0, None):
            self.notify(f"the pager exited with {code}; the log is {path}", severity="warning")

    async def _suspended(self, job: Callable[[], Any]) -> Any:
        """Await ``job()`` with the terminal handed over; the event loop keeps running
        (the run goes on) but nothing is painted until the job is over. A headless app
        (tests) has no terminal to hand over."""
        suspend = contextlib.nullcontext() if self.is_headless else self.suspend()
        with self.batch_update(), suspend:
            return await job()


async def _spawn(command: list[str]) -> int | None:
    process = await asyncio.create_subprocess_exec(*command)
    return await process.wait()
