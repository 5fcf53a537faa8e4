"""An unknown SSH host key, asked in the console: host, key type and SHA256 fingerprint;
trust records it in known_hosts (as ``--accept-new-host-keys`` does), refuse fails the
connection. A changed key never reaches this dialog: the executor refuses it outright."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message_pump import MessagePump
from textual.widgets import Button, Label, Static

from console.executors.base import HostKeyQuestion
from console.ui.screens.modals import _Dialog


class HostKeyModal(_Dialog):
    """Dismisses with True (trust and record) or False (refuse; Esc too)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "choose(True)", "Trust and record", id="hostkey.trust"),
        Binding("n", "choose(False)", "Refuse", id="hostkey.refuse"),
    ]

    def __init__(self, question: HostKeyQuestion) -> None:
        super().__init__(classes="dialog-screen")
        self.question = question

    def compose(self) -> ComposeResult:
        q = self.question
        with Vertical(classes="dialog danger", id="hostkey-dialog"):
            yield Label(f"Unknown SSH host key: {q.host}", classes="dialog-title")
            yield Static(f"host:        {q.host} ({q.label})")
            yield Static(f"key type:    {q.key_type}")
            yield Static(Text.assemble("fingerprint: ", (q.fingerprint, "bold")))
            yield Static(f"No entry in {q.known_hosts} vouches for this key. Compare the "
                         "fingerprint with one you trust (ssh-keygen -lf on the host's key) "
                         "before you trust it; trusting records it there.",
                         classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Trust and record (t)", variant="warning", id="trust")
                yield Button("Refuse (n, esc)", variant="error", id="refuse")

    def action_dismiss_none(self) -> None:
        self.dismiss(False)

    def action_choose(self, trusted: bool) -> None:
        self.dismiss(trusted)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "trust")


class HostKeyAsk:
    """The run's host key asker (:data:`console.executors.base.HostKeyAsker`) for one
    console: each question is a dialog; every unanswered one is refused when the console
    lets go of the run (:meth:`close`)."""

    def __init__(self, owner: MessagePump) -> None:
        self.owner = owner
        """The screen asking (its app shows the dialog)."""
        self._pending: set[asyncio.Future[bool]] = set()

    async def __call__(self, question: HostKeyQuestion) -> bool:
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.add(answer)

        def answered(trusted: object) -> None:
            if not answer.done():
                answer.set_result(trusted is True)

        modal = HostKeyModal(question)
        self.owner.app.push_screen(modal, answered)
        try:
            return await answer
        except asyncio.CancelledError:  # answered elsewhere (another console): close it
            if modal.is_attached and modal.is_current:
                modal.dismiss(None)
            raise
        finally:
            self._pending.discard(answer)

    def close(self) -> None:
        for answer in list(self._pending):
            if not answer.done():
                answer.set_result(False)
