"""The run screen's drain loop: the engine's events pile up in the :class:`RunSession`;
the painter draws what changed at most every :data:`FRAME` (the tree labels, header and
detail of the changed steps, the log pane's new lines), and the clock-driven parts every
second (durations of running tasks, host load)."""

from __future__ import annotations

import time
from collections.abc import Callable

from console.engine.run import Run
from console.ui.session import RunSession
from console.ui.system import Sampler
from console.ui.widgets.dag_tree import DagTree, Selection
from console.ui.widgets.header import RunHeader
from console.ui.widgets.log_pane import LogPane
from console.ui.widgets.step_detail import StepDetail

FRAME = 1 / 30
"""Seconds between repaints of what changed: log floods are coalesced per frame."""
FLEET_TASKS = 500
"""Runs with more tasks than this are fleets: their states are drawn every FLEET_FRAME."""
FLEET_FRAME = 1 / 4
LOG_FRAME = 1 / 15
"""The log pane repaints at most this often while lines keep arriving: each repaint of
it costs the event loop time that the pipes of running tasks are then not read."""


class RunPainter:
    """Draws a run's changes into the run screen's widgets (handed in)."""

    def __init__(self, run: Run, session: RunSession, *, tree: DagTree, header: RunHeader,
                 detail: StepDetail, pane: LogPane, sampler: Sampler | None,
                 selection: Callable[[], Selection | None],
                 on_states: Callable[[], None]) -> None:
        self.run = run
        self.session = session
        self.tree = tree
        self.header = header
        self.detail = detail
        self.pane = pane
        self.sampler = sampler
        self._selection = selection
        self._on_states = on_states
        """Called after task or run states were drawn (the footer's keys may change)."""
        self.log_pending = False
        self._log_synced = 0.0
        self._state_synced = 0.0
        self._monotonic = time.monotonic

    def frame(self, *, now: bool = False) -> None:
        """Draw what changed. A fleet's states are drawn at most every :data:`FLEET_FRAME`
        (changes pile up in the session meanwhile): redrawing a tree of thousands of tasks
        30 times a second would leave the event loop no time for keys; ``now`` (after
        an operator action) draws at once."""
        moment = self._monotonic()
        interval = FRAME if len(self.run.tasks) <= FLEET_TASKS else FLEET_FRAME
        if not now and moment - self._state_synced < interval:
            if self.log_pending:
                self._sync_log(moment)
            return
        self._state_synced = moment
        changes = self.session.take_changes()
        if not changes and not self.log_pending:
            return
        selection = self._selection()
        if changes.steps:
            self.tree.update_steps(changes.steps, changes.tasks)
        if changes.run or changes.steps:
            self.header.refresh()
            if selection is not None and (changes.run or selection.step in changes.steps):
                self.detail.update_facts()
            self._on_states()
        if selection is not None and selection.step in changes.logs:
            self.log_pending = True
        self._sync_log(moment)

    def _sync_log(self, moment: float) -> None:
        if self.log_pending and moment - self._log_synced >= LOG_FRAME:
            self.log_pending = False
            self._log_synced = moment
            self.pane.sync()

    def second(self) -> None:
        """Once a second: host load, the log title, durations of running tasks."""
        header = self.header
        if self.sampler is not None:
            header.update_stats(self.sampler())
        header.refresh()
        self.pane.update_title()
        tree = self.tree
        tasks = tree.active_tasks()
        active = {step for step, _ in tasks}
        if active:
            tree.update_steps(active, tasks)
            selection = self._selection()
            if selection is not None and selection.step in active:
                self.detail.update_facts()
