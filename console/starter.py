"""`baton new NAME`: a commented starter workflow.

The data is written with tomli-w (so it is always valid TOML) and the comments are then
inserted above the table headers they explain.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import tomli_w

_VALID_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class StarterError(Exception):
    """The starter cannot be written (bad name, file exists); one-line message."""


HEADER = """\
# {title}: a Baton workflow (starter written by `baton new`).
#
#   baton check {file}                  validate it
#   baton plan {file}                   order, hosts and rendered commands, nothing runs
#   baton run {file} --headless --yes   run it without the console
#
# Every step runs `run` with /bin/sh on the local host unless `on` names hosts or groups.
# Steps start as soon as every step in their `needs` is done. See docs/workflow-format.md.
"""

COMMENTS = {
    "[workflow]": "# name is required; description is Markdown shown in the console.",
    "[params]": (
        "# Operator inputs: override with --param NAME=VALUE (or in the console).\n"
        '# A bare value is the default; a table gives type = "string" | "int" | "float" |\n'
        '# "bool" | "choice", default, required and description.'
    ),
    "[params.target]": "# A choice: only the listed values are accepted.",
    "[steps.preflight]": (
        "# Each [steps.ID] table is one step. Values from templates are shell-quoted:\n"
        "# {{ params.greeting }} arrives as one argument; use {{ x | raw }} to insert as is.\n"
        "# A remote host would be declared in [hosts.NAME] and used with on = \"NAME\"."
    ),
    "[steps.review]": (
        "# A step without `run` is a manual step: the operator marks it done (or skips it).\n"
        "# `baton run --headless --yes` marks it done for you."
    ),
    "[steps.apply]": (
        "# `confirm` is an approval gate before the step starts; `retries` re-runs a\n"
        "# failed attempt after `retry_delay`; `timeout` cancels a step that hangs."
    ),
    "[steps.verify]": (
        "# `when` is evaluated when the step becomes ready; false -> the step is skipped.\n"
        "# steps.<id>.stdout is the output of an earlier step (`| trim` drops the newline)."
    ),
}


def starter_data(title: str) -> dict[str, Any]:
    return {
        "workflow": {
            "name": title,
            "description": "What this runbook is for, when to use it, who owns it.",
            "concurrency": 4,
        },
        "params": {
            "greeting": "hello",
            "target": {
                "type": "choice",
                "choices": ["staging", "prod"],
                "default": "staging",
                "description": "Where the change goes",
            },
        },
        "steps": {
            "preflight": {
                "name": "Preflight checks",
                "run": "echo {{ params.greeting }} from $(hostname)\ndf -h /\n",
                "timeout": "1m",
            },
            "review": {
                "name": "Review the preflight output",
                "description": "Read the preflight log. Mark this step done when it looks right.",
                "needs": ["preflight"],
            },
            "apply": {
                "name": "Apply the change",
                "needs": ["review"],
                "confirm": "Apply the change now?",
                "run": "echo applying to {{ params.target }}\n",
                "retries": 1,
                "retry_delay": "2s",
                "timeout": "5m",
            },
            "verify": {
                "name": "Verify",
                "needs": ["apply"],
                "when": "params.target == 'staging'",
                "run": "echo {{ steps.apply.stdout | trim }} done\n",
            },
        },
    }


def starter_text(title: str, file_name: str) -> str:
    body = tomli_w.dumps(starter_data(title), multiline_strings=True)
    lines: list[str] = []
    for line in body.splitlines():
        comment = COMMENTS.get(line.strip())
        if comment:
            lines.append(comment)
        lines.append(line)
    return HEADER.format(title=title, file=file_name) + "\n" + "\n".join(lines) + "\n"


def write_starter(name: str, directory: Path | None = None) -> Path:
    """Write ``NAME.toml`` (``NAME`` may already end in ``.toml``); never overwrite."""
    base = Path(name)
    stem = base.name[:-5] if base.name.endswith(".toml") else base.name
    if not _VALID_NAME.match(stem):
        raise StarterError(
            f"invalid workflow name {stem!r}: use letters, digits, '.', '_' and '-'"
        )
    folder = (directory or Path.cwd()) / base.parent
    path = folder / f"{stem}.toml"
    if path.exists():
        raise StarterError(f"{path} already exists; not overwriting it")
    if not folder.is_dir():
        raise StarterError(f"folder {folder} does not exist")
    title = stem.replace("-", " ").replace("_", " ").strip().capitalize() or stem
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(starter_text(title, path.name))
    except FileExistsError:
        raise StarterError(f"{path} already exists; not overwriting it") from None
    except OSError as exc:
        raise StarterError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
