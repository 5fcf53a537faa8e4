"""Modals: gate approval, dangerous-step approval, reason/note prompts, quit."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from console.engine.texts import CommandGroup
from console.ui.commands import command_lines
from console.ui.widgets.inputs import make_input

if TYPE_CHECKING:
    from console.engine.run import Run
    from console.engine.task import Task


class _Dialog(ModalScreen[object]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "Cancel", id="modal.cancel"),
    ]

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


def _commands(groups: list[CommandGroup]) -> VerticalScroll:
    """The command(s) per host, labelled, in a scrolling box (a fleet has many)."""
    lines = command_lines(groups)
    return VerticalScroll(*(Static(line, classes="dialog-command" if line.style == ""
                                   else "dialog-command-label") for line in lines),
                          classes="dialog-commands")


def _hosts_line(hosts: list[str]) -> str:
    shown = ", ".join(hosts[:12]) + (f" +{len(hosts) - 12} more" if len(hosts) > 12 else "")
    return f"hosts ({len(hosts)}): {shown}" if len(hosts) > 1 else f"host: {shown or 'none'}"


class _Approval(_Dialog):
    """What an approval shows: the rendered prompt, each host's command and the hosts."""

    def __init__(self, title: str, prompt: str, groups: list[CommandGroup],
                 hosts: list[str]) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.prompt = prompt
        self.groups = groups
        self.hosts = hosts

    @property
    def commands(self) -> dict[str, str]:
        """The command of each host, as shown."""
        return {host: group.command for group in self.groups for host in group.hosts}

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None if event.button.id == "cancel" else event.button.id)


class GateModal(_Approval):
    """Approve (a, Enter) or deny (D) a gate."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a,enter", "choose('approve')", "Approve", id="gate.approve"),
        Binding("D", "choose('deny')", "Deny", id="gate.deny"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="gate-dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(Text(self.prompt), classes="dialog-prompt")
            yield Label(_hosts_line(self.hosts))
            yield _commands(self.groups)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Approve (a)", variant="success", id="approve")
                yield Button("Deny (D)", variant="error", id="deny")
                yield Button("Cancel (esc)", id="cancel")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)


class DangerousModal(_Approval):
    """A dangerous step: approval requires typing the step id; Deny is a button (Tab)."""

    def __init__(self, step_id: str, title: str, prompt: str, groups: list[CommandGroup],
                 hosts: list[str]) -> None:
        super().__init__(title, prompt, groups, hosts)
        self.step_id = step_id

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog danger", id="danger-dialog"):
            yield Label(f"DANGEROUS: {self.title_text}", classes="dialog-title")
            if self.prompt:
                yield Static(Text(self.prompt), classes="dialog-prompt")
            yield Label(_hosts_line(self.hosts))
            yield _commands(self.groups)
            yield Label(f"Type '{self.step_id}' and press Enter to approve.")
            yield make_input(self.app, placeholder=self.step_id, id="confirm-id")
            yield Label("", id="confirm-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Deny (tab, enter)", variant="error", id="deny")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#confirm-id", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip() == self.step_id:
            self.dismiss("approve")
        else:
            self.query_one("#confirm-error", Label).update(
                f"'{event.value.strip()}' is not '{self.step_id}': not approved")


def approval_dialog(run: Run, step_id: str, host: str | None,
                    waiting: list[Task]) -> GateModal | DangerousModal:
    """The dialog approving ``waiting`` (the selection's tasks awaiting approval): the
    rendered prompt of each (one line per distinct prompt when hosts differ), the command
    each host will run, the hosts; a dangerous step asks for its id."""
    step = run.workflow.steps[step_id]
    hosts = [t.host for t in waiting]
    groups = run.command_groups(step_id, hosts)
    title = f"Approve '{run.step_name(step_id, host)}'" + (f" on {host}" if host else "")
    prompts: dict[str, list[str]] = {}
    for task in waiting:
        prompts.setdefault(task.reason or "", []).append(task.host)
    if step.dangerous:  # the dialog says how to approve: keep only a real prompt
        prompts.pop(f"dangerous step: type '{step_id}' to approve", None)
    if not prompts:
        prompt = ""
    elif len(prompts) == 1:
        prompt = next(iter(prompts)) or "Approve?"
    else:
        prompt = "\n".join(f"{', '.join(on)}: {text}" for text, on in prompts.items())
    if step.dangerous:
        return DangerousModal(step_id, title, prompt, groups, hosts)
    return GateModal(title, prompt, groups, hosts)


class TextPrompt(_Dialog):
    """One line of text: a reason (skip, mark succeeded/failed, deny) or a note."""

    def __init__(self, title: str, placeholder: str, *, required: bool) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.placeholder = placeholder
        self.required = required

    def compose(self) -> ComposeResult:
        hint = "required" if self.required else "optional"
        with Vertical(classes="dialog", id="prompt-dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield make_input(self.app, placeholder=f"{self.placeholder} ({hint})", id="text")
            yield Label("Enter confirms · Esc cancels", classes="dialog-hint")
            yield Label("", id="text-error", classes="dialog-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if self.required and not text:
            self.query_one("#text-error", Label).update("a reason is required")
            return
        self.dismiss(text)


class QuitModal(_Dialog):
    """Leaving while the run is live (anything not finished: tasks running, or only gates
    and manual steps waiting): cancel the run, or stay. Dismisses with "cancel" or
    "stay" (Esc too); the run screen records the answer as an operator action."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "choose('cancel')", "Cancel the run", id="quit.yes"),
        Binding("n", "choose('stay')", "Stay", id="quit.no"),
    ]

    def __init__(self, state: str, running: list[str], waiting: list[str],
                 *, verb: str = "quit") -> None:
        super().__init__(classes="dialog-screen")
        self.state = state
        self.running = running
        self.waiting = waiting
        self.verb = verb

    @staticmethod
    def _some(labels: list[str]) -> str:
        return ", ".join(labels[:6]) + (" …" if len(labels) > 6 else "")

    def what_is_live(self) -> ComposeResult:
        """The lines naming what runs and what waits (the first few of each)."""
        if self.running:
            yield Static(f"{len(self.running)} running: {self._some(self.running)}")
        if self.waiting:
            yield Static(f"{len(self.waiting)} waiting for an operator: "
                         f"{self._some(self.waiting)}")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="quit-dialog"):
            yield Label(f"The run is {self.state}: {self.verb} anyway?", classes="dialog-title")
            yield from self.what_is_live()
            yield Static("Cancelling the run stops what runs (TERM, then KILL after a grace "
                         "period) and cancels what waits. Your answer goes in the timeline.")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"Cancel the run and {self.verb} (y)", variant="error", id="cancel")
                yield Button("Stay (n, esc)", id="stay")

    def action_dismiss_none(self) -> None:
        self.dismiss("stay")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id)
