"""The run screen's footer: Textual's Footer, relabelled in place when it can be.

Textual's Footer rebuilds every key (unmount, mount, a restyle of each) whenever the
screen's bindings are refreshed. On a fleet-sized run that happens on most keypresses (the
keys that apply follow the cursor) and whenever the "Needs you" count moves: the rebuild
was the largest single cost of a keypress. When the same keys are shown in the same order
and only a description or an enabled state changed, :class:`KeyFooter` updates those keys
in place; the screen draws the same characters a rebuild would draw.
"""

from __future__ import annotations

from typing import NamedTuple

from textual._context import active_message_pump
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class _Key(NamedTuple):
    key: str
    key_display: str
    description: str
    action: str
    disabled: bool
    tooltip: str
    palette: bool


class KeyFooter(Footer):
    """A Footer that relabels its keys instead of rebuilding them when it can."""

    _rebuilding = False
    """A rebuild by Footer is scheduled or under way: relabelling meanwhile would mount keys
    beside the ones it mounts."""

    def bindings_changed(self, screen: Screen) -> None:
        drawn = screen.app.app_focus and self.is_attached and screen is self.screen
        if drawn and self._bindings_ready and not self._rebuilding and self._relabel():
            return
        if drawn:
            self._rebuilding = True
        super().bindings_changed(screen)

    async def recompose(self) -> None:
        self._rebuilding = True
        try:
            await super().recompose()
        finally:
            self._rebuilding = False

    def _planned(self) -> list[_Key] | None:
        """The keys Footer.compose would yield now, or None when it would yield groups."""
        active = self.screen.active_bindings
        first: dict[str, _Key] = {}
        for _, binding, enabled, tooltip in active.values():
            if not binding.show:
                continue
            if binding.group is not None:
                return None  # grouped keys: let Footer build them
            first.setdefault(binding.action, _Key(
                binding.key, self.app.get_key_display(binding), binding.description,
                binding.action, not enabled, tooltip, False))
        keys = list(first.values())
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            palette = active.get(self.app.COMMAND_PALETTE_BINDING)
            if palette is not None:
                _node, binding, enabled, tooltip = palette
                keys.append(_Key(binding.key, self.app.get_key_display(binding),
                                 binding.description, binding.action, not enabled,
                                 binding.tooltip or binding.description, True))
        return keys

    def _relabel(self) -> bool:
        """Bring the shown keys to the planned ones: keys shown before and now are kept
        (relabelled, enabled or disabled, moved into the planned order), a key that now
        applies is mounted, one that no longer applies removed. False when Footer must
        build the keys itself (grouped keys)."""
        if self._closing or self._pruning:
            return False  # leaving: Footer does nothing then
        planned = self._planned()
        if planned is None:
            return False
        shown: dict[tuple[str, str, bool], FooterKey] = {}
        for child in self.children:
            if child._pruning:  # removed by an earlier relabel, not gone yet
                continue
            if not isinstance(child, FooterKey):
                return False
            shown[(child.key, child.action, child.has_class("-command-palette"))] = child
        wanted = {(k.key, k.action, k.palette): k for k in planned}
        order: list[FooterKey] = []
        new: list[FooterKey] = []
        for ident, key in wanted.items():
            widget = shown.pop(ident, None)
            if widget is not None and (widget.key_display != key.key_display
                                       or (widget.tooltip or "") != (key.tooltip or "")):
                widget.remove()
                widget = None
            if widget is None:
                widget = self._make(key)
                new.append(widget)
            else:
                if widget._disabled != key.disabled:
                    widget._disabled = key.disabled
                    widget.set_class(key.disabled, "-disabled")
                if widget.description != key.description:
                    widget.description = key.description
                    widget.refresh(layout=True)
            order.append(widget)
        for gone in shown.values():
            gone.remove()
        if new:
            self.mount(*new)
        if [c for c in self.children if not c._pruning] != order:
            for widget in order:  # each to the end, in order
                self.move_child(widget, after=self.children[-1])
        return True

    def _make(self, key: _Key) -> FooterKey:
        """A key as Footer.compose makes it (bound to this footer's ``compact``)."""
        if key.palette:
            return FooterKey(key.key, key.key_display, key.description, key.action,
                             classes="-command-palette", disabled=key.disabled,
                             tooltip=key.tooltip)
        made = FooterKey(key.key, key.key_display, key.description, key.action,
                         disabled=key.disabled, tooltip=key.tooltip)
        binding = active_message_pump.set(self)  # data_bind binds to the active pump
        try:
            return made.data_bind(compact=Footer.compact)
        finally:
            active_message_pump.reset(binding)
