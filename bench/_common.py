"""What the command-level benchmarks share: run `baton` from this checkout as an installed
copy would run (compiled bytecode available), with its history in a throw-away folder."""

from __future__ import annotations

import compileall
import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def baton_env() -> dict[str, str]:
    """The environment for `python -m console.cli` subprocesses.

    ``pip install`` writes bytecode for the package; a source checkout under
    PYTHONDONTWRITEBYTECODE would recompile every module on every start (0.1 s here), which
    is not what an operator's `baton` pays, so the package is compiled once first.
    """
    compileall.compile_dir(REPO / "console", quiet=1)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env
