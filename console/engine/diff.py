"""What changed between two versions of a workflow, step by step (a reload's diff:
``Run.reload`` applies it; the store and the console show its summary)."""

from __future__ import annotations

from dataclasses import dataclass

from console.model.workflow import Workflow


@dataclass(frozen=True)
class StepDiff:
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def summary(self) -> str:
        """``+added ~changed -removed``, as shown in the console's notice."""
        parts = [f"+{s}" for s in self.added] + [f"~{s}" for s in self.changed]
        parts += [f"-{s}" for s in self.removed]
        return " ".join(parts) or "no step changed"


def diff_steps(old: Workflow, new: Workflow) -> StepDiff:
    added = tuple(sid for sid in new.steps if sid not in old.steps)
    removed = tuple(sid for sid in old.steps if sid not in new.steps)
    changed = tuple(sid for sid, step in new.steps.items()
                    if sid in old.steps and old.steps[sid] != step)
    return StepDiff(added, changed, removed)
