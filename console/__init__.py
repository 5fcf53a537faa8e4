"""Baton: an operations console for runbooks."""

__version__ = "0.1.0"
