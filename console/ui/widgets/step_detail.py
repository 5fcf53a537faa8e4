"""The detail pane: description (Markdown), state and reason, rendered command (secrets
masked), target hosts and every attempt with its exit code and duration."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Markdown, Static

from console.engine.events import TaskState
from console.engine.run import Run
from console.model.workflow import Step
from console.ui import format as fmt
from console.ui.commands import command_lines
from console.ui.palette import Palette, palette
from console.ui.widgets.dag_tree import Selection

S = TaskState


class StepDetail(VerticalScroll):
    DEFAULT_CSS = """
    StepDetail { padding: 0 1; }
    StepDetail > Markdown { margin: 0; padding: 0; background: transparent; }
    StepDetail > #facts { height: auto; }
    """

    def __init__(self, run: Run, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.run = run
        self.selection: Selection | None = None
        self._description: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="facts")
        yield Markdown(id="description")

    def show(self, selection: Selection | None) -> None:
        self.selection = selection
        description = ""
        if selection is not None:
            description = self.run.step_description(selection.step, selection.host)
        if description != self._description:
            self._description = description
            markdown = self.query_one("#description", Markdown)
            markdown.display = bool(description)
            markdown.update(description)
        self.update_facts()

    def update_facts(self) -> None:
        self.query_one("#facts", Static).update(self._facts())

    def _facts(self) -> Group | Text:
        selection = self.selection
        if selection is None:
            return Text("Select a step.")
        pal = palette(self.app)
        run = self.run
        step = run.workflow.steps[selection.step]
        tasks = run.tasks_of(step.id)
        if selection.host is not None:
            tasks = [t for t in tasks if t.host == selection.host]
        state = fmt.step_state(t.state for t in tasks)
        title = Text(no_wrap=True, overflow="ellipsis")
        name = run.step_name(step.id, selection.host)
        title.append(f"{fmt.ICONS[state]} {name}", style=pal.state(state, bold=True))
        if name != step.id:
            title.append(f"  ({step.id})", style=pal.style("dim-text"))
        if selection.host is not None:
            title.append(f"  on {selection.host}")
        title.append(f"  {fmt.label(state)}", style=pal.state(state))
        parts: list[Text | Table] = [title]
        reasons = sorted({t.reason for t in tasks if t.reason})
        for reason in reasons[:3]:
            parts.append(Text(f"reason: {reason}", style=pal.state(state)))
        if step.id in run.removed_steps:
            parts.append(Text("removed from the file: it stays because it had started",
                              style=pal.style("marker-removed")))
        elif step.id in run.changed_steps:
            parts.append(Text("changed on disk after it started: shown is what ran; a retry "
                              "uses the new definition", style=pal.style("marker-changed")))
        if step.needs:
            parts.append(Text(f"needs: {', '.join(step.needs)}", style=pal.style("dim-text")))
        hosts = ", ".join(t.host for t in tasks) or "none (excluded by --limit)"
        parts.append(Text(f"hosts: {hosts}"))
        parts.extend(Text(line, style=pal.style("dim-text")) for line in _recovery(step))
        excluded = sorted({t.host for t in tasks if run.is_excluded(t.host)})
        if excluded:
            parts.append(Text(f"excluded from this run: {', '.join(excluded)}",
                              style=pal.style("marker-removed")))
        if tasks:
            groups = run.command_groups(step.id, [t.host for t in tasks])
            if groups:
                parts.extend(command_lines(groups, pal.style("state-running")))
            elif step.manual:
                parts.append(Text("manual step: press d when it is done",
                                  style=pal.style("marker-manual")))
        parts.append(self._attempts(tasks, pal))
        if len(tasks) == 1:
            log = getattr(self.app, "log_file", None)
            path = log(run, tasks[0].step, tasks[0].host) if log is not None else None
            if path is not None:
                parts.append(Text(f"log: {path}  (o opens it)", style=pal.style("dim-text"),
                                  no_wrap=True, overflow="ellipsis"))
        return Group(*parts)

    def _attempts(self, tasks: list, pal: Palette) -> Table | Text:
        rows = [(task, attempt) for task in tasks for attempt in task.attempts]
        if not rows:
            return Text("no attempts yet", style=pal.style("dim-text"))
        table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
        for column in ("attempt", "host", "state", "exit", "time", "reason"):
            table.add_column(column, no_wrap=column != "reason")
        for task, attempt in rows[-20:]:
            state = attempt.state or task.state
            exit_code = "" if attempt.exit_code is None else str(attempt.exit_code)
            if attempt.signal:
                exit_code = f"sig {attempt.signal}"
            table.add_row(f"#{attempt.number}", task.host,
                          Text(fmt.label(state), style=pal.state(state)), exit_code,
                          fmt.duration(attempt.duration), attempt.reason or "")
        return table


def _recovery(step: Step) -> list[str]:
    """What the detail pane says about a step's delegate and health poll."""
    out = []
    if step.delegate:
        out.append(f"runs on: {step.delegate} (delegate: each task stays its own host's)")
    if step.poll is not None:
        delay = f", after {step.delay:g}s" if step.delay else ""
        out.append(f"poll: every {step.poll:g}s until it exits 0, within "
                   f"{step.within or 0:g}s{delay}")
    return out
