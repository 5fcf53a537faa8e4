"""``baton resume RUN`` in a runner (``python -m console.runner.process resume RUN``): the
console's resume is owned by a runner as ``baton run FILE`` is. The same rules as a
headless resume: the run's lock first (a live run is refused), nothing to resume after a
success or a rollback, what was running marked interrupted, leftovers of interrupted
attempts settled (the console asked the operator about them before it started the
runner), then the rebuilt run is driven and served until it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from console.engine.run import Run

Serve = Callable[["Run", Coroutine[Any, Any, int]], Coroutine[Any, Any, int]]


def resume(args: argparse.Namespace, serve: Serve) -> int:
    """Resume ``args.run`` headless in this runner process; the exit code."""
    import dataclasses

    from console.commands.shared import (
        UsageError,
        err,
        launch_errors,
        open_store,
        store_errors,
    )
    from console.executors.leftovers import settle
    from console.headless import execute_headless
    from console.launch import Frontend, not_resumable, rebuild

    store = open_store()
    with store, store_errors():
        run_id = store.resolve(args.run)
        with store.acquire_run_lock(run_id):
            done = not_resumable(store.load(run_id).run.state)
            if done is not None:
                raise UsageError(f"run {run_id} {done}; nothing to resume")
            store.mark_interrupted(run_id)
            front = dataclasses.replace(Frontend.console(yes=args.yes),
                                        accept_new_host_keys=args.accept_new_host_keys)
            with launch_errors():
                run = rebuild(store.load(run_id), front, step_mode=args.step, show_past=True,
                              say=lambda note: err(f"baton: note: {note}"))
            settle(store, run_id, run.workflow, say=err)  # before anything re-runs
            path = run.workflow.path
            with open(os.devnull, "w") as devnull:  # the history holds the output
                return asyncio.run(serve(run, execute_headless(
                    run, out=devnull, store=store, interactive=False, printing=False,
                    watch=path, resumed=True)))
