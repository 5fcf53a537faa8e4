"""``baton hosts FILE``: every host a workflow can reach, resolved as it will be connected.

FILE is a workflow (``.toml``) or an Ansible inventory (any other name, or
``ansible:FILE``). For each host: name, connection type, address, port, user, identity
files, jump chain or proxy command, groups (transitively), variables (secret-looking ones
masked) and where each connection value came from: the workflow, ``inventory:LINE``, or
``~/.ssh/config``. Operators check an import with it before the first run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from console.model.ansible_conn import is_secret_name
from console.model.ansible_yaml import VaultValue
from console.model.workflow import Host, SSHOptions

__all__ = ["hosts_report", "render_json", "render_text"]

MASK = "***"


class HostsError(ValueError):
    """The file cannot be read: one line per problem."""


SHOW_LIMIT = 10_000
"""Most values shown per variable (YAML aliases can nest a value into billions)."""
TOO_LARGE = "<too large to show>"


def _mask(value: Any, secret: bool = False, budget: list[int] | None = None) -> Any:
    budget = [SHOW_LIMIT] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        return TOO_LARGE
    if isinstance(value, VaultValue):
        return MASK
    if isinstance(value, Mapping):
        return {str(k): _mask(v, secret or is_secret_name(str(k)), budget)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(v, secret, budget) for v in value]
    if secret and value not in (None, ""):
        return MASK
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _shown(value: Any, secret: bool) -> Any:
    budget = [SHOW_LIMIT]
    shown = _mask(value, secret, budget)
    return TOO_LARGE if budget[0] < 0 else shown


def _load(path: str) -> tuple[SSHOptions, dict[str, Host], dict[str, Any]]:
    """(ssh defaults, hosts, what the import said) for a workflow or an inventory."""
    target = path.removeprefix("ansible:")
    if not path.startswith("ansible:") and Path(path).suffix.lower() == ".toml":
        from console.model.loader import WorkflowError, load_workflow

        if _is_toml_inventory(Path(path)):
            from console.model.inventory import load_inventory

            ssh, hosts, problems = load_inventory(Path(path))
            if problems:
                raise HostsError("\n".join(str(p) for p in problems))
            return ssh or SSHOptions(), hosts, {"inventory": path}

        try:
            workflow = load_workflow(Path(path))
        except WorkflowError as exc:
            raise HostsError("\n".join(str(p) for p in exc.problems)) from None
        meta: dict[str, Any] = {"workflow": path}
        inventory = getattr(workflow, "inventory", None)
        if inventory:
            meta["inventory"] = inventory
        return workflow.ssh, dict(workflow.hosts), meta
    from console.model.ansible import AnsibleInventoryError, import_inventory

    try:
        imported = import_inventory(target)
    except AnsibleInventoryError as exc:
        raise HostsError(str(exc)) from None
    meta = {"inventory": target, "reader": imported.reader,
            "renamed_hosts": imported.renamed_hosts, "renamed_groups": imported.renamed_groups,
            "groups": imported.groups}
    return SSHOptions(), imported.hosts, meta


def _is_toml_inventory(path: Path) -> bool:
    """A TOML inventory file (``[ssh]``/``[hosts.*]`` and no ``[workflow]``)."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return "workflow" not in data and "hosts" in data


def _chain(host: Host, hosts: Mapping[str, Host], first: str | None) -> list[str]:
    chain: list[str] = []
    current = first
    while current and current not in chain:
        hops = [hop.strip() for hop in current.split(",") if hop.strip()]
        chain[:0] = hops
        declared = hosts.get(hops[0]) if len(hops) == 1 else None
        current = declared.jump if declared is not None else None
    return chain


def hosts_report(path: str, ssh_config: str | Sequence[str] = ()) -> dict[str, Any]:
    """The report as plain data (what ``--json`` prints)."""
    from console.executors.ssh_config import home_relative, resolve

    defaults, hosts, meta = _load(path)
    rows: list[dict[str, Any]] = []
    for name, host in hosts.items():
        row: dict[str, Any] = {"name": name, "connection": "local" if host.is_local else "ssh"}
        sources: dict[str, str] = {}
        if host.is_local:  # same keys as a remote host, so scripts read one shape
            sources["connection"] = host.origin.get("connection", "workflow")
            row.update(address=None, port=None, user=None, identity_files=[],
                       missing_identity_files=[], jump_chain=[], proxy_command=None,
                       forward_agent=False)
        else:
            try:
                resolved = resolve(host, defaults, ssh_config, check_identity=False)
            except ValueError as exc:
                raise HostsError(str(exc)) from None
            row.update(address=resolved.hostname, port=resolved.port, user=resolved.user,
                       identity_files=[home_relative(p) for p in resolved.identities],
                       missing_identity_files=[home_relative(p) for p in resolved.missing],
                       jump_chain=_chain(host, hosts, resolved.jump),
                       proxy_command=resolved.proxy_command,
                       forward_agent=host.forward_agent)
            sources.update(resolved.sources)
        row["groups"] = list(host.groups)
        row["vars"] = {str(k): _shown(v, is_secret_name(str(k))) for k, v in host.vars.items()}
        row["sources"] = {k: v for k, v in sources.items() if not k.startswith("vars.")}
        row["var_sources"] = {k[5:]: v for k, v in host.origin.items() if k.startswith("vars.")}
        row["notes"] = list(host.notes)
        rows.append(row)
    return {**{k: v for k, v in meta.items() if v}, "hosts": rows}


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str) + "\n"


def render_text(report: dict[str, Any]) -> str:
    lines: list[str] = []
    for kind in ("host", "group"):
        for old, new in (report.get(f"renamed_{kind}s") or {}).items():
            lines.append(f"note: Ansible {kind} '{old}' is imported as '{new}'")
    for row in report["hosts"]:
        src = row["sources"]
        lines.append(row["name"])
        if row["connection"] == "local":
            lines.append(f"  connection  local (this machine)  [{src.get('connection')}]")
        else:
            lines.append(f"  address     {row['address']}  [{src.get('address')}]")
            lines.append(f"  port        {row['port']}  [{src.get('port')}]")
            lines.append(f"  user        {row['user']}  [{src.get('user')}]")
            if row["identity_files"] or row["missing_identity_files"]:
                shown = ", ".join(row["identity_files"]) or "(agent / default keys)"
                lines.append(f"  identity    {shown}  [{src.get('identity')}]")
            for missing in row["missing_identity_files"]:
                lines.append(f"              {missing} does not exist: skipped")
            if row["jump_chain"]:
                lines.append(f"  jump        {' -> '.join(row['jump_chain'])}  "
                             f"[{src.get('jump')}]")
            if row["proxy_command"]:
                lines.append(f"  proxy       {row['proxy_command']}  "
                             f"[{src.get('proxy_command')}]")
        if row["groups"]:
            lines.append(f"  groups      {', '.join(row['groups'])}")
        for key, value in row["vars"].items():
            where = row["var_sources"].get(key)
            lines.append(f"  var         {key} = {json.dumps(value, default=str)}"
                         + (f"  [{where}]" if where else ""))
        for note in row["notes"]:
            lines.append(f"  note        {note}")
    if not report["hosts"]:
        lines.append("no hosts")
    return "\n".join(lines) + "\n"
