"""The commands about workflow files: ``check``, ``plan``, ``hosts``, ``new``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from console.commands.shared import Command, UsageError, err, launch_errors, load, out
from console.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_USAGE


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
                out(f"{problem}\n")
            continue
        renames = sorted({note for host in workflow.hosts.values() for note in host.notes
                          if " is imported as " in note})
        for note in renames:  # names of an imported inventory that Baton had to change
            err(f"{path}: note: {note}")
    files = len(args.files)
    noun = "file" if files == 1 else "files"
    if problems:
        err(f"{problems} problem{'s' * (problems != 1)} in {bad_files} of {files} {noun}")
        return EXIT_FAILED
    err(f"{files} {noun} ok")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from console.launch import check_limit, params_for, split_limit
    from console.model.params import ParamError, parse_assignments
    from console.plan import build_plan, render_plan

    workflow = load(args.file)
    with launch_errors():
        try:
            params = params_for(workflow, parse_assignments(args.param))
        except ParamError as exc:
            raise UsageError(str(exc)) from None
        limit = check_limit(workflow, split_limit(args.limit))
    out(render_plan(build_plan(workflow, params, limit=limit)))
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
            err(line)
        return EXIT_USAGE
    if args.json:
        sys.stdout.write(render_json(report))
    else:
        out(render_text(report))  # vars from an inventory could carry escape sequences
    return EXIT_OK


def cmd_new(args: argparse.Namespace) -> int:
    from console.starter import StarterError, write_starter

    try:
        path = write_starter(args.name)
    except StarterError as exc:
        raise UsageError(str(exc)) from None
    err(f"wrote {path}; next: baton check {path}")
    return EXIT_OK


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE")


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="set a param, as for run (repeatable); defaults fill the rest")
    parser.add_argument("--limit", action="append", default=[], metavar="PATTERN",
                        help="only these hosts/groups, as for run (repeatable, globs)")


def _hosts_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE",
                        help="a workflow (.toml) or an Ansible inventory (ansible:FILE)")
    parser.add_argument("--json", action="store_true", help="as JSON")
    parser.add_argument("--ssh-config", metavar="PATH|none",
                        help="OpenSSH client config to apply (default ~/.ssh/config)")


def _new_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME")


CHECK = Command("check", "validate workflow files", _check_arguments, cmd_check)
PLAN = Command("plan", "order, hosts, rollout batches, rendered commands", _plan_arguments,
               cmd_plan)
HOSTS = Command("hosts", "every host resolved as it will be connected", _hosts_arguments,
                cmd_hosts)
NEW = Command("new", "write a commented starter workflow NAME.toml", _new_arguments, cmd_new)
