"""The ``[ssh]`` and ``[hosts]`` tables of a workflow and its ``inventory`` (a TOML
inventory or ``ansible:FILE``): the hosts a workflow can run on, every problem located in
the file that holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from console.model import inventory as inv
from console.model.locate import KeyPath
from console.model.names import bad_characters, printable
from console.model.reader import Reader
from console.model.workflow import Host, SSHOptions

__all__ = ["hosts_and_ssh"]


def hosts_and_ssh(r: Reader, data: dict[str, Any], inventory: str | None,
                  path: Path | None) -> tuple[SSHOptions, dict[str, Host]]:
    """SSH defaults and hosts (the workflow's own, and its inventory's); ``path`` is the
    workflow file (a relative inventory is found beside it), None for text."""
    folder = path.parent if path else Path.cwd()
    ssh_fields = inv.parse_ssh(r, data["ssh"]) if "ssh" in data else {}
    own = inv.parse_hosts(r, data["hosts"]) if "hosts" in data else {}
    readers = dict.fromkeys(own, r)
    base = SSHOptions()
    hosts: dict[str, Host] = {}
    if inventory:
        where = ("workflow", "inventory")
        if inventory.startswith("ansible:"):
            hosts = ansible_hosts(r, folder, inventory, where)
            readers.update(dict.fromkeys(hosts, r))
            for name in own:
                if name in hosts:
                    r.error(("hosts", name), f"host '{name}' is also defined in {inventory}")
        else:
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


def ansible_hosts(r: Reader, folder: Path, inventory: str, where: KeyPath) -> dict[str, Host]:
    """Hosts of ``ansible:FILE``; its problems are located in that file."""
    from console.model.ansible import AnsibleInventoryError, load_ansible_inventory

    target = folder / Path(inventory.removeprefix("ansible:")).expanduser()
    try:
        return load_ansible_inventory(target)
    except AnsibleInventoryError as exc:
        if exc.problem.line is not None:  # located in the inventory (or a vars file)
            r.problems.append(exc.problem)
        else:
            r.error(where, f"cannot import inventory '{inventory}': {exc}")
        return {}

