"""The `baton` command line: the parser and the entry point. Each subcommand lives in
:mod:`console.commands` as a :class:`~console.commands.shared.Command`; adding one is a line
in :data:`COMMANDS`. Every expected failure is one line on stderr and an exit code (SPEC
section 2).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from console import __version__
from console.commands.console_command import console_arguments
from console.commands.file_commands import CHECK, HOSTS, NEW, PLAN
from console.commands.history_commands import RUNS, SHOW
from console.commands.rollback_command import ROLLBACK
from console.commands.run_commands import RESUME, RUN
from console.commands.shared import Command, UsageError, err
from console.exitcodes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from console.runner.commands import ATTACH, SERVE

COMMANDS: tuple[Command, ...] = (RUN, CHECK, PLAN, RUNS, SHOW, RESUME, ROLLBACK, HOSTS, NEW,
                                 ATTACH, SERVE)
"""Every subcommand, in the order ``baton --help`` lists them."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"baton: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="baton",
        description="Baton: an operations console for runbooks (TOML workflows).",
        epilog="`baton [PATH]` opens the console on a workflow file or folder "
        "(default ./workflows; without one, the bundled examples).",
    )
    parser.add_argument("--version", action="version", version=f"baton {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for command in COMMANDS:
        child = sub.add_parser(command.name, help=command.help)
        command.arguments(child)
        child.set_defaults(func=command.run)
    return parser


def build_console_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="baton", description="Open the console on a workflow file or folder.")
    console_arguments(parser)
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    first = next((a for a in argv if not a.startswith("-")), None)
    wants_help = any(a in ("-h", "--help", "--version") for a in argv)
    if first not in {c.name for c in COMMANDS} and not (wants_help and first is None):
        return build_console_parser().parse_args(argv)
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `baton` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse(argv)
        return int(args.func(args))
    except UsageError as exc:
        err(f"baton: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err("baton: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_FAILED
    except Exception as exc:  # never a traceback for the operator
        message = " ".join(str(exc).split()) or type(exc).__name__
        err(f"baton: internal error: {type(exc).__name__}: {message}")
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
