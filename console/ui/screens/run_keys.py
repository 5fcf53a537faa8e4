"""The run screen's keys: its bindings (ids remappable through the user config's
``[keys]``), which of their actions change the run, the reason prompts of the task actions,
and the order the footer shows them in. Whether a task action applies to the selection is
the engine's answer (:meth:`console.engine.run.Run.allowed`), so the footer, the palette
and the Run never disagree."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from textual.binding import ActiveBinding, Binding, BindingType


def _b(key: str, action: str, description: str, tooltip: str, *, show: bool = True) -> Binding:
    return Binding(key, action, description, show=show, tooltip=tooltip, id=f"baton.{action}")


RUN_BINDINGS: list[BindingType] = [
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

TASK_ACTIONS: dict[str, str] = {
    "approve": "approve",
    "deny": "deny",
    "done": "done",
    "retry": "retry",
    "retry_downstream": "retry_downstream",
    "skip": "skip",
    "mark_succeeded": "mark_succeeded",
    "mark_failed": "mark_failed",
    "cancel_task": "cancel",
}
"""Console action -> the engine's name of that task action."""

OPERATOR_ACTIONS = frozenset({*TASK_ACTIONS, "pause", "breakpoint", "step_mode", "note", "start",
                              "exclude_host", "rollback", "rollback_downstream",
                              "rollback_run"})
"""Actions that change the run: none of them is allowed with --read-only."""

REASON_PROMPTS: dict[str, tuple[str, bool]] = {
    "deny": ("Deny '{}'", False),
    "skip": ("Skip '{}'", False),
    "mark_succeeded": ("Mark '{}' succeeded", True),
    "mark_failed": ("Mark '{}' failed", True),
    "cancel_task": ("Cancel '{}'? Enter cancels it (TERM, then KILL)", False),
}
"""Task actions that ask for a reason first: the prompt's title (the selection's label
goes in) and whether the reason is required."""


def footer_order(bindings: dict[str, ActiveBinding], needs_operator: int, width: int,
                 key_display: Callable[[Binding], str]) -> dict[str, ActiveBinding]:
    """The footer's keys: "Needs you" carries how many tasks wait for the operator; when
    the keys do not all fit in ``width``, help, quit and "Needs you" come first, so they
    always show."""
    for key, active in bindings.items():
        if active.binding.action == "next_attention":
            described = dataclasses.replace(active.binding,
                                            description=f"Needs you: {needs_operator}")
            bindings[key] = active._replace(binding=described)
    shown = [a for a in bindings.values() if a.binding.show]
    needed = sum(len(key_display(a.binding)) + len(a.binding.description) + 3 for a in shown)
    if needed > width:
        first = [k for k, a in bindings.items()
                 if a.binding.action in ("help", "quit", "next_attention")]
        bindings = {k: bindings[k] for k in first} | {
            k: a for k, a in bindings.items() if k not in first}
    return bindings
