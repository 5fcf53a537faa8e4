"""Ansible's in-memory inventory, as ansible-core 2.19 builds it (``ansible.inventory``).

The INI and YAML readers (:mod:`console.model.ansible_ini`, :mod:`console.model.ansible_yaml`)
feed it the same calls Ansible's parsers make (``add_group``, ``add_host``, ``add_child``,
``set_variable``); :meth:`Inventory.reconcile` then does what Ansible does after parsing
(every group under ``all``, hosts without a group in ``ungrouped``), and
:meth:`Inventory.host_vars` merges variables in Ansible's order: groups sorted by
(depth, ``ansible_group_priority``, name), then the host's own. Quirks are kept on purpose
(a host variable set on a name that is also a group goes to the group, as in Ansible),
so that what Baton imports is what ``ansible-inventory --list`` shows.

Every variable remembers where it was set (``file:line``) for ``baton hosts``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from console.model.problems import Problem

__all__ = ["ALL", "UNGROUPED", "AnsibleInventoryError", "Group", "InvHost", "Inventory",
           "Where", "shown"]

ALL = "all"
UNGROUPED = "ungrouped"


Where = tuple[str, int]
"""Where a variable was set: (file, line); line 0 when there is none (ansible-inventory)."""


def shown(where: Where) -> str:
    """``file:line``, or the file alone when there is no line (``baton hosts`` shows it)."""
    return f"{where[0]}:{where[1]}" if where[1] else where[0]


class AnsibleInventoryError(ValueError):
    """One located problem of an inventory, kept as :attr:`problem` (a :class:`Problem`);
    ``str()`` is its one line ``file:line: message`` (never a variable's value: it may be a
    secret)."""

    def __init__(self, source: str, message: str, line: int | None = None) -> None:
        self.problem = Problem(source, line or None, None, message)
        super().__init__(str(self.problem))

    @classmethod
    def at(cls, where: Where, message: str) -> AnsibleInventoryError:
        return cls(where[0], message, where[1])


@dataclass(eq=False)
class Group:
    name: str
    line: int
    vars: dict[str, Any] = field(default_factory=dict)
    where: dict[str, int] = field(default_factory=dict)
    hosts: list[InvHost] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    """Names of ``hosts`` (membership tests on big inventories)."""
    children: list[Group] = field(default_factory=list)
    parents: list[Group] = field(default_factory=list)
    depth: int = 0
    priority: int = 1

    def ancestors(self) -> list[Group]:
        out: list[Group] = []
        stack = list(self.parents)
        while stack:
            group = stack.pop(0)
            if group not in out:
                out.append(group)
                stack.extend(group.parents)
        return out


@dataclass(eq=False)
class InvHost:
    name: str
    line: int
    vars: dict[str, Any] = field(default_factory=dict)
    where: dict[str, int] = field(default_factory=dict)
    groups: list[Group] = field(default_factory=list)

    def add_group(self, group: Group) -> None:
        for old in group.ancestors():
            if old not in self.groups:
                self.groups.append(old)
        if group not in self.groups:
            self.groups.append(group)


class Inventory:
    """Groups and hosts of one inventory source; errors name ``source:line``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.groups: dict[str, Group] = {}
        self.hosts: dict[str, InvHost] = {}
        self.line = 0
        self.var_files: Callable[[str, str], list[tuple[dict[str, Any], dict[str, Where]]]] \
            | None = None
        """group_vars/host_vars reader (set for inventory files, see ansible_vardirs)."""
        self.add_group(ALL)
        self.add_group(UNGROUPED)
        self.add_child(ALL, UNGROUPED)

    def fail(self, message: str, line: int | None = None) -> AnsibleInventoryError:
        return AnsibleInventoryError(self.source, message, self.line if line is None else line)

    def add_group(self, name: str) -> str:
        if not isinstance(name, str) or not name:
            raise self.fail("a group name must be a non-empty string")
        if name not in self.groups:
            self.groups[name] = Group(name, self.line)
        return name

    def add_host(self, name: Any, group: str | None = None, port: int | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise self.fail("a host name must be a non-empty string (quote numbers)")
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = InvHost(name, self.line)
            if port:
                self._set(host.vars, host.where, "ansible_port", int(port))
        if group:
            members = self.groups[group]
            if host.name not in members.names:
                members.names.add(host.name)
                members.hosts.append(host)
                host.add_group(members)

    def set_variable(self, entity: str, key: Any, value: Any) -> None:
        if isinstance(key, bool):  # YAML 1.1 `yes:`/`off:` keys: named as Ansible's JSON does
            key = "true" if key else "false"
        elif isinstance(key, (int, float)):
            key = str(key)
        elif not isinstance(key, str):
            raise self.fail("a variable name must be a string")
        if entity in self.groups:
            group = self.groups[entity]
            if key == "ansible_group_priority":
                try:
                    group.priority = int(value)
                except (TypeError, ValueError):
                    raise self.fail(f"group '{entity}': ansible_group_priority must be a "
                                    "number") from None
                return
            self._set(group.vars, group.where, key, value)
        elif entity in self.hosts:
            host = self.hosts[entity]
            self._set(host.vars, host.where, key, value)
        else:  # pragma: no cover - the parsers always add first
            raise self.fail(f"unknown host or group '{entity}'")

    def _set(self, target: dict[str, Any], where: dict[str, int], key: str, value: Any) -> None:
        target[key] = value
        where[key] = self.line

    def add_child(self, parent: str, child: str) -> None:
        group = self.groups[parent]
        if child in self.groups:
            kid = self.groups[child]
            if kid is group:
                raise self.fail(f"group '{parent}' cannot be its own child")
            if kid in group.children:
                return
            if kid in group.ancestors():
                raise self.fail(f"adding group '{child}' as child to '{parent}' creates a "
                                "recursive dependency loop")
            group.children.append(kid)
            kid.depth = max(group.depth + 1, kid.depth)
            self._deepen(kid)
            if group not in kid.parents:
                kid.parents.append(group)
                for host in self._all_hosts(kid):
                    host.add_group(kid)
        elif child in self.hosts:
            host = self.hosts[child]
            if host.name not in group.names:
                group.names.add(host.name)
                group.hosts.append(host)
                host.add_group(group)
        else:
            raise self.fail(f"'{child}' is not a known host nor group")

    def _deepen(self, group: Group) -> None:
        stack = [group]
        seen = 0
        while stack:
            current = stack.pop()
            seen += 1
            if seen > 100_000:  # pragma: no cover - loops are refused in add_child
                raise self.fail(f"group '{group.name}' has a recursive dependency loop")
            for kid in current.children:
                if kid.depth < current.depth + 1:
                    kid.depth = current.depth + 1
                    stack.append(kid)

    def _all_hosts(self, group: Group) -> list[InvHost]:
        out: list[InvHost] = []
        stack = [group]
        seen: set[int] = set()
        members: set[int] = set()
        while stack:
            current = stack.pop(0)
            if id(current) in seen:
                continue
            seen.add(id(current))
            for host in current.hosts:
                if id(host) not in members:
                    members.add(id(host))
                    out.append(host)
            stack.extend(current.children)
        return out

    def reconcile(self) -> None:
        """What Ansible does after parsing a source."""
        everyone = self.groups[ALL]
        for group in list(self.groups.values()):
            if group is not everyone and not group.parents:
                self.add_child(ALL, group.name)
        ungrouped = self.groups[UNGROUPED]
        for host in self.hosts.values():
            if ungrouped in host.groups:
                if set(host.groups) - {everyone, ungrouped}:
                    ungrouped.hosts.remove(host)
                    ungrouped.names.discard(host.name)
                    host.groups.remove(ungrouped)
            elif not host.groups or host.groups == [everyone]:
                self.add_child(UNGROUPED, host.name)

    def host_vars(self, host: InvHost) -> tuple[dict[str, Any], dict[str, Where]]:
        """(merged variables, where each was set), in Ansible's order:
        the file's group vars, group_vars/all, group_vars/GROUP, the file's host vars,
        host_vars/HOST (groups sorted by depth, priority, name)."""
        merged: dict[str, Any] = {}
        origin: dict[str, Where] = {}
        groups = sorted(host.groups, key=lambda g: (g.depth, g.priority, g.name))
        for group in groups:
            for key, value in group.vars.items():
                merged[key] = value
                origin[key] = (self.source, group.where.get(key, group.line))
        files = self.var_files
        if files is not None:
            for group in groups:
                for variables, where in files("group_vars", group.name):
                    merged.update(variables)
                    origin.update(where)
        for key, value in host.vars.items():
            merged[key] = value
            origin[key] = (self.source, host.where.get(key, host.line))
        if files is not None:
            for variables, where in files("host_vars", host.name):
                merged.update(variables)
                origin.update(where)
        return merged, origin
