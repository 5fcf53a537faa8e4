"""The store's errors: each is one line naming the path (or the run) at fault.

A leaf: imports nothing of Baton's, so every module of the store (and every front end)
can raise or catch them.
"""

from __future__ import annotations

__all__ = ["LiveRunError", "StoreError", "UnsafePathError"]


class StoreError(Exception):
    """The store cannot be used; the message is one line that names the path."""


class LiveRunError(StoreError):
    """Another live process records this run."""


class UnsafePathError(StoreError):
    """A path of the home that others could change (a symlink, another owner, writable by
    group or others): refused outright, never worked around by reading instead."""
