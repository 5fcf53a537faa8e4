"""Where one host is really connected: the workflow's values over ``~/.ssh/config``'s.

OpenSSH's rules, through asyncssh's parser (``Host`` and ``Match`` blocks, ``Include``,
``%h``/``%p``/``%r``/``%u``/``%d`` tokens, ``~``, the first value of an option wins,
``HostName`` kept as written). Then, as OpenSSH does:

- a value written in the workflow (or the imported inventory) always wins, ``port = 22``
  included;
- ``IdentityFile`` entries that do not exist are skipped (OpenSSH tries the next one); an
  identity written in the workflow must exist;
- ``ProxyJump`` (``[user@]host[:port]``, comma-separated chains) and ``ProxyCommand``
  become Baton's own jump connections (checked against Baton's known_hosts) or command.

:func:`resolve` is shared by the SSH executor and ``baton hosts``.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncssh.config import SSHClientConfig

from console.model.workflow import Host, SSHOptions

__all__ = ["DEFAULT_CONFIG", "Resolved", "config_paths", "jump_destination", "parse_destination",
           "resolve"]

DEFAULT_CONFIG = "~/.ssh/config"
DEFAULT_PORT = 22


@dataclass
class Resolved:
    """One host as it will be connected; ``sources`` says where each value came from."""

    hostname: str
    port: int
    user: str
    identities: list[str] = field(default_factory=list)
    """Identity files that exist, in the order they are tried."""
    missing: list[str] = field(default_factory=list)
    """Identity files from ssh_config that do not exist (skipped, as OpenSSH does)."""
    configured: list[str] = field(default_factory=list)
    """ssh_config's IdentityFile entries in order, existing or not."""
    jump: str | None = None
    proxy_command: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    config: Any = None


def config_paths(ssh_config: str | Sequence[str]) -> list[str]:
    """``()`` -> ``~/.ssh/config`` when readable; ``[]`` -> none; else the given path(s)."""
    if isinstance(ssh_config, str):
        return [ssh_config]
    if ssh_config == ():
        default = os.path.expanduser(DEFAULT_CONFIG)
        return [default] if os.access(default, os.R_OK) else []
    return [str(p) for p in ssh_config]


def login_user(host: Host, defaults: SSHOptions, ssh_config: str | Sequence[str] = ()) -> str:
    """The user an SSH connection to ``host`` logs in as, decided as :func:`resolve`
    decides it (the workflow's, else ssh_config's ``User``, else the local login); the
    local login when the ssh config cannot be read (connecting then fails, saying why)."""
    try:
        return resolve(host, defaults, ssh_config, check_identity=False).user
    except ValueError:
        return _local_user()


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry
        return "root"


def parse_destination(spec: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` (or ``[v6]:port``) -> (user, host, port)."""
    user, _, rest = spec.rpartition("@")
    port: int | None = None
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        if tail.startswith(":") and tail[1:].isdigit():
            port = int(tail[1:])
    else:
        host, sep, tail = rest.partition(":")
        if sep and tail.isdigit() and ":" not in tail:
            port = int(tail)
        elif sep:
            host = rest
    return (user or None), host, port


def resolve(host: Host, defaults: SSHOptions, ssh_config: str | Sequence[str] = (),
            *, check_identity: bool = True) -> Resolved:
    """Resolve ``host``; raises ``ValueError`` (one line) for an unusable ssh_config or a
    workflow identity file that does not exist (when ``check_identity``)."""
    paths = config_paths(ssh_config)
    port = host.port if host.port is not None else defaults.port
    user = host.user or defaults.user
    sources: dict[str, str] = {}
    origin = host.origin

    def written(field_name: str, from_host: bool) -> str:
        if from_host:
            return origin.get(field_name, "workflow [hosts]")
        return "workflow [ssh]"

    try:
        config = SSHClientConfig.load(None, paths, False, False, False, _local_user(),
                                      user if user else (), host.address,
                                      port if port is not None else ())
    except Exception as exc:  # asyncssh raises several kinds; one line is enough
        raise ValueError(f"{host.name}: cannot read ssh config: {exc}") from None
    hostname = str(config.get("Hostname", host.address))
    sources["address"] = ("ssh_config HostName" if config.get("Hostname") is not None
                          else origin.get("address", "workflow [hosts]" if
                                          host.address != host.name else "host name"))
    if port is not None:
        sources["port"] = written("port", host.port is not None)
    else:
        port = int(config.get("Port", DEFAULT_PORT))  # type: ignore[call-overload]
        sources["port"] = "ssh_config Port" if config.get("Port") else "default"
    if user:
        sources["user"] = written("user", bool(host.user))
    else:
        user = str(config.get("User") or _local_user())
        sources["user"] = "ssh_config User" if config.get("User") else "default (local user)"
    resolved = Resolved(hostname, int(port), user, sources=sources, config=config)
    identity = host.identity or defaults.identity
    if identity:
        path = os.path.expanduser(identity)
        if check_identity and not os.path.isfile(path):
            at = origin.get("identity")
            raise ValueError(f"{host.name}: identity file {identity} not found"
                             + (f" (set at {at})" if at else ""))
        resolved.identities = [path]
        sources["identity"] = written("identity", bool(host.identity))
    else:
        entries: Any = config.get("IdentityFile", ()) or ()
        for entry in entries:
            path = os.path.expanduser(str(entry))
            resolved.configured.append(path)
            (resolved.identities if os.path.isfile(path) else resolved.missing).append(path)
        if resolved.identities or resolved.missing:
            sources["identity"] = "ssh_config IdentityFile"
    if host.jump:
        resolved.jump = host.jump
        sources["jump"] = origin.get("jump", "workflow [hosts]")
    elif host.proxy_command:
        resolved.proxy_command = host.proxy_command
        sources["proxy_command"] = origin.get("proxy_command", "workflow")
    else:
        jump = config.get("ProxyJump")
        command = config.get("ProxyCommand")
        if jump and str(jump).lower() != "none":
            resolved.jump = str(jump)
            sources["jump"] = "ssh_config ProxyJump"
        elif command and str(command).lower() != "none":
            resolved.proxy_command = str(command)
            sources["proxy_command"] = "ssh_config ProxyCommand"
    return resolved


def jump_destination(spec: str, host: Host, hosts: Mapping[str, Host],
                     resolved: Resolved | None) -> Host:
    """The host to connect through for ``spec``: a declared host, or an ssh destination
    ``[user@]host[:port]`` (the last hop of a comma-separated chain; the hops before it
    become its own jump). Raises ``ValueError`` for a workflow jump naming no host."""
    hops = [hop.strip() for hop in spec.split(",") if hop.strip()]
    last, before = hops[-1], ",".join(hops[:-1]) or None
    declared = hosts.get(last)
    if declared is not None and before is None:
        return declared
    source = resolved.sources.get("jump", "") if resolved else ""
    if "jump" not in host.origin and not source.startswith("ssh_config"):
        raise ValueError(f"{host.name}: jump host '{spec}' is not a declared host")
    user, address, port = parse_destination(last)
    return Host(name=spec, address=address, user=user, port=port, jump=before,
                known_hosts=host.known_hosts,
                origin={"jump": f"jump host of {host.name}"} if before else {})


def expand_proxy_command(command: str, resolved: Resolved) -> str:
    """``%h`` ``%p`` ``%r`` ``%n`` ``%%`` in a ProxyCommand from the inventory."""
    out: list[str] = []
    i = 0
    while i < len(command):
        char = command[i]
        if char == "%" and i + 1 < len(command):
            token = command[i + 1]
            out.append({"h": resolved.hostname, "p": str(resolved.port), "r": resolved.user,
                        "n": resolved.hostname, "%": "%"}.get(token, "%" + token))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def home_relative(path: str) -> str:
    home = str(Path.home())
    return "~" + path[len(home):] if path.startswith(home + os.sep) else path
