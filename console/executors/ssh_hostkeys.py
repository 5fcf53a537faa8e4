"""Host key checking with OpenSSH's rules, telling an unknown key from a changed one.

asyncssh reports both as the same ``HostKeyNotVerifiable``, matches port-less entries for
hosts on other ports (OpenSSH does not), and turns checking off with ``known_hosts=None``.
So baton looks keys up itself: :meth:`KnownHosts.lookup` feeds asyncssh the trusted keys
for a host (``known_hosts=`` accepts such a callable), and asyncssh calls
:meth:`KnownHosts.judge` (through ``validate_host_public_key``) for any other key, which
decides between *unknown* (refused, or recorded with ``accept_new``) and *changed*
(always refused).

Import this module only from the SSH executor: it needs asyncssh.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


def host_label(host: str, port: int | None) -> str:
    """The name OpenSSH records: ``host`` on port 22, ``[host]:port`` elsewhere."""
    return host if not port or port == 22 else f"[{host}]:{port}"


@dataclass
class Verdict:
    """Why a host key was refused (set by :meth:`KnownHosts.judge`)."""

    kind: str  # "unknown" or "changed"
    label: str
    fingerprint: str
    recorded: str = ""
    key: Any = None
    """The key offered (recorded if the operator trusts an unknown one)."""
    host: str = ""
    port: int | None = None

    @property
    def key_type(self) -> str:
        return str(self.key.get_algorithm()) if self.key is not None else ""


class KnownHosts:
    """One known_hosts file, re-read when it changes on disk."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(os.path.expanduser(os.fspath(path)))
        self._stamp: tuple[float, int] | None = None
        self._data = asyncssh.SSHKnownHosts()
        self._lines: list[str] = []

    def _load(self) -> asyncssh.SSHKnownHosts:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._data, self._lines = None, asyncssh.SSHKnownHosts(), []
            return self._data
        stamp = (stat.st_mtime, stat.st_size)
        if stamp != self._stamp:
            text = self.path.read_text(encoding="utf-8", errors="replace")
            data = asyncssh.SSHKnownHosts()
            lines = text.splitlines()
            for line in lines:
                try:  # one bad line must not hide the others (OpenSSH skips it too)
                    data.load(line)
                except (ValueError, asyncssh.KeyImportError):
                    continue
            self._stamp, self._data, self._lines = stamp, data, lines
        return self._data

    def _match(self, host: str, addr: str, port: int | None) -> tuple[list[Any], ...]:
        """OpenSSH semantics: on a non-default port only ``[name]:port`` entries count."""
        data = self._load()
        names = [host] + ([addr] if addr and addr != host else [])
        keys: list[Any] = []
        cas: list[Any] = []
        revoked: list[Any] = []
        for name in names:
            label = host_label(name, port)
            # addr "" stops asyncssh from parsing "[h]:p" as an IP or appending a port
            found = data.match(label, "", None)
            keys += found[0]
            cas += found[1]
            revoked += found[2]
        return keys, cas, revoked

    def lookup(self, host: str, addr: str, port: int | None) -> tuple[list[Any], ...]:
        """For asyncssh's ``known_hosts=``: trusted keys, CA keys, revoked keys."""
        return self._match(host, addr, port)

    def judge(self, host: str, addr: str, port: int | None, key: Any) -> Verdict:
        """A key asyncssh did not find trusted: unknown (nothing recorded) or changed."""
        keys, _, revoked = self._match(host, addr, port)
        fingerprint = key.get_fingerprint()
        label = host_label(host, port)
        if keys or key in revoked:
            recorded = ", ".join(sorted({k.get_fingerprint() for k in keys})) or "revoked"
            return Verdict("changed", label, fingerprint, recorded, key, host, port)
        return Verdict("unknown", label, fingerprint, "", key, host, port)

    def record(self, host: str, port: int | None, key: Any) -> None:
        """Append an OpenSSH-format line for ``host``; creates the file 0600 if needed."""
        kind, blob = key.export_public_key("openssh").decode().split()[:2]
        line = f"{host_label(host, port)} {kind} {blob}\n"
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            prefix = b""
            if os.fstat(fd).st_size:
                with open(self.path, "rb") as existing:
                    existing.seek(-1, os.SEEK_END)
                    if existing.read(1) != b"\n":
                        prefix = b"\n"
            os.write(fd, prefix + line.encode())
        finally:
            os.close(fd)
        self._stamp = None


class HostKeyPolicy:
    """Shared by every connection of a run: known_hosts files and the accept-new flag."""

    def __init__(self, accept_new: bool = False) -> None:
        self.accept_new = accept_new
        self.notices: list[str] = []
        """Keys recorded with accept-new, reported on the stderr of the task that connected."""
        self._files: dict[Path, KnownHosts] = {}
        self.lock = asyncio.Lock()

    def file(self, path: str | os.PathLike[str] | None) -> KnownHosts:
        resolved = Path(os.path.expanduser(os.fspath(path or DEFAULT_KNOWN_HOSTS)))
        found = self._files.get(resolved)
        if found is None:
            found = self._files[resolved] = KnownHosts(resolved)
        return found


def describe(verdict: Verdict, known_hosts: KnownHosts, name: str) -> str:
    """The one-line reason for a refused host key (loud when it changed)."""
    if verdict.kind == "changed":
        return (f"{name}: HOST KEY CHANGED for {verdict.label}: server offers "
                f"{verdict.fingerprint}, {known_hosts.path} has {verdict.recorded}; "
                "possible man-in-the-middle attack, refusing to connect (fix known_hosts "
                "if the change is expected)")
    return (f"{name}: host key unknown for {verdict.label} ({verdict.fingerprint}) "
            f"in {known_hosts.path}; use --accept-new-host-keys to trust and record it")
