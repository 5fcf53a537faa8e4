"""``baton rollback RUN`` in the console (SPEC sections 2 and 5): the past run, rebuilt by
the command from the history, opens as a run screen with its past replayed, and the
rollback plan dialog that ``u`` shows asks for approval of the requested scope. Approved
(or ``--yes``), the rollback runs in the console, recorded; refused, nothing is undone and
the run stays on screen to look at (:meth:`HistoryActions.open_rollback
<console.ui.history_actions.HistoryActions.open_rollback>`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from console.engine.events import Event
from console.engine.rollback import RollbackPlan
from console.engine.run import Run


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
