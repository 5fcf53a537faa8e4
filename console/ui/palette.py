"""Rich styles from the current theme's variables (task states, stderr, markers)."""

from __future__ import annotations

from typing import Any

from rich.style import Style
from textual.app import App

from console.engine.events import RunState, TaskState
from console.themes import STATE_VARIABLES
from console.ui import format as fmt


class Palette:
    """Cached styles for one theme; :func:`palette` hands out the current one."""

    def __init__(self, variables: dict[str, str]) -> None:
        self._variables = variables
        self._styles: dict[str, Style] = {}

    def style(self, variable: str, *, bold: bool = False, dim: bool = False) -> Style:
        key = f"{variable}|{bold}|{dim}"
        style = self._styles.get(key)
        if style is None:
            colour = self._variables.get(variable) or STATE_VARIABLES.get(variable)
            try:
                style = Style(color=colour, bold=bold or None, dim=dim or None)
            except Exception:  # a colour Rich cannot parse: fall back to no colour
                style = Style(bold=bold or None, dim=dim or None)
            self._styles[key] = style
        return style

    def state(self, state: TaskState, *, bold: bool = False) -> Style:
        return self.style(fmt.state_variable(state), bold=bold)

    def run_state(self, state: RunState) -> Style:
        return self.style(fmt.run_state_variable(state), bold=True)


_cache: dict[int, tuple[str, Palette]] = {}


def palette(app: App[Any]) -> Palette:
    """The palette of ``app``'s current theme (rebuilt when the theme changes).

    Themes that are not Baton's (Textual's built-in ones) get the default state colours.
    """
    cached = _cache.get(id(app))
    if cached is not None and cached[0] == app.theme:
        return cached[1]
    made = Palette({**STATE_VARIABLES, **app.current_theme.variables})
    _cache[id(app)] = (app.theme, made)
    return made


def forget(app: App[object]) -> None:
    """Drop the cached palette of ``app`` (its theme's colours were edited in place)."""
    _cache.pop(id(app), None)
