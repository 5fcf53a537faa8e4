"""What every ``baton`` subcommand uses: the :class:`Command` declaration, usage errors,
terminal output and questions, the history store, and the headless run driver."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.sanitize import sanitize

if TYPE_CHECKING:
    from console.engine.run import Run
    from console.launch import Frontend
    from console.model.workflow import Workflow
    from console.store import Store


class UsageError(Exception):
    """Bad input from the operator: printed as ``baton: message``, exit 2."""


@dataclass(frozen=True)
class Command:
    """One ``baton`` subcommand: its name and help line, its arguments, what it runs."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --- terminal --------------------------------------------------------------------------


def err(text: str) -> None:
    sys.stderr.write(sanitize(text) + "\n")


def out(text: str) -> None:
    """Human output that quotes workflow, history or step text: sanitised for the terminal
    (JSON output needs nothing: json.dumps escapes every control character)."""
    sys.stdout.write(sanitize(text))


def stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def ask_terminal(prompt: str) -> bool:
    """``prompt`` on stderr, a yes on stdin; True without a terminal (nobody to ask)."""
    if not stdin_is_tty():
        return True  # nobody to ask: end them, as headless does
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


# --- opening a run ---------------------------------------------------------------------


def load(path: str, *, for_run: bool = False) -> Workflow:
    """Load a workflow or raise UsageError after printing every problem. ``for_run``: as
    a run opens it (:func:`console.launch.load_file`)."""
    from console.model.loader import WorkflowError, load_workflow

    try:
        if for_run:
            from console.launch import load_file

            return load_file(Path(path))
        return load_workflow(Path(path))
    except WorkflowError as exc:
        for problem in exc.problems:
            err(str(problem))
        count = len(exc.problems)
        noun = "problem" if count == 1 else "problems"
        raise UsageError(f"{path}: invalid workflow ({count} {noun})") from None


@contextmanager
def launch_errors() -> Iterator[None]:
    """A run that cannot be opened or rebuilt (:class:`console.launch.LaunchError`) is a
    usage error: every problem of a definition that does not load, then one line."""
    from console.launch import DefinitionMissing, LaunchError

    try:
        yield
    except DefinitionMissing as exc:
        raise UsageError(f"{exc}; cannot resume it") from None
    except LaunchError as exc:
        for problem in exc.problems:
            err(str(problem))
        raise UsageError(exc.message) from None


@dataclass(frozen=True)
class RunInputs:
    """What ``baton run FILE`` asked for, checked against the workflow."""

    params: dict[str, Any]
    secrets: dict[str, str]
    limit: tuple[str, ...]
    start_at: str | None


def run_inputs(args: argparse.Namespace, workflow: Workflow,
               given: dict[str, Any] | None = None) -> RunInputs:
    """``--param``, ``--start-at`` and ``--limit`` checked, and the secrets resolved: the
    same for a headless run and a runner (a usage error names what is wrong). ``given``:
    param values that override ``--param`` (a console's params form, for a runner)."""
    from console.launch import check_limit, check_start_at, params_for, secrets_for, split_limit
    from console.model.params import ParamError, parse_assignments

    with launch_errors():
        try:
            params = params_for(workflow, {**parse_assignments(args.param), **(given or {})})
        except ParamError as exc:
            raise UsageError(str(exc)) from None
        start_at = check_start_at(workflow, args.start_at)
        limit = check_limit(workflow, split_limit(args.limit))
        return RunInputs(params, secrets_for(workflow), tuple(limit), start_at)


def frontend(args: argparse.Namespace) -> Frontend:
    """Headless: --yes approves, a terminal asks, anything else fails the gate."""
    from console.launch import Frontend

    return Frontend.headless(yes=args.yes, can_ask=stdin_is_tty(),
                             accept_new_host_keys=args.accept_new_host_keys)


def ignore_console_flags(args: argparse.Namespace) -> None:
    flags = [flag for flag, on in (("--theme", args.theme), ("--read-only", args.read_only))
             if on]
    if flags:
        err(f"baton: {', '.join(flags)} only apply to the console; ignored in headless mode")


def headless(run: Run, args: argparse.Namespace, store: Store | None, *,
             watch: Path | None = None, resumed: bool = False) -> int:
    """Drive ``run`` without the console (recorded in ``store`` unless None), its workflow
    claimed while it runs; the exit code."""
    from console.headless import run_headless

    claim = None
    with store_errors():
        if store is not None:  # another live run of this workflow: warn, or refuse
            from console.store.concurrent import claim_workflow

            claim = claim_workflow(store, run)
            for warning in claim.warnings:
                err(f"baton: warning: {warning}")
        try:
            return run_headless(run, json_mode=args.json,
                                interactive=run.options.approval == "wait",
                                store=store, watch=watch, resumed=resumed)
        finally:
            if claim is not None:
                claim.release()


# --- history ---------------------------------------------------------------------------


@contextmanager
def store_errors() -> Iterator[None]:
    """A store failure (unwritable home, corrupt file, live run) is a usage error: exit 2."""
    from console.store import StoreError

    try:
        yield
    except StoreError as exc:
        raise UsageError(str(exc)) from None


def open_store() -> Store:
    from console.store import Store

    with store_errors():
        return Store.open()


def read_store() -> Any:  # printers.RunLike does not accept the frozen RunSummary yet
    """The history for reading only (`runs`, `show`): no write access needed."""
    from console.store import Store

    with store_errors():
        return Store.open_read()
