"""Rolling batches: which hosts go in which batch of a ``[rollouts.*]`` table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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
              hosts_of: dict[str, Sequence[str]]) -> RolloutPlan:
        hosts: list[str] = []
        for sid in rollout.steps:
            for host in hosts_of.get(sid, ()):
                if host not in hosts:
                    hosts.append(host)
        batches = tuple(tuple(b) for b in split_batches(rollout.serial, hosts))
        batch_of = {host: i for i, batch in enumerate(batches) for host in batch}
        members = set(rollout.steps)
        entry = frozenset(sid for sid in rollout.steps
                          if not members.intersection(workflow.steps[sid].needs))
        return cls(rollout, tuple(hosts), batches, batch_of, entry)
