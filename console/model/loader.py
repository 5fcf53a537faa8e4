"""Load and validate workflow files: TOML text -> :class:`Workflow`, every problem located.

Validation never stops at the first problem: everything that can be checked is checked,
and all problems are raised together in one :class:`WorkflowError`, each with the file,
line and (where known) column of the key at fault.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from console.model.cross_checks import CrossChecks
from console.model.host_section import hosts_and_ssh
from console.model.locate import KeyPath
from console.model.names import bad_characters, printable
from console.model.problems import Problem, WorkflowError
from console.model.reader import (
    KIND_NAMES,
    Reader,
    dotted,
    is_kind,
    parse_toml,
    read_text,
    suggest,
    type_name,
)
from console.model.rollout_rules import steps_between
from console.model.step_section import StepSection
from console.model.workflow import (
    DEFAULT_LOG_LIMIT,
    MIN_LOG_LIMIT,
    Host,
    Param,
    Rollout,
    Secret,
    Step,
    Workflow,
)

__all__ = ["Problem", "Reader", "WorkflowError", "load_text", "load_workflow", "suggest"]


# --- loading -------------------------------------------------------------------------


def load_workflow(path: Path | str) -> Workflow:
    """Load and validate a workflow file; raises :class:`WorkflowError` listing every problem."""
    text, reason = read_text(Path(path))
    if text is None:
        raise WorkflowError([Problem(str(path), None, None, reason or "cannot read file")])
    return load_text(text, path)


def load_text(text: str, path: Path | str = "<string>") -> Workflow:
    """Load and validate workflow TOML ``text``; ``path`` names it in problems and resolves
    a relative inventory (``"<string>"``: relative to the current directory)."""
    file = str(path)
    problems: list[Problem] = []
    data = parse_toml(text, file, problems)
    if data is None:
        raise WorkflowError(problems)
    real_path = None if file == "<string>" else Path(path)
    workflow = _Builder(Reader(file, text, problems), real_path).build(data, text)
    if problems:
        problems.sort(key=lambda p: (p.file != file, p.file, p.line or 0, p.col or 0))
        raise WorkflowError(problems)
    assert workflow is not None
    return workflow


TOP_KEYS = ("workflow", "params", "secrets", "ssh", "hosts", "steps", "rollouts")
WORKFLOW_KEYS = ("name", "description", "concurrency", "inventory", "log_limit", "exclusive")
PARAM_KEYS = ("type", "choices", "default", "required", "description")
PARAM_TYPES = ("string", "int", "float", "bool", "choice")
SECRET_KEYS = ("env", "file", "command", "optional")
ROLLOUT_KEYS = ("steps", "serial", "max_fail", "pause_between", "on_failure")
ON_FAILURE = ("stop", "pause", "rollback")


_PARAM_TYPES = {"boolean": "bool", "integer": "int", "float": "float", "string": "string"}
"""TOML type name -> the param type a shorthand value of that type declares."""


def _infer_type(value: Any) -> str | None:
    return _PARAM_TYPES.get(type_name(value))


class _Builder:
    def __init__(self, reader: Reader, path: Path | None) -> None:
        self.r = reader
        self.path = path
        self.params: dict[str, Param] = {}
        self.secrets: dict[str, Secret] = {}
        self.hosts: dict[str, Host] = {}
        self.steps: dict[str, Step] = {}

    def build(self, data: dict[str, Any], text: str) -> Workflow | None:
        r = self.r
        r.table(data, (), TOP_KEYS)
        meta = self.workflow_table(data)
        self.params = self.section(data, "params", self.param)
        self.secrets = self.section(data, "secrets", self.secret)
        ssh, self.hosts = hosts_and_ssh(r, data, meta.get("inventory"), self.path)
        steps = StepSection(r)
        self.steps = self.section(data, "steps", steps.step)
        CrossChecks(r, text, steps=self.steps, params=self.params, secrets=self.secrets,
                    hosts=self.hosts, templates=steps.templates, located=steps.located).check()
        rollouts = self.rollouts(data)
        if not r.problems:
            for gap in steps_between(Workflow(name="", steps=self.steps, rollouts=rollouts)):
                r.error(("rollouts", gap.rollout, "steps"), gap.message())
        if r.problems:
            return None
        return Workflow(
            name=meta["name"],
            path=self.path,
            description=meta["description"],
            concurrency=meta["concurrency"],
            inventory=meta.get("inventory"),
            log_limit=meta.get("log_limit", DEFAULT_LOG_LIMIT),
            exclusive=meta.get("exclusive", False),
            params=self.params,
            secrets=self.secrets,
            ssh=ssh,
            hosts=self.hosts,
            steps=self.steps,
            rollouts=rollouts,
            source=text,
            digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        )

    def section(self, data: dict[str, Any], key: str, parse: Any) -> dict[str, Any]:
        """Parse every entry of a top-level table of named things."""
        out: dict[str, Any] = {}
        if key not in data:
            return out
        table = self.r.table(data[key], (key,))
        for name, value in (table or {}).items():
            item = parse(name, value)
            if item is not None:
                out[name] = item
        return out

    # -- [workflow] ---------------------------------------------------------------
    def workflow_table(self, data: dict[str, Any]) -> dict[str, Any]:
        r = self.r
        meta: dict[str, Any] = {"name": "", "description": "", "concurrency": 16}
        if "workflow" not in data:
            r.report((), 'missing [workflow] table (it needs at least name = "...")',
                     line=None, col=None)
            return meta
        path = ("workflow",)
        table = r.table(data["workflow"], path, WORKFLOW_KEYS)
        if table is None:
            return meta
        if "name" not in table:
            r.report(path, "workflow.name is required")
        meta["name"] = r.string(table, path, "name", "", non_empty=True)
        if meta["name"] and bad_characters(meta["name"]):
            r.error((*path, "name"), f"may not hold control characters, got "
                                     f"{printable(meta['name'])}")
            meta["name"] = ""
        meta["description"] = r.string(table, path, "description", "")
        meta["concurrency"] = r.integer(table, path, "concurrency", 16, minimum=1)
        meta["inventory"] = r.string(table, path, "inventory", None, non_empty=True)
        meta["log_limit"] = r.size(table, path, "log_limit", DEFAULT_LOG_LIMIT,
                                   minimum=MIN_LOG_LIMIT)
        meta["exclusive"] = r.boolean(table, path, "exclusive", False)
        return meta

    # -- [params] / [secrets] -----------------------------------------------------
    def param(self, name: str, value: Any) -> Param | None:
        r = self.r
        path = ("params", name)
        if not isinstance(value, dict):
            inferred = _infer_type(value)
            if inferred is None:
                r.error(path, "expected a string, integer, float, boolean or table, "
                              f"got {type_name(value)}")
                return None
            if isinstance(value, float) and not math.isfinite(value):
                r.error(path, f"must be a finite number, got {value}")
                return None
            return Param(name=name, type=inferred, default=value)  # type: ignore[arg-type]
        table = r.table(value, path, PARAM_KEYS)
        assert table is not None
        ptype = r.string(table, path, "type")
        if ptype is not None and ptype not in PARAM_TYPES:
            r.error((*path, "type"), f"unknown type '{ptype}'{suggest(ptype, PARAM_TYPES)}; "
                                     f"expected one of {', '.join(PARAM_TYPES)}")
            return None
        choices: list[Any] = []
        for index, choice in enumerate(r.get(table, path, "choices", "array", [])):
            if _infer_type(choice) is None:
                r.report((*path, "choices", index),
                         f"{dotted(path)}.choices: expected strings or numbers, "
                         f"got {type_name(choice)}")
            else:
                choices.append(choice)
        if ptype is None:
            ptype = "choice" if "choices" in table else _infer_type(table.get("default"))
            ptype = ptype or "string"
        if ptype == "choice" and not choices and "choices" not in table:
            r.error(path, 'type = "choice" needs a choices list')
        elif ptype == "choice" and table["choices"] == []:
            r.error((*path, "choices"), "must list at least one choice")
        elif ptype != "choice" and "choices" in table:
            r.error((*path, "choices"), f'choices needs type = "choice", not "{ptype}"')
        default = table.get("default")
        if default is not None:
            default = self.param_default(path, ptype, default, choices)
        return Param(
            name=name,
            type=ptype,  # type: ignore[arg-type]
            default=default,
            required=r.boolean(table, path, "required"),
            choices=tuple(choices),
            description=r.string(table, path, "description", "") or "",
        )

    def param_default(self, path: KeyPath, ptype: str, default: Any, choices: list[Any]) -> Any:
        where = (*path, "default")
        if ptype == "choice":
            if choices and default not in choices:
                listed = ", ".join(json.dumps(c) for c in choices)
                self.r.error(where, f"{json.dumps(default, default=str)} is not one of the "
                                    f"choices ({listed})")
                return None
            return default
        if isinstance(default, float) and not math.isfinite(default):
            self.r.error(where, f"must be a finite number, got {default}")
            return None
        if ptype == "float" and is_kind(default, "number"):
            return float(default)
        kind = {"string": "string", "int": "integer", "bool": "boolean"}.get(ptype, "number")
        if not is_kind(default, kind):
            self.r.error(where, f"expected {KIND_NAMES[kind]}, got {type_name(default)}")
            return None
        return default

    def secret(self, name: str, value: Any) -> Secret | None:
        r = self.r
        path = ("secrets", name)
        table = r.table(value, path, SECRET_KEYS)
        if table is None:
            return None
        given = [key for key in SECRET_KEYS[:3] if key in table]
        if len(given) != 1:
            r.error(path, "needs exactly one of env, file or command")
            return None
        source = given[0]
        text = r.string(table, path, source, non_empty=True)
        if not text:
            return None
        optional = r.boolean(table, path, "optional")
        return Secret(name=name, source=source, value=text,  # type: ignore[arg-type]
                      optional=optional)

    # -- [rollouts] ---------------------------------------------------------------
    def rollouts(self, data: dict[str, Any]) -> dict[str, Rollout]:
        owner: dict[str, str] = {}
        out: dict[str, Rollout] = {}
        if "rollouts" not in data:
            return out
        for name, value in (self.r.table(data["rollouts"], ("rollouts",)) or {}).items():
            rollout = self.rollout(name, value, owner)
            if rollout is not None:
                out[name] = rollout
        return out

    def rollout(self, name: str, value: Any, owner: dict[str, str]) -> Rollout | None:
        r = self.r
        path = ("rollouts", name)
        table = r.table(value, path, ROLLOUT_KEYS)
        if table is None:
            return None
        steps: list[str] = []
        listed = r.strings(table, path, "steps")
        if listed is None and "steps" not in table:
            r.error(path, "steps is required (the step ids this rollout spans)")
        elif listed == [] and isinstance(table.get("steps"), list) and not table["steps"]:
            r.error((*path, "steps"), "must list at least one step")
        for step_id, where in listed or []:
            if step_id not in self.steps:
                r.report(where, f"{dotted(path)}.steps: unknown step '{step_id}'"
                                f"{suggest(step_id, self.steps)}")
            elif step_id in owner and owner[step_id] != name:
                r.report(where, f"{dotted(path)}.steps: step '{step_id}' is already in rollout "
                                f"'{owner[step_id]}'")
            elif step_id not in steps:
                owner[step_id] = name
                steps.append(step_id)
        serial: list[int | str] = []
        raw_serial = table.get("serial", ["100%"])
        items = raw_serial if isinstance(raw_serial, list) else [raw_serial]
        if isinstance(raw_serial, list) and not raw_serial:
            r.error((*path, "serial"), "must list at least one batch size")
        for index, item in enumerate(items):
            where = (*path, "serial", index) if isinstance(raw_serial, list) else (*path, "serial")
            size = r.batch_size(item, where)
            if size is not None:
                serial.append(size)
        return Rollout(
            name=name,
            steps=tuple(steps),
            serial=tuple(serial) or ("100%",),
            max_fail=r.integer(table, path, "max_fail", 0, minimum=0) or 0,
            pause_between=r.boolean(table, path, "pause_between"),
            on_failure=self.on_failure(table, path),
        )

    def on_failure(self, table: dict[str, Any], path: KeyPath) -> str:
        value = self.r.string(table, path, "on_failure", "stop") or "stop"
        if value not in ON_FAILURE:
            self.r.error((*path, "on_failure"), f"must be one of {', '.join(ON_FAILURE)}, "
                         f"not '{value}'{suggest(value, ON_FAILURE)}")
            return "stop"
        return value
