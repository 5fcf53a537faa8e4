"""Parity on real files: ``baton hosts --json`` against what the reference tools print.

- 49 Ansible inventories and 2 inventory trees from public repositories
  (tests/fixtures/inventories, sources in SOURCES.md) against ``ansible-inventory --list``
  of ansible-core 2.19, recorded by
  tests/tools/record_ansible_inventories.py: the same hosts, the same groups (transitively),
  the same variables with the same types, and the connection values Ansible's ssh plugin
  would use, or, where Ansible refuses the file, a located one-line refusal.
- Files Baton refuses on purpose although Ansible reads them are listed in DELIBERATE with
  the reason (docs/inventories.md justifies each).
"""

from __future__ import annotations

import getpass
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from console.cli import main
from console.executors.ssh_config import home_relative

HERE = Path(__file__).parent / "fixtures" / "inventories"
FILES = sorted(p.name for p in HERE.iterdir() if p.is_file() and p.name != "SOURCES.md")
TREES = sorted(p.name for p in (HERE / "trees").iterdir())

DELIBERATE: dict[str, str] = {
    # file: what Baton's located refusal says (Ansible reads these files)
    "a4d-orchestration-hosts.ini": "-o StrictHostKeyChecking is not supported: Baton always "
                                   "checks host keys",
    "kube-rke2-inventory-ini-in.yml": "-o StrictHostKeyChecking is not supported: Baton "
                                      "always checks host keys",
}
SECRET = re.compile(r"pass|secret|token|credential|vault|private_key(?!_file)|api_?key", re.I)


def baton_hosts(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str, str]:
    code = main(["hosts", str(path), "--json", "--ssh-config", "none"])
    out, err = capsys.readouterr()
    return code, out, err


def ansible_groups(listing: dict[str, Any]) -> dict[str, set[str]]:
    """host -> every group it is in (transitively), without all/ungrouped."""
    parents: dict[str, set[str]] = {}
    for group, entry in listing.items():
        for child in entry.get("children", []) if group != "_meta" else []:
            parents.setdefault(child, set()).add(group)
    out: dict[str, set[str]] = {h: set() for h in listing["_meta"]["hostvars"]}
    for group, entry in listing.items():
        if group == "_meta":
            continue
        for host in entry.get("hosts", []):
            seen: set[str] = set()
            stack = [group]
            while stack:
                g = stack.pop()
                if g not in seen:
                    seen.add(g)
                    stack.extend(parents.get(g, ()))
            out.setdefault(host, set()).update(seen - {"all", "ungrouped"})
    return out


def expected_connection(name: str, hv: dict[str, Any]) -> dict[str, Any]:
    """What Ansible's ssh plugin connects to (later spelling wins)."""
    def pick(*names: str) -> Any:
        found = None
        for key in names:
            if hv.get(key) not in (None, ""):
                found = hv[key]
        return found

    if hv.get("ansible_connection") in ("local", "ansible.builtin.local"):
        return {"connection": "local"}
    port = pick("ansible_port", "ansible_ssh_port")
    out = {"connection": "ssh",
           "address": str(pick("ansible_host", "ansible_ssh_host") or name),
           "port": int(port) if port is not None else 22,
           "user": str(pick("ansible_user", "ansible_ssh_user") or getpass.getuser())}
    key = pick("ansible_private_key_file", "ansible_ssh_private_key_file")
    if key is not None:
        out["identity_files"] = [home_relative(os.path.expanduser(str(key)))]
    return out


def same_vars(mine: Any, theirs: Any, secret: bool = False) -> bool:
    if mine == "***" and (secret or (isinstance(theirs, str) and theirs.startswith("$ANSIBLE"))):
        return True
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return mine.keys() == theirs.keys() and all(
            same_vars(mine[k], theirs[k], secret or bool(SECRET.search(k))) for k in mine)
    if isinstance(mine, list) and isinstance(theirs, list):
        return len(mine) == len(theirs) and all(
            same_vars(a, b, secret) for a, b in zip(mine, theirs, strict=True))
    return bool(mine == theirs and type(mine) is type(theirs))


def differences(name: str, report: dict[str, Any], listing: dict[str, Any]) -> list[str]:
    renamed = report.get("renamed_hosts", {})
    regroup = report.get("renamed_groups", {})
    hostvars = listing["_meta"]["hostvars"]
    groups = ansible_groups(listing)
    rows = {row["name"]: row for row in report["hosts"]}
    wanted = {renamed.get(h, h): h for h in groups}
    out: list[str] = []
    if set(rows) != set(wanted):
        out.append(f"hosts: baton {sorted(set(rows) - set(wanted))} "
                   f"ansible {sorted(set(wanted) - set(rows))}")
    for mine, theirs in wanted.items():
        row = rows.get(mine)
        if row is None:
            continue
        hv = hostvars.get(theirs, {})
        if not same_vars(row["vars"], hv):
            out.append(f"{mine}: vars differ")
        if set(row["groups"]) != {regroup.get(g, g) for g in groups[theirs]}:
            out.append(f"{mine}: groups {sorted(row['groups'])} vs {sorted(groups[theirs])}")
        got = {k: row.get(k) for k in expected_connection(theirs, hv)}
        if got != expected_connection(theirs, hv):
            out.append(f"{mine}: connection {got} vs {expected_connection(theirs, hv)}")
    return out


@pytest.mark.parametrize("name", FILES)
def test_inventory_matches_ansible(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    recorded = json.loads((HERE / "expected" / f"{name}.json").read_text())
    code, out, err = baton_hosts(capsys, HERE / name)
    if "refused" in recorded or name in DELIBERATE:
        assert code == 2, f"Ansible refuses {name} ({recorded.get('refused')}); Baton took it"
        assert re.match(rf"^{re.escape(str(HERE / name))}:\d+: \S", err), err
        assert err.count("\n") == 1, err
        if name in DELIBERATE:
            assert DELIBERATE[name] in err
        return
    assert code == 0, err
    assert differences(name, json.loads(out), recorded["listing"]) == []


@pytest.mark.parametrize("name", TREES)
def test_inventory_with_group_vars_and_host_vars_matches_ansible(
        name: str, capsys: pytest.CaptureFixture[str]) -> None:
    recorded = json.loads((HERE / "expected" / f"trees-{name}.json").read_text())
    (inventory,) = [p for p in (HERE / "trees" / name).iterdir() if p.is_file()]
    code, out, err = baton_hosts(capsys, inventory)
    assert code == 0, err
    report = json.loads(out)
    assert differences(name, report, recorded["listing"]) == []
    assert any("/group_vars/" in source for row in report["hosts"]
               for source in row["var_sources"].values())


def test_the_corpus_is_real_and_recorded() -> None:
    assert len(FILES) + len(TREES) >= 30
    sources = (HERE / "SOURCES.md").read_text()
    for name in FILES:
        assert f"| {name} |" in sources, name
        assert (HERE / "expected" / f"{name}.json").is_file(), name
    for name in TREES:
        assert f"| trees/{name} |" in sources, name
