"""Import hosts and groups from an Ansible inventory (INI or YAML).

``inventory = "ansible:hosts.ini"`` in a workflow. What is read: hosts, groups, nested
groups (``[g:children]`` / ``children:``), group and host variables, host ranges like
``web[01:03]``. ``ansible_host``, ``ansible_port``, ``ansible_user`` and
``ansible_ssh_private_key_file`` (and the older ``ansible_ssh_*`` spellings) become the
host's address, port, user and identity; every other variable lands in ``host.vars``.
Variables of a group apply to its hosts and to the hosts of its child groups; a child
group's value wins over its parent's and a host's own value over both.

PyYAML is not a dependency: :func:`parse_yaml` reads the subset inventories use (nested
mappings, plain and quoted scalars, comments, ``{}``), and rejects anything else with a
``file:line: message`` error, like every other problem here.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from console.model.workflow import ALL, LOCAL, Host

__all__ = ["AnsibleInventoryError", "load_ansible_inventory", "parse_ini", "parse_yaml"]

ADDRESS_KEYS = ("ansible_host", "ansible_ssh_host")
PORT_KEYS = ("ansible_port", "ansible_ssh_port")
USER_KEYS = ("ansible_user", "ansible_ssh_user")
IDENTITY_KEYS = ("ansible_ssh_private_key_file", "ansible_private_key_file")
UNGROUPED = "ungrouped"


class AnsibleInventoryError(ValueError):
    """One line: ``file:line: message``."""


@dataclass
class _Group:
    name: str
    line: int
    hosts: list[str] = field(default_factory=list)
    children: list[tuple[str, int]] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Inventory:
    source: str
    groups: dict[str, _Group] = field(default_factory=dict)
    host_vars: dict[str, dict[str, Any]] = field(default_factory=dict)
    host_lines: dict[str, int] = field(default_factory=dict)

    def fail(self, line: int, message: str) -> AnsibleInventoryError:
        return AnsibleInventoryError(f"{self.source}:{line}: {message}")

    def group(self, name: str, line: int) -> _Group:
        if name not in self.groups:
            self.groups[name] = _Group(name, line)
        return self.groups[name]

    def add_host(self, pattern: str, group: str, line: int, variables: dict[str, Any]) -> None:
        for name in expand_range(pattern, lambda msg: self.fail(line, msg)):
            if name == LOCAL:
                raise self.fail(line, f"'{LOCAL}' is a reserved name and cannot be a host")
            self.host_lines.setdefault(name, line)
            self.host_vars.setdefault(name, {}).update(variables)
            members = self.group(group, line).hosts
            if name not in members:
                members.append(name)

    def build(self) -> dict[str, Host]:
        for name, line in self.host_lines.items():
            if name in self.groups and name not in (ALL, UNGROUPED):
                raise self.fail(line, f"'{name}' is both a host and a group")
        parents: dict[str, list[str]] = {}
        for group in self.groups.values():
            for child, line in group.children:
                if child in self.host_lines:
                    raise self.fail(line, f"'{child}' is a host, not a group")
                self.group(child, line)
                parents.setdefault(child, []).append(group.name)
        depth = {name: self._depth(name, parents, ()) for name in self.groups}
        hosts: dict[str, Host] = {}
        for name, line in self.host_lines.items():
            direct = [g.name for g in self.groups.values() if name in g.hosts]
            ancestry = self._ancestors(direct, parents)
            if ALL not in ancestry:
                ancestry.append(ALL)
            # Ansible order: `all` first, then shallower groups, then deeper ones
            chain = sorted(ancestry, key=lambda g: (g != ALL, depth[g]))
            merged: dict[str, Any] = {}
            for group in chain:
                merged.update(self.groups[group].vars)
            merged.update(self.host_vars.get(name, {}))
            hosts[name] = self._host(name, line, merged,
                                     [g for g in ancestry if g not in (ALL, UNGROUPED)])
        return hosts

    def _depth(self, name: str, parents: dict[str, list[str]], seen: tuple[str, ...]) -> int:
        if name in seen:
            cycle = " -> ".join((*seen[seen.index(name):], name))
            raise self.fail(self.groups[name].line, f"groups nest in a cycle: {cycle}")
        ups = parents.get(name, [])
        return 1 + max((self._depth(p, parents, (*seen, name)) for p in ups), default=0)

    @staticmethod
    def _ancestors(direct: list[str], parents: dict[str, list[str]]) -> list[str]:
        out: list[str] = []
        stack = list(reversed(direct))
        while stack:
            group = stack.pop()
            if group in out:
                continue
            out.append(group)
            stack.extend(reversed(parents.get(group, [])))
        return out

    def _host(self, name: str, line: int, merged: dict[str, Any], groups: list[str]) -> Host:
        def pick(keys: tuple[str, ...]) -> Any:
            found = None
            for key in keys:
                if key in merged:
                    found = merged.pop(key) if found is None else found
                    merged.pop(key, None)
            return found

        address, port, user, identity = (pick(ADDRESS_KEYS), pick(PORT_KEYS),
                                         pick(USER_KEYS), pick(IDENTITY_KEYS))
        if port is not None:
            try:
                port = int(port)
            except (TypeError, ValueError):
                raise self.fail(line, f"host '{name}': ansible_port must be a number") from None
            if not 1 <= port <= 65535:
                raise self.fail(line, f"host '{name}': ansible_port {port} is out of range")
        return Host(
            name=name,
            address=str(address) if address not in (None, "") else name,
            groups=tuple(groups),
            port=port,
            user=str(user) if user not in (None, "") else None,
            identity=str(identity) if identity not in (None, "") else None,
            vars=merged,
        )


_RANGE = re.compile(r"\[([^\]]*)\]")


def expand_range(pattern: str, fail: Any) -> list[str]:
    """``web[01:03]`` -> web01 web02 web03; ``[a:c]`` letters; ``[0:10:5]`` steps."""
    match = _RANGE.search(pattern)
    if match is None:
        return [pattern]
    parts = match.group(1).split(":")
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise fail(f"bad host range '[{match.group(1)}]' in '{pattern}' (use [01:10] or [a:f])")
    start, end = parts[0], parts[1]
    step = parts[2] if len(parts) == 3 else "1"
    if not step.isdigit() or int(step) < 1:
        raise fail(f"bad step '{step}' in host range of '{pattern}'")
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") else 0
        values = [str(i).zfill(width) for i in range(int(start), int(end) + 1, int(step))]
    elif len(start) == len(end) == 1 and start.isalpha() and end.isalpha():
        values = [chr(c) for c in range(ord(start), ord(end) + 1, int(step))]
    else:
        raise fail(f"bad host range '[{match.group(1)}]' in '{pattern}' (use [01:10] or [a:f])")
    if not values:
        raise fail(f"empty host range in '{pattern}'")
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [name for value in values for name in expand_range(head + value + tail, fail)]


# ---------------------------------------------------------------------------- INI


def _ini_value(text: str) -> Any:
    """Ansible reads INI values as Python literals where they parse, else as strings."""
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    return text


def parse_ini(text: str, source: str = "inventory") -> dict[str, Host]:
    inv = _Inventory(source)
    inv.group(ALL, 1)
    section, kind = UNGROUPED, "hosts"
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise inv.fail(number, "bad section header (use [group], [group:vars] or "
                                       "[group:children])")
            section, _, kind = line[1:-1].strip().partition(":")
            kind = kind or "hosts"
            if not section or any(c.isspace() for c in section):
                raise inv.fail(number, "bad group name in section header (no spaces)")
            if kind not in ("hosts", "vars", "children"):
                raise inv.fail(number, f"unknown section type '{kind}' (use :vars or "
                                       ":children)")
            if section == LOCAL:
                raise inv.fail(number, f"'{LOCAL}' is a reserved name and cannot be a group")
            inv.group(section, number)
            continue
        if kind == "vars":
            key, eq, value = line.partition("=")
            if not eq or not key.strip():
                raise inv.fail(number, f"expected 'name=value' in [{section}:vars]")
            inv.groups[section].vars[key.strip()] = _ini_value(value.strip())
        elif kind == "children":
            if any(c.isspace() for c in line):
                raise inv.fail(number, f"expected one group name per line in [{section}:children]")
            inv.groups[section].children.append((line, number))
        else:
            try:
                words = shlex.split(line, comments=True)
            except ValueError as exc:
                raise inv.fail(number, f"{exc} in a host line") from None
            variables: dict[str, Any] = {}
            for position, word in enumerate(words[1:], 2):
                key, eq, value = word.partition("=")
                if not eq or not key:
                    raise inv.fail(number, f"expected 'name=value' after host '{words[0]}' "
                                           f"(word {position})")
                variables[key] = _ini_value(value)
            inv.add_host(words[0], section, number, variables)
    return inv.build()


# ---------------------------------------------------------------------------- YAML


class _Map(dict[str, Any]):
    """A YAML mapping that remembers the line of each key."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[str, int] = {}


def _strip_comment(text: str) -> str:
    quote = ""
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


_CONSTRUCTS = {"[": "a flow sequence [...]", "&": "an anchor (&)", "*": "an alias (*)",
               "!": "a tag (!)", "|": "a literal block scalar (|)",
               ">": "a folded block scalar (>)", "@": "a reserved indicator (@)",
               "`": "a reserved indicator (`)", "-": "a list item (- )", "{": "a flow mapping"}


def _construct(text: str) -> str:
    """What a rejected scalar is, by its indicator: errors never echo a value (it may be
    a password)."""
    return _CONSTRUCTS.get(text[:1], "this value")


def _scalar(text: str, fail: Any) -> Any:
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text.startswith("{") and text.endswith("}"):
        return _flow_map(text[1:-1], fail)
    if text[0] in "'\"":
        if len(text) < 2 or text[-1] != text[0]:
            raise fail("unterminated quoted string")
        body = text[1:-1]
        if text[0] == "'":
            return body.replace("''", "'")
        return body.encode("latin-1", "backslashreplace").decode("unicode_escape")
    if text[0] in "[{&*!|>@`" or text.startswith("- "):
        raise fail(f"unsupported YAML here: {_construct(text)} (inventories need plain "
                   "mappings)")
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if text in ("true", "True", "TRUE", "yes", "Yes"):
        return True
    if text in ("false", "False", "FALSE", "no", "No"):
        return False
    return text


_KEY = re.compile(r"(.*?):(?:\s+(.*))?\Z")
"""``key: value`` or ``key:``; a colon inside the key (``web[01:03]:``) is not a separator."""


def _flow_map(body: str, fail: Any) -> _Map:
    """A one-line ``{key: value, ...}`` of scalars."""
    out = _Map(0)
    items: list[str] = []
    quote, start = "", 0
    for i, char in enumerate(body):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ",":
            items.append(body[start:i])
            start = i + 1
    items.append(body[start:])
    for item in filter(str.strip, items):
        key, colon, value = item.strip().partition(":")
        if not colon or not key.strip() or (value and not value.startswith(" ")):
            raise fail("expected 'key: value' in a flow mapping {...}")
        out[key.strip()] = _scalar(value.strip(), fail)
    return out


def _yaml_tree(text: str, source: str) -> _Map:
    rows: list[tuple[int, int, str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if raw.strip() in ("---", "...") and not raw.startswith(" "):
            continue
        content = _strip_comment(raw)
        if not content.strip():
            continue
        stripped = content.lstrip(" ")
        if stripped.startswith("\t") or "\t" in content[: len(content) - len(stripped)]:
            raise AnsibleInventoryError(f"{source}:{number}: tabs are not allowed for "
                                        "indentation in YAML")
        rows.append((number, len(content) - len(stripped), stripped))
    root = _Map(1)
    stack: list[tuple[int, _Map]] = [(rows[0][1] if rows else 0, root)]
    pending: tuple[int, _Map, str] | None = None  # a "key:" that may open a block
    for number, indent, content in rows:
        def fail(message: str, number: int = number) -> AnsibleInventoryError:
            return AnsibleInventoryError(f"{source}:{number}: {message}")

        if content.startswith("- ") or content == "-":
            raise fail("lists are not supported in an inventory (use mappings)")
        if pending is not None:
            p_indent, p_map, p_key = pending
            pending = None
            if indent > p_indent:
                child = _Map(number)
                p_map[p_key] = child
                stack.append((indent, child))
        while len(stack) > 1 and indent < stack[-1][0]:
            stack.pop()
        if indent != stack[-1][0]:
            raise fail("bad indentation")
        current = stack[-1][1]
        match = _KEY.match(content)
        if match is None:
            raise fail("expected 'key: value'")
        key, rest = match.group(1), match.group(2) or ""
        key = str(_scalar(key.strip(), fail)) if key.strip()[:1] in "'\"" else key.strip()
        if not key:
            raise fail("empty key")
        if key in current:
            raise fail(f"duplicate key '{key}'")
        current.lines[key] = number
        value = rest.strip()
        if value:
            current[key] = _scalar(value, fail)
        else:
            current[key] = None
            pending = (indent, current, key)
    return root


def parse_yaml(text: str, source: str = "inventory") -> dict[str, Host]:
    tree = _yaml_tree(text, source)
    inv = _Inventory(source)
    inv.group(ALL, 1)
    for name, body in tree.items():
        _yaml_group(inv, name, body, tree.lines[name])
    return inv.build()


def _yaml_group(inv: _Inventory, name: str, body: Any, line: int) -> None:
    if name == LOCAL:
        raise inv.fail(line, f"'{LOCAL}' is a reserved name and cannot be a group")
    group = inv.group(name, line)
    if body is None:
        return
    if not isinstance(body, _Map):
        raise inv.fail(line, f"group '{name}' must be a mapping with hosts, vars or children")
    for key, value in body.items():
        where = body.lines.get(key, line)
        if key not in ("hosts", "vars", "children"):
            raise inv.fail(where, f"unknown key '{key}' in group '{name}' (expected hosts, "
                                  "vars or children)")
        if value is None:
            continue
        if not isinstance(value, _Map):
            raise inv.fail(where, f"'{name}.{key}' must be a mapping")
        if key == "hosts":
            for host, variables in value.items():
                at = value.lines.get(host, where)
                if variables is not None and not isinstance(variables, _Map):
                    raise inv.fail(at, f"variables of host '{host}' must be a mapping")
                inv.add_host(host, name, at, dict(variables or {}))
        elif key == "vars":
            group.vars.update(value)
        else:
            for child, child_body in value.items():
                at = value.lines.get(child, where)
                group.children.append((child, at))
                _yaml_group(inv, child, child_body, at)


# ---------------------------------------------------------------------------- files


def load_ansible_inventory(path: str | Path) -> dict[str, Host]:
    """Hosts from an INI or YAML inventory file (YAML by suffix .yml/.yaml, or content)."""
    from console.model.bounded import FILE_LIMIT, BoundedError, read_regular

    path = Path(path)
    try:
        text = read_regular(path, FILE_LIMIT).decode("utf-8")
    except BoundedError as exc:
        raise AnsibleInventoryError(f"{path}: {exc}") from None
    except OSError as exc:
        raise AnsibleInventoryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise AnsibleInventoryError(f"{path}: not UTF-8 text") from None
    if path.suffix.lower() in (".yml", ".yaml") or _looks_like_yaml(text):
        return parse_yaml(text, str(path))
    return parse_ini(text, str(path))


def _looks_like_yaml(text: str) -> bool:
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        return stripped == "---" or (stripped.endswith(":") and not stripped.startswith("["))
    return False
