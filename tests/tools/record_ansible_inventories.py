"""Record what ``ansible-inventory --list`` gives for each file in tests/fixtures/inventories.

Run by hand, never by the tests; ansible-core is NOT a dependency of Baton or its tests:

    python3 -m venv /tmp/ansible-venv
    /tmp/ansible-venv/bin/pip install 'ansible-core>=2.19,<2.20'
    python3 tests/tools/record_ansible_inventories.py /tmp/ansible-venv/bin/ansible-inventory

Each folder in ``trees/`` holds one inventory file with its ``group_vars/`` and
``host_vars/`` (recorded as ``expected/trees-NAME.json``).
Each FILE gets ``expected/FILE.json``: ``{"ansible": VERSION, "listing": {...}}`` with the
``--list`` output, or ``{"ansible": VERSION, "refused": "reason"}`` when Ansible could not
parse the file (it then warns and goes on with an empty inventory). Every file is copied
alone into an empty folder first, so no group_vars/host_vars or ansible.cfg leaks in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"


def inventory_of(tree: Path) -> Path:
    """The one file at the top of a tree (the others are group_vars/ and host_vars/)."""
    (found,) = [p for p in tree.iterdir() if p.is_file()]
    return found


def record(tool: str, source: Path, version: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        if source.is_dir():  # a tree: the inventory file with its group_vars/host_vars
            shutil.copytree(source, Path(tmp) / "tree")
            copy = Path(tmp) / "tree" / inventory_of(source).name
        else:
            copy = Path(tmp) / source.name
            shutil.copyfile(source, copy)
        env = {**os.environ, "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1", "ANSIBLE_HOME": tmp}
        done = subprocess.run([tool, "-i", str(copy), "--list"], capture_output=True,
                              text=True, env=env, cwd=tmp, check=False)
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        reason = next((line for line in lines if "parse" in line.lower()), lines[-1:] or [""])
        return {"ansible": version, "refused": str(reason).replace(tmp, "")}
    listing = json.loads(done.stdout)
    listing.get("_meta", {}).pop("profile", None)
    return {"ansible": version, "listing": listing}


def main() -> int:
    tool = sys.argv[1] if len(sys.argv) > 1 else "ansible-inventory"
    version = subprocess.run([tool, "--version"], capture_output=True, text=True,
                             check=True).stdout.split("\n")[0]
    out = HERE / "expected"
    out.mkdir(exist_ok=True)
    for source in sorted(HERE.iterdir()):
        if source.is_file() and source.name != "SOURCES.md":
            result = record(tool, source, version)
            (out / f"{source.name}.json").write_text(json.dumps(result, indent=1,
                                                                sort_keys=True) + "\n")
            print(source.name, "refused" if "refused" in result else "ok")
    for tree in sorted((HERE / "trees").iterdir()):
        result = record(tool, tree, version)
        (out / f"trees-{tree.name}.json").write_text(json.dumps(result, indent=1,
                                                               sort_keys=True) + "\n")
        print("trees/" + tree.name, "refused" if "refused" in result else "ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
