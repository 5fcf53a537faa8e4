"""The `baton` command line. Sub-commands only parse arguments and call the modules doing
the work; every expected failure is one line on stderr and an exit code (SPEC section 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from console import __version__
from console.exitcodes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from console.sanitize import sanitize

COMMANDS = ("run", "check", "plan", "runs", "show", "resume", "rollback", "new", "hosts",
            "attach", "serve")


class UsageError(Exception):
    """Bad input from the operator: printed as ``baton: message``, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"baton: {message}\n")


# --- helpers ---------------------------------------------------------------------------


def _err(text: str) -> None:
    sys.stderr.write(sanitize(text) + "\n")


def _out(text: str) -> None:
    """Human output that quotes workflow, history or step text: sanitised for the terminal
    (JSON output needs nothing: json.dumps escapes every control character)."""
    sys.stdout.write(sanitize(text))


def _load(path: str) -> Any:
    """Load a workflow or raise UsageError after printing every problem."""
    from console.model.loader import WorkflowError, load_workflow

    try:
        return load_workflow(Path(path))
    except WorkflowError as exc:
        for problem in exc.problems:
            _err(str(problem))
        count = len(exc.problems)
        noun = "problem" if count == 1 else "problems"
        raise UsageError(f"{path}: invalid workflow ({count} {noun})") from None


def _params(workflow: Any, assignments: Sequence[str]) -> dict[str, Any]:
    from console.model.params import ParamError, parse_assignments, resolve_params

    try:
        return resolve_params(workflow.params, parse_assignments(assignments))
    except ParamError as exc:
        raise UsageError(str(exc)) from None


def _limit(workflow: Any, patterns: Sequence[str]) -> tuple[str, ...]:
    """``--limit web,db1 --limit 'app*'`` -> patterns; each must match a host or group."""
    out = tuple(p.strip() for item in patterns for p in item.split(",") if p.strip())
    if not out:
        return out
    from console.model.loader import suggest
    from console.plan import limit_matches

    for pattern in out:
        if not limit_matches(workflow, pattern):
            names = [*workflow.hosts, *workflow.groups()]
            raise UsageError(f"--limit '{pattern}' matches no host or group"
                             f"{suggest(pattern, names)}")
    return out


def _start_at(workflow: Any, step: str | None) -> str | None:
    if step is not None and step not in workflow.steps:
        from console.model.loader import suggest

        raise UsageError(f"--start-at: unknown step '{step}'{suggest(step, workflow.steps)}")
    return step


# --- commands --------------------------------------------------------------------------


def cmd_console(args: argparse.Namespace) -> int:
    run_console = _console_entry()
    path, note = console_target(args.path)
    return run_console(path, theme=args.theme, read_only=args.read_only, folder_note=note)


def console_target(path: str | None) -> tuple[str, str | None]:
    """What ``baton [PATH]`` opens: PATH, else ``./workflows``, else (no such folder
    here, e.g. after ``pip install``) the bundled examples, with a line saying so."""
    if path is not None or Path("workflows").exists():
        return path or "workflows", None
    from console.paths import bundled

    examples = bundled("workflows")
    if not examples.is_dir():
        return "workflows", None
    return str(examples), (f"No ./workflows here: these are the bundled examples, in "
                           f"{examples}. `baton new NAME` starts your own.")


def _console_entry() -> Any:
    """``console.ui.app.run_console`` (Textual is imported only for the console)."""
    try:
        from console.ui.app import run_console
    except ImportError as exc:  # a broken install: one line, and the headless way out
        raise UsageError(f"cannot load the console ({exc}); `baton run FILE --headless` "
                         "works without it") from None
    return run_console


def _console_run(args: argparse.Namespace) -> int:
    if os.environ.get("BATON_RUNNER", "1") != "0" and not (args.read_only or args.dry_run):
        return cmd_live(args)  # a runner owns the run; this console attaches to it
    run_console = _console_entry()
    from console.model.params import ParamError, parse_assignments

    # --dry-run, --yes and --watch are honoured (the console always applies saves of the
    # workflow file to the live run); only --no-history has no meaning there
    if getattr(args, "no_history", False):
        raise UsageError("--no-history only applies with --headless")
    try:
        params = parse_assignments(args.param)
    except ParamError as exc:
        raise UsageError(str(exc)) from None
    limit = tuple(p.strip() for item in args.limit for p in item.split(",") if p.strip())
    return run_console(args.file, params=params, limit=limit, step_mode=args.step,
                       start_at=args.start_at, theme=args.theme, read_only=args.read_only,
                       start=True, dry_run=args.dry_run, yes=args.yes)


def cmd_live(args: argparse.Namespace) -> int:
    """``baton attach``, ``baton serve``, ``baton run FILE``: console/runner/commands.py."""
    from console.paths import baton_home
    from console.runner.commands import RunnerError, command

    try:
        return command(args, baton_home())
    except RunnerError as exc:
        raise UsageError(str(exc)) from None


def cmd_run(args: argparse.Namespace) -> int:
    if not (args.headless or args.json):
        return _console_run(args)
    workflow = _load(args.file)
    if workflow.path is not None and not workflow.path.is_absolute():
        # stored with the run: `baton resume` and `runs --workflow` work from any folder
        workflow = dataclasses.replace(workflow, path=workflow.path.resolve())
    params = _params(workflow, args.param)
    start_at = _start_at(workflow, args.start_at)
    limit = _limit(workflow, args.limit)
    _ignore_console_flags(args)
    secrets = _secrets(workflow)
    options = _options(args, params=params, secrets=secrets, limit=limit, start_at=start_at,
                       step_mode=args.step, dry_run=args.dry_run)
    from console.engine.run import Run

    # a dry run is not history; --no-history is for throw-away runs (and the benchmarks)
    store = None if args.dry_run or getattr(args, "no_history", False) else _open_store()
    try:
        run = Run(workflow, options)
        return _headless(run, args, store, watch=Path(args.file) if args.watch else None)
    finally:
        if store is not None:
            store.close()


def _ignore_console_flags(args: argparse.Namespace) -> None:
    flags = [flag for flag, on in (("--theme", args.theme), ("--read-only", args.read_only))
             if on]
    if flags:
        _err(f"baton: {', '.join(flags)} only apply to the console; ignored in headless mode")


def _secrets(workflow: Any) -> dict[str, str]:
    from console.model.secrets import SecretError, resolve_secrets

    try:
        base_dir = workflow.path.parent if workflow.path else Path.cwd()
        return resolve_secrets(workflow.secrets, base_dir=base_dir, environ=os.environ)
    except SecretError as exc:
        raise UsageError(str(exc)) from None


def _options(args: argparse.Namespace, **values: Any) -> Any:
    """RunOptions with the approval policy of SPEC section 2: --yes approves, a terminal
    asks, anything else fails the gate."""
    from console.engine.run import Approval, RunOptions

    approval: Approval = "auto" if args.yes else ("wait" if _stdin_is_tty() else "fail")
    options = RunOptions(approval=approval, **values)
    if args.accept_new_host_keys and hasattr(options, "accept_new_host_keys"):
        options.accept_new_host_keys = True
    return options


def _headless(run: Any, args: argparse.Namespace, store: Any, *, watch: Path | None = None,
              resumed: bool = False) -> int:
    from console.headless import run_headless

    claim = None
    with _store_errors():
        if store is not None:  # another live run of this workflow: warn, or refuse
            from console.store.concurrent import claim_workflow

            claim = claim_workflow(store, run)
            for warning in claim.warnings:
                _err(f"baton: warning: {warning}")
        try:
            return run_headless(run, json_mode=args.json,
                                interactive=run.options.approval == "wait",
                                store=store, watch=watch, resumed=resumed)
        finally:
            if claim is not None:
                claim.release()


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def cmd_check(args: argparse.Namespace) -> int:
    from console.model.loader import WorkflowError, load_workflow

    problems = 0
    bad_files = 0
    for path in args.files:
        try:
            workflow = load_workflow(Path(path))
        except WorkflowError as exc:
            bad_files += 1
            problems += len(exc.problems)
            for problem in exc.problems:
                _out(f"{problem}\n")
            continue
        renames = sorted({note for host in workflow.hosts.values() for note in host.notes
                          if " is imported as " in note})
        for note in renames:  # names of an imported inventory that Baton had to change
            _err(f"{path}: note: {note}")
    files = len(args.files)
    noun = "file" if files == 1 else "files"
    if problems:
        _err(f"{problems} problem{'s' * (problems != 1)} in {bad_files} of {files} {noun}")
        return EXIT_FAILED
    _err(f"{files} {noun} ok")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from console.plan import build_plan, render_plan

    workflow = _load(args.file)
    params = _params(workflow, args.param)
    limit = _limit(workflow, args.limit)
    _out(render_plan(build_plan(workflow, params, limit=limit)))
    return EXIT_OK


def cmd_hosts(args: argparse.Namespace) -> int:
    from console.hosts import HostsError, hosts_report, render_json, render_text

    ssh_config: Any = ()
    if args.ssh_config is not None:
        ssh_config = [] if args.ssh_config == "none" else args.ssh_config
    try:
        report = hosts_report(args.file, ssh_config)
    except HostsError as exc:
        for line in str(exc).splitlines():
            _err(line)
        return EXIT_USAGE
    if args.json:
        sys.stdout.write(render_json(report))
    else:
        _out(render_text(report))  # vars from an inventory could carry escape sequences
    return EXIT_OK


def cmd_new(args: argparse.Namespace) -> int:
    from console.starter import StarterError, write_starter

    try:
        path = write_starter(args.name)
    except StarterError as exc:
        raise UsageError(str(exc)) from None
    _err(f"wrote {path}; next: baton check {path}")
    return EXIT_OK


# --- history ---------------------------------------------------------------------------


@contextmanager
def _store_errors() -> Iterator[None]:
    """A store failure (unwritable home, corrupt file, live run) is a usage error: exit 2."""
    from console.store import StoreError

    try:
        yield
    except StoreError as exc:
        raise UsageError(str(exc)) from None


def _open_store() -> Any:
    from console.store import Store

    with _store_errors():
        return Store.open()


def _read_store() -> Any:
    """The history for reading only (`runs`, `show`): no write access needed."""
    from console.store import Store

    with _store_errors():
        return Store.open_read()


def _age(text: str, flag: str) -> float:
    from console.model.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError:
        raise UsageError(f"{flag}: expected an age like '2h' or '30d', got {text!r}") from None


def _since(text: str | None) -> float | None:
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
        return time.time() - _age(text, "--since")
    except UsageError:
        raise UsageError(f"--since: expected an age like '2h' or '7d', or an ISO date like "
                         f"2024-11-03, got {text!r}") from None


def cmd_runs(args: argparse.Namespace) -> int:
    if args.prune or args.older_than is not None:
        if not args.prune:
            raise UsageError("--older-than only applies with --prune")
        if args.older_than is None:
            raise UsageError("--prune needs --older-than AGE (e.g. --older-than 30d)")
        age = _age(args.older_than, "--older-than")
        store = _open_store()
        with store, _store_errors():
            count = store.prune(age)
        print(f"pruned {count} run{'s' * (count != 1)} older than {args.older_than}")
        return EXIT_OK
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    since = _since(args.since)
    workflow = matching = None
    if args.workflow is not None and Path(args.workflow).is_file():
        workflow = str(Path(args.workflow).resolve())  # that file's runs
    elif args.workflow is not None:
        matching = args.workflow  # any part of the name or file name, ignoring case
    store = _read_store()
    with store, _store_errors():
        try:
            runs = store.runs(workflow=workflow, status=args.status, since=since,
                              limit=args.limit, matching=matching)
        except ValueError as exc:
            raise UsageError(f"--status: {exc}") from None
        home = store.home
    if args.json:
        for run in runs:
            print(json.dumps({**dataclasses.asdict(run), "duration": run.duration}))
        return EXIT_OK
    if not runs:
        _err(f"no runs recorded in {home}" if not (args.workflow or args.status or args.since)
             else "no run matches")
        return EXIT_OK
    from console.printers import format_runs
    from console.runner.commands import mark_live

    _out(format_runs(mark_live(runs, home)))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    if args.json and args.markdown:
        raise UsageError("choose one of --json and --markdown")
    from console.store import show

    store = _read_store()
    with store, _store_errors():
        stored = store.load(args.run)
        if args.markdown:
            markdown = show.render_markdown(stored, stderr=lambda a: store.stderr_tail(
                stored.id, a.step, a.host, a.number, show.STDERR_LINES))
    if args.json:
        sys.stdout.write(json.dumps(show.to_json(stored), indent=2) + "\n")
    elif args.markdown:
        _out(markdown)
    else:
        _out(show.render_table(stored))
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    for flag, given in (("--param", args.param), ("--limit", args.limit),
                        ("--start-at", args.start_at), ("--dry-run", args.dry_run)):
        if given:
            raise UsageError(f"{flag} cannot change a run being resumed: it keeps the values "
                             f"it started with")
    if not (args.headless or args.json):
        return _console_resume(args)
    _ignore_console_flags(args)
    store = _open_store()
    with store, _store_errors():
        run_id = store.resolve(args.run)
        with store.acquire_run_lock(run_id):  # before anything: refuse a live run
            if store.load(run_id).run.state == "succeeded":
                _err(f"baton: run {run_id} already succeeded; nothing to resume")
                return EXIT_OK
            if store.load(run_id).run.state == "rolled_back":  # never forward again
                _err(f"baton: run {run_id} was rolled back; nothing to resume")
                return EXIT_FAILED
            store.mark_interrupted(run_id)
            run, watch = _rebuild(store.load(run_id), args)
            from console.executors.leftovers import settle

            settle(store, run_id, run.workflow, say=_err)  # before anything re-runs
            return _headless(run, args, store, watch=watch, resumed=True)


def cmd_rollback(args: argparse.Namespace) -> int:
    """`baton rollback RUN`: the run rebuilt as `resume` does, its rollback plan printed and
    approved (`--yes`, or `y` on a terminal), then the undos run headless and recorded."""
    from console.engine.events import TaskState
    from console.engine.rollback import Rollback, RollbackScope, plan_rollback

    if args.downstream and not args.rollback_step:
        raise UsageError("--downstream needs --step")
    store = _open_store()
    with store, _store_errors():
        run_id = store.resolve(args.run)
        with store.acquire_run_lock(run_id):  # before anything: refuse a live run
            store.mark_interrupted(run_id)
            stored = store.load(run_id)
            rebuild = argparse.Namespace(**{**vars(args), "step": False, "watch": False})
            run, _ = _rebuild(stored, rebuild)
            from console.executors.leftovers import settle

            settle(store, run_id, run.workflow, say=_err)  # an undo cut short by a crash
            run.restore_as_recorded(stored.tasks, only_pending=True)  # not decided: as it was
            scope = RollbackScope(args.rollback_step, args.rollback_host, args.downstream)
            try:
                plan = plan_rollback(run, scope)
            except ValueError as exc:
                raise UsageError(f"run {run_id}: {exc}") from None
            for line in plan.lines():
                _err(line)
            # every undo done, but the run was stopped before it said so: finish it
            finishing = not plan.entries and stored.run.state != "rolled_back" and any(
                t.state is TaskState.UNDONE for t in run.tasks.values())
            if not plan.entries and not finishing:
                _err(f"baton: run {run_id}: nothing to undo")
                return EXIT_OK
            if not args.yes and not finishing:
                if not _stdin_is_tty():
                    _err("baton: a rollback must be approved: add --yes to run this plan "
                             "(no terminal to ask on)")
                    return EXIT_USAGE
                sys.stderr.write("Run this rollback? [y/N] ")
                sys.stderr.flush()
                if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                    _err("baton: rollback not approved; nothing was undone")
                    return EXIT_FAILED
            run.options.approval = "auto"
            run.rollback = Rollback(run, plan)
            run.rollback_only = True
            return int(_headless(run, args, store))


def _rollback_parser(sub: Any) -> None:
    """The `rollback` subcommand."""
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


def _rebuild(stored: Any, args: argparse.Namespace) -> tuple[Any, Path | None]:
    """The Run of a stored run, from the definition it last ran with (not the file on
    disk, which may have changed since), its params and options, and its task states."""
    from console.engine.run import Run
    from console.model.loader import WorkflowError, load_text

    digest, text = stored.last_definition()
    if text is None:
        raise UsageError(f"run {stored.id}: its workflow definition is not in the store; "
                         f"cannot resume it")
    path = Path(stored.run.path) if stored.run.path else None
    try:
        workflow = load_text(text, path or "<string>")
    except WorkflowError as exc:
        for problem in exc.problems:
            _err(str(problem))
        raise UsageError(f"run {stored.id}: its stored definition no longer loads") from None
    if path is not None and path.is_file() and load_digest(path) != digest:
        _err(f"baton: note: {path} changed since run {stored.id} ran; resuming with the "
             f"definition the run used (`baton show {stored.id} --json` has its text)")
    saved = stored.run.options
    options = _options(args, params=dict(stored.run.params), secrets=_secrets(workflow),
                       limit=tuple(saved.get("limit") or ()),
                       step_mode=bool(args.step or saved.get("step_mode")),
                       start_at=saved.get("start_at"), run_id=stored.id)
    run = Run(workflow, options)
    run.restore(stored.tasks)
    from console.engine.exclusion import restore_exclusions

    restore_exclusions(run, stored.actions)
    watch = path if args.watch and path is not None else None
    return run, watch


def load_digest(path: Path) -> str | None:
    """The definition hash of the file on disk now (None when it does not load)."""
    from console.model.loader import WorkflowError, load_workflow

    try:
        return load_workflow(path).digest
    except WorkflowError:
        return None


def _console_resume(args: argparse.Namespace) -> int:
    run_console = _console_entry()
    if not args.read_only and not _confirm_leftovers(args.run):
        return EXIT_USAGE
    return run_console(None, resume=args.run, theme=args.theme, read_only=args.read_only,
                       yes=args.yes)


def _confirm_leftovers(prefix: str) -> bool:
    """Before the console resumes a run: what its interrupted attempts left running is
    reported, and ended once the operator confirms on the terminal."""
    from console.executors.leftovers import settle
    from console.model.loader import WorkflowError, load_text
    from console.store import LiveRunError

    store = _open_store()
    with store, _store_errors():
        run_id = store.resolve(prefix)
        if store.is_live(run_id):
            return True  # the console says so itself
        try:
            with store.acquire_run_lock(run_id):
                stored = store.load(run_id)
                _, text = stored.last_definition()
                try:
                    workflow = load_text(text, stored.run.path or "<string>") if text else None
                except WorkflowError:
                    workflow = None
                return settle(store, run_id, workflow, say=_err, ask=_ask_terminal)
        except LiveRunError:
            return True


def _ask_terminal(prompt: str) -> bool:
    if not _stdin_is_tty():
        return True  # nobody to ask: end them, as headless does
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


# --- parser ----------------------------------------------------------------------------


def _run_options(parser: argparse.ArgumentParser) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="baton",
        description="Baton: an operations console for runbooks (TOML workflows).",
        epilog="`baton [PATH]` opens the console on a workflow file or folder "
        "(default ./workflows; without one, the bundled examples).",
    )
    parser.add_argument("--version", action="version", version=f"baton {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run a workflow (--headless: without the console)")
    run.add_argument("file", metavar="FILE")
    _run_options(run)
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="validate workflow files")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(func=cmd_check)

    plan = sub.add_parser("plan", help="order, hosts, rollout batches, rendered commands")
    plan.add_argument("file", metavar="FILE")
    plan.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                      help="set a param, as for run (repeatable); defaults fill the rest")
    plan.add_argument("--limit", action="append", default=[], metavar="PATTERN",
                      help="only these hosts/groups, as for run (repeatable, globs)")
    plan.set_defaults(func=cmd_plan)

    runs = sub.add_parser("runs", help="past runs, newest first")
    runs.add_argument("--workflow", metavar="NAME|FILE",
                      help="runs of this workflow file, or whose name or path contains NAME "
                      "(case-insensitive)")
    runs.add_argument("--status", metavar="STATE",
                      help="only runs in this state (succeeded, failed, interrupted, …)")
    runs.add_argument("--since", metavar="AGE|DATE",
                      help="started in the last AGE (2h, 7d) or since an ISO date")
    runs.add_argument("--limit", type=int, metavar="N", help="at most N runs")
    runs.add_argument("--json", action="store_true", help="one JSON object per run")
    runs.add_argument("--prune", action="store_true",
                      help="delete runs (and their logs) older than --older-than")
    runs.add_argument("--older-than", metavar="AGE", help="with --prune: e.g. 30d")
    runs.set_defaults(func=cmd_runs)
    show = sub.add_parser("show", help="one past run: steps, hosts, attempts, actions")
    show.add_argument("run", metavar="RUN", help="run id (a unique prefix is enough)")
    show.add_argument("--json", action="store_true", help="everything, as JSON")
    show.add_argument("--markdown", action="store_true", help="an incident timeline")
    show.set_defaults(func=cmd_show)
    resume = sub.add_parser("resume", help="continue an interrupted run")
    resume.add_argument("run", metavar="RUN", help="run id (a unique prefix is enough)")
    _run_options(resume)
    resume.set_defaults(func=cmd_resume)
    _rollback_parser(sub)

    hosts = sub.add_parser("hosts", help="every host resolved as it will be connected")
    hosts.add_argument("file", metavar="FILE",
                       help="a workflow (.toml) or an Ansible inventory (ansible:FILE)")
    hosts.add_argument("--json", action="store_true", help="as JSON")
    hosts.add_argument("--ssh-config", metavar="PATH|none",
                       help="OpenSSH client config to apply (default ~/.ssh/config)")
    hosts.set_defaults(func=cmd_hosts)

    new = sub.add_parser("new", help="write a commented starter workflow NAME.toml")
    new.add_argument("name", metavar="NAME")
    new.set_defaults(func=cmd_new)
    from console.runner.commands import add_parsers

    add_parsers(sub, cmd_live)
    return parser


def build_console_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="baton", description="Open the console on a workflow file or folder.")
    parser.add_argument("path", nargs="?", default=None, metavar="PATH",
                        help="workflow file or folder (default ./workflows, else the "
                        "bundled examples)")
    parser.add_argument("--theme", metavar="NAME")
    parser.add_argument("--read-only", action="store_true")
    parser.set_defaults(func=cmd_console)
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    first = next((a for a in argv if not a.startswith("-")), None)
    wants_help = any(a in ("-h", "--help", "--version") for a in argv)
    if first not in COMMANDS and not (wants_help and first is None):
        return build_console_parser().parse_args(argv)
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `baton` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse(argv)
        return args.func(args)
    except UsageError as exc:
        _err(f"baton: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("baton: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_FAILED
    except Exception as exc:  # never a traceback for the operator
        message = " ".join(str(exc).split()) or type(exc).__name__
        _err(f"baton: internal error: {type(exc).__name__}: {message}")
        if os.environ.get("BATON_DEBUG"):
            raise
        return EXIT_USAGE


def _silence_stdout() -> None:
    """After a closed pipe, keep the interpreter from failing to flush stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
