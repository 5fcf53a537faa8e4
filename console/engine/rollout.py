"""Rolling batches: which hosts go in which batch of a ``[rollouts.*]`` table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from console.engine.status import StepStatus
from console.model.workflow import BatchSize, Rollout, Workflow


def batch_size(size: BatchSize, total: int) -> int:
    """A batch size as a host count: an int, or "N%" of ``total`` (rounded down, at least 1)."""
    if isinstance(size, int):
        return max(1, size)
    percent = float(str(size).strip().rstrip("%"))
    return max(1, math.floor(total * percent / 100))


def split_batches(serial: Sequence[BatchSize], hosts: Sequence[str]) -> list[list[str]]:
    """Cut ``hosts`` into batches; the last size repeats until every host has a batch.

    ``[1, "50%", "100%"]`` on 8 hosts gives batches of 1, 4 and 3 hosts (Ansible's rule).
    """
    total = len(hosts)
    sizes = list(serial) or ["100%"]
    batches: list[list[str]] = []
    start = 0
    index = 0
    while start < total:
        size = batch_size(sizes[min(index, len(sizes) - 1)], total)
        batches.append(list(hosts[start : start + size]))
        start += size
        index += 1
    return batches


@dataclass(frozen=True)
class RolloutPlan:
    rollout: Rollout
    hosts: tuple[str, ...]
    batches: tuple[tuple[str, ...], ...]
    batch_of: dict[str, int]
    entry_steps: frozenset[str]
    """Rollout steps that need no other step of the rollout: where a batch starts."""

    @classmethod
    def build(cls, workflow: Workflow, rollout: Rollout,
              hosts_of: Mapping[str, Sequence[str]]) -> RolloutPlan:
        seen: dict[str, None] = {}
        for sid in rollout.steps:
            seen.update(dict.fromkeys(hosts_of.get(sid, ())))
        hosts = list(seen)
        batches = tuple(tuple(b) for b in split_batches(rollout.serial, hosts))
        batch_of = {host: i for i, batch in enumerate(batches) for host in batch}
        members = set(rollout.steps)
        entry = frozenset(sid for sid in rollout.steps
                          if not members.intersection(workflow.steps[sid].needs))
        return cls(rollout, tuple(hosts), batches, batch_of, entry)


class BatchCounts:
    """What the batch barrier of one rollout asks, kept up to date task by task.

    Each task of the rollout counts as ``wait``, ``done`` or ``bad`` (as
    :func:`~console.engine.status.task_status` says); a host is failed when any of its
    tasks is ``bad``. The status of batches ``0..last`` is then answered in O(batches)
    instead of walking every task of them, which on a 1,000-host rollout made each
    scheduler pass O(hosts²).
    """

    def __init__(self, plan: RolloutPlan) -> None:
        self.plan = plan
        count = len(plan.batches)
        self.waiting = [0] * count
        self.failed = [0] * count
        self._host_bad: dict[str, int] = {}
        self._status: dict[tuple[str, str], StepStatus] = {}
        self.shown: list[StepStatus] = []
        """The prefix statuses last seen by the scheduler (see :meth:`changed_gates`)."""

    def update(self, key: tuple[str, str], status: StepStatus) -> None:
        """Task ``key`` (step, host) now counts as ``status``."""
        host = key[1]
        batch = self.plan.batch_of.get(host)
        if batch is None:
            return
        old = self._status.get(key)
        if old == status:
            return
        self._status[key] = status
        if old is StepStatus.WAIT:
            self.waiting[batch] -= 1
        if status is StepStatus.WAIT:
            self.waiting[batch] += 1
        bad = (status is StepStatus.BAD) - (old is StepStatus.BAD)
        if bad:
            before = self._host_bad.get(host, 0)
            self._host_bad[host] = before + bad
            self.failed[batch] += (before + bad > 0) - (before > 0)

    def prefix(self, last: int) -> StepStatus:
        """Batches 0..last: ``bad`` past max_fail, ``wait`` while any task runs, else done."""
        if sum(self.failed[: last + 1]) > self.plan.rollout.max_fail:
            return StepStatus.BAD
        return StepStatus.WAIT if any(self.waiting[: last + 1]) else StepStatus.DONE

    def changed_gates(self) -> list[int]:
        """Batches (after the first) whose gate, the status of the batches before them,
        changed since the last call."""
        now = [self.prefix(last) for last in range(len(self.plan.batches) - 1)]
        changed = [last + 1 for last, status in enumerate(now)
                   if last >= len(self.shown) or self.shown[last] != status]
        self.shown = now
        return changed
