"""The `plan` command's model: what a run would do, computed without running anything.

Dependency order (with layers), hosts per step after ``--limit``, rollout batches and the
rendered commands. Secrets are never resolved for a plan (a `command` secret would run a
program): every secret renders as ``***``. A command that reads ``steps.*`` or ``run.*``
cannot be known before the run, so its template text is shown instead, marked as such.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from console.engine.rollout import RolloutPlan
from console.engine.shown import shown_command
from console.model.masking import Masker, Placeholders
from console.model.recovery import describe_recovery
from console.model.templating import TemplateError, host_context
from console.model.workflow import LOCAL, Step, Workflow


@dataclass(frozen=True)
class PlannedCommand:
    hosts: tuple[str, ...]
    """The hosts this text applies to (identical renderings are grouped)."""
    text: str
    rendered: bool
    """False: ``text`` is the template, rendered only at run time (``why`` says why)."""
    why: str = ""


@dataclass(frozen=True)
class PlannedStep:
    id: str
    name: str
    layer: int
    """1 for steps without needs, else one more than the deepest need."""
    needs: tuple[str, ...]
    hosts: tuple[str, ...]
    markers: tuple[str, ...]
    when: str | None
    rollout: str | None
    commands: tuple[PlannedCommand, ...]
    undo: tuple[PlannedCommand, ...] = ()
    """The rendered ``undo`` commands (what a rollback would run), grouped like commands."""
    details: tuple[str, ...] = ()
    """One line each: delegation, polling, undo_on_failure."""


@dataclass(frozen=True)
class PlannedRollout:
    name: str
    steps: tuple[str, ...]
    batches: tuple[tuple[str, ...], ...]
    max_fail: int
    pause_between: bool
    on_failure: str = "stop"


@dataclass(frozen=True)
class Plan:
    workflow: str
    path: str | None
    params: dict[str, Any]
    steps: tuple[PlannedStep, ...]
    rollouts: tuple[PlannedRollout, ...]
    limit: tuple[str, ...] = ()


# --- layers and commands ---------------------------------------------------------------


def _login_user(workflow: Workflow, name: str) -> str | None:
    """What ``{{ host.user }}`` is on ``name`` when no workflow setting names the user (as
    the run's own context does: ssh_config's ``User`` decides); None otherwise."""
    host = workflow.host(name)
    if host.is_local or host.user or workflow.ssh.user:
        return None
    from console.executors.ssh_config import login_user

    return login_user(host, workflow.ssh)


def layers(workflow: Workflow) -> dict[str, int]:
    out: dict[str, int] = {}
    for step_id in workflow.order():
        needs = [out[n] for n in workflow.steps[step_id].needs if n in out]
        out[step_id] = 1 + max(needs, default=0)
    return out


def _commands(
    workflow: Workflow, step: Step, hosts: tuple[str, ...], base: Mapping[str, Any],
    placeholders: Placeholders, source: str | None = None,
) -> tuple[PlannedCommand, ...]:
    source = step.run if source is None else source
    if source is None:
        return ()
    grouped: dict[str, list[str]] = {}
    for name in hosts or (LOCAL,):
        context = {**base, "host": host_context(workflow, workflow.host(name),
                                                _login_user(workflow, name))}
        try:
            text = shown_command(source, context, placeholders, _NO_SECRETS)
        except TemplateError as exc:
            return (PlannedCommand(hosts, source, rendered=False, why=str(exc)),)
        grouped.setdefault(text, []).append(name)
    return tuple(PlannedCommand(tuple(names), text, True) for text, names in grouped.items())


_NO_SECRETS = Masker(())
"""Secrets are never resolved for a plan: the placeholders are all there is to hide."""


def _markers(step: Step) -> tuple[str, ...]:
    marks = []
    if step.manual:
        marks.append("manual")
    if step.gated:
        marks.append("gate")
    if step.dangerous:
        marks.append("dangerous")
    if step.continue_on_error:
        marks.append("continue_on_error")
    if step.when:
        marks.append("conditional")
        from console.model.conditions import waits_for_terminal

        if waits_for_terminal(step.when):
            marks.append("runs once its needs end")
    if step.delegate:
        marks.append(f"delegate {step.delegate}")
    if step.poll is not None:
        marks.append("poll")
    if step.undo:
        marks.append("undo")
    return tuple(marks)


def build_plan(
    workflow: Workflow, params: Mapping[str, Any], *, limit: Iterable[str] = ()
) -> Plan:
    """Everything ``baton plan`` shows. ``params`` are resolved values."""
    patterns = tuple(limit)
    placeholders = Placeholders(workflow.secrets)
    base = {
        "params": dict(params),
        "secrets": placeholders.values,
        "workflow": {"name": workflow.name},
    }
    layer_of = layers(workflow)
    steps = []
    for step_id in workflow.order():
        step = workflow.steps[step_id]
        hosts = workflow.hosts_for(step, patterns)
        rollout = workflow.rollout_of(step_id)
        steps.append(
            PlannedStep(
                id=step.id,
                name=step.name,
                layer=layer_of[step_id],
                needs=step.needs,
                hosts=hosts,
                markers=_markers(step),
                when=step.when,
                rollout=rollout.name if rollout else None,
                commands=_commands(workflow, step, hosts, base, placeholders),
                undo=(_commands(workflow, step, hosts, base, placeholders, step.undo)
                      if step.undo else ()),
                details=tuple(describe_recovery(step)),
            )
        )
    hosts_of = {s.id: s.hosts for s in steps}
    rollouts = []
    for rollout in workflow.rollouts.values():
        batches = RolloutPlan.build(workflow, rollout, hosts_of).batches  # as the run will
        rollouts.append(
            PlannedRollout(
                name=rollout.name,
                steps=rollout.steps,
                batches=batches,
                max_fail=rollout.max_fail,
                pause_between=rollout.pause_between,
                on_failure=rollout.on_failure,
            )
        )
    return Plan(
        workflow=workflow.name,
        path=str(workflow.path) if workflow.path else None,
        params=dict(params),
        steps=tuple(steps),
        rollouts=tuple(rollouts),
        limit=patterns,
    )


# --- text ----------------------------------------------------------------------------


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines() or [""])


def render_plan(plan: Plan) -> str:
    """The human text of ``baton plan``."""
    out = [f"workflow: {plan.workflow}" + (f"  ({plan.path})" if plan.path else "")]
    if plan.params:
        out.append("params:   " + ", ".join(
            f"{k}={str(v).lower() if isinstance(v, bool) else repr(v)}"
            for k, v in plan.params.items()))
    if plan.limit:
        out.append("limit:    " + ", ".join(plan.limit))
    out.append("")
    out.append("order")
    id_width = max((len(s.id) for s in plan.steps), default=4)
    for step in plan.steps:
        marks = "".join(f" [{m}]" for m in step.markers)
        if step.rollout:
            marks += f" [rollout {step.rollout}]"
        hosts = ", ".join(step.hosts) if step.hosts else "(no hosts)"
        out.append(f"  {step.layer:>3}  {step.id.ljust(id_width)}  {hosts}{marks}")
    for rollout in plan.rollouts:
        out.append("")
        details = f"max_fail {rollout.max_fail}"
        if rollout.pause_between:
            details += ", approval before each batch after the first"
        if rollout.on_failure != "stop":
            details += f", on failure: {rollout.on_failure}"
        out.append(f"rollout {rollout.name}: {' → '.join(rollout.steps)}  ({details})")
        if not rollout.batches:
            out.append("  (no hosts)")
        for number, batch in enumerate(rollout.batches, 1):
            out.append(f"  batch {number}: {', '.join(batch)}")
    for step in plan.steps:
        out.append("")
        title = step.id if step.name == step.id else f"{step.id} — {step.name}"
        out.append(f"step {title}  (layer {step.layer})")
        if step.needs:
            out.append(f"  needs: {', '.join(step.needs)}")
        if step.when:
            out.append(f"  when:  {step.when}")
        if not step.commands:
            out.append("  manual step: waits for the operator to mark it done")
        for command in step.commands:
            where = ", ".join(command.hosts)
            if command.rendered:
                out.append(f"  run on {where}:")
            else:
                out.append(f"  run on {where} (template, rendered at run time: {command.why}):")
            out.append(_indent(command.text.rstrip("\n"), "    | "))
        for detail in step.details:
            out.append(f"  {detail}")
        for command in step.undo:
            where = ", ".join(command.hosts)
            if command.rendered:
                out.append(f"  undo on {where}:")
            else:
                out.append(f"  undo on {where} (template, rendered at run time: {command.why}):")
            out.append(_indent(command.text.rstrip("\n"), "    | "))
    return "\n".join(out) + "\n"
