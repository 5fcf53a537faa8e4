"""The recovery keys of a step: ``undo``, ``undo_on_failure``, ``poll``/``within``/``delay``
and ``delegate``, read and validated for the loader (SPEC section 1).

Kept apart from :mod:`console.model.loader` so the loader stays one job per part: these
keys are read from the step table here, and the checks that need every host and group
(``delegate``) run from the loader's cross-step pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from console.model.reader import suggest
from console.model.workflow import LOCAL, Step

if TYPE_CHECKING:
    from console.model.locate import KeyPath
    from console.model.reader import Reader

RECOVERY_KEYS = ("undo", "undo_on_failure", "poll", "within", "delay", "delegate")


def read_recovery(r: Reader, table: Mapping[str, Any], path: KeyPath,
                  templated: Callable[[str], str | None]) -> dict[str, Any]:
    """The recovery fields of one step table, as keyword arguments of ``Step``."""
    manual = "run" not in table
    undo = None
    if "undo" in table:
        if isinstance(table["undo"], str) and not table["undo"].strip():
            r.error((*path, "undo"), "must not be empty (leave it out: nothing to undo)")
        else:
            undo = templated("undo")
    undo_on_failure = r.boolean(table, path, "undo_on_failure")
    if undo_on_failure and "undo" not in table:
        r.error((*path, "undo_on_failure"), "needs undo (the command that reverses this step)")
    poll = r.duration(table, path, "poll", positive=True)
    within = r.duration(table, path, "within", positive=True)
    delay = r.duration(table, path, "delay", 0.0) or 0.0
    polling = [key for key in ("poll", "within", "delay") if key in table]
    if manual and polling:
        r.error((*path, polling[0]), "a manual step (no run) cannot poll")
    elif "poll" in table and "within" not in table:
        r.error((*path, "poll"), "needs within (how long to keep polling, e.g. within = \"2m\")")
    else:
        for key in ("within", "delay"):
            if key in table and "poll" not in table:
                r.error((*path, key), "needs poll (how often to re-run, e.g. poll = \"5s\")")
    delegate = r.string(table, path, "delegate", non_empty=True)
    return {"undo": undo, "undo_on_failure": undo_on_failure, "poll": poll,
            "within": within if poll is not None else None,
            "delay": delay if poll is not None else 0.0, "delegate": delegate}


def check_delegate(r: Reader, path: KeyPath, delegate: str | None, hosts: Iterable[str],
                   groups: Iterable[str]) -> None:
    """``delegate`` names one declared host or ``local``."""
    if delegate is None or delegate == LOCAL:
        return
    names = set(hosts)
    if delegate in names:
        return
    where = (*path, "delegate")
    if delegate in set(groups):
        r.error(where, f"'{delegate}' is a group; delegate names one host (or 'local')")
    else:
        r.error(where, f"unknown host '{delegate}'{suggest(delegate, [LOCAL, *names])}")


def describe_recovery(step: Step) -> list[str]:
    """How a step's delegate, health poll and ``undo_on_failure`` read, one line each
    (``baton plan`` and the console's detail pane say the same)."""
    out = []
    if step.delegate:
        out.append(f"delegate: each host's command runs on {step.delegate}")
    if step.poll is not None:
        wait = f", after waiting {step.delay:g}s" if step.delay else ""
        out.append(f"poll: every {step.poll:g}s until it exits 0, within "
                   f"{step.within or 0:g}s{wait}")
    if step.undo_on_failure:
        out.append("undo_on_failure: a failed task is undone too")
    return out
