"""Hot reload: watch a workflow file (and its inventory, with an Ansible inventory's
``group_vars/`` and ``host_vars/``), re-validate, apply to a live run.

The parent folder is watched rather than the file itself, so saves by rename (vim, ``sed
-i``, atomic writes) are seen; bursts of saves are debounced into one reload. A deleted
file is reported, never fatal: the run carries on with the last good definition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from console.engine.events import ReloadEvent
from console.engine.run import Run
from console.model.loader import WorkflowError, load_workflow
from console.model.workflow import Workflow

DEBOUNCE_MS = 1600
"""Longest a burst of saves is grouped into one reload."""
QUIET_MS = 200
"""A reload waits until the file has been quiet this long."""


def watched_files(run: Run, path: Path) -> set[Path]:
    """The workflow file and, when it names one, its inventory file."""
    files = {path.resolve()}
    inventory = run.workflow.inventory
    if inventory:  # a TOML file, or "ansible:FILE"
        files.add((path.parent / inventory.removeprefix("ansible:")).resolve())
    return files


VAR_FOLDERS = ("group_vars", "host_vars")


def var_folders(run: Run, path: Path) -> set[Path]:
    """``group_vars/`` and ``host_vars/`` beside an Ansible inventory (Ansible reads every
    file in them, subfolders included): where they are, existing or not."""
    inventory = run.workflow.inventory
    if not inventory or not inventory.startswith("ansible:"):
        return set()
    base = (path.parent / inventory.removeprefix("ansible:")).resolve().parent
    return {base / kind for kind in VAR_FOLDERS}


def _watched_folders(run: Run, path: Path) -> set[Path]:
    """The existing folders to watch (not recursively): the files' own, and every folder
    under the variable folders (a new one is seen in its parent, and then watched)."""
    folders = {f.parent for f in watched_files(run, path) if f.parent.is_dir()}
    for top in var_folders(run, path):
        if top.is_dir():
            folders.add(top)
            folders.update(d for d in top.rglob("*") if d.is_dir())
    return folders


def _relevant(changed: Path, run: Run, path: Path) -> bool:
    if changed in watched_files(run, path):
        return True
    if changed.name.startswith(".") or changed.name.endswith("~"):  # editor droppings
        return False
    return any(changed == top or top in changed.parents for top in var_folders(run, path))


def _unchanged(run: Run, new: Workflow) -> bool:
    """Nothing for a reload to apply: the same text, hosts (an inventory's, its variables
    included) and SSH settings."""
    current = run.workflow
    hosts = {n: h for n, h in current.hosts.items() if n not in run.departed_hosts}
    return new.digest == current.digest and new.hosts == hosts and new.ssh == current.ssh


def first_problem(error: WorkflowError) -> str:
    """``FILE:LINE: message`` of the first problem, plus how many more there are."""
    problems = error.problems
    if not problems:
        return str(error)
    first = problems[0]
    where = f"{first.file}:{first.line}" if first.line is not None else first.file
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{where}: {first.message}{more}"


def check_file(path: Path) -> Workflow | str:
    """The file's workflow, or the one-line reason it cannot be used."""
    if not path.exists():
        return f"{path}: file deleted"  # each display says the run keeps its definition
    try:
        return load_workflow(path)
    except WorkflowError as exc:
        return first_problem(exc)


async def watch(run: Run, path: Path, *,
                on_reload: Callable[[ReloadEvent], Awaitable[None] | None] | None = None,
                stop_event: object | None = None) -> None:
    """Apply every change of ``path`` to ``run`` until cancelled (or ``stop_event`` is set).

    An invalid file is reported once per distinct error; a valid one is applied as a diff.
    Saving the same content again after an error still emits a reload, which clears the
    console's error banner.
    """
    from watchfiles import awatch

    path = path.resolve()
    last_error: str | None = None
    while True:
        folders = _watched_folders(run, path)
        try:
            async for changes in awatch(*folders, debounce=DEBOUNCE_MS, step=QUIET_MS,
                                        stop_event=stop_event, recursive=False):
                if not any(_relevant(Path(changed).resolve(), run, path)
                           for _, changed in changes):
                    continue
                last_error = await _apply(run, path, last_error, on_reload)
                if _watched_folders(run, path) != folders:
                    break  # a variable folder came or went, or the inventory moved
            else:
                return  # stopped
        except FileNotFoundError:  # a folder went as the watch started: watch what is left
            await asyncio.sleep(QUIET_MS / 1000)


async def _apply(run: Run, path: Path, last_error: str | None,
                 on_reload: Callable[[ReloadEvent], Awaitable[None] | None] | None
                 ) -> str | None:
    """Check the file and apply it (or report why not); the error now shown, if any."""
    result = check_file(path)
    if isinstance(result, str):
        if result == last_error:
            return last_error
        event = run.reload_failed(result)
        error: str | None = result
    else:
        if _unchanged(run, result) and last_error is None:
            return None
        event = run.reload(result)
        error = None
    if on_reload is not None:
        awaitable = on_reload(event)
        if awaitable is not None:
            await awaitable
    return error
