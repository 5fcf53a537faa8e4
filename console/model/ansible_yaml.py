"""Ansible's YAML inventory format, read with PyYAML (the parser Ansible itself uses).

The document is read with PyYAML's safe loader (the C one when libyaml is there) and its
node marks give every group, host and variable its line. YAML 1.1 scalars resolve as in
Ansible (``yes`` is true, ``0755`` an octal number, ``1234`` an integer); Ansible's own
tags load as plain values: ``!unsafe`` as its string, ``!vault`` as a masked secret that
Baton cannot decrypt. The structure rules are those of ansible-core 2.19's ``yaml``
plugin; where Ansible merely warns and skips a malformed entry, Baton refuses it with a
located error instead of silently dropping hosts.
"""

from __future__ import annotations

from typing import Any

import yaml

from console.model.ansible_data import AnsibleInventoryError, Inventory
from console.model.ansible_hosts import expand_hostpattern

__all__ = ["VaultValue", "YamlShape", "load_yaml", "parse_yaml_into"]

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SECTIONS = ("vars", "children", "hosts")


class VaultValue(str):
    """An ``!vault`` value: encrypted, kept only to say it is there (always masked)."""


class LineMap(dict[Any, Any]):
    """A YAML mapping that remembers the line of each key."""

    line: int = 0
    lines: dict[Any, int]


class _Loader(_Base):
    pass


def _map(loader: Any, node: yaml.MappingNode) -> Any:
    data = LineMap()
    data.line = node.start_mark.line + 1
    data.lines = {}
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark) from None
        data[key] = loader.construct_object(value_node, deep=True)
        data.lines[key] = key_node.start_mark.line + 1


def _unsafe(loader: Any, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return dict(loader.construct_mapping(node, deep=True))


def _vault(loader: Any, node: yaml.Node) -> Any:
    return VaultValue("!vault")


_Loader.add_constructor("tag:yaml.org,2002:map", _map)
_Loader.add_constructor("!unsafe", _unsafe)
_Loader.add_constructor("!vault", _vault)
_Loader.add_constructor("!vault-encrypted", _vault)


class YamlShape(AnsibleInventoryError):
    """The text is YAML but not a YAML inventory (another reader may still take it)."""


def load_yaml(text: str, source: str) -> Any:
    """The document, or :class:`AnsibleInventoryError` ``source:line: problem``."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        what = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise AnsibleInventoryError(source, f"YAML: {what}", line) from None
    except yaml.YAMLError as exc:
        raise AnsibleInventoryError(source, f"YAML: {' '.join(str(exc).split())}") from None
    finally:
        loader.dispose()


def parse_yaml_into(inv: Inventory, data: Any) -> None:
    """Fill ``inv`` from a loaded YAML inventory document."""
    if not data:
        raise YamlShape(inv.source, "empty YAML file")
    if not isinstance(data, dict):
        raise YamlShape(inv.source, "a YAML inventory is a mapping of groups, "
                        f"not a {type(data).__name__}", 1)
    if data.get("plugin"):
        raise YamlShape(inv.source, "an inventory plugin configuration, not a YAML "
                        "inventory")
    for name, body in data.items():
        inv.line = _line(data, name)
        _group(inv, name, body)


def _line(mapping: Any, key: Any) -> int:
    lines = getattr(mapping, "lines", None)
    return lines.get(key, getattr(mapping, "line", 0)) if lines else getattr(mapping, "line", 0)


def _group(inv: Inventory, name: Any, body: Any) -> str:
    if not isinstance(name, str):
        raise inv.fail(f"group name {name!r} must be a string (quote it)")
    if body is not None and not isinstance(body, dict):
        raise inv.fail(f"group '{name}' must be a mapping with hosts, vars or children, "
                       f"not a {_kind(body)} (Ansible skips it with a warning)")
    group = inv.add_group(name)
    if body is None:
        return group
    for section in SECTIONS:
        if section in body and isinstance(body[section], str):
            body[section] = {body[section]: None}
    for key, value in body.items():
        inv.line = _line(body, key)
        if key not in SECTIONS:
            raise inv.fail(f"unknown key '{key}' in group '{name}' (expected hosts, vars or "
                           "children; Ansible skips it with a warning)")
        if value is None:
            continue
        if not isinstance(value, dict):
            raise inv.fail(f"'{key}' of group '{name}' must be a mapping, not a "
                           f"{_kind(value)}")
        if key == "vars":
            for var, item in value.items():
                inv.line = _line(value, var)
                inv.set_variable(group, var, plain_data(item))
        elif key == "children":
            for child, child_body in value.items():
                inv.line = _line(value, child)
                sub = _group(inv, child, child_body)
                inv.line = _line(value, child)
                inv.add_child(group, sub)
        else:
            for pattern, variables in value.items():
                inv.line = _line(value, pattern)
                names, port = expand_hostpattern(pattern, inv.fail)
                variables = variables or {}
                if not isinstance(variables, dict):
                    raise inv.fail(f"variables of host '{pattern}' must be a mapping, not a "
                                   f"{_kind(variables)}")
                for host in names:
                    inv.add_host(host, group, port)
                    for var, item in variables.items():
                        inv.line = _line(variables, var)
                        inv.set_variable(host, var, plain_data(item))
                    inv.line = _line(value, pattern)
    return group


def _kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number",
            bool: "boolean"}.get(type(value), type(value).__name__)


def plain_data(value: Any, seen: dict[int, Any] | None = None) -> Any:
    """Mappings become plain dicts; shared (aliased) values stay shared, so a document
    full of nested YAML aliases cannot blow up in memory."""
    if not isinstance(value, (dict, list)):
        return value
    seen = {} if seen is None else seen
    if id(value) in seen:
        return seen[id(value)]
    out: Any = {} if isinstance(value, dict) else []
    seen[id(value)] = out
    if isinstance(value, dict):
        out.update((k, plain_data(v, seen)) for k, v in value.items())
    else:
        out.extend(plain_data(v, seen) for v in value)
    return out
