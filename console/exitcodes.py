"""The exit statuses of ``baton`` (SPEC: CLI), one home for the CLI, headless mode and the
console. A leaf: imports nothing."""

from __future__ import annotations

__all__ = ["EXIT_FAILED", "EXIT_HISTORY", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE"]

EXIT_OK = 0
EXIT_FAILED = 1
"""The run (or the command) failed."""
EXIT_USAGE = 2
"""Bad arguments or a workflow that does not load."""
EXIT_HISTORY = 2
"""The history could not be written: whatever happened is not reported as a success."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C (128 + SIGINT)."""
