"""One stored run, three ways: a human table, JSON, and a Markdown incident timeline.

Output is deterministic for a given run (times in UTC, ISO 8601, to the second), so the
Markdown can be checked in and compared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from console.engine.task import task_label
from console.model.durations import SPACED, format_duration, utc_iso
from console.store.records import ActionRecord, AttemptRecord, EventRecord, StoredRun


def duration(seconds: float | None) -> str:
    """``0.4s``, ``12s``, ``3m 05s``, ``1h 02m 05s`` (:data:`SPACED`)."""
    return format_duration(seconds, SPACED)


def _label(step: str | None, host: str | None) -> str:
    if step is None:
        return "run" if host is None else host
    return step if host is None else task_label(step, host)


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`" if text else ""


def _cell(text: Any) -> str:
    if text is None:
        return ""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _fenced(lines: list[str], lang: str = "") -> list[str]:
    """``lines`` as a fenced code block whose fence no line can close."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + lang, *lines, fence]


STDERR_LINES = 10
"""How many stderr lines of each failed attempt the incident timeline shows."""


# ---------------------------------------------------------------------------- JSON


def to_json(stored: StoredRun) -> dict[str, Any]:
    """Everything about the run as plain JSON values; attempts nested in their task."""
    run = asdict(stored.run)
    run["duration"] = stored.run.duration
    tasks = []
    for task in stored.tasks:
        item = asdict(task)
        item["duration"] = task.duration
        item["attempts"] = [{**asdict(a), "duration": a.duration}
                            for a in stored.attempts_of(task.step, task.host)]
        tasks.append(item)
    return {
        "run": run,
        "tasks": tasks,
        "actions": [asdict(a) for a in stored.actions],
        "events": [{"seq": e.seq, **e.payload} for e in stored.events],
        "definitions": dict(stored.definitions),
    }


# ---------------------------------------------------------------------------- table


def _columns(rows: list[list[str]], indent: str = "") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def render_table(stored: StoredRun) -> str:
    """The human view of ``baton show``."""
    run = stored.run
    lines = [f"run {run.id}  {run.workflow}  {run.state}"]
    facts = [
        ["workflow", run.path or "-"],
        ["started", f"{utc_iso(run.started)} by {run.user} on {run.machine or '?'} "
                    f"(pid {run.pid or '?'})"],
        ["ended", f"{utc_iso(run.ended)} ({duration(run.duration)})"],
    ]
    if run.params:
        facts.append(["params", ", ".join(f"{k}={_value(v)}" for k, v in run.params.items())])
    lines += _columns(facts, "  ")
    rows = [["STEP", "HOST", "STATE", "ATTEMPTS", "DURATION", "EXIT", "REASON"]]
    for task in stored.tasks:
        rows.append([task.step, task.host, task.state, str(task.attempt),
                     duration(task.duration),
                     "" if task.exit_code is None else str(task.exit_code),
                     (task.reason or "").replace("\n", " ")])
    lines += ["", *_columns(rows)]
    if stored.actions:
        rows = [["TIME", "USER", "ACTION", "TARGET", "REASON"]]
        for a in stored.actions:
            target = "" if a.step is None and a.host is None else _label(a.step, a.host)
            rows.append([utc_iso(a.time), a.user, a.action, target,
                         (a.reason or "").replace("\n", " ")])
        lines += ["", *_columns(rows)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- markdown


def render_markdown(stored: StoredRun,
                    stderr: Callable[[AttemptRecord], list[str]] | None = None) -> str:
    """An incident timeline: what ran, who did what and why, in order.

    ``stderr(attempt)`` gives the last stderr lines of an attempt (masked when stored);
    each failed attempt shows them. Commands are shown whole, never cut."""
    run = stored.run
    out = [f"# Incident timeline: {run.workflow}", ""]
    out += ["| | |", "|---|---|"]
    workflow = run.workflow + (f" ({_code(run.path)})" if run.path else "")
    for key, value in [
        ("Run", _code(run.id)),
        ("Workflow", workflow),
        ("Definition", _code((run.digest or "")[:12]) or "-"),
        ("State", f"**{run.state}**"),
        ("Started by", f"{run.user} on {run.machine or '?'}"),
        ("Started", utc_iso(run.started)),
        ("Ended", utc_iso(run.ended)),
        ("Duration", duration(run.duration)),
    ]:
        out.append(f"| {key} | {_cell(value)} |")
    out += ["", "## Parameters", ""]
    if run.params:
        out += ["| name | value |", "|---|---|"]
        out += [f"| {_cell(k)} | {_cell(_code(_value(v)))} |" for k, v in run.params.items()]
    else:
        out.append("None.")
    out += ["", "## Steps", "",
            "| step | host | state | attempts | duration | exit code | reason |",
            "|---|---|---|---|---|---|---|"]
    for t in stored.tasks:
        exit_code = "" if t.exit_code is None else str(t.exit_code)
        out.append(f"| {_cell(t.step)} | {_cell(t.host)} | {t.state} | {t.attempt} | "
                   f"{duration(t.duration)} | {exit_code} | {_cell(t.reason)} |")
    out += ["", "## Attempts", ""]
    out += _attempts(stored.attempts, run.digest)
    out += ["", "## Failures", ""]
    out += _failures(stored.attempts, stderr)
    out += ["", "## Commands", ""]
    out += _commands(stored.attempts)
    out += ["", "## Operator actions", ""]
    out += _actions([a for a in stored.actions if a.action not in ("note", "reload")])
    out += ["", "## Notes", ""]
    notes = stored.notes
    out += [f"- {utc_iso(n.time)} {n.user}{_on(n)}: {n.reason or ''}" for n in notes] or ["None."]
    out += ["", "## Reloads", ""]
    out += _reloads(stored)
    out += ["", "## Timeline", ""]
    out += [f"- {utc_iso(e.time)} {_describe(e)}" for e in stored.events if not _noise(e)]
    return "\n".join(out) + "\n"


def _noise(event: EventRecord) -> bool:
    """A task going back to ``pending`` (after an approval, a retry, a reload, a need
    settled by an operator): the action or event beside it already says why."""
    return event.type == "task" and event.payload.get("state") == "pending"


def _on(action: ActionRecord) -> str:
    if action.step is None and action.host is None:
        return ""
    return f" on {_code(_label(action.step, action.host))}"


def _attempts(attempts: list[AttemptRecord], run_digest: str | None) -> list[str]:
    if not attempts:
        return ["None."]
    out = ["| task | # | started | duration | exit code | state | definition | reason |",
           "|---|---|---|---|---|---|---|---|"]
    for a in attempts:
        exit_code = "" if a.exit_code is None else str(a.exit_code)
        if a.signal:
            exit_code = f"signal {a.signal}"
        digest = (a.digest or "")[:12]
        if digest and a.digest != run_digest:
            digest += " (reloaded)"
        out.append(f"| {_cell(_label(a.step, a.host))} | {a.number} | {utc_iso(a.started)} | "
                   f"{duration(a.duration)} | {exit_code} | {a.state or ''} | "
                   f"{_cell(_code(digest))} | {_cell(a.reason)} |")
    return out


def _failed(attempt: AttemptRecord) -> bool:
    return attempt.state in ("failed", "interrupted", "cancelled") or bool(
        attempt.exit_code or attempt.signal)


def _failures(attempts: list[AttemptRecord],
              stderr: Callable[[AttemptRecord], list[str]] | None) -> list[str]:
    """Each failed attempt: how it ended and its last stderr lines."""
    out: list[str] = []
    for a in attempts:
        if not _failed(a):
            continue
        how = a.reason or a.state or "failed"
        out += [f"### {_code(_label(a.step, a.host))} attempt {a.number}: {how}", ""]
        lines = stderr(a)[-STDERR_LINES:] if stderr is not None else []
        if lines:
            out += [f"Last {len(lines)} stderr line{'s' * (len(lines) != 1)}:", ""]
            out += _fenced(lines)
        else:
            out.append("No stderr output.")
        out.append("")
    if out:
        out.pop()
    return out or ["None."]


def _commands(attempts: list[AttemptRecord]) -> list[str]:
    """Every command that ran, whole (secrets masked), once for all the attempts that
    ran exactly that text."""
    groups: dict[str, list[AttemptRecord]] = {}
    for a in attempts:
        if a.command:
            groups.setdefault(a.command, []).append(a)
    out: list[str] = []
    for command, ran in groups.items():
        who = ", ".join(f"{_code(_label(a.step, a.host))} #{a.number}" for a in ran)
        out += [f"{who}:", "", *_fenced(command.rstrip("\n").split("\n"), "sh"), ""]
    if out:
        out.pop()
    return out or ["None."]


def _actions(actions: list[ActionRecord]) -> list[str]:
    if not actions:
        return ["None."]
    out = ["| time | user | action | target | reason |", "|---|---|---|---|---|"]
    for a in actions:
        target = "" if a.step is None and a.host is None else _label(a.step, a.host)
        out.append(f"| {utc_iso(a.time)} | {_cell(a.user)} | {a.action} | {_cell(target)} | "
                   f"{_cell(a.reason)} |")
    return out


def _reloads(stored: StoredRun) -> list[str]:
    out = [f"- {utc_iso(a.time)} {a.user} reloaded the workflow" + (f": {a.reason}" if a.reason
                                                               else "")
           for a in stored.actions if a.action == "reload"]
    seen = {stored.run.digest}
    for a in stored.attempts:
        if a.digest and a.digest not in seen:
            seen.add(a.digest)
            out.append(f"- {utc_iso(a.started)} {_code(_label(a.step, a.host))} attempt {a.number} "
                       f"ran definition {_code(a.digest[:12])}")
    return out or ["None."]


def _describe(event: EventRecord) -> str:
    p = event.payload
    if event.type == "run":
        return f"run **{p.get('state')}**"
    if event.type == "action":
        target = "" if p.get("step") is None and p.get("host") is None else \
            " " + _code(_label(p.get("step"), p.get("host")))
        reason = f": {p['reason']}" if p.get("reason") else ""
        return f"{p.get('user')} **{p.get('action')}**{target}{reason}"
    text = f"{_code(_label(p.get('step'), p.get('host')))} {p.get('state')}"
    if p.get("attempt"):
        text += f" (attempt {p['attempt']})"
    if p.get("exit_code") is not None:
        text += f", exit {p['exit_code']}"
    if p.get("reason"):
        text += f": {p['reason']}"
    return text
