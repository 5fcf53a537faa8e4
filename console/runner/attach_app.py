"""The console on a live run of another process (``baton attach``, ``baton run FILE``,
``baton serve``): the usual app and run screen, driven by a :class:`RemoteRun`.

Only three things differ from an in-process run, all here: the run is not recorded by the
console (its runner records it), ``q`` on a live run offers *detach* (the default) beside
cancel and stay, and SIGHUP (the terminal went away) detaches.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, Static

from console.engine.run import Run
from console.runner.client import ConnectError
from console.runner.mirror import RemoteRun, open_remote
from console.ui import app as ui_app
from console.ui.app import EXIT_OK, EXIT_USAGE, BatonApp, LaunchOptions, exit_code_for
from console.ui.screens.modals import QuitModal
from console.ui.screens.run_screen import RunScreen
from console.ui.system import psutil_sampler


class DetachModal(QuitModal):
    """``q`` on a live run owned by a runner: detach (default), cancel the run, or stay."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d,enter", "choose('detach')", "Detach", id="quit.detach"),
        Binding("y", "choose('cancel')", "Cancel the run", id="quit.yes"),
        Binding("n", "choose('stay')", "Stay", id="quit.no"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="quit-dialog"):
            yield Label(f"The run is {self.state}: detach, cancel it, or stay?",
                        classes="dialog-title")
            yield from self.what_is_live()
            yield Static("Detaching leaves the run going (baton attach brings it back). "
                         "Cancelling it stops what runs and cancels what waits.")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Detach (d, enter)", variant="primary", id="detach")
                yield Button("Cancel the run (y)", variant="error", id="cancel")
                yield Button("Stay (n, esc)", id="stay")


class ConnectionBanner(Static):
    """Shown while the connection to the runner is lost (reconnecting) or the runner is
    gone; hidden again once the console is reconnected."""

    DEFAULT_CSS = """
    ConnectionBanner {
        display: none;
        height: auto;
        padding: 0 1;
        background: $warning 35%;
        color: $foreground;
        border-left: thick $warning;
    }
    ConnectionBanner.-gone {
        background: $error 35%;
        border-left: thick $error;
    }
    """

    def show(self, text: str | None, severity: str) -> None:
        if text is None:
            self.display = False
            return
        self.set_class(severity == "error", "-gone")
        self.update(("✘ " if severity == "error" else "⚠ ") + text)
        self.display = True


class AttachedRunScreen(RunScreen):
    """The run screen of a remote run: leaving asks detach / cancel / stay; a banner says
    when the connection to the runner is lost."""

    def compose(self) -> ComposeResult:
        yield ConnectionBanner(id="connection-banner")
        yield from super().compose()

    def on_unmount(self) -> None:
        if isinstance(self.run, RemoteRun):
            self.run.on_connection = None

    def on_mount(self) -> None:  # Textual also calls RunScreen's own
        if isinstance(self.run, RemoteRun):
            self.run.on_connection = self.query_one(ConnectionBanner).show
            if self.run.on_notice is None:
                self.run.on_notice = self._notice

    def _notice(self, text: str, severity: str) -> None:
        self.notify(text, severity=severity,  # type: ignore[arg-type]
                    timeout=10 if severity == "error" else 5)

    def _leave(self, verb: str) -> None:
        if not self.live:
            super()._leave(verb)
            return
        then = self.shutdown if verb == "quit" else self.go_back
        tasks = self.run.tasks_in_order()
        running = [t.label for t in tasks if t.state.active]
        waiting = [t.label for t in tasks if t.state.waiting]

        def answered(choice: object) -> None:
            if choice == "detach":
                remote = self.run
                assert isinstance(remote, RemoteRun)
                remote.detach()
                then()
                return
            cancel = choice == "cancel"
            if self.act(self.run.answer_quit, cancel) and cancel:
                then()

        self.app.push_screen(DetachModal(str(self.run.state), running, waiting, verb=verb),
                             answered)

    @work(exclusive=True, group="shutdown")
    async def shutdown(self) -> None:
        """Leave the console: a detached run is no run of this console (exit 0)."""
        await self.close_run()
        run = self.run
        left = isinstance(run, RemoteRun) and run.detached and not run.state.finished
        self.post_message(self.Quit(None if left or not self.started else run))


class AttachApp(BatonApp):
    """The console on the live run served at ``socket``."""

    CSS_PATH = str(Path(ui_app.__file__).parent / BatonApp.CSS_PATH)

    def __init__(self, socket: Path, *, read_only: bool = False, theme: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(socket, LaunchOptions(read_only=read_only), theme=theme, **kwargs)
        self.socket = socket
        self.remote: RemoteRun | None = None

    def _notice(self, text: str, severity: str) -> None:
        self.notify(text, severity=severity,  # type: ignore[arg-type]
                    timeout=10 if severity == "error" else 5)

    def on_mount(self) -> None:  # Textual calls BatonApp's own after this one
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._hangup)
        except (NotImplementedError, RuntimeError, ValueError):
            pass

    def _hangup(self) -> None:
        """The terminal is gone: leave the run alone and end this process at once.

        Nothing here needs saving (the runner records the run; closing the socket is the
        detach), and Textual's orderly exit would write to the dead terminal: a write that
        fails ends its writer thread, and the next writes then wait forever for room in its
        queue (a console left hanging after every lost terminal)."""
        os._exit(EXIT_OK)

    @work(exclusive=True, group="open")
    async def open_workflow(self, path: Any, *, from_folder: bool) -> None:
        try:
            remote = await open_remote(self.socket, read_only=self.launch.read_only)
        except ConnectError as exc:
            self.exit(EXIT_USAGE, return_code=EXIT_USAGE, message=f"baton: {exc}")
            return
        self.remote = remote
        remote.on_notice = self._notice
        screen = AttachedRunScreen(remote, clock=self.clock,
                                   sampler=self.sampler if self.sampler is not None
                                   else psutil_sampler(),
                                   read_only=remote.read_only, start=True)
        await self.push_screen(screen)

    def finish(self, run: Run | None) -> None:
        """Detached from a live run: exit 0; else the run's final state decides."""
        remote = self.remote
        if remote is None or (remote.detached and not remote.state.finished):
            self.exit(EXIT_OK, return_code=EXIT_OK)
            return
        code = exit_code_for(remote.state)
        self.exit(code, return_code=code)
