"""Textual's own Footer in place of Baton's KeyFooter: what the run screen must look like."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Footer

from console.ui.widgets.key_footer import KeyFooter


async def footer_swapped_for_textuals(pilot: Pilot, screen: Screen) -> Footer:
    """Replace the screen's KeyFooter with Textual's Footer, once that has drawn its keys."""
    await screen.query_one(KeyFooter).remove()
    footer = Footer()
    await screen.mount(footer)
    screen.refresh_bindings()  # Footer builds its keys when the bindings are refreshed
    for _ in range(3):
        await pilot.pause()
    assert footer.children, "Textual's Footer shows no key"
    return footer
