"""``baton rollback RUN`` without ``--headless``: the console opens on the rebuilt past run
with the rollback plan dialog (the one ``u`` shows) for the requested scope; approved, the
rollback runs in the console (:mod:`console.ui.rollback_launch`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from console.exitcodes import EXIT_OK

if TYPE_CHECKING:
    from console.engine.rollback import RollbackPlan
    from console.engine.run import Run
    from console.store import Store
    from console.store.records import StoredRun


def console_rollback(run: Run, plan: RollbackPlan, stored: StoredRun, store: Store, *,
                     approved: bool) -> int:
    """Open the console on ``run`` (locked by the caller) to approve and run ``plan``;
    ``approved`` (``--yes``): it starts at once. The console's exit code."""
    from console.store.replay import read_logs, stored_events
    from console.ui.app import BatonApp, LaunchOptions
    from console.ui.rollback_launch import RollbackLaunch

    run.options.keep_alive = True  # a failed undo waits for the operator's retry or skip
    past = list(stored_events(stored, read_logs(store, stored)))
    launch = LaunchOptions(user=run.user,
                           rollback=RollbackLaunch(run, plan, past, approved=approved))
    app = BatonApp(Path.cwd(), launch, store=store)
    try:
        app.run()
    finally:
        if app.history is not None:
            app.history.close()
    return app.return_code if app.return_code is not None else EXIT_OK
