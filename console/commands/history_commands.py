"""``baton runs`` (past runs, pruning) and ``baton show RUN`` (one past run)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from console.commands.shared import (
    Command,
    UsageError,
    err,
    open_store,
    out,
    read_store,
    store_errors,
)
from console.exitcodes import EXIT_OK


def age(text: str, flag: str) -> float:
    """``2h`` / ``30d`` -> seconds; a bad one is a usage error naming ``flag``."""
    from console.model.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError:
        raise UsageError(f"{flag}: expected an age like '2h' or '30d', got {text!r}") from None


def since(text: str | None) -> float | None:
    """``--since 2h`` / ``7d`` (an age) or ``2024-11-03`` / ``2024-11-03T10:00`` (local time
    unless the ISO text names a zone) -> epoch seconds."""
    if text is None:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        pass
    try:
        return time.time() - age(text, "--since")
    except UsageError:
        raise UsageError(f"--since: expected an age like '2h' or '7d', or an ISO date like "
                         f"2024-11-03, got {text!r}") from None


def cmd_runs(args: argparse.Namespace) -> int:
    if args.prune or args.older_than is not None:
        if not args.prune:
            raise UsageError("--older-than only applies with --prune")
        if args.older_than is None:
            raise UsageError("--prune needs --older-than AGE (e.g. --older-than 30d)")
        older = age(args.older_than, "--older-than")
        store = open_store()
        with store, store_errors():
            count = store.prune(older)
        print(f"pruned {count} run{'s' * (count != 1)} older than {args.older_than}")
        return EXIT_OK
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    started_after = since(args.since)
    workflow = matching = None
    if args.workflow is not None and Path(args.workflow).is_file():
        workflow = str(Path(args.workflow).resolve())  # that file's runs
    elif args.workflow is not None:
        matching = args.workflow  # any part of the name or file name, ignoring case
    store = read_store()
    with store, store_errors():
        try:
            runs = store.runs(workflow=workflow, status=args.status, since=started_after,
                              limit=args.limit, matching=matching)
        except ValueError as exc:
            raise UsageError(f"--status: {exc}") from None
        home = store.home
    if args.json:
        from console.runner.commands import live_ids

        live = live_ids(home)  # attachable now (baton attach RUN)
        for run in runs:
            print(json.dumps({**dataclasses.asdict(run), "duration": run.duration,
                              "live": run.id in live}))
        return EXIT_OK
    if not runs:
        err(f"no runs recorded in {home}" if not (args.workflow or args.status or args.since)
            else "no run matches")
        return EXIT_OK
    from console.printers import format_runs
    from console.runner.commands import mark_live

    out(format_runs(mark_live(runs, home)))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    if args.json and args.markdown:
        raise UsageError("choose one of --json and --markdown")
    from console.store import show

    store = read_store()
    with store, store_errors():
        stored = store.load(args.run)
        if args.markdown:
            markdown = show.render_markdown(stored, stderr=lambda a: store.stderr_tail(
                stored.id, a.step, a.host, a.number, show.STDERR_LINES))
    if args.json:
        sys.stdout.write(json.dumps(show.to_json(stored), indent=2) + "\n")
    elif args.markdown:
        out(markdown)
    else:
        out(show.render_table(stored))
    return EXIT_OK


def _runs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workflow", metavar="NAME|FILE",
                        help="runs of this workflow file, or whose name or path contains "
                        "NAME (case-insensitive)")
    parser.add_argument("--status", metavar="STATE",
                        help="only runs in this state (succeeded, failed, interrupted, …)")
    parser.add_argument("--since", metavar="AGE|DATE",
                        help="started in the last AGE (2h, 7d) or since an ISO date")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N runs")
    parser.add_argument("--json", action="store_true", help="one JSON object per run")
    parser.add_argument("--prune", action="store_true",
                        help="delete runs (and their logs) older than --older-than")
    parser.add_argument("--older-than", metavar="AGE", help="with --prune: e.g. 30d")


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run id (a unique prefix is enough)")
    parser.add_argument("--json", action="store_true", help="everything, as JSON")
    parser.add_argument("--markdown", action="store_true", help="an incident timeline")


RUNS = Command("runs", "past runs, newest first", _runs_arguments, cmd_runs)
SHOW = Command("show", "one past run: steps, hosts, attempts, actions", _show_arguments,
               cmd_show)
