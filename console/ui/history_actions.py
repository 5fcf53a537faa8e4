"""What the console does with the run history, mixed into :class:`console.ui.app.BatonApp`:
record the runs it starts, open the history view, show a past run read-only, resume an
interrupted run, warn about interrupted runs, and page a task's full log.

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
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import SuspendNotSupported

from console.engine.run import Run
from console.launch import Frontend, LaunchError, not_resumable, rebuild, view_stored
from console.store import StoreError
from console.store.replay import read_logs, stored_events
from console.ui.history import (
    History,
    interrupted_notice,
    past_runs,
    replay,
)

if TYPE_CHECKING:
    from console.ui.app import BatonApp
    from console.ui.screens.run_screen import RunScreen
    from console.ui.session import RunSession

DEFAULT_PAGER = "less"


class HistoryActions:
    """Mixin for the app (``self`` is a :class:`BatonApp`)."""

    history: History | None

    # ------------------------------------------------------------------ recording

    def record_run(self: BatonApp, run: Run, session: RunSession) -> bool:
        """Start recording ``run`` (before it executes); the recorder's subscription moves
        ahead of the console's, so an action is committed before the console shows it.
        False (with a notification) when the store refuses: the run must not start."""
        if self.history is None or run.options.dry_run:  # a dry run is not history
            return True
        from console.store.concurrent import claim_workflow

        try:
            claim = claim_workflow(self.history.store, run)
        except StoreError as exc:  # an exclusive workflow with a live run: not started
            self.notify(str(exc), severity="error", timeout=30)
            return False
        for warning in claim.warnings:
            self.notify(warning, severity="warning", timeout=20)
        self.history.claims[run.id] = claim
        try:
            self.history.record(run, on_error=lambda error: self._history_error(run, error))
        except StoreError as exc:
            self.history.claims.pop(run.id).release()
            self.notify(f"cannot record run {run.id}: {exc}", severity="error", timeout=30)
            return False
        session.subscribe_again()
        return True

    def _history_error(self: BatonApp, run: Run, error: StoreError) -> None:
        """The run's history cannot be written: nothing new starts (what it would do could
        not be recorded, and a resume could repeat it), and the run screen says so."""
        run.halt(str(error))
        self.notify(f"history: {error}; no new task starts", severity="error", timeout=30)
        from console.ui.screens.run_screen import RunScreen
        from console.ui.widgets.banner import HistoryBanner

        for screen in self.screen_stack:
            if isinstance(screen, RunScreen) and screen.run is run:
                screen.query_one(HistoryBanner).show_error(str(error))

    def run_over(self: BatonApp, run: Run) -> None:
        """The run closed in this console: its recorder writes the rest and lets go."""
        if self.history is not None:
            self.history.release(run.id)

    # ------------------------------------------------------------------ views

    def open_history(self: BatonApp, path: Path | None, name: str) -> None:
        from console.ui.screens.history import HistoryScreen

        if self.history is None:
            self.notify("no run history: the store is not open", severity="warning")
            return
        if path is None:
            self.notify("this workflow has no file, so no history", severity="warning")
            return
        self.push_screen(HistoryScreen(path, name))

    @work(group="history-notice")
    async def check_interrupted(self: BatonApp, path: Path | None) -> None:
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
    async def open_stored(self: BatonApp, run_id: str, *, from_cli: bool = False) -> None:
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
    async def resume_run(self: BatonApp, run_id: str, *, from_cli: bool = False) -> None:
        """Continue a stored run like ``baton resume``: lock it (a live run is refused),
        mark what was running interrupted, rebuild it, replay its past, execute it."""
        history = self.history
        if history is None:
            return
        from console.ui.screens.run_screen import RunScreen

        busy = [s for s in self.screen_stack
                if isinstance(s, RunScreen) and s.started and s.running_tasks()]
        if busy:
            self.notify(f"run {busy[0].run.id} has running tasks; quit it before resuming "
                        f"another run", severity="error", timeout=10)
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

    async def _leave_runs(self: BatonApp) -> None:
        """Close the runs open in this console and their screens (before a resume)."""
        from console.ui.screens.folder import FolderScreen

        for screen in [s for s in self.screen_stack[1:] if not isinstance(s, FolderScreen)]:
            closer = getattr(screen, "close_run", None)
            if closer is not None:
                await closer()
        while len(self.screen_stack) > 1 and not isinstance(self.screen, FolderScreen):
            await self.pop_screen()

    def _new_run_screen(self: BatonApp, run: Run, *, read_only: bool, start: bool,
                        stored: bool) -> RunScreen:
        from console.ui.screens.run_screen import RunScreen
        from console.ui.system import psutil_sampler

        sampler = self.sampler if self.sampler is not None else psutil_sampler()
        return RunScreen(run, clock=self.clock, sampler=sampler, read_only=read_only,
                         start=start, stored=stored)

    # ------------------------------------------------------------------ logs

    def log_file(self: BatonApp, run: Run, step: str, host: str) -> Path | None:
        """The file holding the full output of the task's current attempt (None: the run
        is not recorded, or the task has not run)."""
        task = run.tasks.get((step, host))
        if self.history is None or task is None or task.attempt == 0:
            return None
        return self.history.log_path(run.id, step, host, task.attempt)

    @work(exclusive=True, group="pager")
    async def page_log(self: BatonApp, run: Run, step: str, host: str) -> None:
        """Open the task's full log in ``$PAGER`` (default ``less``): the console is
        suspended while the pager owns the terminal; the run goes on meanwhile."""
        path = self.log_file(run, step, host)
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

    async def _suspended(self: BatonApp, job: Callable[[], Any]) -> Any:
        """Await ``job()`` with the terminal handed over; the event loop keeps running
        (the run goes on) but nothing is painted until the job is over. A headless app
        (tests) has no terminal to hand over."""
        suspend = contextlib.nullcontext() if self.is_headless else self.suspend()
        with self.batch_update(), suspend:
            return await job()


async def _spawn(command: list[str]) -> int | None:
    process = await asyncio.create_subprocess_exec(*command)
    return await process.wait()
