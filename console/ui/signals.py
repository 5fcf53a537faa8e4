"""SIGTERM in the console: stop the live run as Ctrl-C does headless, then leave.

The run's running tasks are stopped (their whole process trees) and end ``interrupted``,
unstarted ones keep their state, the run is stored ``interrupted`` (resumable with
``baton resume RUN --yes``), and the console exits 143 (128 + SIGTERM). Without this a
SIGTERM would kill the console and leave the tasks' processes running unsupervised.
"""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.ui.app import BatonApp

EXIT_SIGTERM = 128 + signal.SIGTERM


def stop_on_sigterm(app: BatonApp) -> None:
    """Install the handler on the app's loop (removed with :func:`remove`)."""
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, _on_sigterm, app)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
        pass


def remove() -> None:
    try:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
    except (NotImplementedError, RuntimeError, ValueError):
        pass


def _on_sigterm(app: BatonApp) -> None:
    screen = app._run_screen()
    if screen is not None and screen.executing is not None:
        screen.run.interrupt("stopped by SIGTERM")
    app.run_worker(_leave(app), name="sigterm", group="sigterm", exclusive=True,
                   exit_on_error=False)


async def _leave(app: BatonApp) -> None:
    screen = app._run_screen()
    if screen is not None:
        await screen.close_run()  # waits for the process trees, the recorder writes the rest
    if app.history is not None:
        app.history.close()
    app.exit(EXIT_SIGTERM, return_code=EXIT_SIGTERM)
