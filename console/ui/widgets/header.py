"""The run header: workflow, run state, elapsed time, task counts, local host load."""

from __future__ import annotations

from collections import Counter

from rich.text import Text
from textual.widget import Widget

from console.engine.events import TaskState
from console.engine.run import Run
from console.sanitize import visible
from console.ui import format as fmt
from console.ui.palette import palette
from console.ui.system import Clock, SystemStats

_COUNT_ORDER = (TaskState.RUNNING, TaskState.RETRYING, TaskState.AWAITING_APPROVAL,
                TaskState.AWAITING_OPERATOR, TaskState.PENDING, TaskState.SUCCEEDED,
                TaskState.FAILED, TaskState.BLOCKED, TaskState.SKIPPED, TaskState.CANCELLED,
                TaskState.INTERRUPTED, TaskState.UNDOING, TaskState.UNDONE,
                TaskState.UNDO_FAILED)


def fmt_param(value: object) -> str:
    """A param value as typed on the command line (``true``, not ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class RunHeader(Widget):
    """Two lines; :meth:`update_stats` and :meth:`refresh` are driven by the screen."""

    DEFAULT_CSS = """
    RunHeader {
        height: 2; background: $panel; color: $foreground; padding: 0 1;
        text-wrap: nowrap; text-overflow: ellipsis;
    }
    """

    def __init__(self, run: Run, clock: Clock, *, started: bool, read_only: bool,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.run = run
        self.clock = clock
        self.started = started
        self.read_only = read_only
        self.stats: SystemStats | None = None

    def update_stats(self, stats: SystemStats) -> None:
        self.stats = stats
        self.refresh()

    def render(self) -> Text:
        run, pal = self.run, palette(self.app)
        top = Text(no_wrap=True, overflow="ellipsis")
        top.append("Baton ", style="bold")
        top.append(run.workflow.name, style="bold")
        top.append(f"  run {run.id}  ", style=pal.style("dim-text"))
        if not self.started:
            top.append("NOT STARTED", style=pal.style("state-pending", bold=True))
            if not self.read_only:  # read-only never starts it: do not offer g
                top.append("  press g to start", style=pal.style("dim-text"))
        else:
            top.append(str(run.state).upper(), style=pal.run_state(run.state))
            end = run.ended if run.ended is not None else self.clock()
            elapsed = None if run.started is None else end - run.started
            top.append(f"  {fmt.clock_time(elapsed)}")
        if run.step_mode:
            top.append("  STEP MODE", style=pal.style("marker-breakpoint", bold=True))
        if run.breakpoints:
            count = len(run.breakpoints)
            top.append(f"  {count} breakpoint{'s' * (count != 1)}",
                       style=pal.style("marker-breakpoint"))
        if self.read_only:
            top.append("  READ-ONLY", style=pal.style("marker-gate", bold=True))
        if self.stats is not None:
            width = self.content_size.width or 118
            stats = self.stats.describe()
            top.append(" " * max(2, width - top.cell_len - len(stats)))
            top.append(stats, style=pal.style("dim-text"))
        bottom = Text(no_wrap=True, overflow="ellipsis")
        counts = Counter(task.state for task in run.tasks.values())
        for state in _COUNT_ORDER:
            if counts[state]:
                bottom.append(f"{fmt.ICONS[state]} {counts[state]} {fmt.label(state)}  ",
                              style=pal.state(state))
        lines = [top, bottom]
        if run.options.params:  # the values this run uses, on a line of their own
            shown = "  ".join(f"{k}={fmt_param(v)}" for k, v in run.options.params.items())
            lines.append(Text(f"params: {visible(run.masker.mask(shown))}",
                              style=pal.style("dim-text"), no_wrap=True, overflow="ellipsis"))
        return Text("\n").join(lines)

    def on_mount(self) -> None:
        self.styles.height = 3 if self.run.options.params else 2
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.refresh())
