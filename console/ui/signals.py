"""SIGTERM in the console: stop the live run as Ctrl-C does headless, then leave.

The handler only posts :class:`Terminated` to the app; the app stops the run: its running
tasks are stopped (their whole process trees) and end ``interrupted``, unstarted ones keep
their state, the run is stored ``interrupted`` (resumable with ``baton resume RUN
--yes``), and the console exits 143 (128 + SIGTERM). Without this a SIGTERM would kill the
console and leave the tasks' processes running unsupervised.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from textual.app import App
from textual.message import Message

EXIT_SIGTERM = 128 + signal.SIGTERM


class Terminated(Message):
    """The console got SIGTERM."""


def stop_on_sigterm(app: App[Any]) -> None:
    """Install the handler on the app's loop (removed with :func:`remove`)."""
    try:
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGTERM, lambda: app.post_message(Terminated()))
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
        pass


def remove() -> None:
    try:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
    except (NotImplementedError, RuntimeError, ValueError):
        pass
