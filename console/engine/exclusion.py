"""Exclude a host from a run (console key ``x``; SPEC section 3).

Every pending, blocked or held task of the host (awaiting approval, awaiting the operator,
waiting out a retry delay) is skipped with reason ``host excluded``, and so is any of its
tasks that would become pending later in the run: later rollout steps, a retry-downstream
that resets it, a step added by a reload. A task of the host that is running finishes what
it started but is not retried automatically; an operator's retry, approve or done on the
host is refused. Tasks that already finished keep their state. The action is recorded like
every other (time, user, reason) and survives a resume (:func:`restore_exclusions`).

Mixed into :class:`console.engine.run.Run` before :class:`RunActions`, so its
``_targets`` sees every task action first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from console.engine.actions import ActionError
from console.engine.events import ActionEvent, RunState, TaskState
from console.engine.outputs import Outputs

if TYPE_CHECKING:
    from console.engine.events import Event
    from console.engine.task import Task

S = TaskState

EXCLUDED = "host excluded"
"""The reason on every task skipped because its host was excluded."""

EXCLUDABLE = frozenset({S.PENDING, S.BLOCKED, S.AWAITING_APPROVAL, S.AWAITING_OPERATOR,
                        S.RETRYING})
"""Task states an exclusion skips: pending, blocked, or held (approval, operator, retry)."""

REVIVING = frozenset({"retry", "retry_downstream", "approve", "done"})
"""Task actions that would make a task of an excluded host run: refused."""


class HostExclusion:
    """``exclude_host`` and the scheduler's check of excluded hosts."""

    if TYPE_CHECKING:  # provided by Run
        from console.engine.run import RunOptions
        from console.model.templating import Masker

        options: RunOptions
        state: RunState
        user: str
        masker: Masker
        tasks: dict[tuple[str, str], Task]
        _wake: asyncio.Event

        def _set(self, task: Task, state: TaskState, reason: str | None = None) -> None: ...
        def _emit(self, event: Event) -> None: ...
        def tasks_in_order(self) -> list[Task]: ...
        clock: Callable[[], float]

    @property
    def excluded_hosts(self) -> dict[str, str | None]:
        """Excluded host -> the operator's reason."""
        return self._excluded()

    def _excluded(self) -> dict[str, str | None]:
        found: dict[str, str | None] | None = self.__dict__.get("_excluded_hosts")
        if found is None:
            found = self.__dict__["_excluded_hosts"] = {}
        return found

    def exclude_host(self, host: str, user: str | None = None,
                     reason: str | None = None) -> list[Task]:
        """Take ``host`` out of this run; returns the tasks skipped now."""
        if self.state.finished and not self.options.keep_alive:
            raise ActionError("cannot exclude host: the run has ended")
        tasks = [t for t in self.tasks_in_order() if t.host == host]
        if not tasks:
            raise ActionError(f"cannot exclude host '{host}': no task of this run runs on it")
        excluded = self._excluded()
        if host in excluded:
            raise ActionError(f"cannot exclude host '{host}': it is already excluded")
        if reason is not None and self.masker:
            reason = self.masker.mask(reason)
        excluded[host] = reason
        self._emit(ActionEvent("exclude_host", None, host, user or self.user, reason,
                               self.clock()))
        skipped = [t for t in tasks if t.state in EXCLUDABLE]
        for task in skipped:
            self._skip_excluded(task)
        self._wake.set()
        return skipped

    def is_excluded(self, host: str) -> bool:
        return host in self._excluded()

    def _skip_excluded(self, task: Task) -> None:
        if task.state is S.RETRYING and task.runner is not None:
            task.runner.cancel()  # the runner leaves a task that is no longer retrying alone
        task.blocked_by_max_fail = False
        task.approved = False
        task.outputs = Outputs("skipped", task.exit_code, task.outputs.stdout)
        self._set(task, S.SKIPPED, EXCLUDED)

    def _exclusion_applies(self, task: Task) -> bool:
        """The scheduler's check before a pending or blocked task goes on: skip it when its
        host is excluded (returns True when it did)."""
        if task.host in self._excluded() and task.state in (S.PENDING, S.BLOCKED):
            self._skip_excluded(task)
            return True
        return False

    def _targets(self, action: str, step: str, host: str | None) -> list[Task]:
        tasks: list[Task] = super()._targets(action, step, host)  # type: ignore[misc]
        excluded = self._excluded()
        if action not in REVIVING or not excluded:
            return tasks
        kept = [t for t in tasks if t.host not in excluded]
        if not kept:
            label = tasks[0].label
            raise ActionError(f"cannot {action.replace('_', ' ')} '{label}': host "
                              f"'{tasks[0].host}' is excluded from this run")
        return kept


def restore_exclusions(run: HostExclusion, actions: Iterable[Any]) -> None:
    """Excluded hosts of a stored run (its ``exclude_host`` actions), before it resumes."""
    excluded = run._excluded()
    for action in actions:
        if action.action == "exclude_host" and action.host:
            excluded[action.host] = action.reason
