"""The run screen: header, dependency tree, detail pane, log pane and every operator key.

Keys are BINDINGS with ids (remappable through the user config's ``[keys]``); whether an
action applies to the selection is decided in :meth:`RunScreen.check_action`, so the
footer, the command palette and the keys agree. Actions call the Run's public methods;
an :class:`ActionError` becomes a notification and changes nothing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, work
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, Tree
from textual.worker import Worker

from console.engine.events import ReloadEvent, RunState, TaskState
from console.engine.run import ActionError, Run
from console.engine.task import Task
from console.model.params import ParamError, resolve_params
from console.ui import navigation, reloading
from console.ui.screens.hostkey import HostKeyAsk
from console.ui.screens.modals import QuitModal, TextPrompt, approval_dialog
from console.ui.screens.params_form import ParamsForm
from console.ui.screens.refusals import bound_action, why_refused
from console.ui.session import LogBuffer, RunSession
from console.ui.system import Clock, Sampler
from console.ui.widgets.banner import HistoryBanner, ReloadBanner
from console.ui.widgets.dag_tree import DagTree, Selection, is_fan_out
from console.ui.widgets.header import RunHeader
from console.ui.widgets.key_footer import KeyFooter
from console.ui.widgets.log_pane import LogPane
from console.ui.widgets.step_detail import StepDetail

if TYPE_CHECKING:
    from console.ui.app import BatonApp

FRAME = 1 / 30
"""Seconds between repaints of what changed: log floods are coalesced per frame."""
FLEET_TASKS = 500
"""Runs with more tasks than this are fleets: their states are drawn every FLEET_FRAME."""
FLEET_FRAME = 1 / 4
LOG_FRAME = 1 / 15
"""The log pane repaints at most this often while lines keep arriving: each repaint of
it costs the event loop time that the pipes of running tasks are then not read."""


def _b(key: str, action: str, description: str, tooltip: str, *, show: bool = True) -> Binding:
    return Binding(key, action, description, show=show, tooltip=tooltip, id=f"baton.{action}")


class RunScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        _b("g", "start", "Start", "Start the run"),
        _b("p", "pause", "Pause/resume", "Pause the run (nothing new starts) or resume it"),
        _b("a", "approve", "Approve", "Approve the selected gate (shows command and hosts)"),
        _b("D", "deny", "Deny", "Deny the selected gate: its tasks fail"),
        _b("d", "done", "Done", "Mark the selected manual step done"),
        _b("r", "retry", "Retry", "Retry the selected failed or cancelled task(s)"),
        _b("R", "retry_downstream", "Retry+down",
           "Retry the selection and reset everything downstream of it"),
        _b("s", "skip", "Skip", "Skip the selection (optional reason)"),
        _b("S", "mark_succeeded", "Mark ok", "Mark the selection succeeded (with a reason)"),
        _b("F", "mark_failed", "Mark failed", "Mark the selection failed (with a reason)"),
        _b("c", "cancel_task", "Cancel", "Cancel the selected task(s): TERM, then KILL"),
        _b("x", "exclude_host", "Exclude host",
           "Exclude the selected host: skip every task it has left", show=False),
        _b("u", "rollback", "Roll back",
           "Roll back the selection (a task, or a step on every host): shows the plan of "
           "undo commands to approve", show=False),
        _b("U", "rollback_downstream", "Roll back+down",
           "Roll back the selected step and everything downstream of it", show=False),
        _b("ctrl+u", "rollback_run", "Roll back run",
           "Roll back the whole run (every task that changed something)", show=False),
        _b("b", "breakpoint", "Break", "Toggle a breakpoint: hold the step before it starts"),
        _b("t", "step_mode", "Step mode", "Toggle step mode: every task needs approval"),
        _b("n", "note", "Note", "Add a note to the timeline"),
        _b("slash", "filter", "Filter", "Filter the log pane", show=False),
        _b("f", "follow", "Follow", "Follow the end of the log (toggle)", show=False),
        _b("T", "timestamps", "Timestamps", "Show timestamps in the log (toggle)", show=False),
        _b("l", "timeline", "Timeline", "Every event, action and note with time and user"),
        _b("h", "history", "History", "Past runs of this workflow: open one, resume one",
           show=False),
        _b("o", "open_log", "Full log", "Open the selected task's full log in $PAGER",
           show=False),
        _b("N", "next_attention", "Needs you",
           "Jump to the next task that needs the operator (failed, awaiting approval or "
           "awaiting the operator); the footer counts them"),
        _b("ctrl+f", "find_step", "Find", "Find a step (name or id) or host by name; "
           "Enter on an empty search finds the next match", show=False),
        _b("question_mark", "help", "Help", "The keys and what they do"),
        _b("q", "quit", "Quit", "Quit (asks first while the run is live)"),
        _b("escape", "back", "Back", "Back to the folder or history view (asks first while "
           "the run is live)", show=False),
    ]

    def __init__(self, run: Run, *, clock: Clock, sampler: Sampler | None,
                 read_only: bool = False, start: bool = True, stored: bool = False) -> None:
        super().__init__()
        self.run = run
        self.clock = clock
        self.sampler = sampler
        self.read_only = read_only or stored
        self.stored = stored
        """A past run rebuilt from the store, shown as it was and never executed."""
        self.autostart = start and not stored
        self.session = RunSession(run)
        self.executing: Worker[None] | None = None
        self._run_closed = False
        self._selection: Selection | None = None
        self._log_pending = False
        self._log_synced = 0.0
        self._monotonic = time.monotonic
        self.host_keys = HostKeyAsk(self)
        self._keys_shown: tuple[object, ...] = ()
        self._state_synced = 0.0
        self._last_find = ""

    @property
    def baton(self) -> BatonApp:
        return self.app  # type: ignore[return-value]

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield RunHeader(self.run, self.clock, started=self.stored, read_only=self.read_only,
                        id="header")
        yield ReloadBanner(id="reload-banner")
        yield HistoryBanner(id="history-banner")
        with Horizontal(id="main"):
            yield DagTree(self.run, self.clock, id="tree")
            with Vertical(id="right"):
                yield StepDetail(self.run, id="detail")
                yield LogPane(id="log-pane")
        yield KeyFooter()

    def on_mount(self) -> None:
        tree = self.query_one(DagTree)
        tree.border_title = "steps"
        self.query_one(StepDetail).border_title = "detail"
        tree.focus()
        self.set_interval(FRAME, self._frame, name="frame")
        self.set_interval(1.0, self.refresh_second, name="second")
        self.refresh_second()
        if not self.read_only:
            self.run.host_key_prompt = self.host_keys
        if self.autostart:
            self.start_run()
        self._watchers = reloading.Watchers() if self.stored else reloading.watch_workflow(self)

    def on_unmount(self) -> None:
        self._watchers.stop()

    # ------------------------------------------------------------------ hot reload

    def show_reload(self, event: ReloadEvent) -> None:
        """A reload of the workflow file (the watcher's callback): the error banner, or the
        diff as a notice and the tree and detail rebuilt from the run's new definition."""
        reloading.announce(self, event)
        if event.error is not None:
            return
        tree = self.query_one(DagTree)
        tree.rebuild()
        old, self._selection = self._selection, tree.selection
        self.query_one(StepDetail).show(self._selection)
        if self._selection is not None and (self._selection != old
                                            or self._selection.step in event.changed):
            subject, buffer, multi = self._log_for(self._selection)
            self.query_one(LogPane).show(subject, buffer, multi_host=multi)
        self._after_action()

    # ------------------------------------------------------------------ refresh

    def _frame(self, *, now: bool = False) -> None:
        """Draw what changed. A fleet's states are drawn at most every :data:`FLEET_FRAME`
        (changes pile up in the session meanwhile): redrawing a tree of thousands of tasks
        30 times a second would leave the event loop no time for keys; ``now`` (after
        an operator action) draws at once."""
        moment = self._monotonic()
        interval = FRAME if len(self.run.tasks) <= FLEET_TASKS else FLEET_FRAME
        if not now and moment - self._state_synced < interval:
            if self._log_pending:
                self._sync_log(moment)
            return
        self._state_synced = moment
        changes = self.session.take_changes()
        if not changes and not self._log_pending:
            return
        tree = self.query_one(DagTree)
        selection = self._selection
        if changes.steps:
            tree.update_steps(changes.steps, changes.tasks)
        if changes.run or changes.steps:
            self.query_one(RunHeader).refresh()
            if selection is not None and (changes.run or selection.step in changes.steps):
                self.query_one(StepDetail).update_facts()
            self._refresh_keys()
        if selection is not None and selection.step in changes.logs:
            self._log_pending = True
        self._sync_log(moment)

    def _sync_log(self, moment: float) -> None:
        if self._log_pending and moment - self._log_synced >= LOG_FRAME:
            self._log_pending = False
            self._log_synced = moment
            self.query_one(LogPane).sync()

    def _refresh_keys(self) -> None:
        """Refresh the footer only when what applies changed: each refresh rebuilds it
        (a restyle of every key), too costly to do on every frame of a busy run."""
        keys = (*(self.check_action(binding.action, ()) is not False
                  for binding in self._key_bindings()), len(self.needs_operator()))
        if keys != self._keys_shown:
            self._keys_shown = keys
            self.refresh_bindings()

    def _key_bindings(self) -> list[Binding]:
        return [b for b in self.BINDINGS if isinstance(b, Binding)]

    def needs_operator(self) -> list[Task]:
        return navigation.needs_operator(self.run)

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """The footer's keys: "Needs you" carries how many tasks wait for the operator;
        when the keys do not all fit, help, quit and "Needs you" come first, so they
        always show."""
        bindings = super().active_bindings
        for key, active in bindings.items():
            if active.binding.action == "next_attention":
                count = len(self.needs_operator())
                described = dataclasses.replace(active.binding,
                                                description=f"Needs you: {count}")
                bindings[key] = active._replace(binding=described)
        shown = [a for a in bindings.values() if a.binding.show]
        width = sum(len(self.app.get_key_display(a.binding)) + len(a.binding.description) + 3
                    for a in shown)
        if width > self.size.width:
            first = [k for k, a in bindings.items()
                     if a.binding.action in ("help", "quit", "next_attention")]
            bindings = {k: bindings[k] for k in first} | {
                k: a for k, a in bindings.items() if k not in first}
        return bindings

    def refresh_second(self) -> None:
        header = self.query_one(RunHeader)
        if self.sampler is not None:
            header.update_stats(self.sampler())
        header.refresh()
        self.query_one(LogPane).update_title()
        tree = self.query_one(DagTree)
        tasks = tree.active_tasks()
        active = {step for step, _ in tasks}
        if active:
            tree.update_steps(active, tasks)
            if self._selection is not None and self._selection.step in active:
                self.query_one(StepDetail).update_facts()

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[Selection]) -> None:
        selection = event.node.data
        if selection is None or selection == self._selection:
            return
        self._selection = selection
        self.query_one(StepDetail).show(selection)
        subject, buffer, multi = self._log_for(selection)
        self.query_one(LogPane).show(subject, buffer, multi_host=multi)
        self._refresh_keys()

    def _log_for(self, selection: Selection) -> tuple[str, LogBuffer, bool]:
        if selection.host is not None:
            task = self.run.tasks[(selection.step, selection.host)]
            return task.label, self.session.task_log(selection.step, selection.host), False
        tasks = self.run.tasks_of(selection.step)
        if is_fan_out(tasks):
            return f"{selection.step} (all hosts)", self.session.step_log(selection.step), True
        return selection.step, self.session.step_log(selection.step), False

    # ------------------------------------------------------------------ the run

    @property
    def started(self) -> bool:
        return self.executing is not None

    def start_run(self) -> None:
        if self.executing is not None or self.stored:
            return
        if not self.baton.record_run(self.run, self.session):
            return
        self.query_one(RunHeader).started = True
        for warning in self.run.secret_warnings:
            self.notify(warning, title="weak masking", severity="warning", timeout=20)
        self.executing = self.run_worker(self._execute(), name="run", group="run",
                                         exit_on_error=False)
        self.refresh_bindings()

    async def _execute(self) -> None:
        try:
            await self.run.execute()
        except Exception as exc:  # an engine bug must not take the console down silently
            self.notify(f"the run stopped: {exc}", severity="error", timeout=30)

    def running_tasks(self) -> list[Task]:
        return [t for t in self.run.tasks_in_order() if t.state.active]

    # ------------------------------------------------------------------ selection

    def selected_tasks(self) -> list[Task]:
        selection = self._selection
        if selection is None:
            return []
        tasks = self.run.tasks_of(selection.step)
        if selection.host is not None:
            tasks = [t for t in tasks if t.host == selection.host]
        return tasks

    def _target(self) -> tuple[str, str | None]:
        selection = self._selection
        assert selection is not None
        return selection.step, selection.host

    @property
    def selection(self) -> Selection | None:
        return self._selection

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return why_refused(self, action) is None

    def on_key(self, event: events.Key) -> None:
        """A key whose action does not apply says why (it would otherwise do nothing, and
        what the operator types next would land here as more keys)."""
        if isinstance(self.focused, Input):
            return
        action = bound_action(self, event.key)
        if action is None:
            return
        node = self.focused
        while node is not None and node is not self:  # a focused widget's own key wins
            own = bound_action(node, event.key)
            if own is not None and node.check_action(own, ()):
                return
            node = node.parent  # type: ignore[assignment]
        why = why_refused(self, action)
        if why is not None:
            event.stop()
            event.prevent_default()
            self.notify(why, severity="warning")

    def _act(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Call a Run action; an ActionError becomes a notification."""
        try:
            result = fn(*args, **kwargs)
        except ActionError as exc:
            self.notify(str(exc), severity="error")
            return False
        self._after_action()
        if isinstance(result, bool):
            return result
        return True

    def _after_action(self) -> None:
        self._frame(now=True)
        self.query_one(RunHeader).refresh()
        self.query_one(StepDetail).update_facts()
        self.refresh_bindings()

    # ------------------------------------------------------------------ actions

    def action_start(self) -> None:
        """g: the params form first (every param, the values the run would use), then
        the run starts with what the operator confirmed."""
        if not self.run.workflow.params:
            self.start_run()
            return

        def answered(values: object) -> None:
            if not isinstance(values, dict):
                return
            try:
                self.run.set_params(resolve_params(self.run.workflow.params, values))
            except (ParamError, ActionError) as exc:
                self.notify(str(exc), severity="error")
                return
            self.query_one(RunHeader).refresh()
            self.start_run()

        self.app.push_screen(ParamsForm(self.run.workflow, dict(self.run.options.params)),
                             answered)

    def action_pause(self) -> None:
        if self.run.state is RunState.PAUSED:
            self._act(self.run.resume)
        else:
            self._act(self.run.pause)

    def action_approve(self) -> None:
        step_id, host = self._target()
        waiting = [t for t in self.selected_tasks() if t.state is TaskState.AWAITING_APPROVAL]
        if not waiting:
            self._act(self.run.approve, step_id, host)  # reports why it does not apply
            return
        def answered(choice: object) -> None:
            if choice == "approve":
                self._act(self.run.approve, step_id, host)
            elif choice == "deny":
                self.action_deny()

        self.app.push_screen(approval_dialog(self.run, step_id, host, waiting), answered)

    def _ask(self, title: str, placeholder: str, required: bool,
             then: Callable[[str], object], action: str | None = None) -> None:
        """A reason or note prompt; only for an action that applies now (``action``)."""
        if action is not None:
            why = why_refused(self, action)
            if why is not None:
                self.notify(why, severity="warning")
                return

        def answered(text: object) -> None:
            if isinstance(text, str):
                then(text)

        self.app.push_screen(TextPrompt(title, placeholder, required=required), answered)

    def action_deny(self) -> None:
        step, host = self._target()
        self._ask(f"Deny '{self._label()}'", "reason", False,
                  lambda reason: self._act(self.run.deny, step, host, reason or None), "deny")

    def action_done(self) -> None:
        self._act(self.run.done, *self._target())

    def action_retry(self) -> None:
        self._act(self.run.retry, *self._target())

    def action_retry_downstream(self) -> None:
        self._act(self.run.retry_downstream, *self._target())

    def action_skip(self) -> None:
        step, host = self._target()
        self._ask(f"Skip '{self._label()}'", "reason", False,
                  lambda reason: self._act(self.run.skip, step, host, reason or None), "skip")

    def action_mark_succeeded(self) -> None:
        step, host = self._target()
        self._ask(f"Mark '{self._label()}' succeeded", "reason", True,
                  lambda reason: self._act(self.run.mark_succeeded, step, host, reason),
                  "mark_succeeded")

    def action_mark_failed(self) -> None:
        step, host = self._target()
        self._ask(f"Mark '{self._label()}' failed", "reason", True,
                  lambda reason: self._act(self.run.mark_failed, step, host, reason),
                  "mark_failed")

    def action_cancel_task(self) -> None:
        step, host = self._target()
        self._ask(f"Cancel '{self._label()}'? Enter cancels it (TERM, then KILL)", "reason",
                  False, lambda reason: self._act(self.run.cancel, step, host, reason or None),
                  "cancel_task")

    def _label(self) -> str:
        step, host = self._target()
        return step if host is None or host == "local" else f"{step}@{host}"

    def selected_host(self) -> str | None:
        """The remote host of the selected task (or of a step that runs on one host)."""
        hosts = {t.host for t in self.selected_tasks()}
        host = hosts.pop() if len(hosts) == 1 else None
        return None if host == "local" else host

    def action_exclude_host(self) -> None:
        host = self.selected_host()
        if host is None:
            self.notify("select a task of the host to exclude", severity="warning")
            return
        self._ask(f"Exclude host '{host}' from this run", "reason (optional)", False,
                  lambda reason: self._act(self.run.exclude_host, host, None, reason or None),
                  action="exclude_host")

    def action_rollback(self, downstream: bool = False, whole: bool = False) -> None:
        from console.engine.rollback import RollbackScope, plan_rollback, start_rollback
        from console.ui.screens.rollback_dialog import RollbackModal

        why = why_refused(self, "rollback")
        if why is not None:
            self.notify(why, severity="warning")
            return
        selection = None if whole else self.selection
        step = selection.step if selection is not None else None
        host = selection.host if selection is not None else None
        scope = RollbackScope(step, host if step is not None else None,
                              downstream and step is not None)
        try:
            plan = plan_rollback(self.run, scope)
        except ValueError as exc:
            self.notify(str(exc), severity="warning")
            return
        if not plan.entries:
            self.notify(f"nothing to undo in {scope.describe()}", severity="warning")
            return

        def answered(choice: object) -> None:
            if choice == "rollback":
                self._act(start_rollback, self.run, plan)

        self.app.push_screen(RollbackModal(plan), answered)

    def action_rollback_downstream(self) -> None:
        self.action_rollback(downstream=True)

    def action_rollback_run(self) -> None:
        self.action_rollback(whole=True)

    def action_breakpoint(self) -> None:
        step, _ = self._target()
        try:
            on = self.run.toggle_breakpoint(step)
        except ActionError as exc:
            self.notify(str(exc), severity="error")
            return
        self.query_one(DagTree).update_steps({step})
        self._after_action()
        self.notify(f"breakpoint {'set on' if on else 'removed from'} '{step}'")

    def action_step_mode(self) -> None:
        on = self.run.toggle_step_mode()
        self._after_action()
        self.notify(f"step mode {'on: every task needs approval' if on else 'off'}")

    def action_note(self) -> None:
        selection = self._selection
        step = selection.step if selection else None
        host = selection.host if selection else None
        title = f"Note on '{step}'" if step else "Note"
        self._ask(title, "what happened", True,
                  lambda text: self._act(self.run.note, text, step, host))

    def action_next_attention(self) -> None:
        target = navigation.next_needing(self.run, self._selection)
        if target is None:
            self.notify("no task needs the operator")
            return
        self.query_one(DagTree).select_step(target.step, target.host)

    def action_find_step(self) -> None:
        def found(text: str) -> None:
            query = text or self._last_find
            self._last_find = query
            target = navigation.find(self.run, query, self._selection)
            if target is None:
                self.notify(f"no step or host matches '{query}'", severity="warning")
            else:
                self.query_one(DagTree).select_step(target.step, target.host)

        self._ask("Find step or host", self._last_find or "name, id or host", False, found)

    def action_filter(self) -> None:
        self.query_one(LogPane).open_filter()

    def action_follow(self) -> None:
        pane = self.query_one(LogPane)
        pane.view.follow = not pane.view.follow
        pane.update_title()

    def action_timestamps(self) -> None:
        pane = self.query_one(LogPane)
        pane.view.show_time = not pane.view.show_time
        pane.update_title()

    def action_timeline(self) -> None:
        from console.ui.screens.timeline import TimelineScreen

        self.app.push_screen(TimelineScreen(self.session))

    def action_help(self) -> None:
        from console.ui.screens.help import HelpScreen

        self.app.push_screen(HelpScreen(self.baton.describe_keys(self)))

    def action_history(self) -> None:
        self.baton.open_history(self.run.workflow.path, self.run.workflow.name)

    def action_open_log(self) -> None:
        tasks = self.selected_tasks()
        if len(tasks) != 1:
            self.notify("select one host of the step to open its log", severity="warning")
            return
        self.baton.page_log(self.run, tasks[0].step, tasks[0].host)

    @property
    def live(self) -> bool:
        """The run goes on unless cancelled: started and not finished (tasks running,
        or only gates and manual steps waiting, or paused)."""
        return self.started and not self.stored and not self.run.state.finished

    def action_quit(self) -> None:
        if self.stored and len(self.app.screen_stack) > 2:
            self.app.pop_screen()  # back to the history view
            return
        self._leave("quit")

    def action_back(self) -> None:
        """Esc: back to the screen below (folder or history view); at the bottom, say how
        to quit."""
        if len(self.app.screen_stack) <= 2:
            self.notify("nothing to go back to: q quits", severity="information")
            return
        if self.stored:
            self.app.pop_screen()
            return
        self._leave("go back")

    def _leave(self, verb: str) -> None:
        then = self.shutdown if verb == "quit" else self.go_back
        if not self.live:
            then()
            return
        tasks = self.run.tasks_in_order()
        running = [t.label for t in tasks if t.state.active]
        waiting = [t.label for t in tasks if t.state.waiting]

        def answered(choice: object) -> None:
            cancel = choice == "cancel"
            if not self._act(self.run.answer_quit, cancel):
                return
            if cancel:
                then()

        self.app.push_screen(QuitModal(str(self.run.state), running, waiting, verb=verb),
                             answered)

    @work(exclusive=True, group="shutdown")
    async def go_back(self) -> None:
        """Close the run (cancelling what runs or waits), then show the screen below."""
        await self.close_run()
        self.app.pop_screen()

    @work(exclusive=True, group="shutdown")
    async def shutdown(self) -> None:
        """Close the run (cancelling what runs or waits), wait for it, then exit."""
        await self.close_run()
        self.baton.finish(self.run if self.started else None)

    async def close_run(self) -> None:
        """Close the run, wait for it, and let its recorder write the rest (once)."""
        self.run.host_key_prompt = None
        self.host_keys.close()  # an unanswered host key question is refused
        if self.executing is not None:
            self.run.close()
            await self.executing.wait()
        if not self._run_closed:
            self._run_closed = True
            self.session.close()
            if not self.stored:
                self.baton.run_over(self.run)
