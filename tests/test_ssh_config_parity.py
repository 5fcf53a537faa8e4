"""OpenSSH parity on real ``~/.ssh/config`` files: Baton's resolution (the one the SSH
executor and ``baton hosts`` use) against ``ssh -G`` recorded by
tests/tools/record_ssh_configs.py, host by host: HostName, Port, User, IdentityFile (in
order), ProxyJump and ProxyCommand. Also: a value written in the workflow always wins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from console.executors.ssh_config import home_relative, resolve
from console.model.workflow import Host, SSHOptions

HERE = Path(__file__).parent / "fixtures" / "ssh_configs"
FILES = sorted(p.name for p in HERE.iterdir() if p.is_file() and p.suffix != ".md")
DEFAULT_KEYS = ["~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ecdsa_sk", "~/.ssh/id_ed25519",
                "~/.ssh/id_ed25519_sk", "~/.ssh/id_xmss", "~/.ssh/id_dsa"]


def cases() -> list[tuple[str, str]]:
    out = []
    for name in FILES:
        recorded = json.loads((HERE / "expected" / f"{name}.json").read_text())
        out += [(name, host) for host in recorded["hosts"]]
    return out


@pytest.mark.parametrize(("name", "host"), cases())
def test_resolution_matches_ssh_G(name: str, host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = json.loads((HERE / "expected" / f"{name}.json").read_text())
    monkeypatch.setenv("HOME", recorded["home"])
    want: dict[str, list[str]] = recorded["hosts"][host]
    got = resolve(Host(host, host), SSHOptions(), [str(HERE / name)], check_identity=False)
    mine: dict[str, Any] = {
        "hostname": [got.hostname], "port": [str(got.port)],
        "user": ["%u" if got.sources["user"] == "default (local user)" else got.user],
        "identityfile": [home_relative(p) for p in got.configured] or DEFAULT_KEYS,
    }
    if got.jump:
        mine["proxyjump"] = [got.jump]
    if got.proxy_command:
        mine["proxycommand"] = [got.proxy_command]
    theirs = {k: v for k, v in want.items() if k != "forwardagent"}  # docs: not taken over
    if "proxycommand" in theirs:  # ssh -G prints it before expanding %h %p %r
        user = got.user if theirs["user"] == ["%u"] else theirs["user"][0]
        theirs["proxycommand"] = [theirs["proxycommand"][0].replace("%h", want["hostname"][0])
                                  .replace("%p", want["port"][0]).replace("%r", user)]
    assert mine == theirs


def test_corpus() -> None:
    assert 5 <= len(FILES) <= 10
    assert len(cases()) >= 30


def test_written_port_22_wins_over_ssh_config_port(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host db\n  HostName db.internal\n  Port 2222\n  User cfg\n")
    written = resolve(Host("db", "db", port=22), SSHOptions(), [str(config)])
    assert (written.hostname, written.port, written.user) == ("db.internal", 22, "cfg")
    assert written.sources["port"] == "workflow [hosts]"
    from_ssh = resolve(Host("db", "db"), SSHOptions(port=22, user="w"), [str(config)])
    assert (from_ssh.port, from_ssh.user) == (22, "w")
    assert from_ssh.sources["port"] == "workflow [ssh]"
    unset = resolve(Host("db", "db"), SSHOptions(), [str(config)])
    assert (unset.port, unset.sources["port"]) == (2222, "ssh_config Port")


def test_missing_identity_files_are_skipped_in_order(tmp_path: Path) -> None:
    present = tmp_path / "id_present"
    present.write_text("key")
    config = tmp_path / "config"
    config.write_text(f"Host *\n  IdentityFile {tmp_path}/id_gone\n  IdentityFile {present}\n")
    got = resolve(Host("h", "h"), SSHOptions(), [str(config)])
    assert got.identities == [str(present)] and got.missing == [f"{tmp_path}/id_gone"]


def test_match_include_tokens_and_first_value_wins(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh" / "config.d").mkdir(parents=True)
    (tmp_path / ".ssh" / "config.d" / "lab").write_text("Host lab-*\n  User labuser\n")
    config = tmp_path / "config"
    config.write_text("Include config.d/*\n"
                      "Match host lab-*.internal\n  Port 2200\n"
                      "Host lab-web\n  HostName Lab-Web.internal\n  User ignored\n"
                      "  IdentityFile ~/.ssh/%h_%r\n  ProxyJump jump@bastion:2022\n"
                      "Host *\n  Port 22\n")
    got = resolve(Host("w", "lab-web"), SSHOptions(), [str(config)], check_identity=False)
    assert (got.hostname, got.user, got.jump) == ("Lab-Web.internal", "labuser",
                                                  "jump@bastion:2022")
    assert got.configured == [f"{tmp_path}/.ssh/Lab-Web.internal_labuser"]
