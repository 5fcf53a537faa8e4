"""Modals: gate approval, dangerous-step approval, reason/note prompts, quit."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


def make_input(app: object, **kwargs: object) -> Input:
    """An Input honouring the app's ``blink`` setting (snapshots turn blinking off)."""
    field = Input(**kwargs)  # type: ignore[arg-type]
    field.cursor_blink = bool(getattr(app, "blink", True))
    return field


class _Dialog(ModalScreen[object]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "Cancel", id="modal.cancel"),
    ]

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class GateModal(_Dialog):
    """Approve or deny a gate; shows the prompt, rendered command and target hosts."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a,enter", "choose('approve')", "Approve", id="gate.approve"),
        Binding("D", "choose('deny')", "Deny", id="gate.deny"),
    ]

    def __init__(self, title: str, prompt: str, command: str, hosts: list[str]) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.prompt = prompt
        self.command = command
        self.hosts = hosts

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="gate-dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.prompt, classes="dialog-prompt")
            yield Label(f"hosts: {', '.join(self.hosts) or 'none'}")
            yield Label("command:")
            yield Static(Text(self.command.rstrip("\n")), classes="dialog-command")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Approve (a)", variant="success", id="approve")
                yield Button("Deny (D)", variant="error", id="deny")
                yield Button("Cancel (esc)", id="cancel")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None if event.button.id == "cancel" else event.button.id)


class DangerousModal(_Dialog):
    """A dangerous step: approval requires typing the step id."""

    def __init__(self, step_id: str, title: str, command: str, hosts: list[str]) -> None:
        super().__init__(classes="dialog-screen")
        self.step_id = step_id
        self.title_text = title
        self.command = command
        self.hosts = hosts

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog danger", id="danger-dialog"):
            yield Label(f"DANGEROUS: {self.title_text}", classes="dialog-title")
            yield Label(f"hosts: {', '.join(self.hosts) or 'none'}")
            yield Static(Text(self.command.rstrip("\n")), classes="dialog-command")
            yield Label(f"Type '{self.step_id}' and press Enter to approve (Esc cancels).")
            yield make_input(self.app, placeholder=self.step_id, id="confirm-id")
            yield Label("", id="confirm-error", classes="dialog-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip() == self.step_id:
            self.dismiss("approve")
        else:
            self.query_one("#confirm-error", Label).update(
                f"'{event.value.strip()}' is not '{self.step_id}': not approved")


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
    """Quitting while tasks run: cancel them (and quit) or stay."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "choose(True)", "Cancel tasks and quit", id="quit.yes"),
        Binding("n", "dismiss_none", "Stay", id="quit.no"),
    ]

    def __init__(self, running: list[str]) -> None:
        super().__init__(classes="dialog-screen")
        self.running = running

    def compose(self) -> ComposeResult:
        shown = ", ".join(self.running[:6]) + (" …" if len(self.running) > 6 else "")
        count = len(self.running)
        with Vertical(classes="dialog", id="quit-dialog"):
            yield Label("Quit while tasks run?", classes="dialog-title")
            yield Static(f"{count} task{'s' * (count != 1)} still running: {shown}")
            yield Static("Quitting cancels them (TERM, then KILL after a grace period).")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel tasks and quit (y)", variant="error", id="yes")
                yield Button("Stay (n)", id="no")

    def action_choose(self, choice: bool) -> None:
        self.dismiss(choice)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(True if event.button.id == "yes" else None)
