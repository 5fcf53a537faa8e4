"""The console's runs owned by runners (issue 15): a run started from the folder view or
resumed from the history screen is started in a runner process, as ``baton run FILE``
is, and the console shows it through its client (:class:`AttachedRunScreen`). The app
only sees :class:`console.ui.launch_options.RunOwner`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

from textual.screen import Screen

from console.launch import LaunchError
from console.runner.attach_app import AttachedRunScreen
from console.runner.client import ConnectError
from console.runner.daemon import SpawnError, spawn
from console.runner.mirror import open_remote
from console.ui.launch_options import LaunchOptions
from console.ui.system import Clock, Sampler, psutil_sampler


class RunnerOwner:
    """Starts each run in a runner under ``home`` and attaches to it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._hangup = False

    async def open_file(self, path: Path, params: dict[str, Any], launch: LaunchOptions, *,
                        clock: Clock, sampler: Sampler | None) -> Screen[Any]:
        args = [str(Path(path).resolve())]
        for pattern in launch.limit:
            args += ["--limit", pattern]
        if launch.start_at:
            args += ["--start-at", launch.start_at]
        args += _flags(launch)
        # the form's values go through the environment, never the command line (ps)
        values = json.loads(json.dumps(params, default=str))
        return await self._open(args, "run", values, clock, sampler)

    async def open_resume(self, run_id: str, launch: LaunchOptions, *, clock: Clock,
                          sampler: Sampler | None) -> Screen[Any]:
        return await self._open([run_id, *_flags(launch)], "resume", None, clock, sampler)

    async def _open(self, args: list[str], command: str, params: dict[str, Any] | None,
                    clock: Clock, sampler: Sampler | None) -> Screen[Any]:
        try:
            spawned = await asyncio.to_thread(spawn, args, self.home, command=command,
                                              params=params)
        except SpawnError as exc:
            lines = str(exc).splitlines() or ["the runner did not start"]
            raise LaunchError(lines[-1].removeprefix("baton: ")) from None
        try:
            remote = await open_remote(spawned.socket)
        except ConnectError as exc:  # the runner started: its run goes on without us
            raise LaunchError(f"{exc} (run {spawned.run_id} goes on: baton attach "
                              f"{spawned.run_id})") from None
        self._detach_on_hangup()
        return AttachedRunScreen(remote, clock=clock,
                                 sampler=sampler if sampler is not None else psutil_sampler(),
                                 start=True)

    def _detach_on_hangup(self) -> None:
        """The terminal going away leaves the run to its runner (as ``baton attach``)."""
        if self._hangup:
            return
        self._hangup = True
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, os._exit, 0)
        except (NotImplementedError, RuntimeError, ValueError):
            pass


def _flags(launch: LaunchOptions) -> list[str]:
    return [flag for flag, on in (("--yes", launch.yes), ("--step", launch.step_mode)) if on]
