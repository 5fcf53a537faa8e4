"""The ``[steps.*]`` tables of a workflow: each table -> a :class:`Step`, every bad value a
located problem. The step's templated values and its ``needs``/``on`` entries (each with its
own key path) are kept for the cross-step checks (:mod:`console.model.cross_checks`), which
need every step first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from console.model.locate import KeyPath
from console.model.names import bad_characters, printable
from console.model.reader import BARE_KEY, Reader, dotted, type_name
from console.model.recovery import RECOVERY_KEYS, read_recovery
from console.model.workflow import LOCAL, Step

__all__ = ["MAX_BACKOFF", "STEP_KEYS", "StepSection", "Template"]

STEP_KEYS = (
    "name", "description", "run", "on", "needs", "when", "timeout", "retries",
    "retry_delay", "retry_backoff", "confirm", "dangerous", "continue_on_error",
    "serial", "max_fail", "env", "cwd", "shell", *RECOVERY_KEYS,
)
MAX_BACKOFF = 100.0
"""The largest retry_backoff: delays grow by at most this factor per retry."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Located = list[tuple[str, KeyPath]]
"""Names, each with the key path that wrote it."""


@dataclass
class Template:
    """A templated value of a step, checked once every step is known."""

    path: KeyPath
    source: str
    expression: bool = False


class StepSection:
    """Reads step tables; keeps what the cross-step checks need."""

    def __init__(self, reader: Reader) -> None:
        self.r = reader
        self.templates: dict[str, list[Template]] = {}
        self.located: dict[str, tuple[Located, Located]] = {}
        """Step id -> (needs, on), each entry with its own key path for problems."""

    def step(self, step_id: str, value: Any) -> Step | None:
        r = self.r
        path = ("steps", step_id)
        if not BARE_KEY.fullmatch(step_id):
            r.report(path, f"step id {printable(step_id)} may only hold letters, digits, '_' "
                           "and '-'")
        table = r.table(value, path, STEP_KEYS)
        if table is None:
            return None
        if isinstance(table.get("name"), str):
            self.check_name(table["name"], (*path, "name"))
        templates = self.templates.setdefault(step_id, [])

        def templated(key: str, *, expression: bool = False) -> str | None:
            text = r.string(table, path, key)
            if text is not None:
                templates.append(Template((*path, key), text, expression))
            return text

        on = r.strings(table, path, "on", single=True)
        if on == []:
            r.error((*path, "on"), "must name at least one host, group, 'all' or 'local'")
        needs = r.strings(table, path, "needs", single=True) or []
        self.located[step_id] = (needs, on or [])
        confirm = table.get("confirm")
        if isinstance(confirm, bool):
            confirm = f"Run step '{step_id}'?" if confirm else None
        elif isinstance(confirm, str):
            confirm = templated("confirm") if confirm.strip() else None
            if confirm is None:
                r.error((*path, "confirm"), "prompt text is empty (use true for the default)")
        elif confirm is not None:
            r.error((*path, "confirm"), f"expected true, false or prompt text, "
                                        f"got {type_name(confirm)}")
            confirm = None
        serial = table.get("serial")
        if serial is not None:
            serial = r.batch_size(serial, (*path, "serial"))
        backoff = r.get(table, path, "retry_backoff", "number", 1.0)
        if backoff < 1:
            r.error((*path, "retry_backoff"), f"must be at least 1.0, got {backoff:g}")
        elif backoff > MAX_BACKOFF:
            r.error((*path, "retry_backoff"), f"must be at most {MAX_BACKOFF:g}, got {backoff:g}")
            backoff = 1.0
        shell = r.string(table, path, "shell", "/bin/sh", non_empty=True) or "/bin/sh"
        return Step(
            id=step_id,
            name=r.string(table, path, "name", step_id, non_empty=True) or step_id,
            description=r.string(table, path, "description", "") or "",
            run=templated("run"),
            on=tuple(dict.fromkeys(t for t, _ in on)) if on else (LOCAL,),
            needs=tuple(dict.fromkeys(n for n, _ in needs)),
            when=templated("when", expression=True),
            timeout=r.duration(table, path, "timeout", positive=True),
            retries=r.integer(table, path, "retries", 0, minimum=0) or 0,
            retry_delay=r.duration(table, path, "retry_delay", 0.0) or 0.0,
            retry_backoff=max(backoff, 1.0),
            confirm=confirm,
            dangerous=r.boolean(table, path, "dangerous"),
            continue_on_error=r.boolean(table, path, "continue_on_error"),
            serial=serial,
            max_fail=r.integer(table, path, "max_fail", None, minimum=0),
            env=self.step_env(table, path, templates),
            cwd=templated("cwd"),
            shell=shell,
            **read_recovery(r, table, path, templated),
        )

    def check_name(self, name: str, where: KeyPath) -> None:
        """A name shown to the operator holds no control characters (an escape sequence in
        a name would drive the operator's terminal); blank is refused by the reader."""
        if bad_characters(name):
            self.r.error(where, f"may not hold control characters, got {printable(name)}")

    def step_env(self, table: dict[str, Any], path: KeyPath,
                 templates: list[Template]) -> dict[str, str]:
        raw = self.r.get(table, path, "env", "table", {})
        env: dict[str, str] = {}
        for key, value in raw.items():
            where = (*path, "env", key)
            if not _ENV_NAME.fullmatch(key):
                self.r.report(where, f"{dotted(path)}.env: invalid variable name {key!r}")
                continue
            if isinstance(value, bool):
                env[key] = "true" if value else "false"
            elif isinstance(value, int | float):
                env[key] = str(value)
            elif isinstance(value, str):
                env[key] = value
                templates.append(Template(where, value))
            else:
                self.r.report(where, f"{dotted(path)}.env.{key}: expected a string, number or "
                                     f"boolean, got {type_name(value)}")
        return env
