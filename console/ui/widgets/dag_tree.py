"""The dependency tree: one node per step in dependency order, one child per host of a
fan-out step. Labels are updated in place, so the cursor and scroll position survive.

Fleet-sized: a fan-out of more than :data:`EXPAND_UP_TO` hosts starts collapsed to its
summary line (``812/1000 ✔ 3 ✘ 5 ▶``) and gets its host nodes only when it is first
expanded; the labels of hidden hosts are not kept up to date (they are redone when shown),
and a label is set only when it changed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from console.engine.events import TaskState
from console.engine.run import Run, StepStatus
from console.engine.task import Task
from console.model.workflow import LOCAL
from console.sanitize import visible
from console.ui import format as fmt
from console.ui.palette import Palette, palette
from console.ui.system import Clock

S = TaskState
EXPAND_UP_TO = 12
"""Fan-out steps with at most this many hosts start expanded."""
NAME_WIDTH = 8
"""The narrowest name column; it widens to the longest step name the pane has room for."""
FIXED_COLUMNS = 14
"""Cells of a step line that come before and right after its name (toggle, icon, duration,
attempt): what follows (host counts, markers, needs) may be cut with an ellipsis."""


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

    ICON_NODE = "▸ "
    ICON_NODE_EXPANDED = "▾ "
    """Not Textual's ▶/▼: ▶ is the running state's icon."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False, id="tree.down"),
        Binding("k", "cursor_up", "Up", show=False, id="tree.up"),
    ]

    def __init__(self, run: Run, clock: Clock, *, id: str | None = None) -> None:
        super().__init__("steps", id=id)
        self.run = run
        self.clock = clock
        self.show_root = False
        self.guide_depth = 3
        self._step_nodes: dict[str, TreeNode[Selection]] = {}
        self._host_nodes: dict[tuple[str, str], TreeNode[Selection]] = {}
        self._filled: set[str] = set()
        """Fan-out steps whose host nodes exist (they are added on first expand)."""
        self._stale: set[str] = set()
        """Fan-out steps whose hidden host labels were not updated."""
        self.name_width = 0

    def on_mount(self) -> None:
        self.build()
        # labels hold the theme's colours: redo them when it changes
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.update_steps())

    def on_resize(self) -> None:
        if self._fit_names():
            self.update_steps()

    def _fit_names(self) -> bool:
        """Fit the name column to the longest step (or indented host) name, as far as
        the pane has room."""
        longest = max((len(step.name) for step in self.run.workflow.steps.values()),
                      default=0)
        hosts = {host for _, host in self.run.tasks}
        longest = max(longest, *(len(host) + 3 for host in hosts))
        room = self.scrollable_content_region.width - FIXED_COLUMNS
        width = max(NAME_WIDTH, min(longest, room))
        changed = width != self.name_width
        self.name_width = width
        return changed

    def build(self) -> None:
        self._fit_names()
        pal = palette(self.app)
        now = self.clock()
        for sid in self.run.workflow.order():
            tasks = self.run.tasks_of(sid)
            label = self.step_label(sid, pal, now)
            if is_fan_out(tasks) and tasks:
                node = self.root.add(label, Selection(sid), allow_expand=True)
                self._step_nodes[sid] = node
                if len(tasks) <= EXPAND_UP_TO:
                    self._fill(sid)
                    node.expand()
            else:
                self._step_nodes[sid] = self.root.add_leaf(label, Selection(sid))
        self.root.expand()
        self.cursor_line = 0

    def _fill(self, sid: str) -> None:
        """Give a fan-out step its host nodes (once), or bring their labels up to date."""
        node = self._step_nodes.get(sid)
        if node is None:
            return
        pal, now = palette(self.app), self.clock()
        if sid not in self._filled:
            self._filled.add(sid)
            self._stale.discard(sid)
            for task in self.run.tasks_of(sid):
                child = node.add_leaf(self.task_label(task, pal, now), Selection(sid, task.host))
                self._host_nodes[task.key] = child
        elif sid in self._stale:
            self._stale.discard(sid)
            for task in self.run.tasks_of(sid):
                host_node = self._host_nodes.get(task.key)
                if host_node is not None:
                    self._relabel(host_node, self.task_label(task, pal, now))

    def _before_toggle(self, node: TreeNode[Selection] | None) -> None:
        """A collapsed fan-out step about to be expanded gets its host nodes (or their
        labels brought up to date) first, so no frame shows it expanded without them."""
        if (node is not None and node.data is not None and node.data.host is None
                and node.allow_expand and not node.is_expanded):
            self._fill(node.data.step)

    def action_toggle_node(self) -> None:
        self._before_toggle(self.cursor_node)
        super().action_toggle_node()

    def action_select_cursor(self) -> None:
        self._before_toggle(self.cursor_node)  # selecting toggles too (auto_expand)
        super().action_select_cursor()

    def on_click(self, event: events.Click) -> None:
        """Runs before Tree's own click handler, which toggles the node clicked (on its
        toggle, or anywhere on its line with auto_expand)."""
        offset = event.get_content_offset(self)
        if offset is not None:
            self._before_toggle(self.get_node_at_line(offset.y + self.scroll_offset.y))

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[Selection]) -> None:
        """Expanded another way (in code): the host nodes follow."""
        if event.node.data is not None and event.node.data.host is None:
            self._fill(event.node.data.step)

    @staticmethod
    def _relabel(node: TreeNode[Selection], label: Text) -> None:
        """Set a node's label if it changed (``set_label`` repaints the node's line)."""
        if node.label != label:
            node.set_label(label)

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
            expanded = {sid for sid, node in self._step_nodes.items()
                        if node.allow_expand and node.is_expanded}
            self.clear()
            self._step_nodes, self._host_nodes = {}, {}
            self._filled, self._stale = set(), set()
            self.build()
            for sid in collapsed & self._step_nodes.keys():
                self._step_nodes[sid].collapse()
            for sid in expanded & self._step_nodes.keys():
                self._fill(sid)
                self._step_nodes[sid].expand()
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
        if host and step in self._step_nodes:
            self._fill(step)
        node = self._host_nodes.get((step, host)) if host else self._step_nodes.get(step)
        if node is None:
            return False
        if node.parent is not None and not node.parent.is_expanded:
            node.parent.expand()
        _ = self.last_line  # lay the lines out: a node just added or shown knows its line
        self.move_cursor(node)
        return True

    def update_steps(self, steps: set[str] | None = None,
                     tasks: set[tuple[str, str]] | None = None) -> None:
        """Refresh the labels of ``steps`` (default: every step) and of their hosts shown:
        those in ``tasks`` (default: every host of them). Only the lines whose label
        changed are repainted."""
        pal = palette(self.app)
        now = self.clock()
        for sid in self.run.workflow.order() if steps is None else steps:
            node = self._step_nodes.get(sid)
            if node is None:
                continue
            self._relabel(node, self.step_label(sid, pal, now))
            if sid not in self._filled:
                continue
            if not node.is_expanded:
                self._stale.add(sid)
                continue
            if tasks is None:
                changed = self.run.tasks_of(sid)
            else:
                changed = [self.run.tasks[key] for key in tasks
                           if key[0] == sid and key in self.run.tasks]
            for task in changed:
                child = self._host_nodes.get(task.key)
                if child is not None:
                    self._relabel(child, self.task_label(task, pal, now))

    def active_tasks(self) -> set[tuple[str, str]]:
        """Tasks whose duration is still growing."""
        return {t.key for t in self.run.tasks.values() if t.state.active}

    def render_label(self, node: TreeNode[Selection], base_style: Style,
                     style: Style) -> Text:
        """The label, cut with an ellipsis where the pane ends (never mid-word silently)."""
        text = super().render_label(node, base_style, style)
        indent = self.guide_depth * (1 if node.data is not None and node.data.host else 0)
        room = self.scrollable_content_region.width - indent
        if room > 1 and text.cell_len > room:
            text.truncate(room, overflow="ellipsis")
        return text

    # ------------------------------------------------------------------ labels

    def step_label(self, sid: str, pal: Palette, now: float) -> Text:
        run = self.run
        step = run.workflow.steps[sid]
        tasks = run.tasks_of(sid)
        state = fmt.step_state(t.state for t in tasks)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{fmt.ICONS[state]} ", style=pal.state(state, bold=True))
        width = self.name_width
        name = run.step_name(sid)
        name = name if len(name) <= width else name[: width - 1] + "…"
        if sid in run.removed_steps:  # gone from the file, kept because it had started
            text.append(name, style=pal.style("marker-removed") + Style(strike=True))
            text.append(" " * (width - len(name)))
        else:
            text.append(name.ljust(width), style=pal.state(state))
        text.append(fmt.duration(span(tasks, now)).rjust(7))
        attempt = max((t.attempt for t in tasks), default=0)
        text.append(f" #{attempt}" if attempt else "   ", style=pal.style("dim-text"))
        if not tasks:
            text.append("  no hosts", style=pal.style("dim-text"))
        elif is_fan_out(tasks):
            self._summary(text, tasks, pal)
        self._markers(text, sid, pal)
        if state in (S.PENDING, S.BLOCKED):
            waiting = [n for n in step.needs if run.step_status(n) is not StepStatus.DONE]
            if waiting:
                text.append(f"  needs {', '.join(waiting)}", style=pal.style("dim-text"))
        return text

    def _summary(self, text: Text, tasks: list[Task], pal: Palette) -> None:
        """``812/1000 ✔ 3 ✘ 5 ▶``: hosts done of all, then failed and running ones."""
        counts = Counter(t.state for t in tasks)
        done = counts[S.SUCCEEDED] + counts[S.SKIPPED]
        text.append(f" {done}/{len(tasks)} {fmt.ICONS[S.SUCCEEDED]}")
        for state in (S.FAILED, S.RUNNING):
            if counts[state]:
                text.append(f" {counts[state]} {fmt.ICONS[state]}", style=pal.state(state))

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
        text.append(task.host.ljust(self.name_width - 3), style=pal.state(task.state))
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
