"""The run screen: header, dependency tree, detail pane, log pane and every operator key.

Keys are BINDINGS with ids (:mod:`.run_keys`; remappable through the user config's
``[keys]``); whether an action applies to the selection is decided in
:meth:`RunScreen.check_action` (:mod:`.refusals`), so the footer, the command palette and
the keys agree. Actions call the Run's public methods; an :class:`ActionError` becomes a
notification and changes nothing. What changed is drawn by :class:`.run_painter.RunPainter`.

What the screen needs is handed down (the run, the clock, the history service); what only
the app can do goes up as a message (:class:`RunScreen.Quit`, ``ShowHistory``,
``PageLog``). The screen owns its workflow file's watcher (a worker) and its recorder.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import events, work
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Tree
from textual.worker import Worker

from console.engine.events import ReloadEvent
from console.engine.run import ActionError, Run
from console.engine.task import Task
from console.model.params import ParamError, resolve_params
from console.store import StoreError
from console.ui import heap, navigation
from console.ui.history_service import History, HistoryError
from console.ui.messages import PageLog, ShowHistory
from console.ui.screens.help import HelpScreen, describe_keys
from console.ui.screens.hostkey import HostKeyAsk
from console.ui.screens.modals import QuitModal
from console.ui.screens.operator_keys import OperatorKeys
from console.ui.screens.params_form import ParamsForm
from console.ui.screens.refusals import keymap, refuse_key, why_refused
from console.ui.screens.run_keys import RUN_BINDINGS, footer_order
from console.ui.screens.run_painter import FRAME, RunPainter
from console.ui.screens.timeline_screen import TimelineScreen
from console.ui.session import LogBuffer, RunSession
from console.ui.system import Clock, Sampler
from console.ui.watchers import Watchers, watch_workflow
from console.ui.widgets.banner import HistoryBanner, ReloadBanner
from console.ui.widgets.dag_tree import DagTree, Selection, is_fan_out
from console.ui.widgets.header import RunHeader
from console.ui.widgets.key_footer import KeyFooter
from console.ui.widgets.log_pane import LogPane
from console.ui.widgets.step_detail import StepDetail


class RunScreen(OperatorKeys, Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = RUN_BINDINGS

    class Quit(Message):
        """The operator quit from this screen and its run is closed: leave the console
        (the exit code follows ``run``'s final state; None: it never started)."""

        def __init__(self, run: Run | None) -> None:
            super().__init__()
            self.run = run

    def __init__(self, run: Run, *, clock: Clock, sampler: Sampler | None,
                 read_only: bool = False, start: bool = True, stored: bool = False,
                 history: History | None = None) -> None:
        super().__init__()
        self.run = run
        self.clock = clock
        self.sampler = sampler
        self.read_only = read_only or stored
        self.stored = stored
        """A past run rebuilt from the store, shown as it was and never executed."""
        self.history = history
        """The run history (None: nothing is recorded, no log file exists)."""
        self.autostart = start and not stored
        self.session = RunSession(run)
        self.executing: Worker[None] | None = None
        self._run_closed = False
        self._selection: Selection | None = None
        self.host_keys = HostKeyAsk(self)
        self._keys_shown: tuple[object, ...] = ()
        self._last_find = ""
        self._watchers = Watchers()

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield RunHeader(self.run, self.clock, started=self.stored, read_only=self.read_only,
                        id="header")
        yield ReloadBanner(id="reload-banner")
        yield HistoryBanner(id="history-banner")
        with Horizontal(id="main"):
            yield DagTree(self.run, self.clock, id="tree")
            with Vertical(id="right"):
                yield StepDetail(self.run, log_file=self._log_file, id="detail")
                yield LogPane(id="log-pane")
        yield KeyFooter()

    def on_mount(self) -> None:
        tree = self.query_one(DagTree)
        tree.border_title = "steps"
        self.query_one(StepDetail).border_title = "detail"
        tree.focus()
        self.painter = RunPainter(
            self.run, self.session, tree=tree, header=self.query_one(RunHeader),
            detail=self.query_one(StepDetail), pane=self.query_one(LogPane),
            sampler=self.sampler, selection=lambda: self._selection,
            on_states=self._refresh_keys)
        self.set_interval(FRAME, self.painter.frame, name="frame")
        self.set_interval(1.0, self.refresh_second, name="second")
        self.refresh_second()
        if not self.read_only:
            self.run.host_key_prompt = self.host_keys
        if self.autostart:
            self.start_run()
        if not self.stored:
            self._watchers = watch_workflow(self, self.run, self.show_reload)
        heap.freeze_when_drawn(self)

    def on_unmount(self) -> None:
        self._watchers.stop()
        heap.thaw()

    def refresh_second(self) -> None:
        self.painter.second()

    # ------------------------------------------------------------------ hot reload

    def show_reload(self, event: ReloadEvent) -> None:
        """A reload of the workflow file (the watcher's callback): the error banner, or the
        diff as a notice and the tree and detail rebuilt from the run's new definition."""
        self.query_one(ReloadBanner).announce(event, self.run.workflow.path)
        if event.error is not None:
            return
        tree = self.query_one(DagTree)
        tree.rebuild()
        old, self._selection = self._selection, tree.selection
        self.query_one(StepDetail).show(self._selection)
        if self._selection is not None and (self._selection != old
                                            or self._selection.step in event.changed):
            self._show_log(self._selection)
        self.after_action()

    # ------------------------------------------------------------------ keys

    def _refresh_keys(self) -> None:
        """Refresh the footer only when what applies changed: each refresh rebuilds it
        (a restyle of every key), too costly to do on every frame of a busy run."""
        keys = (*(self.check_action(binding.action, ()) is not False
                  for binding in self.BINDINGS if isinstance(binding, Binding)),
                len(self.needs_operator()))
        if keys != self._keys_shown:
            self._keys_shown = keys
            self.refresh_bindings()

    def needs_operator(self) -> list[Task]:
        return navigation.needs_operator(self.run)

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        return footer_order(super().active_bindings, len(self.needs_operator()),
                            self.size.width, self.app.get_key_display)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return why_refused(self, action) is None

    def on_key(self, event: events.Key) -> None:
        refuse_key(self, event, lambda action: why_refused(self, action))

    # ------------------------------------------------------------------ selection

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[Selection]) -> None:
        selection = event.node.data
        if selection is None or selection == self._selection:
            return
        self._selection = selection
        self.query_one(StepDetail).show(selection)
        self._show_log(selection)
        self._refresh_keys()

    def _show_log(self, selection: Selection) -> None:
        subject, buffer, multi = self._log_for(selection)
        self.query_one(LogPane).show(subject, buffer, multi_host=multi)

    def _log_for(self, selection: Selection) -> tuple[str, LogBuffer, bool]:
        if selection.host is not None:
            task = self.run.tasks[(selection.step, selection.host)]
            return task.label, self.session.task_log(selection.step, selection.host), False
        tasks = self.run.tasks_of(selection.step)
        if is_fan_out(tasks):
            return f"{selection.step} (all hosts)", self.session.step_log(selection.step), True
        return selection.step, self.session.step_log(selection.step), False

    @property
    def selection(self) -> Selection | None:
        return self._selection

    def selected_tasks(self) -> list[Task]:
        selection = self._selection
        if selection is None:
            return []
        tasks = self.run.tasks_of(selection.step)
        if selection.host is not None:
            tasks = [t for t in tasks if t.host == selection.host]
        return tasks

    def selected_host(self) -> str | None:
        """The remote host of the selected task (or of a step that runs on one host)."""
        hosts = {t.host for t in self.selected_tasks()}
        host = hosts.pop() if len(hosts) == 1 else None
        return None if host == "local" else host

    def _target(self) -> tuple[str, str | None]:
        selection = self._selection
        assert selection is not None
        return selection.step, selection.host

    # ------------------------------------------------------------------ the run

    @property
    def started(self) -> bool:
        return self.executing is not None

    @property
    def has_history(self) -> bool:
        return self.history is not None

    def start_run(self) -> None:
        if self.executing is not None or self.stored:
            return
        if not self._record():
            return
        self.query_one(RunHeader).started = True
        for warning in self.run.secret_warnings:
            self.notify(warning, title="weak masking", severity="warning", timeout=20)
        self.executing = self.run_worker(self._execute(), name="run", group="run",
                                         exit_on_error=False)
        self.refresh_bindings()

    def _record(self) -> bool:
        """Start recording the run (before it executes); the recorder's subscription
        moves ahead of the console's, so an action is committed before the console shows
        it. False (with a notification) when the store refuses: the run must not start."""
        if self.history is None or self.run.options.dry_run:  # a dry run is not history
            return True
        try:
            self.history.begin(
                self.run, on_error=self._history_failed,
                warn=lambda text: self.notify(text, severity="warning", timeout=20))
        except HistoryError as exc:
            self.notify(str(exc), severity="error", timeout=30)
            return False
        self.session.subscribe_again()
        return True

    def _history_failed(self, error: StoreError) -> None:
        """The run's history cannot be written: nothing new starts (what it would do could
        not be recorded, and a resume could repeat it), and the banner says so."""
        self.run.halt(str(error))
        self.notify(f"history: {error}; no new task starts", severity="error", timeout=30)
        try:
            self.query_one(HistoryBanner).show_error(str(error))
        except NoMatches:  # the screen is gone already
            pass

    def _log_file(self, step: str, host: str) -> Path | None:
        return None if self.history is None else self.history.attempt_log(self.run, step, host)

    async def _execute(self) -> None:
        try:
            await self.run.execute()
        except Exception as exc:  # an engine bug must not take the console down silently
            self.notify(f"the run stopped: {exc}", severity="error", timeout=30)

    def running_tasks(self) -> list[Task]:
        return [t for t in self.run.tasks_in_order() if t.state.active]

    def interrupt(self, reason: str) -> None:
        """Stop what runs, leaving the run resumable (SIGTERM); only a started run."""
        if self.executing is not None:
            self.run.interrupt(reason)

    def after_action(self) -> None:
        self.painter.frame(now=True)
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

    def action_breakpoint(self) -> None:
        step, _ = self._target()
        try:
            on = self.run.toggle_breakpoint(step)
        except ActionError as exc:
            self.notify(str(exc), severity="error")
            return
        self.query_one(DagTree).update_steps({step})
        self.after_action()
        self.notify(f"breakpoint {'set on' if on else 'removed from'} '{step}'")

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

        self.ask("Find step or host", self._last_find or "name, id or host", False, found)

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
        self.app.push_screen(TimelineScreen(self.session))

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(describe_keys(self.BINDINGS, keymap(self.app),
                                                      self.app.get_key_display)))

    def action_history(self) -> None:
        self.post_message(ShowHistory(self.run.workflow.path, self.run.workflow.name))

    def action_open_log(self) -> None:
        tasks = self.selected_tasks()
        if len(tasks) != 1:
            self.notify("select one host of the step to open its log", severity="warning")
            return
        self.post_message(PageLog(self.run, tasks[0].step, tasks[0].host))

    # ------------------------------------------------------------------ leaving

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
            if not self.act(self.run.answer_quit, cancel):
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
        self.post_message(self.Quit(self.run if self.started else None))

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
            if not self.stored and self.history is not None:
                self.history.release(self.run.id)
