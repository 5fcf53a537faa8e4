"""How an imported Ansible host is connected: Ansible's connection variables -> Baton.

Precedence is the one of Ansible's ``ssh`` connection plugin: of two spellings the later
one in its list wins (``ansible_ssh_host`` over ``ansible_host``, ``ansible_ssh_port``
over ``ansible_port``, ``ansible_ssh_user`` over ``ansible_user``,
``ansible_ssh_private_key_file`` over ``ansible_private_key_file``).

What Baton cannot honour is refused with ``file:line`` of the variable, never ignored:
passwords (use a key or an agent), connection types other than ``ssh``/``local``, and
ssh options that change what Baton guarantees (host-key checking, other config files).
``ansible_ssh_common_args``/``ansible_ssh_extra_args``/``ansible_ssh_args`` are read like
an ssh command line: ``-J``/``ProxyJump`` become Baton's jump, ``ProxyCommand`` is used as
is, ``ForwardAgent``/``-A`` forward the agent; options about connection sharing and
keepalives are what Baton does anyway. ``ansible_become*`` stay plain variables: Baton
runs steps as the connecting user and says so in ``baton hosts``.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from console.model.ansible_data import AnsibleInventoryError

__all__ = ["connection_fields", "is_secret_name"]

# (Baton field, Ansible spellings in increasing precedence)
SPELLINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("address", ("ansible_host", "ansible_ssh_host")),
    ("port", ("ansible_port", "ansible_ssh_port")),
    ("user", ("ansible_user", "ansible_ssh_user")),
    ("identity", ("ansible_private_key_file", "ansible_ssh_private_key_file")),
)
PASSWORDS = ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password",
             "ansible_private_key_passphrase", "ansible_ssh_private_key_passphrase")
KEY_DATA = ("ansible_private_key", "ansible_ssh_private_key")
SSH_CONNECTIONS = ("ssh", "smart", "paramiko", "paramiko_ssh", "ansible.builtin.ssh",
                   "ansible.builtin.paramiko_ssh")
LOCAL_CONNECTIONS = ("local", "ansible.builtin.local")
ARGS = ("ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args")

# -o options: what Baton does with each (anything else is refused)
_SAME_ANYWAY = {"controlmaster", "controlpersist", "controlpath", "serveraliveinterval",
                "serveralivecountmax", "tcpkeepalive", "loglevel", "connecttimeout",
                "connectionattempts", "compression", "batchmode", "preferredauthentications",
                "pubkeyauthentication", "passwordauthentication", "kbdinteractiveauthentication",
                "gssapiauthentication", "identitiesonly", "addkeystoagent"}
_HOST_KEYS = {"stricthostkeychecking", "userknownhostsfile", "globalknownhostsfile",
              "hostkeyalias", "checkhostip", "updatehostkeys", "verifyhostkeydns"}
_NO_VALUE_FLAGS = set("46AaCfGgKkMNnqsTtVvXxYy")
_SECRET = re.compile(r"pass|secret|token|credential|vault|private_key(?!_file)|api_?key",
                     re.I)


def is_secret_name(name: str) -> bool:
    """A variable whose value ``baton hosts`` masks."""
    return bool(_SECRET.search(name))


def connection_fields(name: str, merged: Mapping[str, Any], origin: Mapping[str, str],
                      fail: Callable[[str, str], AnsibleInventoryError]) -> dict[str, Any]:
    """Host keyword arguments (address, port, user, identity, jump, proxy_command,
    forward_agent, connection, origin, notes) for one host's merged variables.

    ``fail(var, message)`` builds the error located at the line that set ``var``."""
    out: dict[str, Any] = {"address": name}
    where: dict[str, str] = {}
    notes: list[str] = []

    def set_from(field: str, var: str, value: Any) -> None:
        out[field] = value
        where[field] = f"{origin.get(var, '?')} ({var})"

    connection = merged.get("ansible_connection", "ssh")
    if "ansible_connection" in merged:
        if not isinstance(connection, str) or connection not in (*SSH_CONNECTIONS,
                                                                 *LOCAL_CONNECTIONS):
            shown = connection if isinstance(connection, str) else type(connection).__name__
            raise fail("ansible_connection", f"host '{name}': connection type '{shown}' is "
                       "not supported (Baton runs steps over ssh or locally)")
        if connection in LOCAL_CONNECTIONS:
            set_from("connection", "ansible_connection", "local")
            notes.append("ansible_connection=local: steps run on this machine, as on "
                         "'local'")
    for var in PASSWORDS:
        if var in merged:
            raise fail(var, f"host '{name}': {var} is not supported: Baton never sends "
                       "passwords; use a key (ansible_ssh_private_key_file) or an agent")
    for var in KEY_DATA:
        if var in merged:
            raise fail(var, f"host '{name}': {var} (key material inline) is not supported; "
                       "use ansible_ssh_private_key_file")
    for field, spellings in SPELLINGS:
        for var in spellings:
            if var in merged and merged[var] not in (None, ""):
                set_from(field, var, merged[var])
    for field in ("address", "port", "user", "identity"):
        if field in where and _templated(out[field]):
            var = where[field].rsplit("(", 1)[1].rstrip(")")
            raise fail(var, f"host '{name}': {var} is an Ansible template ({{{{ … }}}}); "
                       "Baton does not evaluate Ansible's Jinja: write the value")
    for var in ARGS:
        if _templated(merged.get(var)):
            raise fail(var, f"host '{name}': {var} is an Ansible template ({{{{ … }}}}); "
                       "Baton does not evaluate Ansible's Jinja: write the value")
    if "address" in where:
        out["address"] = str(out["address"])
    if "user" in out:
        out["user"] = str(out["user"])
    if "identity" in out:
        out["identity"] = str(out["identity"])
    if "port" in out:
        var = where["port"].rsplit("(", 1)[1].rstrip(")")
        try:
            port = int(str(out["port"]).strip())
        except ValueError:
            raise fail(var, f"host '{name}': {var} must be a number") from None
        if not 1 <= port <= 65535:
            raise fail(var, f"host '{name}': {var} {port} is out of range (1-65535)")
        out["port"] = port
    for var in ARGS:
        if var in merged and merged[var] not in (None, ""):
            _ssh_args(name, var, merged[var], out, where, functools.partial(fail, var),
                      origin.get(var, "?"))
    if any(k.startswith("ansible_become") for k in merged) and merged.get("ansible_become") \
            not in (False, "false", "False", "no", 0, None):
        notes.append("ansible_become*: Baton runs steps as the connecting user; write sudo "
                     "into the step (the variables stay in host.vars)")
    out["origin"] = where
    out["notes"] = tuple(notes)
    return out


def _ssh_args(name: str, var: str, value: Any, out: dict[str, Any], where: dict[str, str],
              fail: Callable[[str], AnsibleInventoryError], at: str) -> None:
    if not isinstance(value, str):
        raise fail(f"host '{name}': {var} must be a string")
    try:
        words = shlex.split(value)
    except ValueError:
        raise fail(f"host '{name}': {var} has unbalanced quotes") from None
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("-") or len(word) < 2:
            raise fail(f"host '{name}': {var}: unexpected word (only ssh options belong here)")
        flag, rest = word[1], word[2:]
        if flag in _NO_VALUE_FLAGS and flag not in "AJo":
            for extra in rest:  # combined flags like -qA
                if extra not in _NO_VALUE_FLAGS:
                    raise fail(f"host '{name}': {var}: option -{extra} is not supported")
            if "A" in word[1:]:
                out["forward_agent"] = True
                where["forward_agent"] = f"{at} ({var} -A)"
            continue
        if flag == "A":
            out["forward_agent"] = True
            where["forward_agent"] = f"{at} ({var} -A)"
            continue
        if flag not in "oJ":
            raise fail(f"host '{name}': {var}: option -{flag} is not supported (set the "
                       "inventory variable or ~/.ssh/config instead)")
        if not rest:
            if i >= len(words):
                raise fail(f"host '{name}': {var}: option -{flag} needs a value")
            rest = words[i]
            i += 1
        if flag == "J":
            _jump(out, where, rest, f"{at} ({var} -J)")
            continue
        key, sep, option_value = rest.partition("=")
        if not sep:
            key, _, option_value = rest.strip().partition(" ")
        key, option_value = key.strip().lower(), option_value.strip()
        if key == "proxyjump":
            _jump(out, where, option_value, f"{at} ({var} ProxyJump)")
        elif key == "proxycommand":
            if option_value.lower() != "none":
                out["proxy_command"] = option_value
                where["proxy_command"] = f"{at} ({var} ProxyCommand)"
        elif key == "forwardagent":
            out["forward_agent"] = option_value.lower() in ("yes", "true")
            where["forward_agent"] = f"{at} ({var} ForwardAgent)"
        elif key in _HOST_KEYS:
            raise fail(f"host '{name}': {var}: -o {_cased(rest)} is not supported: Baton "
                       "always checks host keys against known_hosts (use "
                       "--accept-new-host-keys to trust new hosts on first use)")
        elif key not in _SAME_ANYWAY:
            raise fail(f"host '{name}': {var}: -o {_cased(rest)} is not supported by Baton")


def _templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _cased(option: str) -> str:
    """The option's name as written (never its value)."""
    return re.split(r"[=\s]", option.strip(), maxsplit=1)[0]


def _jump(out: dict[str, Any], where: dict[str, str], value: str, label: str) -> None:
    if value.lower() == "none":
        return
    out["jump"] = value
    where["jump"] = label
