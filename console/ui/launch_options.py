"""What the command line asked the console for (``baton [PATH]`` / ``baton run FILE`` /
``baton resume RUN``); handed to the app, read by its run openers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from textual.screen import Screen

from console.ui.rollback_launch import RollbackLaunch
from console.ui.system import Clock, Sampler


class RunOwner(Protocol):
    """Who owns a run the console starts from its folder view or resumes from its history
    (issue 15: a runner process; the console gets the screen of its client). Raises
    :class:`console.launch.LaunchError` with the reason when the run cannot start."""

    async def open_file(self, path: Path, params: dict[str, Any], launch: LaunchOptions, *,
                        clock: Clock, sampler: Sampler | None) -> Screen[Any]: ...

    async def open_resume(self, run_id: str, launch: LaunchOptions, *, clock: Clock,
                          sampler: Sampler | None) -> Screen[Any]: ...


@dataclass
class LaunchOptions:
    """What the command line asked for (``baton [PATH]`` / ``baton run FILE``)."""

    params: dict[str, str] = field(default_factory=dict)
    """Raw ``--param NAME=VALUE`` values, coerced against the workflow's params."""
    limit: tuple[str, ...] = ()
    step_mode: bool = False
    start_at: str | None = None
    read_only: bool = False
    start: bool = False
    """Start the run as soon as the workflow is open (``baton run``)."""
    run_id: str | None = None
    user: str | None = None
    resume: str | None = None
    """``baton resume RUN``: continue that stored run (with --read-only: show it)."""
    dry_run: bool = False
    """``--dry-run``: every task shows what it would run; nothing runs, nothing is recorded."""
    yes: bool = False
    """``--yes``: approve every gate and mark every manual step done."""
    folder_note: str | None = None
    """A line shown under the folder view's title (the bundled examples say so)."""
    rollback: RollbackLaunch | None = None
    """``baton rollback RUN``: the rebuilt run and its plan to approve and run."""
