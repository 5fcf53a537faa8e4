"""Ansible's INI inventory format, read as ansible-core 2.19's ``ini`` plugin reads it.

- ``[group]``, ``[group:vars]``, ``[group:children]``, a comment after a section header;
  lines before any section are hosts of ``ungrouped``.
- Host lines are split like a shell line (quotes removed, ``#`` starts a comment); the
  host may carry a port (``web1:2222``, ``[::1]:2222``, ``web[1:3]:2222``) and ranges.
- Every value, on a host line or in ``:vars``, goes through Python's ``ast.literal_eval``:
  ``1`` is a number, ``True`` a boolean, ``{"a": 1}`` a dict, ``"x"`` the string ``x``;
  what does not parse (``true``, ``/srv/app``) stays the string as written.
- ``[g:children]`` may name a group declared later; one declared nowhere is an error, and
  so is ``[g:vars]`` for a group declared nowhere (both as in Ansible).
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from typing import Any

from console.model.ansible_data import UNGROUPED, Inventory
from console.model.ansible_hosts import expand_hostpattern

__all__ = ["parse_ini_into"]

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUPNAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")


def parse_value(text: str) -> Any:
    """A value as Ansible reads it from INI: a Python literal when it is one."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return _coerce(value)


def _coerce(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return [_coerce(v) for v in value]
    if isinstance(value, dict):
        return {k: _coerce(v) for k, v in value.items()}
    if value is ...:
        return "..."
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def parse_ini_into(inv: Inventory, text: str) -> None:
    """Fill ``inv`` from INI ``text``; raises :class:`AnsibleInventoryError` (file:line)."""
    pending: dict[str, dict[str, Any]] = {}
    group, state = UNGROUPED, "hosts"
    for number, raw in enumerate(text.splitlines(), 1):
        inv.line = number
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        match = _SECTION.match(line)
        if match:
            group, state = match.group(1), match.group(2) or "hosts"
            if state not in ("hosts", "children", "vars"):
                raise inv.fail(f"section [{group}:{state}] has unknown type '{state}' "
                               "(use :vars or :children)")
            if group not in inv.groups:
                if state == "vars" and group not in pending:
                    pending[group] = {"line": number, "state": state}
                inv.add_group(group)
            if group in pending and state != "vars":
                if pending[group]["state"] == "children":
                    _add_pending_children(inv, group, pending)
                elif pending[group]["state"] == "vars":
                    del pending[group]
            continue
        if line.startswith("[") and line.endswith("]"):
            raise inv.fail("invalid section header (no spaces or other characters are "
                           "allowed in [group] or [group:vars])")
        if state == "hosts":
            _host_line(inv, line, group)
        elif state == "vars":
            key, eq, value = line.partition("=")
            if not eq:
                raise inv.fail(f"expected 'name=value' in [{group}:vars]")
            inv.set_variable(group, key.strip(), parse_value(value.strip()))
        else:
            found = _GROUPNAME.match(line)
            if not found:
                raise inv.fail(f"expected one group name per line in [{group}:children]")
            child = found.group(1)
            if child not in inv.groups:
                entry = pending.setdefault(child, {"line": number, "state": "children",
                                                   "parents": []})
                entry.setdefault("parents", []).append(group)
            else:
                inv.add_child(group, child)
    for name, decl in pending.items():
        if decl["state"] == "vars":
            raise inv.fail(f"section [{name}:vars] is for a group declared nowhere "
                           f"(Ansible refuses it too)", decl["line"])
        raise inv.fail(f"section [{decl['parents'][-1]}:children] names group '{name}', "
                       "which is declared nowhere (Ansible refuses it too: add "
                       f"[{name}])", decl["line"])


def _add_pending_children(inv: Inventory, group: str, pending: dict[str, dict[str, Any]]) -> None:
    for parent in pending[group]["parents"]:
        inv.add_child(parent, group)
        if parent in pending and pending[parent]["state"] == "children":
            _add_pending_children(inv, parent, pending)
    del pending[group]


def _host_line(inv: Inventory, line: str, group: str) -> None:
    try:  # no quote, escape or comment: shlex would split on whitespace alone
        tokens = (line.split() if not any(c in line for c in "'\"\\#")
                  else shlex.split(line, comments=True))
    except ValueError as exc:
        raise inv.fail(f"cannot split host line: {exc}") from None
    if not tokens:
        return
    hostnames, port = expand_hostpattern(tokens[0], inv.fail)
    if tokens[0].strip().endswith(":") and port is None:
        raise inv.fail("a host pattern cannot end in ':' (it introduces a port)")
    if any(name.strip() == "---" for name in hostnames):
        raise inv.fail("host '---' looks like the start of a YAML file")
    variables: dict[str, Any] = {}
    for token in tokens[1:]:
        key, eq, value = token.partition("=")
        if not eq:
            raise inv.fail(f"expected 'name=value' after host '{tokens[0]}', got a word "
                           "without '='")
        variables[key] = parse_value(value)
    for name in hostnames:
        inv.add_host(name, group, port)
        for key, value in variables.items():
            inv.set_variable(name, key, value)

