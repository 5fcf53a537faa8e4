"""The commands a step will run, per host, as the console shows them (detail pane and
gate dialogs): one rendering when every host runs the same command, else one block per
distinct command with exactly the hosts that run it."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

from console.engine.texts import CommandGroup
from console.sanitize import visible

MAX_GROUPS = 12
"""Distinct commands shown; the hosts of the rest are named in one line."""
MAX_HOSTS = 8
"""Host names shown per group before "+N more"."""


def _hosts(hosts: tuple[str, ...]) -> str:
    shown = ", ".join(hosts[:MAX_HOSTS])
    if len(hosts) > MAX_HOSTS:
        shown += f" +{len(hosts) - MAX_HOSTS} more"
    return shown


def _indented(command: str) -> str:
    return "  " + visible(command).rstrip("\n").replace("\n", "\n  ")


def command_lines(groups: list[CommandGroup], style: Style | str = "") -> list[Text]:
    """``command:`` (or ``command on HOSTS:`` per distinct command) and the command(s)."""
    if not groups:
        return []
    lines: list[Text] = []
    if len(groups) == 1:
        count = len(groups[0].hosts)
        every = f" (the same on all {count} hosts)" if count > 1 else ""
        lines.append(Text(f"command{every}:", style="bold"))
        lines.append(Text(_indented(groups[0].command), style=style))
        return lines
    for group in groups[:MAX_GROUPS]:
        lines.append(Text(f"command on {_hosts(group.hosts)}:", style="bold"))
        lines.append(Text(_indented(group.command), style=style))
    rest = [host for group in groups[MAX_GROUPS:] for host in group.hosts]
    if rest:
        lines.append(Text(f"… {len(groups) - MAX_GROUPS} more different commands on "
                          f"{_hosts(tuple(rest))}", style="italic"))
    return lines
