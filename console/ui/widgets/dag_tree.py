"""The dependency tree: one node per step in dependency order, one child per host of a
fan-out step. Labels are updated in place, so the cursor and scroll position survive."""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from console.engine.events import TaskState
from console.engine.run import Run
from console.engine.task import Task
from console.model.workflow import LOCAL
from console.sanitize import visible
from console.ui import format as fmt
from console.ui.palette import Palette, palette
from console.ui.system import Clock

S = TaskState
EXPAND_UP_TO = 12
"""Fan-out steps with at most this many hosts start expanded."""
NAME_WIDTH = 20


@dataclass(frozen=True)
class Selection:
    """A step (``host`` None: every task of it) or one host task of a step."""

    step: str
    host: str | None = None


def is_fan_out(tasks: list[Task]) -> bool:
    return len(tasks) != 1 or tasks[0].host != LOCAL


def span(tasks: list[Task], now: float) -> float | None:
    """Wall time from the first start to the last end (or now, while any task runs)."""
    starts = [t.started for t in tasks if t.started is not None]
    if not starts:
        return None
    if any(t.state.active for t in tasks):
        return now - min(starts)
    ends = [t.ended for t in tasks if t.ended is not None]
    return (max(ends) - min(starts)) if ends else None


class DagTree(Tree[Selection]):
    DEFAULT_CSS = """
    DagTree { padding: 0 1; }
    """

    def __init__(self, run: Run, clock: Clock, *, id: str | None = None) -> None:
        super().__init__("steps", id=id)
        self.run = run
        self.clock = clock
        self.show_root = False
        self.guide_depth = 3
        self._step_nodes: dict[str, TreeNode[Selection]] = {}
        self._host_nodes: dict[tuple[str, str], TreeNode[Selection]] = {}

    def on_mount(self) -> None:
        self.build()

    def build(self) -> None:
        pal = palette(self.app)
        now = self.clock()
        for sid in self.run.workflow.order():
            tasks = self.run.tasks_of(sid)
            label = self.step_label(sid, pal, now)
            if is_fan_out(tasks) and tasks:
                node = self.root.add(label, Selection(sid), expand=len(tasks) <= EXPAND_UP_TO)
                for task in tasks:
                    child = node.add_leaf(self.task_label(task, pal, now),
                                          Selection(sid, task.host))
                    self._host_nodes[task.key] = child
            else:
                node = self.root.add_leaf(label, Selection(sid))
            self._step_nodes[sid] = node
        self.root.expand()
        self.cursor_line = 0

    def rebuild(self) -> None:
        """Rebuild the nodes from the run's definition after a reload, keeping the
        highlighted step (or its neighbour, if it left the run), collapsed fan-outs and
        the scroll position. Posts no NodeHighlighted: the caller shows the selection."""
        selection = self.selection
        before = list(self._step_nodes)
        collapsed = {sid for sid, node in self._step_nodes.items()
                     if node.allow_expand and not node.is_expanded}
        scroll_y = self.scroll_y
        with self.prevent(Tree.NodeHighlighted):
            self.cursor_line = -1
            self.clear()
            self._step_nodes, self._host_nodes = {}, {}
            self.build()
            for sid in collapsed & self._step_nodes.keys():
                self._step_nodes[sid].collapse()
            _ = self.last_line  # lay the new lines out so that nodes know their line
            self.scroll_to(y=scroll_y, animate=False, immediate=True)
            if selection is not None:
                self.move_cursor(self._reselect(selection, before))

    def _reselect(self, old: Selection, before: list[str]) -> TreeNode[Selection] | None:
        if old.host is not None and (old.step, old.host) in self._host_nodes:
            return self._host_nodes[(old.step, old.host)]
        if old.step in self._step_nodes:
            return self._step_nodes[old.step]
        steps = list(self._step_nodes.values())
        index = before.index(old.step) if old.step in before else 0
        return steps[min(index, len(steps) - 1)] if steps else None

    @property
    def selection(self) -> Selection | None:
        node = self.cursor_node
        return None if node is None else node.data

    def select_step(self, step: str, host: str | None = None) -> bool:
        """Move the cursor to the step (or its task on ``host``); False if it has no node
        (yet: the tree is built after the screen's first paint)."""
        node = self._host_nodes.get((step, host)) if host else self._step_nodes.get(step)
        if node is None:
            return False
        if node.parent is not None and not node.parent.is_expanded:
            node.parent.expand()
        self.move_cursor(node)
        return True

    def update_steps(self, steps: set[str] | None = None) -> None:
        """Refresh the labels of ``steps`` (default: every step)."""
        pal = palette(self.app)
        now = self.clock()
        for sid in self.run.workflow.order() if steps is None else steps:
            node = self._step_nodes.get(sid)
            if node is None:
                continue
            node.set_label(self.step_label(sid, pal, now))
            for task in self.run.tasks_of(sid):
                child = self._host_nodes.get(task.key)
                if child is not None:
                    child.set_label(self.task_label(task, pal, now))

    def active_steps(self) -> set[str]:
        """Steps whose duration is still growing."""
        return {t.step for t in self.run.tasks.values() if t.state.active}

    # ------------------------------------------------------------------ labels

    def step_label(self, sid: str, pal: Palette, now: float) -> Text:
        run = self.run
        step = run.workflow.steps[sid]
        tasks = run.tasks_of(sid)
        state = fmt.step_state(t.state for t in tasks)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{fmt.ICONS[state]} ", style=pal.state(state, bold=True))
        name = run.step_name(sid)
        name = name if len(name) <= NAME_WIDTH else name[: NAME_WIDTH - 1] + "…"
        if sid in run.removed_steps:  # gone from the file, kept because it had started
            text.append(name, style=pal.style("marker-removed") + Style(strike=True))
            text.append(" " * (NAME_WIDTH - len(name)))
        else:
            text.append(name.ljust(NAME_WIDTH), style=pal.state(state))
        text.append(fmt.duration(span(tasks, now)).rjust(7))
        attempt = max((t.attempt for t in tasks), default=0)
        text.append(f" #{attempt}" if attempt else "   ", style=pal.style("dim-text"))
        if not tasks:
            text.append("  no hosts", style=pal.style("dim-text"))
        elif is_fan_out(tasks):
            done = sum(1 for t in tasks if t.state in (S.SUCCEEDED, S.SKIPPED))
            text.append(f" {done}/{len(tasks)}")
        self._markers(text, sid, pal)
        if state in (S.PENDING, S.BLOCKED):
            waiting = [n for n in step.needs if run.step_status(n) != "done"]
            if waiting:
                text.append(f"  needs {', '.join(waiting)}", style=pal.style("dim-text"))
        return text

    def _markers(self, text: Text, sid: str, pal: Palette) -> None:
        step = self.run.workflow.steps[sid]
        if sid in self.run.removed_steps:
            text.append(" removed from file", style=pal.style("marker-removed", bold=True))
        elif sid in self.run.changed_steps:
            text.append(" changed on disk", style=pal.style("marker-changed", bold=True))
        if step.dangerous:
            text.append(" danger", style=pal.style("marker-danger", bold=True))
        elif step.confirm is not None:
            text.append(" gate", style=pal.style("marker-gate"))
        if step.manual:
            text.append(" manual", style=pal.style("marker-manual"))
        if sid in self.run.breakpoints:
            text.append(" ●break", style=pal.style("marker-breakpoint", bold=True))

    def task_label(self, task: Task, pal: Palette, now: float) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{fmt.ICONS[task.state]} ", style=pal.state(task.state, bold=True))
        text.append(task.host.ljust(NAME_WIDTH - 3), style=pal.state(task.state))
        text.append(fmt.duration(span([task], now)).rjust(7))
        text.append(f" #{task.attempt}" if task.attempt else "   ", style=pal.style("dim-text"))
        if task.exit_code and task.state is S.FAILED:
            text.append(f" exit {task.exit_code}", style=pal.state(task.state))
        if self.run.is_excluded(task.host):
            text.append(" excluded", style=pal.style("marker-removed", bold=True))
        elif task.state is S.RUNNING and task.reason:  # a health poll's progress, compact
            progress = task.reason.replace("polling ", "poll ", 1).removesuffix(" left")
            text.append(f" {visible(progress)}", style=pal.style("dim-text"))
        return text
