"""The detail pane: description (Markdown), state and reason, rendered command (secrets
masked), target hosts and every attempt with its exit code and duration; after a rollback,
the undo command and its attempts apart from the task's own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Markdown, Static

from console.engine.events import TaskState
from console.engine.run import Run
from console.engine.task import Attempt, Task
from console.engine.undo_attempts import command_attempts, undo_attempts
from console.model.recovery import describe_recovery
from console.sanitize import visible
from console.ui import format as fmt
from console.ui.commands import command_lines
from console.ui.palette import Palette, palette
from console.ui.widgets.dag_tree import Selection

S = TaskState


ATTEMPTS_SHOWN = 20
"""The newest attempts listed in the detail pane."""
HOSTS_NAMED = 12
"""A fan-out's hosts named in the detail pane; more are counted, not listed."""


def host_list(hosts: list[str]) -> str:
    """``web1, web2, web3``, or for a fleet ``1000: web0001, … web1000 (988 more)``."""
    if not hosts:
        return "none (excluded by --limit)"
    if len(hosts) <= HOSTS_NAMED:
        return ", ".join(hosts)
    shown = ", ".join(hosts[: HOSTS_NAMED - 1])
    return f"{len(hosts)}: {shown}, … {hosts[-1]} ({len(hosts) - HOSTS_NAMED} more)"


class StepDetail(VerticalScroll):
    DEFAULT_CSS = """
    StepDetail { padding: 0 1; }
    StepDetail > Markdown { margin: 0; padding: 0; background: transparent; }
    StepDetail > #facts { height: auto; }
    """

    def __init__(self, run: Run, *, log_file: Callable[[str, str], Path | None] | None = None,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.run = run
        self.log_file = log_file
        """(step, host) -> the file of the task's current attempt, if the run is recorded."""
        self.selection: Selection | None = None
        self._description: str | None = None
        self._facts_view = Static(id="facts")
        self._markdown = Markdown(id="description")
        """Kept, not queried: a selection may arrive before they are mounted."""
        self._facts_shown: tuple[object, ...] | None = None

    def compose(self) -> ComposeResult:
        yield self._facts_view
        yield self._markdown

    def on_mount(self) -> None:  # the facts hold the theme's colours
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.update_facts())

    def show(self, selection: Selection | None) -> None:
        self.selection = selection
        description = ""
        if selection is not None:
            description = self.run.step_description(selection.step, selection.host)
        if description != self._description:
            markdown = self._markdown
            if not markdown.is_mounted:  # the tree highlights before this pane is composed
                self.call_after_refresh(lambda: self.show(self.selection))
            else:
                self._description = description
                markdown.display = bool(description)
                markdown.update(description)
        self.update_facts()

    def update_facts(self) -> None:
        """Redraw the facts when they changed: an update re-lays out the screen, and a
        fleet's frame asks 4 times a second whether the selection changed."""
        facts = self._facts()
        parts = facts.renderables if isinstance(facts, Group) else [facts]
        shown = tuple((p.plain, tuple(p.spans), str(p.style)) if isinstance(p, Text)
                      else id(p) for p in parts)
        if shown == self._facts_shown:
            return
        self._facts_shown = shown
        self._facts_view.update(facts)

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
        parts: list[Text] = [title]
        reasons = sorted({t.reason for t in tasks if t.reason})
        for reason in reasons[:3]:
            parts.append(Text(f"reason: {visible(reason)}", style=pal.state(state)))
        if step.id in run.removed_steps:
            parts.append(Text("removed from the file: it stays because it had started",
                              style=pal.style("marker-removed")))
        elif step.id in run.changed_steps:
            parts.append(Text("changed on disk after it started: shown is what ran; a retry "
                              "uses the new definition", style=pal.style("marker-changed")))
        if step.needs:
            parts.append(Text(f"needs: {', '.join(step.needs)}", style=pal.style("dim-text")))
        parts.append(Text(f"hosts: {host_list([t.host for t in tasks])}"))
        parts.extend(Text(line, style=pal.style("dim-text")) for line in describe_recovery(step))
        undone = [(t, a) for t in tasks for a in undo_attempts(t)]
        if step.undo is not None and len(tasks) == 1:
            from console.engine.rollback import shown_undo

            ran = [a.command for _, a in undone if a.command]
            command = ran[-1] if ran else shown_undo(run, tasks[0])
            parts.append(Text(f"undo: {visible(command)}", style=pal.style("state-undo")))
        elif step.undo is not None:
            parts.append(Text("undo: per host (select a host to see it; u rolls back)",
                              style=pal.style("dim-text")))
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
        parts.append(self._attempts([(t, a) for t in tasks for a in command_attempts(t)],
                                    pal))
        if undone:
            parts.append(Text("undo attempts:", style=pal.style("state-undo")))
            parts.append(self._attempts(undone, pal))
        if len(tasks) == 1:
            log = self.log_file
            path = log(tasks[0].step, tasks[0].host) if log is not None else None
            if path is not None:
                parts.append(Text(f"log: {path}  (o opens it)", style=pal.style("dim-text"),
                                  no_wrap=True, overflow="ellipsis"))
        return Group(*parts)

    def _attempts(self, rows: list[tuple[Task, Attempt]], pal: Palette) -> Text:
        """These attempts (the last :data:`ATTEMPTS_SHOWN`) as aligned columns: plain Text,
        not a rich Table, whose layout costs a fleet-sized run's frame too much."""
        if not rows:
            return Text("no attempts yet", style=pal.style("dim-text"))
        if len(rows) > ATTEMPTS_SHOWN:
            rows.sort(key=lambda row: row[1].started)
            rows = rows[-ATTEMPTS_SHOWN:]
        cells: list[tuple[list[str], TaskState]] = []
        for task, attempt in rows:
            state = attempt.state or task.state
            exit_code = "" if attempt.exit_code is None else str(attempt.exit_code)
            if attempt.signal:
                exit_code = f"sig {attempt.signal}"
            cells.append(([f"#{attempt.number}", task.host, fmt.label(state), exit_code,
                           fmt.duration(attempt.duration), visible(attempt.reason or "")], state))
        header = ["attempt", "host", "state", "exit", "time", "reason"]
        widths = [max(len(header[i]), *(len(row[i]) for row, _ in cells)) for i in range(5)]
        text = Text(no_wrap=False)
        text.append(" ".join(h.ljust(w) for h, w in zip(header, widths, strict=False))
                    + " reason", style="bold")
        for row, state in cells:
            text.append("\n" + " ".join(row[i].ljust(widths[i]) for i in range(2)) + " ")
            text.append(row[2].ljust(widths[2]), style=pal.state(state))
            text.append(" " + " ".join(row[i].ljust(widths[i]) for i in (3, 4)))
            if row[5]:
                text.append(" " + row[5])
        return text
