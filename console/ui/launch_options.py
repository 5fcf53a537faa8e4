"""What the command line asked the console for (``baton [PATH]`` / ``baton run FILE`` /
``baton resume RUN``); handed to the app, read by its run openers."""

from __future__ import annotations

from dataclasses import dataclass, field

from console.ui.rollback_launch import RollbackLaunch


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
