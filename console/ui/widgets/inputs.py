"""Text inputs as the console makes them."""

from __future__ import annotations

from textual.widgets import Input


def make_input(app: object, **kwargs: object) -> Input:
    """An Input honouring the app's ``blink`` setting (snapshots turn blinking off)."""
    field = Input(**kwargs)  # type: ignore[arg-type]
    field.cursor_blink = bool(getattr(app, "blink", True))
    return field
