"""Import hosts and groups from an Ansible inventory (``inventory = "ansible:FILE"``).

The goal is ``ansible-inventory --list`` parity (ansible-core 2.19): the same hosts, the
same groups (transitively), the same variables with the same types, and the connection
values Ansible's ssh plugin would use. The file is read as Ansible reads it:

- readers are tried in Ansible's order: YAML (files named ``.yml``/``.yaml``/``.json`` or
  without a suffix), then INI (any name but ``.toml``); an INI file named ``.yml`` works;
- an executable file (inventory script) or a YAML plugin configuration (``plugin:
  aws_ec2`` …) is a dynamic inventory: Baton runs ``ansible-inventory -i FILE --list``
  when it is on ``PATH`` and imports its JSON, else a located error says so.

Naming rule: Baton's host and group names share one namespace and ``local`` is reserved
(it means this machine). An imported group named ``local``, or named like a host, is
imported as ``group_NAME``; a host named ``local`` as ``host_local`` (``baton hosts``
lists every rename). Errors are ``file:line: message`` and never show a value.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from console.model.ansible_conn import connection_fields
from console.model.ansible_data import (
    ALL,
    UNGROUPED,
    AnsibleInventoryError,
    Inventory,
    InvHost,
    shown,
)
from console.model.ansible_ini import parse_ini_into
from console.model.ansible_vardirs import VarFiles, read_var_files
from console.model.ansible_yaml import YamlShape, load_yaml, parse_yaml_into
from console.model.workflow import LOCAL, Host

__all__ = ["AnsibleInventoryError", "Imported", "import_inventory", "load_ansible_inventory",
           "parse_ini", "parse_yaml"]

YAML_SUFFIXES = ("", ".yml", ".yaml", ".json")
DYNAMIC_TIMEOUT = 300.0


@dataclass
class Imported:
    """An imported inventory: Baton hosts plus what ``baton hosts`` reports about it."""

    source: str
    hosts: dict[str, Host]
    renamed_hosts: dict[str, str] = field(default_factory=dict)
    renamed_groups: dict[str, str] = field(default_factory=dict)
    """Ansible name -> Baton name, for hosts and groups Baton could not keep as is."""
    groups: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """Baton group name -> {"hosts": direct members, "children": child groups}."""
    reader: str = "ini"


def parse_ini(text: str, source: str = "inventory") -> dict[str, Host]:
    inv = Inventory(source)
    parse_ini_into(inv, text)
    return _finish(inv, "ini").hosts


def parse_yaml(text: str, source: str = "inventory") -> dict[str, Host]:
    inv = Inventory(source)
    parse_yaml_into(inv, load_yaml(text, source))
    return _finish(inv, "yaml").hosts


def load_ansible_inventory(path: str | Path) -> dict[str, Host]:
    """Hosts of an Ansible inventory file (see the module docstring)."""
    return import_inventory(path).hosts


def import_inventory(path: str | Path) -> Imported:
    from console.model.bounded import FILE_LIMIT, BoundedError, read_regular

    path = Path(path)
    source = str(path)
    try:
        data = read_regular(path, FILE_LIMIT)
    except BoundedError as exc:
        raise AnsibleInventoryError(source, str(exc)) from None
    except OSError as exc:
        raise AnsibleInventoryError(source, f"cannot read: {exc.strerror or exc}") from None
    if os.path.isfile(path) and os.access(path, os.X_OK) and not _looks_static(path, data):
        return _dynamic(path, "an executable inventory script")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _finish(_ini_bytes(data, source), "ini", var_dirs=True)
    suffix = path.suffix.lower()
    yaml_error: AnsibleInventoryError | None = None
    if suffix in YAML_SUFFIXES:
        try:
            document = load_yaml(text, source)
        except AnsibleInventoryError as exc:
            yaml_error, document = exc, None
        if isinstance(document, dict) and document.get("plugin") and suffix in (".yml",
                                                                             ".yaml"):
            return _dynamic(path, f"an inventory plugin configuration "
                                  f"(plugin: {_plugin_name(document)})")
        if yaml_error is None:
            inv = Inventory(source)
            try:
                parse_yaml_into(inv, document)
                return _finish(inv, "yaml", var_dirs=True)
            except YamlShape as exc:
                yaml_error = exc
            except AnsibleInventoryError as exc:
                if isinstance(document, dict):
                    raise  # YAML shaped like an inventory: its own error is the one to show
                yaml_error = exc
    if suffix == ".toml":
        raise yaml_error or AnsibleInventoryError(source, "TOML Ansible inventories are "
                                                  "not supported")
    inv = Inventory(source)
    try:
        parse_ini_into(inv, text)
    except AnsibleInventoryError:
        if yaml_error is not None and suffix in (".yml", ".yaml", ".json"):
            raise yaml_error from None
        raise
    return _finish(inv, "ini", var_dirs=True)


def _ini_bytes(data: bytes, source: str) -> Inventory:
    """INI that is not UTF-8 throughout: as Ansible, comment lines may hold any bytes."""
    lines: list[str] = []
    for number, line in enumerate(data.splitlines(), 1):
        if line[:1] in (b"#", b";"):
            lines.append("")
            continue
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise AnsibleInventoryError(source, "not UTF-8 text", number) from None
    inv = Inventory(source)
    parse_ini_into(inv, "\n".join(lines))
    return inv


def _looks_static(path: Path, data: bytes) -> bool:
    """An executable bit on a plain INI/YAML file (common on shared checkouts)."""
    return not data.startswith(b"#!")


def _plugin_name(document: dict[str, Any]) -> str:
    plugin = document.get("plugin")
    return plugin if isinstance(plugin, str) and plugin.replace(".", "").replace(
        "_", "").isalnum() else "?"


def _dynamic(path: Path, what: str) -> Imported:
    tool = shutil.which("ansible-inventory")
    if tool is None:
        raise AnsibleInventoryError(str(path), f"{what}: Baton imports dynamic inventories "
                                    "through `ansible-inventory -i FILE --list`, which is "
                                    "not on PATH (install ansible-core)")
    from console.model.bounded import FILE_LIMIT, BoundedError, run_bounded

    try:
        code, stdout, stderr = run_bounded([tool, "-i", str(path), "--list"], cwd=None,
                                           timeout=DYNAMIC_TIMEOUT, limit=FILE_LIMIT)
    except BoundedError as exc:
        raise AnsibleInventoryError(str(path), f"ansible-inventory -i FILE --list: {exc}") \
            from None
    except OSError as exc:
        raise AnsibleInventoryError(str(path), "cannot run ansible-inventory: "
                                    f"{exc.strerror or exc}") from None
    if code != 0:
        last = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
        reason = last[-1].strip()[:200] if last else f"exit status {code}"
        raise AnsibleInventoryError(str(path), "ansible-inventory -i FILE --list failed: "
                                    f"{reason}")
    try:
        listing = json.loads(stdout)
    except ValueError:
        raise AnsibleInventoryError(str(path), "ansible-inventory printed no JSON") from None
    inv = from_listing(listing, f"{path} (ansible-inventory)")
    return _finish(inv, "ansible-inventory")


def from_listing(listing: Any, source: str) -> Inventory:
    """An :class:`Inventory` from ``ansible-inventory --list`` JSON (vars already merged)."""
    inv = Inventory(source)
    if not isinstance(listing, dict):
        raise inv.fail("ansible-inventory output is not a JSON object")
    meta = listing.get("_meta", {}) if isinstance(listing.get("_meta"), dict) else {}
    hostvars = meta.get("hostvars", {}) if isinstance(meta.get("hostvars"), dict) else {}
    for name, entry in listing.items():
        if name != "_meta" and isinstance(entry, dict):
            inv.add_group(name)
    for name, entry in listing.items():
        if name == "_meta" or not isinstance(entry, dict):
            continue
        for host in entry.get("hosts") or []:
            inv.add_host(host, name)
        for child in entry.get("children") or []:
            inv.add_group(child)
            inv.add_child(name, child)
    for host, variables in hostvars.items():
        if host not in inv.hosts:
            inv.add_host(host)
        for key, value in (variables or {}).items():
            inv.set_variable(host, key, value)
    return inv


def _finish(inv: Inventory, reader: str, var_dirs: bool = False) -> Imported:
    inv.reconcile()
    if var_dirs:  # not for ansible-inventory's output: it holds group_vars/host_vars
        base = Path(inv.source).parent
        cache: dict[tuple[str, str], VarFiles] = {}

        def files(kind: str, name: str) -> VarFiles:
            if (kind, name) not in cache:
                cache[kind, name] = read_var_files(base, kind, name)
            return cache[kind, name]

        inv.var_files = files
    hosts, groups = _renames(inv)
    imported = Imported(inv.source, {}, hosts, groups, reader=reader)
    for group in inv.groups.values():
        if group.name in (ALL, UNGROUPED):
            continue
        imported.groups[groups.get(group.name, group.name)] = {
            "hosts": [hosts.get(h.name, h.name) for h in group.hosts],
            "children": [groups.get(k.name, k.name) for k in group.children],
        }
    for host in inv.hosts.values():
        name = hosts.get(host.name, host.name)
        imported.hosts[name] = _host(inv, host, name, groups)
    return imported


def _renames(inv: Inventory) -> tuple[dict[str, str], dict[str, str]]:
    """(host renames, group renames): see the naming rule in the module docstring."""
    taken = set(inv.groups) | set(inv.hosts)
    hosts: dict[str, str] = {}
    groups: dict[str, str] = {}

    def fresh(prefix: str, name: str) -> str:
        candidate = f"{prefix}_{name}"
        while candidate in taken:
            candidate = f"{prefix}_{candidate}"
        taken.add(candidate)
        return candidate

    for name in inv.hosts:
        if name == LOCAL:
            hosts[name] = fresh("host", name)
    for name in inv.groups:
        if name == LOCAL or name in inv.hosts:
            groups[name] = fresh("group", name)
    return hosts, groups


def _host(inv: Inventory, host: InvHost, name: str, renamed: dict[str, str]) -> Host:
    merged, located = inv.host_vars(host)
    origin = {var: shown(where) for var, where in located.items()}

    def fail(var: str, message: str) -> AnsibleInventoryError:
        return AnsibleInventoryError.at(located.get(var, (inv.source, 0)), message)

    fields = connection_fields(host.name, merged, origin, fail)
    direct = [g for g in host.groups if host.name in g.names]
    ordered = direct + [g for g in host.groups if g not in direct]
    groups = tuple(renamed.get(g.name, g.name) for g in ordered
                   if g.name not in (ALL, UNGROUPED))
    notes = list(fields.pop("notes"))
    if name != host.name:
        notes.append(f"Ansible host '{host.name}' is imported as '{name}' ('local' is this "
                     "machine in Baton)")
    for group in ordered:
        if group.name in renamed:
            notes.append(f"Ansible group '{group.name}' is imported as "
                         f"'{renamed[group.name]}' (host and group names share one "
                         "namespace, 'local' is this machine)")
    fields["origin"] = {**fields["origin"], **{f"vars.{k}": v for k, v in origin.items()}}
    return Host(name=name, groups=groups, vars=merged, notes=tuple(notes), **fields)
