"""The runner process (``python -m console.runner.process run FILE [options]``, started by
:func:`console.runner.daemon.spawn`): builds the run as ``baton run`` does, then drives it
headless (history, run lock, workflow file watch) while its socket serves consoles.

Gates and manual steps wait for an attached operator (``--yes`` approves them). SIGHUP is
ignored; SIGTERM and SIGINT interrupt the run as Ctrl-C does.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from console.engine.run import Run


READ_PAUSE = 0.001
"""Seconds the runner lets a step's output gather after reading a pipe empty (see
:data:`console.executors.local_execution.READ_PAUSE`): a flood printed line by line is
read, recorded and sent in chunks of many lines (a console shows it no later: it draws
at most ~30 times a second)."""


def main(argv: Sequence[str]) -> int:
    """Entry point of the runner process."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the terminal that started it may go
    from console import cli
    from console.executors import local_execution

    local_execution.READ_PAUSE = READ_PAUSE
    from console.commands.shared import UsageError
    from console.exitcodes import EXIT_USAGE

    try:
        args = cli.build_parser().parse_args(list(argv))
        if args.command == "resume":
            from console.runner.resume import resume

            return resume(args, _serve)
        if args.command != "run":
            raise UsageError("the runner only runs `run FILE` and `resume RUN`")
        return _run(args)
    except UsageError as exc:
        print(f"baton: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except Exception as exc:  # one line in the runner's log, never a traceback
        print(f"baton: runner failed: {type(exc).__name__}: {exc}", file=sys.stderr,
              flush=True)
        return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    from console.commands.shared import (
        err,
        launch_errors,
        load,
        open_store,
        run_inputs,
        store_errors,
    )
    from console.headless import execute_headless
    from console.launch import Frontend
    from console.store.concurrent import claim_workflow

    workflow = load(args.file, for_run=True)
    inputs = run_inputs(args, workflow, given_params())
    with launch_errors():
        # the console's front end: gates wait for an attached operator, the run stays open
        front = dataclasses.replace(Frontend.console(yes=args.yes),
                                    accept_new_host_keys=args.accept_new_host_keys)
        run = front.new_run(workflow, params=inputs.params, secrets=inputs.secrets,
                            limit=inputs.limit, start_at=inputs.start_at, step_mode=args.step,
                            dry_run=args.dry_run)
    store = open_store()
    try:
        with store_errors():
            claim = claim_workflow(store, run)
            for warning in claim.warnings:
                err(f"baton: warning: {warning}")
            try:
                with open(os.devnull, "w") as devnull:  # the history holds the output
                    return asyncio.run(_serve(run, execute_headless(
                        run, out=devnull, store=store, interactive=False, printing=False,
                        watch=Path(args.file))))
            finally:
                claim.release()
    finally:
        store.close()


def given_params() -> dict[str, Any]:
    """The params form's values the console passed in the environment (see daemon)."""
    import json

    from console.commands.shared import UsageError
    from console.runner.daemon import PARAMS_ENV

    text = os.environ.pop(PARAMS_ENV, None)
    if not text:
        return {}
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, dict):
        raise UsageError(f"{PARAMS_ENV}: not a JSON object of param values")
    return values


IDLE_GRACE = 2.0
"""Seconds a finished run waits with no console attached before its runner exits."""


async def _serve(run: Run, driving: Coroutine[Any, Any, int]) -> int:
    """Drive the run; as in the console it stays open after its last task (an operator
    may still retry), until no console has been attached for :data:`IDLE_GRACE`."""
    watchdog = asyncio.get_running_loop().create_task(_close_when_idle(run))
    try:
        return await driving
    finally:
        watchdog.cancel()
        await asyncio.gather(watchdog, return_exceptions=True)


async def _close_when_idle(run: Run, tick: float = 0.25) -> None:
    from console.runner.server import SERVERS

    idle = 0.0
    while True:
        await asyncio.sleep(tick)
        server = SERVERS.get(run.id)
        if run.state.finished and (server is None or server.clients == 0):
            idle += tick
            if idle >= IDLE_GRACE:
                run.close()
                return
        else:
            idle = 0.0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
