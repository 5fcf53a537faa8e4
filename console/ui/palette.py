"""Rich styles from the current theme's variables (task states, stderr, markers).

The colours are the theme's CSS variables (``$state-running``, ``$log-stderr`` …, see
:data:`console.themes.STATE_VARIABLES`); a :class:`Palette` turns them into Rich styles for
what widgets draw as Rich text (tree labels, detail, log lines). Palettes are cached by the
theme's *content*, so an edited theme file gets a new palette without being told; widgets
redraw themselves when the theme changes (they subscribe to ``App.theme_changed_signal``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from rich.style import Style
from textual.app import App
from textual.theme import Theme

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


@lru_cache(maxsize=16)
def _palette_of(variables: tuple[tuple[str, str], ...]) -> Palette:
    return Palette({**STATE_VARIABLES, **dict(variables)})


_last: list[tuple[Theme, Palette]] = []
"""The theme asked for last and its palette: a log line asks once per line drawn."""


def palette(app: App[Any]) -> Palette:
    """The palette of ``app``'s current theme.

    Themes that are not Baton's (Textual's built-in ones) get the default state colours.
    """
    theme = app.current_theme
    if _last and _last[0][0] is theme:
        return _last[0][1]
    made = _palette_of(tuple(theme.variables.items()))
    _last[:] = [(theme, made)]
    return made
