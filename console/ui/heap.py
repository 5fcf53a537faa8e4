"""A shown run screen's objects stay out of the garbage collector's full passes.

CPython's full collection walks every tracked object. On a 300-host run the console holds
about 180,000 (Textual's strips carry eight small caches each), and each full pass took
70-100 ms: a frame, and the keys waiting behind it. What exists once the run screen is
drawn (modules, themes, the tree, the run) lives as long as the screen, so it is frozen
(``gc.freeze``), and given back when the screen goes: a closed run's cycles are still
collected.
"""

from __future__ import annotations

import gc
from typing import Any

from textual.screen import Screen


def freeze_when_drawn(screen: Screen[Any]) -> None:
    """Freeze what exists once ``screen`` has been drawn (unless it is gone by then)."""

    def freeze() -> None:
        if screen.is_attached:
            gc.freeze()

    screen.call_after_refresh(freeze)


def thaw() -> None:
    """Hand the frozen objects back to the collector (the screen went)."""
    gc.unfreeze()
