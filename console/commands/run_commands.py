"""``baton run FILE`` and ``baton resume RUN``: headless here, else in the console
(:mod:`console.commands.console_command`); the run is opened by :mod:`console.launch`."""

from __future__ import annotations

import argparse
from pathlib import Path

from console.commands.console_command import console_resume, console_run
from console.commands.shared import (
    Command,
    UsageError,
    err,
    frontend,
    headless,
    ignore_console_flags,
    launch_errors,
    load,
    open_store,
    run_inputs,
    store_errors,
)
from console.exitcodes import EXIT_FAILED, EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    if not (args.headless or args.json):
        return console_run(args)
    workflow = load(args.file, for_run=True)
    ignore_console_flags(args)
    inputs = run_inputs(args, workflow)
    # a dry run is not history; --no-history is for throw-away runs (and the benchmarks)
    store = None if args.dry_run or getattr(args, "no_history", False) else open_store()
    try:
        with launch_errors():
            run = frontend(args).new_run(workflow, params=inputs.params,
                                         secrets=inputs.secrets, limit=inputs.limit,
                                         start_at=inputs.start_at, step_mode=args.step,
                                         dry_run=args.dry_run)
        return headless(run, args, store, watch=Path(args.file) if args.watch else None)
    finally:
        if store is not None:
            store.close()


def cmd_resume(args: argparse.Namespace) -> int:
    for flag, given in (("--param", args.param), ("--limit", args.limit),
                        ("--start-at", args.start_at), ("--dry-run", args.dry_run)):
        if given:
            raise UsageError(f"{flag} cannot change a run being resumed: it keeps the values "
                             f"it started with")
    if not (args.headless or args.json):
        return console_resume(args)
    ignore_console_flags(args)
    from console.executors.leftovers import settle
    from console.launch import not_resumable, rebuild

    store = open_store()
    with store, store_errors():
        run_id = store.resolve(args.run)
        with store.acquire_run_lock(run_id):  # before anything: refuse a live run
            done = not_resumable(store.load(run_id).run.state)
            if done is not None:  # never forward again after a rollback
                err(f"baton: run {run_id} {done}; nothing to resume")
                return EXIT_OK if done == "already succeeded" else EXIT_FAILED
            store.mark_interrupted(run_id)
            with launch_errors():
                run = rebuild(store.load(run_id), frontend(args), step_mode=args.step,
                              say=lambda note: err(f"baton: note: {note}"))
            path = run.workflow.path
            watch = path if args.watch and path is not None else None
            settle(store, run_id, run.workflow, say=err)  # before anything re-runs
            return headless(run, args, store, watch=watch, resumed=True)


def run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``run`` and ``resume``."""
    parser.add_argument("--headless", action="store_true", help="run without the console")
    parser.add_argument("--json", action="store_true",
                        help="headless: one JSON event per line on stdout (implies --headless)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="set a param (repeatable)")
    parser.add_argument("--limit", action="append", default=[], metavar="PATTERN",
                        help="only these hosts/groups (repeatable, comma-separated, globs)")
    parser.add_argument("--yes", action="store_true",
                        help="approve every gate and mark every manual step done")
    parser.add_argument("--step", action="store_true", help="every task needs approval")
    parser.add_argument("--start-at", metavar="STEP",
                        help="start at STEP; the steps upstream of it count as skipped")
    parser.add_argument("--dry-run", action="store_true",
                        help="show what would run (when evaluated), run and record nothing")
    parser.add_argument("--accept-new-host-keys", action="store_true",
                        help="trust unknown SSH host keys on first use (a changed key is refused)")
    parser.add_argument("--theme", metavar="NAME", help="console theme")
    parser.add_argument("--read-only", action="store_true", help="console: watch only")
    parser.add_argument("--watch", action="store_true",
                        help="apply changes of the workflow file to the live run (the "
                        "console always does)")
    parser.add_argument("--no-history", action="store_true",
                        help="headless: do not record this run in the history")


def _run_file_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE")
    run_arguments(parser)


def _resume_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run id (a unique prefix is enough)")
    run_arguments(parser)


RUN = Command("run", "run a workflow (--headless: without the console)",
              _run_file_arguments, cmd_run)
RESUME = Command("resume", "continue an interrupted run", _resume_arguments, cmd_resume)
