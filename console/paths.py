"""Where bundled data, user config and run state live."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def bundled(folder: str) -> Path:
    """The bundled ``workflows`` or ``themes`` folder, installed or in the source tree."""
    installed = _PACKAGE / "data" / folder
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / folder


def baton_home() -> Path:
    """``$BATON_HOME``, else the platform's user state dir for baton."""
    env = os.environ.get("BATON_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_state_dir

    return Path(user_state_dir("baton"))


def config_dir() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("baton"))
