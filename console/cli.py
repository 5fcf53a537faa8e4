"""The `baton` command line. Sub-commands only parse arguments and call the modules doing
the work; every expected failure is one line on stderr and an exit code (SPEC section 2).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from console import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

CONSOLE_NOT_BUILT = "baton: the console is not built yet; use `baton run FILE --headless`"
HISTORY_NOT_BUILT = "baton: run history is not built yet"

COMMANDS = ("run", "check", "plan", "runs", "show", "resume", "new")


class UsageError(Exception):
    """Bad input from the operator: printed as ``baton: message``, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"baton: {message}\n")


# --- helpers ---------------------------------------------------------------------------


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


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
    from console.plan import limit_matches

    out = tuple(p.strip() for item in patterns for p in item.split(",") if p.strip())
    for pattern in out:
        if not limit_matches(workflow, pattern):
            names = [*workflow.hosts, *workflow.groups()]
            close = difflib.get_close_matches(pattern, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UsageError(f"--limit '{pattern}' matches no host or group{hint}")
    return out


def _start_at(workflow: Any, step: str | None) -> str | None:
    if step is not None and step not in workflow.steps:
        close = difflib.get_close_matches(step, list(workflow.steps), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UsageError(f"--start-at: unknown step '{step}'{hint}")
    return step


# --- commands --------------------------------------------------------------------------


def cmd_console(args: argparse.Namespace) -> int:
    _err(CONSOLE_NOT_BUILT)
    return EXIT_USAGE


def cmd_run(args: argparse.Namespace) -> int:
    headless = args.headless or args.json
    if not headless:
        _err(CONSOLE_NOT_BUILT)
        return EXIT_USAGE
    workflow = _load(args.file)
    params = _params(workflow, args.param)
    start_at = _start_at(workflow, args.start_at)
    limit = _limit(workflow, args.limit)
    console_only = [flag for flag, on in (("--theme", args.theme), ("--read-only", args.read_only),
                                          ("--watch", args.watch)) if on]
    if console_only:
        flags = ", ".join(console_only)
        _err(f"baton: {flags} only apply to the console; ignored in headless mode")

    from console.engine.run import RunOptions
    from console.headless import run_headless
    from console.model.secrets import SecretError, resolve_secrets

    try:
        base_dir = workflow.path.parent if workflow.path else Path.cwd()
        secrets = resolve_secrets(workflow.secrets, base_dir=base_dir, environ=os.environ)
    except SecretError as exc:
        raise UsageError(str(exc)) from None
    interactive = not args.yes and _stdin_is_tty()
    approval = "auto" if args.yes else ("wait" if interactive else "fail")
    options = RunOptions(
        params=params,
        secrets=secrets,
        limit=limit,
        approval=approval,
        step_mode=args.step,
        start_at=start_at,
        dry_run=args.dry_run,
    )
    if args.accept_new_host_keys and hasattr(options, "accept_new_host_keys"):
        options.accept_new_host_keys = True
    return run_headless(workflow, options, json_mode=args.json, interactive=interactive)


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
            load_workflow(Path(path))
        except WorkflowError as exc:
            bad_files += 1
            problems += len(exc.problems)
            for problem in exc.problems:
                print(problem)
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
    sys.stdout.write(render_plan(build_plan(workflow, params, limit=limit)))
    return EXIT_OK


def cmd_new(args: argparse.Namespace) -> int:
    from console.starter import StarterError, write_starter

    try:
        path = write_starter(args.name)
    except StarterError as exc:
        raise UsageError(str(exc)) from None
    _err(f"wrote {path}; next: baton check {path}")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    _err(HISTORY_NOT_BUILT)
    return EXIT_USAGE


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
    parser.add_argument("--dry-run", action="store_true", help="show what would run, run nothing")
    parser.add_argument("--accept-new-host-keys", action="store_true",
                        help="trust unknown SSH host keys on first use (a changed key is refused)")
    parser.add_argument("--theme", metavar="NAME", help="console theme")
    parser.add_argument("--read-only", action="store_true", help="console: watch only")
    parser.add_argument("--watch", action="store_true",
                        help="console: reload the workflow when the file changes")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="baton",
        description="Baton: an operations console for runbooks (TOML workflows).",
        epilog="`baton [PATH]` opens the console on a workflow file or folder "
        "(default ./workflows).",
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
    plan.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    plan.add_argument("--limit", action="append", default=[], metavar="PATTERN")
    plan.set_defaults(func=cmd_plan)

    runs = sub.add_parser("runs", help="past runs (not built yet)")
    runs.set_defaults(func=cmd_history)
    show = sub.add_parser("show", help="one past run (not built yet)")
    show.add_argument("run", metavar="RUN")
    show.add_argument("--json", action="store_true")
    show.add_argument("--markdown", action="store_true")
    show.set_defaults(func=cmd_history)
    resume = sub.add_parser("resume", help="continue an interrupted run (not built yet)")
    resume.add_argument("run", metavar="RUN")
    _run_options(resume)
    resume.set_defaults(func=cmd_history)

    new = sub.add_parser("new", help="write a commented starter workflow NAME.toml")
    new.add_argument("name", metavar="NAME")
    new.set_defaults(func=cmd_new)
    return parser


def build_console_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="baton", description="Open the console on a workflow file or folder.")
    parser.add_argument("path", nargs="?", default="workflows", metavar="PATH")
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
