"""Exit statuses have one home (issue 12 item 6: ``EXIT_*`` was defined in cli.py,
headless.py and ui/app.py): only console/exitcodes.py assigns them; the front ends import
the same values."""

from __future__ import annotations

import ast
from pathlib import Path

from console import exitcodes
from tests.helpers import parsed

ROOT = Path(__file__).resolve().parent.parent / "console"


def test_only_exitcodes_assigns_the_exit_statuses() -> None:
    names = set(exitcodes.__all__)
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(parsed(path)):
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            found += [(path.relative_to(ROOT).as_posix(), t.id) for t in targets
                      if isinstance(t, ast.Name) and t.id in names]
    assert sorted(found) == sorted(("exitcodes.py", name) for name in names)


def test_the_front_ends_use_the_same_values() -> None:
    from console import headless
    from console.commands import rollback_command, run_commands
    from console.ui import app

    assert (exitcodes.EXIT_OK, exitcodes.EXIT_FAILED, exitcodes.EXIT_USAGE,
            exitcodes.EXIT_INTERRUPTED, exitcodes.EXIT_HISTORY) == (0, 1, 2, 130, 2)
    for module in (run_commands, rollback_command, headless, app):
        for name in ("EXIT_OK", "EXIT_FAILED"):
            assert getattr(module, name) is getattr(exitcodes, name)
