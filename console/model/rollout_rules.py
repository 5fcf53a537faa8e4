"""Shapes a rollout cannot run: a step outside it between two of its steps.

Inside a rollout, needs between its steps are per host and batch k+1 starts only once every
rollout step is done for every host of batch k (SPEC section 1). A step outside the rollout
that needs one rollout step and feeds another waits, as any ``needs``, for every host of the
first; the first's later batches wait for the second on the earlier batch, which waits for the
outside step: the run would hang. Such a workflow is refused (``baton check``, and a Run).
"""

from __future__ import annotations

from dataclasses import dataclass

from console.model.workflow import Workflow


@dataclass(frozen=True)
class Between:
    """``step`` is outside ``rollout`` but needs ``after`` and feeds ``before`` (its steps)."""

    rollout: str
    step: str
    after: str
    before: str

    def message(self) -> str:
        return (f"step '{self.step}' is not in the rollout but sits between its steps "
                f"(it needs '{self.after}' and '{self.before}' needs it): it would wait for "
                f"every host of '{self.after}' while later batches wait for '{self.before}', "
                f"a deadlock; add '{self.step}' to the rollout, or make it not depend on "
                f"'{self.after}' or not feed '{self.before}'")


def steps_between(workflow: Workflow) -> list[Between]:
    """Every (rollout, outside step) pair that would deadlock, in file order."""
    found: list[Between] = []
    order = list(workflow.steps)
    for rollout in workflow.rollouts.values():
        members = [sid for sid in order if sid in rollout.steps]
        if len(members) < 2:
            continue
        upstream = {sid: workflow.upstream(sid) for sid in members}
        for sid in order:
            if sid in rollout.steps:
                continue
            above = workflow.upstream(sid)
            after = next((m for m in members if m in above), None)
            before = next((m for m in members if sid in upstream[m]), None)
            if after is not None and before is not None:
                found.append(Between(rollout.name, sid, after, before))
    return found


def between_error(workflow: Workflow) -> str | None:
    """The first step between a rollout's steps, as one line; None if there is none."""
    for gap in steps_between(workflow):
        return f"rollouts.{gap.rollout}.steps: {gap.message()}"
    return None


def refuse_steps_between(workflow: Workflow) -> None:
    """Raise ValueError naming the first step between a rollout's steps, if any."""
    error = between_error(workflow)
    if error is not None:
        raise ValueError(error)
