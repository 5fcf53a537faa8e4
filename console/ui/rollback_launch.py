"""``baton rollback RUN`` in the console (SPEC sections 2 and 5): the past run, rebuilt by
the command from the history, opens as a run screen with its past replayed, and the
rollback plan dialog that ``u`` shows asks for approval of the requested scope. Approved
(or ``--yes``), the rollback runs in the console, recorded; refused, nothing is undone and
the run stays on screen to look at."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from textual.app import App

from console.engine.events import Event
from console.engine.rollback import Rollback, RollbackPlan
from console.engine.run import Run
from console.ui.history import replay


@dataclass
class RollbackLaunch:
    """What ``baton rollback RUN`` hands the console."""

    run: Run
    """The past run rebuilt for a rollback (not executed)."""
    plan: RollbackPlan
    """The plan of the requested scope (it has entries)."""
    past: Sequence[Event]
    """The stored run's events and output, replayed into the screen."""
    approved: bool = False
    """``--yes``: the plan is approved already."""


async def open_rollback(app: App[Any], launch: RollbackLaunch,
                        new_screen: Callable[..., Any]) -> None:
    """Show the run (on the RunScreen made by the app's ``new_screen``: typed loosely,
    the screens import the app), then the plan dialog; the rollback starts once it is
    approved."""
    from console.ui.screens.rollback_dialog import RollbackModal

    run = launch.run
    screen = new_screen(run, read_only=False, start=False, stored=False)
    replay(screen.session.on_event, iter(launch.past))
    await app.push_screen(screen)

    def start() -> None:
        run.rollback = Rollback(run, launch.plan)
        run.rollback_only = True
        screen.start_run()

    def answered(choice: object) -> None:
        if choice == "rollback":
            start()
        else:
            app.notify("rollback not approved: nothing was undone", severity="warning",
                       timeout=20)

    if launch.approved:
        start()
    else:
        app.push_screen(RollbackModal(launch.plan), answered)
