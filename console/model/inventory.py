"""Hosts and SSH defaults: the ``[ssh]`` and ``[hosts.*]`` tables of a workflow, or of a
separate TOML inventory file that a workflow names with ``inventory = "..."``.

Ansible inventories (``inventory = "ansible:hosts.ini"``) are imported by
:mod:`console.model.ansible`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from console.model.problems import Problem
from console.model.reader import Reader, dotted, parse_toml, read_text, suggest
from console.model.workflow import ALL, LOCAL, Host, SSHOptions

__all__ = ["check_hosts", "load_inventory", "parse_hosts", "parse_ssh", "read_inventory"]

SSH_KEYS = ("user", "port", "identity", "known_hosts", "connect_timeout")
HOST_KEYS = (
    "address", "groups", "port", "user", "identity", "known_hosts", "jump", "vars",
    "forward_agent", "connection",
)
CONNECTIONS = ("ssh", "local")
INVENTORY_KEYS = ("ssh", "hosts")
RESERVED = (LOCAL, ALL)


def parse_ssh(reader: Reader, value: Any) -> dict[str, Any]:
    """The fields of ``[ssh]`` that are set, ready for ``SSHOptions(**fields)``."""
    path = ("ssh",)
    table = reader.table(value, path, SSH_KEYS)
    if table is None:
        return {}
    fields: dict[str, Any] = {
        "user": reader.string(table, path, "user", non_empty=True),
        "port": reader.integer(table, path, "port", minimum=1, maximum=65535),
        "identity": reader.string(table, path, "identity", non_empty=True),
        "known_hosts": reader.string(table, path, "known_hosts", non_empty=True),
        "connect_timeout": reader.duration(table, path, "connect_timeout", positive=True),
    }
    return {key: value for key, value in fields.items() if value is not None}


def parse_hosts(reader: Reader, value: Any) -> dict[str, Host]:
    """``[hosts.*]`` in file order; per-host checks only (see :func:`check_hosts`)."""
    hosts: dict[str, Host] = {}
    for name, raw in (reader.table(value, ("hosts",)) or {}).items():
        host = _parse_host(reader, name, raw)
        if host is not None:
            hosts[name] = host
    return hosts


def _parse_host(reader: Reader, name: str, value: Any) -> Host | None:
    path = ("hosts", name)
    if name in RESERVED:
        reader.error(path, f"'{name}' is a reserved name and cannot be a host")
    table = reader.table(value, path, HOST_KEYS)
    if table is None or name in RESERVED:
        return None
    groups: list[str] = []
    for group, where in reader.strings(table, path, "groups", single=True) or []:
        if group in RESERVED:
            reader.report(where, f"{dotted(path)}.groups: '{group}' is a reserved name "
                                 "and cannot be a group")
        elif group not in groups:
            groups.append(group)
    return Host(
        name=name,
        address=reader.string(table, path, "address", name, non_empty=True) or name,
        groups=tuple(groups),
        port=reader.integer(table, path, "port", minimum=1, maximum=65535),
        user=reader.string(table, path, "user", non_empty=True),
        identity=reader.string(table, path, "identity", non_empty=True),
        known_hosts=reader.string(table, path, "known_hosts", non_empty=True),
        jump=reader.string(table, path, "jump", non_empty=True),
        forward_agent=reader.boolean(table, path, "forward_agent"),
        vars=reader.get(table, path, "vars", "table", {}),
        connection=_connection(reader, table, path),
    )


def _connection(reader: Reader, table: dict[str, Any], path: tuple[str, ...]) -> str:
    """``connection = "local"`` runs the host's tasks on this machine (Ansible's
    ``ansible_connection=local``); ``"ssh"`` is the default."""
    value = reader.string(table, path, "connection", "ssh") or "ssh"
    if value not in CONNECTIONS:
        reader.error((*path, "connection"),
                     f"must be one of {', '.join(CONNECTIONS)}, got '{value}'")
        return "ssh"
    return value


def check_hosts(hosts: dict[str, Host], readers: dict[str, Reader]) -> None:
    """Checks across hosts: jump hosts exist (without loops) and no host shares its name
    with a group. ``readers`` says which file each host came from."""
    groups = {group for host in hosts.values() for group in host.groups}
    for name, host in hosts.items():
        reader = readers[name]
        if name in groups:
            reader.error(("hosts", name), f"'{name}' is both a host and a group "
                                          "(they share one namespace)")
        if host.jump is None:
            continue
        where = ("hosts", name, "jump")
        if host.jump == name:
            reader.error(where, "a host cannot be its own jump host")
        elif host.jump not in hosts:
            if "jump" in host.origin:  # imported: an ssh destination ([user@]host[:port])
                continue
            others = [h for h in hosts if h != name]
            reader.error(where, f"unknown host '{host.jump}'{suggest(host.jump, others)}")
        else:
            chain = [name]
            current: str | None = host.jump
            while current is not None and current in hosts and current not in chain:
                chain.append(current)
                current = hosts[current].jump
            if current == name:
                reader.error(where, f"jump hosts loop: {' -> '.join([*chain, name])}")


def read_inventory(path: Path,
                   problems: list[Problem]) -> tuple[dict[str, Any], dict[str, Host], Reader] | str:
    """Parse an inventory file without cross-host checks.

    Returns (explicit ``[ssh]`` fields, hosts, the file's reader), or the reason the file
    cannot be read. Problems inside the file are appended to ``problems``.
    """
    text, reason = read_text(path)
    if text is None:
        return reason or "cannot read file"
    file = str(path)
    reader = Reader(file, text, problems)
    data = parse_toml(text, file, problems)
    if data is None:
        return {}, {}, reader
    reader.table(data, (), INVENTORY_KEYS)
    ssh = parse_ssh(reader, data["ssh"]) if "ssh" in data else {}
    hosts = parse_hosts(reader, data["hosts"]) if "hosts" in data else {}
    return ssh, hosts, reader


def load_inventory(path: Path) -> tuple[SSHOptions | None, dict[str, Host], list[Problem]]:
    """Load a TOML inventory on its own: (``[ssh]`` or None, hosts, problems)."""
    path = Path(path)
    problems: list[Problem] = []
    found = read_inventory(path, problems)
    if isinstance(found, str):
        return None, {}, [Problem(str(path), None, None, found)]
    ssh, hosts, reader = found
    check_hosts(hosts, dict.fromkeys(hosts, reader))
    problems.sort(key=lambda p: (p.line or 0, p.col or 0))
    return (SSHOptions(**ssh) if ssh else None), hosts, problems
