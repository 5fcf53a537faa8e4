"""A runner asks its attached consoles about unknown SSH host keys (docs/attach-protocol.md,
"Host key questions").

A runner has no dialog of its own: an SSH host whose key no ``known_hosts`` vouches for is
sent as a ``host_key`` question to every attached console that can answer (its hello said
``"host_keys": true``); the first answer decides (it is the operator's action, as the
dialog of an in-process run is), the others are told (``host_key_answered``) so their
dialogs close. With no such console the rule is today's: the key is refused (unless the run
has ``--accept-new-host-keys``), except while the runner waits for its first console (the
one that started it attaches a moment after the run starts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from console.executors.base import HostKeyQuestion

if TYPE_CHECKING:
    from console.engine.run import Run

FIRST_CONSOLE_GRACE = 30.0
"""Seconds a question waits for the runner's first console to attach."""


class Answerer(Protocol):
    user: str
    host_keys: bool
    read_only: bool

    def reply(self, message: dict[str, Any]) -> None: ...


class HostKeyForwarder:
    """The run's host key asker while a runner serves it (see module doc)."""

    def __init__(self, run: Run, clients: Callable[[], Iterable[Answerer]],
                 grace: float = FIRST_CONSOLE_GRACE) -> None:
        self.run = run
        self._clients = clients
        self._grace = grace
        self._ever = False
        self._changed = asyncio.Event()
        self._next = 0
        self._pending: dict[int, tuple[dict[str, Any], asyncio.Future[bool]]] = {}
        self.update()

    def answerers(self) -> list[Answerer]:
        return [c for c in self._clients() if c.host_keys and not c.read_only]

    def update(self) -> None:
        """A console came or went: with none left to answer, the run's rule is today's
        (no asker: refused), and what is pending is refused."""
        answerers = self.answerers()
        self._ever = self._ever or bool(answerers)
        self.run.host_key_prompt = self.ask if answerers or not self._ever else None
        self._changed.set()
        if not answerers and self._ever:
            for _message, answer in self._pending.values():
                if not answer.done():
                    answer.set_result(False)

    def offer(self, client: Answerer) -> None:
        """A console that can answer attached: it is asked what is pending."""
        for message, answer in self._pending.values():
            if not answer.done():
                client.reply(message)

    def answer(self, client: Answerer, message: dict[str, Any]) -> None:
        from console.runner.protocol import ProtocolError

        pending = self._pending.get(message.get("id"))  # type: ignore[arg-type]
        if pending is None or pending[1].done():
            raise ProtocolError(f"no open host key question {message.get('id')!r}")
        if client.read_only or not client.host_keys:
            raise ProtocolError("this connection does not answer host key questions")
        trust = message.get("trust")
        if not isinstance(trust, bool):
            raise ProtocolError("a host key answer needs 'trust': true or false")
        pending[1].set_result(trust)
        told = {"type": "host_key_answered", "id": message["id"], "trust": trust,
                "user": client.user}
        for other in self.answerers():
            other.reply(told)

    async def ask(self, question: HostKeyQuestion) -> bool:
        if not self.answerers() and (self._ever or not await self._first_console()):
            return False
        self._next += 1
        ident = self._next
        message = {"type": "host_key", "id": ident, "host": question.host,
                   "label": question.label, "key_type": question.key_type,
                   "fingerprint": question.fingerprint, "known_hosts": question.known_hosts}
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[ident] = (message, answer)
        try:
            for client in self.answerers():
                client.reply(message)
            return await answer
        finally:
            self._pending.pop(ident, None)

    async def _first_console(self) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._grace
        while not self.answerers():
            left = deadline - loop.time()
            if left <= 0 or self.run.closing:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
            except TimeoutError:
                pass
        return True

    def close(self) -> None:
        for _message, answer in self._pending.values():
            if not answer.done():
                answer.set_result(False)
        if self.run.host_key_prompt == self.ask:
            self.run.host_key_prompt = None
