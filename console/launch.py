"""Opening a run, one way for both front ends: from a workflow file (``baton run``, the
console's folder view) or rebuilt from the history (``baton resume`` / ``rollback``, the
console's history view: to resume it, to show it as recorded, to roll it back).

What differs between the headless command line and the console is a :class:`Frontend`:
who answers gates, whether the run stays open after its last task, who acts, how tasks
execute. Nothing here prints or imports Textual: a run that cannot be opened raises
:class:`LaunchError` (one line, plus the loader's problems), which each front end shows
its own way (stderr and exit 2, or a notification).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.engine.events import RunState, TaskState
from console.model.loader import WorkflowError, load_text, load_workflow
from console.model.problems import Problem
from console.model.workflow import Host, Workflow

if TYPE_CHECKING:
    from console.engine.run import Approval, Run
    from console.executors.base import Executor
    from console.store import StoredRun


class LaunchError(Exception):
    """A run cannot be opened or rebuilt. ``str()`` is one line; ``message`` is that line
    without the first problem; ``problems``: every problem of a definition that does not
    load (the command line prints them all)."""

    def __init__(self, message: str, problems: Sequence[Problem] = (),
                 detail: str | None = None) -> None:
        self.message = message
        self.problems = tuple(problems)
        super().__init__(message if detail is None else f"{message}: {detail}")


class DefinitionMissing(LaunchError):
    """The store does not hold the definition a run ran with."""


@dataclass(frozen=True)
class Frontend:
    """What the front end opening a run decides (the rest comes from the workflow, the
    operator's inputs, or the stored run)."""

    approval: Approval = "wait"
    """Gates and manual steps: ``wait`` for an operator, ``auto`` (``--yes``) or ``fail``
    (headless without a terminal to ask on)."""
    keep_alive: bool = False
    """The console: the run stays open after its last task, so an operator can still act."""
    user: str | None = None
    """Who acts (None: the login name)."""
    accept_new_host_keys: bool = False
    executor_for: Callable[[Host], Executor] | None = None
    clock: Callable[[], float] = time.time

    @classmethod
    def console(cls, *, yes: bool = False, user: str | None = None,
                executor_for: Callable[[Host], Executor] | None = None,
                clock: Callable[[], float] = time.time) -> Frontend:
        """The console: its operator is always there to ask, and the run stays open."""
        return cls(approval_for(yes, can_ask=True), keep_alive=True, user=user,
                   executor_for=executor_for, clock=clock)

    @classmethod
    def headless(cls, *, yes: bool, can_ask: bool,
                 accept_new_host_keys: bool = False) -> Frontend:
        """``--headless``: asks on a terminal (``can_ask``), ends with its last task."""
        return cls(approval_for(yes, can_ask=can_ask),
                   accept_new_host_keys=accept_new_host_keys)

    def new_run(self, workflow: Workflow, **values: Any) -> Run:
        """``Run(workflow)`` with this front end's options and ``values`` (params, secrets,
        limit, step_mode, start_at, dry_run, run_id); :class:`LaunchError` if it refuses."""
        from console.engine.run import Run, RunOptions  # not for `check` and `plan`

        options = RunOptions(approval=self.approval, keep_alive=self.keep_alive,
                             user=self.user, accept_new_host_keys=self.accept_new_host_keys,
                             **values)
        try:
            return Run(workflow, options, executor_for=self.executor_for, clock=self.clock)
        except ValueError as exc:
            raise LaunchError(str(exc)) from None


def approval_for(yes: bool, *, can_ask: bool) -> Approval:
    """The approval policy of SPEC section 2: ``--yes`` approves, an operator who can be
    asked is asked, anything else fails the gate."""
    return "auto" if yes else ("wait" if can_ask else "fail")


# ---------------------------------------------------------------------------- from a file


def load_file(path: Path) -> Workflow:
    """The workflow in ``path``, its path made absolute: it is stored with the run, so
    ``baton resume``, ``runs --workflow`` and the history view work from any folder.
    Raises :class:`WorkflowError` (every problem, located)."""
    workflow = load_workflow(path)
    if workflow.path is not None and not workflow.path.is_absolute():
        workflow = dataclasses.replace(workflow, path=workflow.path.resolve())
    return workflow


def params_for(workflow: Workflow, given: Mapping[str, Any]) -> dict[str, Any]:
    """The run's param values: ``given`` (``--param`` text or the params form) coerced,
    defaults filling the rest; :class:`LaunchError` names a bad or missing one."""
    from console.model.params import ParamError
    from console.model.params import resolve_params as resolve

    try:
        return resolve(workflow.params, given)
    except ParamError as exc:
        raise LaunchError(str(exc)) from None


def secrets_for(workflow: Workflow) -> dict[str, str]:
    """Every secret's value (a ``file`` relative to the workflow's folder; ``command``
    secrets run); :class:`LaunchError` says which one failed."""
    from console.model.secrets import SecretError
    from console.model.secrets import resolve_secrets as resolve

    base_dir = workflow.path.parent if workflow.path else Path.cwd()
    try:
        return resolve(workflow.secrets, base_dir=base_dir, environ=dict(os.environ))
    except SecretError as exc:
        raise LaunchError(str(exc)) from None


def split_limit(items: Iterable[str]) -> tuple[str, ...]:
    """``--limit web,db1 --limit 'app*'`` -> the patterns, in order."""
    return tuple(p.strip() for item in items for p in item.split(",") if p.strip())


def check_limit(workflow: Workflow, patterns: Iterable[str]) -> tuple[str, ...]:
    """``patterns``, each of which must select a host or group (:class:`LaunchError`)."""
    from console.model.loader import suggest

    out = tuple(patterns)
    for pattern in out:
        if not workflow.limit_matches(pattern):
            names = [*workflow.hosts, *workflow.groups()]
            raise LaunchError(f"--limit '{pattern}' matches no host or group"
                              f"{suggest(pattern, names)}")
    return out


def check_start_at(workflow: Workflow, step: str | None) -> str | None:
    """``--start-at STEP`` must name a step (:class:`LaunchError`, with a suggestion)."""
    if step is not None and step not in workflow.steps:
        from console.model.loader import suggest

        raise LaunchError(f"--start-at: unknown step '{step}'{suggest(step, workflow.steps)}")
    return step


# ---------------------------------------------------------------------------- from history


def stored_workflow(stored: StoredRun) -> Workflow:
    """The definition ``stored`` last ran with (not the file on disk, which may have changed
    since). Raises :class:`DefinitionMissing` or :class:`LaunchError` (it no longer loads)."""
    _, text = stored.last_definition()
    if text is None:
        raise DefinitionMissing(f"run {stored.id}: its workflow definition is not in the store")
    path = Path(stored.run.path) if stored.run.path else None
    try:
        return load_text(text, path or "<string>")
    except WorkflowError as exc:
        first = str(exc.problems[0]) if exc.problems else str(exc)
        raise LaunchError(f"run {stored.id}: its stored definition no longer loads",
                          exc.problems, detail=first) from None


def load_digest(path: Path) -> str | None:
    """The definition hash of the file on disk now (None when it does not load)."""
    try:
        return load_workflow(path).digest
    except WorkflowError:
        return None


def rebuild(stored: StoredRun, frontend: Frontend, *, secrets: bool = True,
            step_mode: bool = False, show_past: bool = False,
            say: Callable[[str], None] | None = None) -> Run:
    """The :class:`Run` of a stored run, to resume it: from its last definition
    (:func:`stored_workflow`), its params and options, its task states restored (what was
    running is interrupted) and its excluded hosts. Raises :class:`LaunchError`.

    ``secrets``: resolve them (a run only looked at needs none). ``step_mode``: every task
    needs approval even if the run did not ask for it (``resume --step``). ``show_past``
    (the console): every stored attempt is on its task (the detail pane lists them, a
    retry's comes after them) and the run's clock counts from its first start. ``say``:
    told when the file on disk changed since the run used it (None: not looked at).
    """
    workflow = stored_workflow(stored)
    path = workflow.path
    if say is not None and path is not None and path.is_file() \
            and load_digest(path) != stored.last_definition()[0]:
        say(f"{path} changed since run {stored.id} ran; resuming with the definition the "
            f"run used (`baton show {stored.id} --json` has its text)")
    saved = stored.run.options
    values = secrets_for(workflow) if secrets else {}
    try:
        run = frontend.new_run(workflow, params=dict(stored.run.params), secrets=values,
                               limit=tuple(saved.get("limit") or ()),
                               step_mode=bool(step_mode or saved.get("step_mode")),
                               start_at=saved.get("start_at"), run_id=stored.id)
    except LaunchError as exc:
        raise LaunchError(f"run {stored.id}: {exc}") from None
    run.restore(stored.tasks)
    if show_past:
        restore_attempts(run, stored)
        run.started = stored.run.started  # the clock of a resumed run counts from its start
    from console.engine.exclusion import restore_exclusions

    restore_exclusions(run, stored.actions)
    return run


def restore_attempts(run: Run, stored: StoredRun) -> None:
    """Give each task of a rebuilt run every attempt the store holds for it, so the
    detail pane lists them all (and a retry's attempt comes after them)."""
    from console.engine.task import Attempt

    for record in stored.tasks:
        task = run.tasks.get((record.step, record.host))
        if task is not None:
            task.attempts = [
                Attempt(a.number, a.started or 0.0, a.digest or "", a.command or "", a.ended,
                        a.exit_code, a.signal, TaskState(a.state) if a.state else None,
                        a.reason)
                for a in stored.attempts_of(record.step, record.host)]


def as_recorded(run: Run, stored: StoredRun) -> Run:
    """Make a rebuilt (never executed) run look exactly as stored: task states and reasons
    (``restore`` would turn running tasks into interrupted ones), attempts, run state."""
    run.restore_as_recorded(stored.tasks)
    restore_attempts(run, stored)
    run.state = RunState(stored.run.state)
    run.started, run.ended = stored.run.started, stored.run.ended
    return run


def view_stored(stored: StoredRun, frontend: Frontend) -> Run:
    """A stored run to look at, never executed: rebuilt without secrets, as recorded."""
    return as_recorded(rebuild(stored, frontend, secrets=False, show_past=True), stored)


def keep_undecided(run: Run, stored: StoredRun) -> Run:
    """Before a rollback: what ``restore`` turned back to pending to decide again on a
    resume (waiting for approval, blocked) stays as it was, since nothing goes forward."""
    run.restore_as_recorded(stored.tasks, only_pending=True)
    return run


def rebuild_for_rollback(stored: StoredRun, frontend: Frontend, *,
                         say: Callable[[str], None] | None = None) -> Run:
    """The run rebuilt as :func:`rebuild` does (as recorded, without ``--step``), its
    undecided tasks kept (:func:`keep_undecided`), ready for a rollback plan."""
    return keep_undecided(rebuild(stored, frontend, say=say), stored)


def not_resumable(state: str) -> str | None:
    """Why a stored run in ``state`` cannot go forward again (``already succeeded``,
    ``was rolled back``), None when it can be resumed."""
    if state == RunState.SUCCEEDED:
        return "already succeeded"
    if state == RunState.ROLLED_BACK:
        return "was rolled back"
    return None
