"""Themes: ``themes/*.toml`` files -> :class:`textual.theme.Theme`, and the remembered choice.

A theme file holds the Textual colour fields (``primary``, ``background`` …) at the top
level and the console's own colours (task states, stderr, markers) under ``[variables]``.
Bundled themes come from ``console.paths.bundled("themes")``; user themes from the config
dir's ``themes/`` override bundled ones with the same name.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import tomli_w
from textual.theme import Theme

from console import paths

DEFAULT_THEME = "dark"

STATE_VARIABLES: dict[str, str] = {
    "state-pending": "#8b93a1",
    "state-awaiting": "#ffb454",
    "state-running": "#5fa8ff",
    "state-retrying": "#e0a3ff",
    "state-succeeded": "#5fd38d",
    "state-failed": "#ff6b6b",
    "state-skipped": "#8b93a1",
    "state-cancelled": "#c9a26b",
    "state-blocked": "#ff9e7a",
    "state-interrupted": "#ff6b6b",
    "state-undo": "#5fd3d3",
    "log-stderr": "#ff8a8a",
    "log-time": "#6d7585",
    "marker-danger": "#ff6b6b",
    "marker-gate": "#ffb454",
    "marker-breakpoint": "#e0a3ff",
    "marker-manual": "#5fd3d3",
    "marker-changed": "#d7c96b",
    "marker-removed": "#7b8494",
    "dim-text": "#7b8494",
}
"""Every console variable with a fallback, so a user theme may omit some of them."""

_COLOUR_FIELDS = ("primary", "secondary", "warning", "error", "success", "accent",
                  "foreground", "background", "surface", "panel", "boost")


class ThemeError(Exception):
    """A theme file cannot be read; the message names the file."""


def load_theme(path: Path) -> Theme:
    """Parse one theme file; the theme's name defaults to the file's stem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ThemeError(f"{path}: cannot read theme: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ThemeError(f"{path}: invalid TOML: {exc}") from None
    return theme_from_dict(data, default_name=path.stem, source=str(path))


def theme_from_dict(data: dict[str, Any], *, default_name: str, source: str) -> Theme:
    known = {"name", "dark", "variables", "luminosity_spread", "text_alpha", *_COLOUR_FIELDS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ThemeError(f"{source}: unknown theme key '{unknown[0]}'")
    if not isinstance(data.get("primary"), str):
        raise ThemeError(f"{source}: 'primary' (a colour) is required")
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(
        isinstance(v, str) for v in variables.values()
    ):
        raise ThemeError(f"{source}: [variables] must map names to colour strings")
    kwargs: dict[str, Any] = {f: data[f] for f in _COLOUR_FIELDS if f in data}
    for number in ("luminosity_spread", "text_alpha"):
        if number in data:
            kwargs[number] = float(data[number])
    return Theme(
        name=str(data.get("name", default_name)),
        dark=bool(data.get("dark", True)),
        variables={**STATE_VARIABLES, **variables},
        **kwargs,
    )


def theme_folders() -> list[Path]:
    """Where themes are looked up, later folders overriding earlier ones."""
    return [paths.bundled("themes"), paths.config_dir() / "themes"]


def discover_themes(folders: Iterable[Path] | None = None) -> tuple[dict[str, Theme], list[str]]:
    """Every readable theme by name, and one error line per unreadable file."""
    themes: dict[str, Theme] = {}
    errors: list[str] = []
    for folder in theme_folders() if folders is None else folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = load_theme(path)
            except ThemeError as exc:
                errors.append(str(exc))
                continue
            themes[theme.name] = theme
    return themes, errors


# --- the remembered choice --------------------------------------------------------------


def config_path() -> Path:
    return paths.config_dir() / "config.toml"


def read_config(path: Path) -> dict[str, Any]:
    """The user config, or ``{}`` when it is missing or unreadable (never fatal)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def remembered_theme(path: Path) -> str | None:
    value = read_config(path).get("theme")
    return value if isinstance(value, str) else None


def remember_theme(path: Path, name: str) -> None:
    """Store ``theme = NAME`` in the user config, keeping its other keys."""
    config = read_config(path)
    config["theme"] = name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
