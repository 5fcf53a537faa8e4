"""Hot reload: watch a workflow file (and its inventory), re-validate, apply to a live run.

The parent folder is watched rather than the file itself, so saves by rename (vim, ``sed
-i``, atomic writes) are seen; bursts of saves are debounced into one reload. A deleted
file is reported, never fatal: the run carries on with the last good definition.
"""

from __future__ import annotations

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
    folders = {f.parent for f in watched_files(run, path)}
    async for changes in awatch(*folders, debounce=DEBOUNCE_MS, step=QUIET_MS,
                                stop_event=stop_event, recursive=False):
        targets = watched_files(run, path)
        if not any(Path(changed).resolve() in targets for _, changed in changes):
            continue
        result = check_file(path)
        if isinstance(result, str):
            if result == last_error:
                continue
            last_error = result
            event = run.reload_failed(result)
        else:
            if result.digest == run.workflow.digest and last_error is None:
                continue
            last_error = None
            event = run.reload(result)
        if on_reload is not None:
            awaitable = on_reload(event)
            if awaitable is not None:
                await awaitable
