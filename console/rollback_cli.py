"""`baton rollback RUN`: undo a finished, failed or interrupted run from history.

The run is rebuilt from the store as `baton resume` does (the definition it last ran
with, its params, its task states and outputs), the rollback plan is printed (each undo
command per host, secrets masked) and approved (`--yes`, or `y` on a terminal), then the
undos run headless with the usual printer or JSON events and are recorded with the run.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    """The `rollback` subcommand."""
    from console.cli import cmd_rollback

    parser = sub.add_parser("rollback", help="undo a past or interrupted run (its undo steps)")
    parser.add_argument("run", metavar="RUN", help="run id (a unique prefix is enough)")
    parser.add_argument("--step", dest="rollback_step", metavar="STEP",
                        help="only this step (every host, or --host's)")
    parser.add_argument("--host", dest="rollback_host", metavar="HOST",
                        help="only this host's tasks")
    parser.add_argument("--downstream", action="store_true",
                        help="with --step: also every step downstream of it")
    parser.add_argument("--yes", action="store_true", help="approve the plan without asking")
    parser.add_argument("--headless", action="store_true",
                        help="run without the console (the only mode for now)")
    parser.add_argument("--json", action="store_true",
                        help="JSON events on stdout (the plan goes to stderr)")
    parser.add_argument("--accept-new-host-keys", action="store_true",
                        help="trust unknown SSH host keys on first use")
    parser.set_defaults(func=cmd_rollback)


def rollback(args: argparse.Namespace) -> int:
    from console import cli
    from console.engine.events import TaskState
    from console.engine.rollback import Rollback, RollbackScope, plan_rollback

    if args.downstream and not args.rollback_step:
        raise cli.UsageError("--downstream needs --step")
    store = cli._open_store()
    with store, cli._store_errors():
        run_id = store.resolve(args.run)
        with store.acquire_run_lock(run_id):  # before anything: refuse a live run
            store.mark_interrupted(run_id)
            stored = store.load(run_id)
            rebuild = argparse.Namespace(**{**vars(args), "step": False, "watch": False})
            run, _ = cli._rebuild(stored, rebuild)
            from console.executors.leftovers import settle

            settle(store, run_id, run.workflow, say=cli._err)  # an undo cut short by a crash
            for record in stored.tasks:  # what was not decided stays as it was
                task = run.tasks.get((record.step, record.host))
                if task is not None and task.state is TaskState.PENDING \
                        and record.state != "pending":
                    task.state, task.reason = TaskState(record.state), record.reason
            scope = RollbackScope(args.rollback_step, args.rollback_host, args.downstream)
            try:
                plan = plan_rollback(run, scope)
            except ValueError as exc:
                raise cli.UsageError(f"run {run_id}: {exc}") from None
            for line in plan.lines():
                cli._err(line)
            # every undo done, but the run was stopped before it said so: finish it
            finishing = not plan.entries and stored.run.state != "rolled_back" and any(
                t.state is TaskState.UNDONE for t in run.tasks.values())
            if not plan.entries and not finishing:
                cli._err(f"baton: run {run_id}: nothing to undo")
                return cli.EXIT_OK
            if not args.yes and not finishing:
                if not cli._stdin_is_tty():
                    cli._err("baton: a rollback must be approved: add --yes to run this plan "
                             "(no terminal to ask on)")
                    return cli.EXIT_USAGE
                sys.stderr.write("Run this rollback? [y/N] ")
                sys.stderr.flush()
                if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                    cli._err("baton: rollback not approved; nothing was undone")
                    return cli.EXIT_FAILED
            run.options.approval = "auto"
            run.rollback = Rollback(run, plan)
            run.rollback_only = True
            return int(cli._headless(run, args, store))
