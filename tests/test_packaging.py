"""`pip install .` (not editable) ships the bundled workflows, themes and stylesheet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_an_installed_copy_finds_its_bundled_files(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
                    "--target", str(target), str(REPO)], check=True, capture_output=True)
    code = (
        "import console, console.paths as p, pathlib, sys\n"
        f"assert console.__file__.startswith({str(target)!r}), console.__file__\n"
        "names = {f: sorted(x.name for x in p.bundled(f).iterdir())"
        " for f in ('themes', 'workflows')}\n"
        "assert names['themes'] == ['dark.toml', 'high-contrast.toml', 'light.toml'], names\n"
        "assert {'disk-pressure-triage.toml', 'service-rollout.toml', 'config-change.toml'}"
        " <= set(names['workflows']), names\n"
        "assert (pathlib.Path(console.__file__).parent / 'ui' / 'baton.tcss').is_file()\n"
        "from console.cli import main\n"
        "sys.exit(main(['check', str(p.bundled('workflows') / 'config-change.toml')]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
