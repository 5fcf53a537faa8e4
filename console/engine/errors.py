"""Errors of the engine's public API (a leaf module: every engine module may import it)."""

from __future__ import annotations


class ActionError(Exception):
    """An operator action that does not apply; nothing was changed."""
