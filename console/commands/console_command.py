"""``baton [PATH]`` and the console side of ``baton run`` / ``baton resume``: the flags
checked and handed to :func:`console.ui.app.run_console` (Textual is imported only here,
and only when the console opens)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from console.commands.shared import UsageError, ask_terminal, err, open_store, store_errors
from console.exitcodes import EXIT_USAGE


def cmd_console(args: argparse.Namespace) -> int:
    run_console = console_entry()
    path, note = console_target(args.path)
    return run_console(path, theme=args.theme, read_only=args.read_only, folder_note=note,
                       owner=run_owner(args))


def run_owner(args: argparse.Namespace) -> Any:
    """Who owns the runs the console starts from its folder view or resumes from its
    history: a runner each (issue 15), unless ``--read-only`` or ``BATON_RUNNER=0``."""
    from console.runner.commands import runner_wanted

    if not runner_wanted(args):
        return None
    from console.paths import baton_home
    from console.runner.owned import RunnerOwner

    return RunnerOwner(baton_home())


def console_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``baton [PATH]``."""
    parser.add_argument("path", nargs="?", default=None, metavar="PATH",
                        help="workflow file or folder (default ./workflows, else the "
                        "bundled examples)")
    parser.add_argument("--theme", metavar="NAME")
    parser.add_argument("--read-only", action="store_true")
    parser.set_defaults(func=cmd_console)


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


def console_entry() -> Any:
    """``console.ui.app.run_console`` (Textual is imported only for the console)."""
    try:
        from console.ui.app import run_console
    except ImportError as exc:  # a broken install: one line, and the headless way out
        raise UsageError(f"cannot load the console ({exc}); `baton run FILE --headless` "
                         "works without it") from None
    return run_console


def console_run(args: argparse.Namespace) -> int:
    """``baton run FILE`` without --headless. A mistyped flag or param is told before
    Textual loads (a third of a second)."""
    from console.launch import split_limit
    from console.model.params import ParamError, parse_assignments

    # --dry-run, --yes and --watch are honoured (the console always applies saves of the
    # workflow file to the live run); only --no-history has no meaning there
    if getattr(args, "no_history", False):
        raise UsageError("--no-history only applies with --headless")
    try:
        params = parse_assignments(args.param)
    except ParamError as exc:
        raise UsageError(str(exc)) from None
    run_console = console_entry()  # a broken install fails before a runner starts
    from console.runner.commands import console_run_args  # a runner owns the run (issue 15)

    code = console_run_args(args)
    if code is not None:
        return code
    return run_console(args.file, params=params, limit=split_limit(args.limit),
                       step_mode=args.step, start_at=args.start_at, theme=args.theme,
                       read_only=args.read_only, start=True, dry_run=args.dry_run, yes=args.yes)


def console_resume(args: argparse.Namespace) -> int:
    """``baton resume RUN`` without --headless."""
    run_console = console_entry()
    if not args.read_only and not confirm_leftovers(args.run):
        return EXIT_USAGE
    from console.runner.commands import console_resume_args  # a runner owns it (issue 15)

    code = console_resume_args(args)
    if code is not None:
        return code
    return run_console(None, resume=args.run, theme=args.theme, read_only=args.read_only,
                       yes=args.yes)


def confirm_leftovers(prefix: str) -> bool:
    """Before the console resumes a run: what its interrupted attempts left running is
    reported, and ended once the operator confirms on the terminal."""
    from console.executors.leftovers import settle
    from console.launch import LaunchError, stored_workflow
    from console.store import LiveRunError

    store = open_store()
    with store, store_errors():
        run_id = store.resolve(prefix)
        if store.is_live(run_id):
            return True  # the console says so itself
        try:
            with store.acquire_run_lock(run_id):
                stored = store.load(run_id)
                try:
                    workflow = stored_workflow(stored)
                except LaunchError:
                    workflow = None
                return settle(store, run_id, workflow, say=err, ask=ask_terminal)
        except LiveRunError:
            return True
