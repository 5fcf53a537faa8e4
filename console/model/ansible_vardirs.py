"""``group_vars/`` and ``host_vars/`` beside an inventory file, as Ansible reads them.

Ansible's ``host_group_vars`` plugin looks, in the inventory file's folder, for
``group_vars/NAME`` and ``host_vars/NAME``: a file named NAME with no suffix or ``.yml``,
``.yaml``, ``.json``, or a folder NAME whose files (recursively, sorted, hidden and
backup files skipped) are read in turn. Each file is a YAML mapping of variables.

Their precedence (Ansible's variable precedence, low to high): the inventory file's group
variables, ``group_vars/all``, ``group_vars/GROUP`` (groups in Ansible's order), the
inventory file's host variables, ``host_vars/HOST``. A file encrypted with ansible-vault
cannot be read by Baton and is refused with its name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from console.model.ansible_data import AnsibleInventoryError, Where
from console.model.ansible_yaml import load_yaml, plain_data
from console.model.bounded import FILE_LIMIT, BoundedError, read_regular

__all__ = ["VarFiles", "read_var_files"]

SUFFIXES = ("", ".yml", ".yaml", ".json")

VarFiles = list[tuple[dict[str, Any], dict[str, Where]]]
"""(variables, variable -> ``file:line``) per file, in reading order."""


def _files(folder: Path, name: str) -> list[Path]:
    """Ansible's ``find_vars_files``: NAME (file, or folder read recursively), then
    NAME.yml, NAME.yaml, NAME.json."""
    found: list[Path] = []
    for suffix in SUFFIXES:
        path = folder / f"{name}{suffix}"
        if path.is_dir():
            found.extend(_folder(path))
        elif path.is_file():
            found.append(path)
    return found


def _folder(path: Path) -> list[Path]:
    found: list[Path] = []
    for entry in sorted(path.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.name.endswith("~"):
            continue
        if entry.is_dir() and not entry.suffix:
            found.extend(_folder(entry))
        elif entry.is_file() and entry.suffix in SUFFIXES:
            found.append(entry)
    return found


def read_var_files(base: Path, kind: str, name: str) -> VarFiles:
    """The variable files of group or host ``name`` (``kind``: group_vars / host_vars)."""
    folder = base / kind
    if not folder.is_dir():
        return []
    out: VarFiles = []
    for path in _files(folder, name):
        try:
            text = read_regular(path, FILE_LIMIT).decode("utf-8", errors="replace")
        except (BoundedError, OSError) as exc:
            raise AnsibleInventoryError(str(path), "cannot read: "
                                        f"{getattr(exc, 'strerror', None) or exc}") from None
        if text.lstrip().startswith("$ANSIBLE_VAULT"):
            raise AnsibleInventoryError(str(path), "encrypted with ansible-vault: Baton "
                                        "cannot read it (keep secrets in [secrets])", 1)
        data = load_yaml(text, str(path))
        if data is None:
            continue
        if not isinstance(data, dict):
            raise AnsibleInventoryError(str(path), f"a {kind} file must be a mapping of "
                                        "variables", 1)
        lines: dict[Any, int] = getattr(data, "lines", {})
        variables: dict[str, Any] = {}
        origin: dict[str, Where] = {}
        for key, value in data.items():
            variables[str(key)] = plain_data(value)
            origin[str(key)] = (str(path), lines.get(key, 1))
        out.append((variables, origin))
    return out

