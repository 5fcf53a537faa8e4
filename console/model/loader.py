"""Load and validate workflow files: TOML text -> :class:`Workflow`, every problem located.

Validation never stops at the first problem: everything that can be checked is checked,
and all problems are raised together in one :class:`WorkflowError`, each with the file,
line and (where known) column of the key at fault.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from console.model.conditions import STATUS_FUNCTIONS, status_calls
from console.model.locate import KeyPath
from console.model.problems import Problem, WorkflowError
from console.model.reader import (
    BARE_KEY,
    KIND_NAMES,
    Reader,
    dotted,
    is_kind,
    parse_toml,
    read_text,
    suggest,
    type_name,
)
from console.model.recovery import RECOVERY_KEYS, check_delegate, read_recovery
from console.model.rollout_rules import steps_between
from console.model.templating import TemplateError, analyze
from console.model.workflow import (
    ALL,
    DEFAULT_LOG_LIMIT,
    LOCAL,
    MIN_LOG_LIMIT,
    Host,
    Param,
    Rollout,
    Secret,
    SSHOptions,
    Step,
    Workflow,
    step_order,
    upstream_of,
)

__all__ = ["Problem", "Reader", "WorkflowError", "load_text", "load_workflow"]


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
STEP_KEYS = (
    "name", "description", "run", "on", "needs", "when", "timeout", "retries",
    "retry_delay", "retry_backoff", "confirm", "dangerous", "continue_on_error",
    "serial", "max_fail", "env", "cwd", "shell", *RECOVERY_KEYS,
)
ROLLOUT_KEYS = ("steps", "serial", "max_fail", "pause_between", "on_failure")
ON_FAILURE = ("stop", "pause", "rollback")
MAX_BACKOFF = 100.0
"""The largest retry_backoff: delays grow by at most this factor per retry."""
SHELL_TEMPLATES = ("run", "undo")
"""Step keys whose templates are shell scripts, checked for safe quoting."""
CONTEXT_NAMES = ("params", "secrets", "host", "steps", "run", "workflow")


@functools.cache
def _template_names() -> frozenset[str]:
    """Names a template may use freely (Jinja is imported only once a template needs it)."""
    from jinja2.defaults import DEFAULT_NAMESPACE

    return frozenset({*CONTEXT_NAMES, *DEFAULT_NAMESPACE, "loop", "true", "false", "none",
                      "True", "False", "None"})


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_PARAM_TYPES = {"boolean": "bool", "integer": "int", "float": "float", "string": "string"}
"""TOML type name -> the param type a shorthand value of that type declares."""


def _infer_type(value: Any) -> str | None:
    return _PARAM_TYPES.get(type_name(value))


@dataclass
class _Template:
    """A templated value of a step, checked once every step is known."""

    path: KeyPath
    source: str
    expression: bool = False


class _Builder:
    def __init__(self, reader: Reader, path: Path | None) -> None:
        self.r = reader
        self.path = path
        self.text = ""
        self._upstream_cache: dict[str, set[str]] = {}
        self.params: dict[str, Param] = {}
        self.secrets: dict[str, Secret] = {}
        self.hosts: dict[str, Host] = {}
        self.steps: dict[str, Step] = {}
        self.templates: dict[str, list[_Template]] = {}
        self.located: dict[str, tuple[list[tuple[str, KeyPath]], list[tuple[str, KeyPath]]]] = {}
        """Step id -> (needs, on), each entry with its own key path for problems."""

    def build(self, data: dict[str, Any], text: str) -> Workflow | None:
        r = self.r
        self.text = text
        r.table(data, (), TOP_KEYS)
        meta = self.workflow_table(data)
        self.params = self.section(data, "params", self.param)
        self.secrets = self.section(data, "secrets", self.secret)
        ssh, self.hosts = self.hosts_and_ssh(data, meta.get("inventory"))
        self.steps = self.section(data, "steps", self.step)
        self.check_steps()
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

    # -- [ssh] / [hosts] / inventory ----------------------------------------------
    def hosts_and_ssh(self, data: dict[str, Any],
                      inventory: str | None) -> tuple[SSHOptions, dict[str, Host]]:
        from console.model import inventory as inv

        r = self.r
        ssh_fields = inv.parse_ssh(r, data["ssh"]) if "ssh" in data else {}
        own = inv.parse_hosts(r, data["hosts"]) if "hosts" in data else {}
        readers = dict.fromkeys(own, r)
        base = SSHOptions()
        hosts: dict[str, Host] = {}
        if inventory:
            where = ("workflow", "inventory")
            if inventory.startswith("ansible:"):
                hosts = self.ansible_hosts(inventory, where)
                readers.update(dict.fromkeys(hosts, r))
                for name in own:
                    if name in hosts:
                        r.error(("hosts", name), f"host '{name}' is also defined in {inventory}")
            else:
                folder = self.path.parent if self.path else Path.cwd()
                found = inv.read_inventory(folder / Path(inventory).expanduser(), r.problems)
                if isinstance(found, str):
                    r.error(where, f"cannot read inventory '{inventory}': {found}")
                else:
                    inv_ssh, hosts, inv_reader = found
                    base = SSHOptions(**inv_ssh)
                    readers.update(dict.fromkeys(hosts, inv_reader))
                    for name in own:
                        if name in hosts:
                            r.error(("hosts", name),
                                    f"host '{name}' is also defined in {inv_reader.file}")
                            readers[name] = r
        hosts.update(own)
        inv.check_hosts(hosts, readers)
        for name, host in hosts.items():  # shown in every label: no escape sequences
            for what in (name, *host.groups):
                if bad_characters(what):
                    reader = readers.get(name, r)
                    reader.report(("hosts", name), f"host or group name {printable(what)} may "
                                                   "not hold control characters")
        return SSHOptions(**{**base.__dict__, **ssh_fields}), hosts

    def ansible_hosts(self, inventory: str, where: KeyPath) -> dict[str, Host]:
        """Hosts of ``ansible:FILE``; its problems are located in that file."""
        from console.model.ansible import AnsibleInventoryError, load_ansible_inventory

        folder = self.path.parent if self.path else Path.cwd()
        target = folder / Path(inventory.removeprefix("ansible:")).expanduser()
        try:
            return load_ansible_inventory(target)
        except AnsibleInventoryError as exc:
            match = re.match(r"^(.*?):(\d+): (.*)$", str(exc))
            if match:
                self.r.problems.append(Problem(match[1], int(match[2]), None, match[3]))
            else:
                self.r.error(where, f"cannot import inventory '{inventory}': {exc}")
            return {}

    # -- [steps] ------------------------------------------------------------------
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
                templates.append(_Template((*path, key), text, expression))
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
                 templates: list[_Template]) -> dict[str, str]:
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
                templates.append(_Template(where, value))
            else:
                self.r.report(where, f"{dotted(path)}.env.{key}: expected a string, number or "
                                     f"boolean, got {type_name(value)}")
        return env

    def check_steps(self) -> None:
        """Cross-step checks: needs, targets, cycles, template references."""
        r = self.r
        groups = {g for host in self.hosts.values() for g in host.groups}
        targets = {LOCAL, ALL, *self.hosts, *groups}
        for step_id in self.steps:
            path = ("steps", step_id)
            needs, on = self.located[step_id]
            for need, where in needs:
                if need not in self.steps:
                    r.report(where, f"{dotted(path)}.needs: unknown step '{need}'"
                                    f"{suggest(need, self.steps)}")
            for target, where in on:
                if target not in targets:
                    r.report(where, f"{dotted(path)}.on: unknown host or group '{target}'"
                                    f"{suggest(target, targets)}")
                elif target == ALL and not self.hosts:
                    r.report(where, f"{dotted(path)}.on: 'all' matches no hosts "
                                    "(no [hosts] defined)")
            check_delegate(r, path, self.steps[step_id].delegate, self.hosts, {*groups, ALL})
        self.check_cycles()
        for step_id in self.steps:
            for template in self.templates.get(step_id, []):
                self.check_template(step_id, template)

    def check_cycles(self) -> None:
        if len(step_order(self.steps)) == len(self.steps):
            return
        graph = {sid: s.needs for sid, s in self.steps.items()}
        try:  # graphlib names the cycle
            TopologicalSorter({sid: [n for n in needs if n in graph]
                               for sid, needs in graph.items()}).prepare()
        except CycleError as exc:
            cycle = list(reversed(exc.args[1]))[:-1]  # "a -> b": a needs b
            order = list(self.steps)
            first = min(range(len(cycle)), key=lambda i: order.index(cycle[i]))
            cycle = cycle[first:] + cycle[:first]
            self.r.report(("steps", cycle[0], "needs"),
                          f"dependency cycle: {' -> '.join([*cycle, cycle[0]])}")

    def _upstream(self, step_id: str) -> set[str]:
        """Computed only for steps whose templates read ``steps.*``: O(edges) each."""
        cached = self._upstream_cache.get(step_id)
        if cached is not None:
            return cached
        seen = self._upstream_cache[step_id] = upstream_of(self.steps, step_id)
        return seen

    def check_template(self, step_id: str, template: _Template) -> None:
        r = self.r
        label = dotted(template.path)
        try:
            refs = analyze(template.source, expression=template.expression)
        except TemplateError as exc:
            line, col = self._template_position(template, exc.line)
            message = exc.message.rstrip(".")
            r.report(template.path, f"{label}: template error: {message}", line=line,
                     col=col)
            return

        def at(word: str, message: str) -> None:
            line, col = self._template_position(template, _line_of(template.source, word))
            r.report(template.path, f"{label}: {message}", line=line, col=col)

        if template.path[-1] in SHELL_TEMPLATES:
            from console.model.shellquote import check_template

            for line_in, _col, tag, message in check_template(template.source):
                line, col = self._tag_position(template, line_in, tag)
                r.report(template.path, f"{label}: {message}", line=line, col=col)

        unknown = refs.names - _template_names() if refs.names else refs.names
        if unknown & set(STATUS_FUNCTIONS):
            unknown = self.check_status_functions(template, unknown, at)
        for name in sorted(unknown):
            if name in self.params:
                hint = f" (did you mean 'params.{name}'?)"
            elif name in self.secrets:
                hint = f" (did you mean 'secrets.{name}'?)"
            else:
                hint = suggest(name, (*CONTEXT_NAMES,
                                      *(STATUS_FUNCTIONS if template.expression else ())))
            at(name, f"unknown name '{name}'{hint}")
        for name in sorted(refs.params - set(self.params)):
            at(name, f"unknown param '{name}'{suggest(name, self.params)}")
        for name in sorted(refs.secrets - set(self.secrets)):
            at(name, f"unknown secret '{name}'{suggest(name, self.secrets)}")
        for name in sorted(refs.steps):
            if name not in self.steps:
                at(name, f"unknown step '{name}'{suggest(name, self.steps)}")
            elif name == step_id:
                at(name, f"steps.{name} is read by step '{step_id}' itself; a step can only "
                         "read the outputs of steps it needs")
            elif name not in self._upstream(step_id):
                at(name, f"steps.{name} is read but '{name}' is not upstream of "
                         f"'{step_id}' (add it to needs)")

    def _tag_position(self, template: _Template, line_in_template: int,
                      tag: str) -> tuple[int | None, int | None]:
        """File line and column of the ``{{ }}`` tag ``tag`` on a line of a template."""
        line, col = self._template_position(template, line_in_template)
        start = self.r.locator.value_line(template.path)
        if start is not None:
            line = start + line_in_template - 1
            lines = self.text.splitlines()
            if 0 < line <= len(lines) and tag in lines[line - 1]:
                return line, lines[line - 1].index(tag) + 1
        return line, col
    def check_status_functions(self, template: _Template, unknown: frozenset[str],
                               at: Callable[[str, str], None]) -> frozenset[str]:
        """Status functions are names of ``when`` only; returns the names still unknown."""
        used = unknown & set(STATUS_FUNCTIONS)
        if template.expression:
            for name, message in status_calls(template.source)[1]:
                at(name, message)
        else:
            for name in sorted(used):
                at(name, f"{name}() is a status function: it works only in when")
        return unknown - used

    def _template_position(self, template: _Template,
                           line_in_template: int | None) -> tuple[int | None, int | None]:
        """File position of a line of a template value: the key's own position when that
        line sits on the key's line, else the line with no column."""
        key_line, key_col = self.r.locator.find(template.path)
        start = self.r.locator.value_line(template.path)
        if start is None or not line_in_template:
            return key_line, key_col
        line = start + line_in_template - 1
        return (key_line, key_col) if line == key_line else (line, None)

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


_BAD_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def bad_characters(text: str) -> bool:
    """Does a name hold control characters (C0, DEL, C1, line separators, bidi overrides)?"""
    return _BAD_CHARACTERS.search(text) is not None


def printable(text: str) -> str:
    """``text`` quoted with every control character escaped, safe in a message."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _BAD_CHARACTERS.sub(lambda m: f"\\u{ord(m[0]):04x}", escaped) + '"'


def _line_of(source: str, word: str) -> int | None:
    """1-based line of the first whole-word occurrence of ``word`` in ``source``."""
    pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])")
    for number, text in enumerate(source.splitlines(), start=1):
        if pattern.search(text):
            return number
    return None
