"""``baton rollback RUN``: the run rebuilt from the history (:mod:`console.launch`), its
rollback plan approved in the console's plan dialog (:mod:`console.commands.rollback_console`),
or with ``--headless``/``--json`` printed and approved (``--yes``, or ``y`` on a terminal),
then the undos run and are recorded."""

from __future__ import annotations

import argparse
import sys

from console.commands.shared import (
    Command,
    UsageError,
    err,
    frontend,
    headless,
    launch_errors,
    open_store,
    stdin_is_tty,
    store_errors,
)
from console.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def cmd_rollback(args: argparse.Namespace) -> int:
    from console.engine.events import TaskState
    from console.engine.rollback import Rollback, RollbackScope, plan_rollback
    from console.executors.leftovers import settle
    from console.launch import Frontend, rebuild_for_rollback

    if args.downstream and not args.rollback_step:
        raise UsageError("--downstream needs --step")
    store = open_store()
    with store, store_errors():
        run_id = store.resolve(args.run)
        with store.acquire_run_lock(run_id):  # before anything: refuse a live run
            store.mark_interrupted(run_id)
            stored = store.load(run_id)
            console = not (args.headless or args.json)  # SPEC section 2: the default
            with launch_errors():
                run = rebuild_for_rollback(
                    stored, Frontend.console(yes=args.yes) if console else frontend(args),
                    say=lambda note: err(f"baton: note: {note}"))
            settle(store, run_id, run.workflow, say=err)  # an undo cut short by a crash
            scope = RollbackScope(args.rollback_step, args.rollback_host, args.downstream)
            try:
                plan = plan_rollback(run, scope)
            except ValueError as exc:
                raise UsageError(f"run {run_id}: {exc}") from None
            # every undo done, but the run was stopped before it said so: finish it
            finishing = not plan.entries and stored.run.state != "rolled_back" and any(
                t.state is TaskState.UNDONE for t in run.tasks.values())
            if not plan.entries and not finishing:
                err(f"baton: run {run_id}: nothing to undo")
                return EXIT_OK
            if console and not finishing:  # the plan shows in the console's dialog
                from console.commands.rollback_console import console_rollback

                return console_rollback(run, plan, stored, store, approved=args.yes)
            run.options.keep_alive = False  # headless: it ends with its last undo
            for line in plan.lines():
                err(line)
            if not args.yes and not finishing:
                if not stdin_is_tty():
                    err("baton: a rollback must be approved: add --yes to run this plan "
                        "(no terminal to ask on)")
                    return EXIT_USAGE
                sys.stderr.write("Run this rollback? [y/N] ")
                sys.stderr.flush()
                if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                    err("baton: rollback not approved; nothing was undone")
                    return EXIT_FAILED
            # nothing to approve in a rollback once its plan is: "wait" only says an
            # operator is at the terminal, asked about a failed undo (SPEC section 5)
            run.options.approval = "wait" if not args.yes and stdin_is_tty() else "auto"
            run.rollback = Rollback(run, plan)
            run.rollback_only = True
            return int(headless(run, args, store))


def _rollback_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run id (a unique prefix is enough)")
    parser.add_argument("--step", dest="rollback_step", metavar="STEP",
                        help="only this step (every host, or --host's)")
    parser.add_argument("--host", dest="rollback_host", metavar="HOST",
                        help="only this host's tasks")
    parser.add_argument("--downstream", action="store_true",
                        help="with --step: also every step downstream of it")
    parser.add_argument("--yes", action="store_true", help="approve the plan without asking")
    parser.add_argument("--headless", action="store_true",
                        help="run without the console (the plan printed, approved with --yes "
                             "or y on a terminal)")
    parser.add_argument("--json", action="store_true",
                        help="JSON events on stdout (the plan goes to stderr)")
    parser.add_argument("--accept-new-host-keys", action="store_true",
                        help="trust unknown SSH host keys on first use")


ROLLBACK = Command("rollback", "undo a past or interrupted run (its undo steps)",
                   _rollback_arguments, cmd_rollback)
