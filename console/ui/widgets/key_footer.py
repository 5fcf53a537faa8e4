"""The run screen's footer: the keys that apply, drawn as Textual's Footer draws them, and
updated in place.

Textual's Footer rebuilds every key (unmount, mount, a restyle of each) whenever the
screen's bindings are refreshed. On a fleet-sized run that happens on most keypresses (the
keys that apply follow the cursor) and whenever the "Needs you" count moves: the rebuild
was the largest single cost of a keypress. :class:`KeyFooter` keeps a key's widget while
the key is shown and changes only what changed (its description, its enabled state); a key
that now applies is mounted, one that no longer does removed.

It is built from public Textual pieces only (a scrollable container, one small widget per
key, the screen's ``active_bindings`` and ``bindings_updated_signal``); its CSS is
Footer's (Textual 8), so the screen draws the same characters as with Footer. Binding
groups (``Binding.group``) are shown as ordinary keys: Baton's screens use none.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

from rich.text import Text
from textual import events
from textual.containers import ScrollableContainer
from textual.screen import Screen
from textual.widget import Widget


class KeySpec(NamedTuple):
    """One key as the footer shows it."""

    key: str
    key_display: str
    description: str
    action: str
    disabled: bool
    tooltip: str
    palette: bool
    """The command palette's key: docked right, compact."""


class FooterEntry(Widget):
    """One key and its description (Textual's FooterKey, redone with public API)."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {"footer-key--key", "footer-key--description"}
    DEFAULT_CSS = """
    FooterEntry {
        width: auto;
        height: 1;
        text-wrap: nowrap;
        background: $footer-item-background;
        .footer-key--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
            padding: 0 1;
        }
        .footer-key--description {
            padding: 0 1 0 0;
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        &:hover {
            pointer: pointer;
            color: $footer-key-foreground;
            background: $block-hover-background;
        }
        &.-disabled {
            text-style: dim;
        }
        &.-compact {
            .footer-key--key {
                padding: 0;
            }
            .footer-key--description {
                padding: 0 0 0 1;
            }
        }
    }
    """

    def __init__(self, spec: KeySpec) -> None:
        classes = "-command-palette -compact" if spec.palette else ""
        super().__init__(classes=classes + (" -disabled" if spec.disabled else ""))
        self.spec = spec
        self.tooltip = spec.tooltip or None

    def show(self, spec: KeySpec) -> None:
        """Show ``spec`` (the same key): repaint or re-lay out only for what changed."""
        old, self.spec = self.spec, spec
        if old.disabled != spec.disabled:
            self.set_class(spec.disabled, "-disabled")
        if old.tooltip != spec.tooltip:
            self.tooltip = spec.tooltip or None
        if (old.description, old.key_display) != (spec.description, spec.key_display):
            self.refresh(layout=True)

    def render(self) -> Text:
        key_style = self.get_component_rich_style("footer-key--key")
        description_style = self.get_component_rich_style("footer-key--description")
        key_padding = self.get_component_styles("footer-key--key").padding
        description_padding = self.get_component_styles("footer-key--description").padding
        spec = self.spec
        if spec.description:
            text = Text.assemble(
                (" " * key_padding.left + spec.key_display + " " * key_padding.right,
                 key_style),
                (" " * description_padding.left + spec.description
                 + " " * description_padding.right, description_style))
        else:
            text = Text.assemble((spec.key_display, key_style))
        text.stylize_before(self.rich_style)
        return text

    def on_mouse_down(self) -> None:
        if self.spec.disabled:
            self.app.bell()
        else:
            self.app.simulate_key(self.spec.key)


class KeyFooter(ScrollableContainer, can_focus=False, can_focus_children=False):
    """A footer of the keys that apply, relabelled in place instead of rebuilt."""

    ALLOW_SELECT = False
    DEFAULT_CSS = """
    KeyFooter {
        layout: horizontal;
        color: $footer-foreground;
        background: $footer-background;
        dock: bottom;
        height: 1;
        scrollbar-size: 0 0;
        FooterEntry.-command-palette {
            dock: right;
            padding-right: 1;
            border-left: vkey $foreground 20%;
        }
    }
    """

    def __init__(self, *, show_command_palette: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self.show_command_palette = show_command_palette
        self.entries: dict[tuple[str, str, bool], FooterEntry] = {}
        """The keys shown, in their order (removed ones are gone from here at once)."""

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def bindings_changed(self, screen: Screen) -> None:
        """The screen's bindings were refreshed: show the keys that apply now (as Footer
        does, not while the app is in the background: they are shown when it is back)."""
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            self.show_keys(self.planned())

    def planned(self) -> list[KeySpec]:
        """The keys to show: the first binding shown of each action, in the screen's order,
        then the command palette's key."""
        active = self.screen.active_bindings
        first: dict[str, KeySpec] = {}
        for _, binding, enabled, tooltip in active.values():
            if binding.show:
                first.setdefault(binding.action, KeySpec(
                    binding.key, self.app.get_key_display(binding), binding.description,
                    binding.action, not enabled, tooltip, False))
        keys = list(first.values())
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            palette = active.get(self.app.COMMAND_PALETTE_BINDING)
            if palette is not None:
                binding = palette.binding
                keys.append(KeySpec(binding.key, self.app.get_key_display(binding),
                                    binding.description, binding.action, not palette.enabled,
                                    binding.tooltip or binding.description, True))
        return keys

    def show_keys(self, planned: list[KeySpec]) -> None:
        """Bring the shown keys to ``planned``: a key shown before and now keeps its widget
        (relabelled, enabled or disabled, moved into the planned order), a key that now
        applies is mounted, one that no longer applies removed."""
        children = set(self.children)  # an entry Textual already removed is gone
        before = {ident: e for ident, e in self.entries.items() if e in children}
        shown = list(before.values())
        after: dict[tuple[str, str, bool], FooterEntry] = {}
        new: list[FooterEntry] = []
        for spec in planned:
            ident = (spec.key, spec.action, spec.palette)
            if ident in after:
                continue
            entry = before.pop(ident, None)
            if entry is None:
                entry = FooterEntry(spec)
                new.append(entry)
            else:
                entry.show(spec)
            after[ident] = entry
        for gone in before.values():
            gone.display = False  # out of the layout now: removal ends a message later
            gone.remove()
        self.entries = after
        if new:
            self.mount(*new)
        if any(entry.parent is not self for entry in after.values()):
            return  # the footer is being removed: mount took nothing, nothing to order
        kept = set(after.values())
        if [e for e in shown if e in kept] + new != list(after.values()):
            for entry in after.values():  # each to the end, in order
                if entry in self.children:  # not so while the footer goes (mount did nothing)
                    self.move_child(entry, after=self.children[-1])

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        """The wheel scrolls the keys sideways when they do not all fit (as Footer's)."""
        if self.allow_horizontal_scroll and self.scroll_x < self.max_scroll_x:
            self.scroll_right(animate=True)
            event.stop()
            event.prevent_default()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if self.allow_horizontal_scroll and self.scroll_x > 0:
            self.scroll_left(animate=True)
            event.stop()
            event.prevent_default()
