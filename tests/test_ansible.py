"""Ansible inventory import: ansible-core 2.19's rules for INI and YAML, connection
variables, and the constructs Baton refuses with a located error (never silently)."""

from __future__ import annotations

import json
import os
import stat
import textwrap
from pathlib import Path

import pytest

from console.model.ansible import (
    AnsibleInventoryError,
    import_inventory,
    load_ansible_inventory,
    parse_ini,
    parse_yaml,
)
from console.model.workflow import Host

INI = """\
# a comment
; another
bastion ansible_host=203.0.113.5 ansible_user=jump

[web]
web1 ansible_host=10.0.0.11 ansible_port=2222
web2 ansible_host="10.0.0.12" weight=5 note="two words"
web[03:04].example.com

[db]
db1 ansible_ssh_private_key_file=~/.ssh/db_key ansible_user=postgres

[prod:children]
web
db

[prod:vars]
ansible_user=deploy

[web:vars]
ansible_port=2200
"""

YAML = """\
---
all:
  hosts:
    bastion:
      ansible_host: 203.0.113.5   # the way in
      ansible_user: jump
  vars:
    region: "eu"
  children:
    prod:
      vars:
        ansible_user: deploy
      children:
        web:
          vars: {ansible_port: 2200}
        db:
          hosts:
            db1:
              ansible_ssh_private_key_file: '~/.ssh/db_key'
              ansible_user: postgres
    web:
      hosts:
        web1:
          ansible_host: 10.0.0.11
          ansible_port: 2222
        web2:
          ansible_host: 10.0.0.12
          weight: 5
          note: two words
        web[03:04].example.com:
"""


def expected() -> dict[str, tuple[str, tuple[str, ...], int | None, str | None, str | None]]:
    web = ("web", "prod")
    return {
        "bastion": ("203.0.113.5", (), None, "jump", None),
        "web1": ("10.0.0.11", web, 2222, "deploy", None),
        "web2": ("10.0.0.12", web, 2200, "deploy", None),
        "web03.example.com": ("web03.example.com", web, 2200, "deploy", None),
        "web04.example.com": ("web04.example.com", web, 2200, "deploy", None),
        "db1": ("db1", ("db", "prod"), None, "postgres", "~/.ssh/db_key"),
    }


def summary(hosts: dict[str, Host]) -> dict[str, tuple[object, ...]]:
    return {name: (h.address, h.groups, h.port, h.user, h.identity) for name, h in hosts.items()}


def test_ini_inventory() -> None:
    hosts = parse_ini(INI + "[all:vars]\nregion=eu\n", "hosts.ini")
    assert summary(hosts) == expected()
    assert hosts["web2"].vars == {"region": "eu", "ansible_user": "deploy",
                                  "ansible_port": 2200, "ansible_host": "10.0.0.12",
                                  "weight": 5, "note": "two words"}


def test_yaml_inventory_same_hosts() -> None:
    hosts = parse_yaml(YAML, "hosts.yml")
    assert summary(hosts) == expected()
    assert hosts["web2"].vars["weight"] == 5 and hosts["web2"].vars["region"] == "eu"


def test_load_picks_format_by_suffix_and_content(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(YAML)
    (tmp_path / "inventory").write_text(YAML)
    (tmp_path / "hosts.ini").write_text(INI)
    (tmp_path / "ini-in.yml").write_text(INI)  # INI content in a .yml: readers in turn
    for name in ("hosts.yml", "inventory", "hosts.ini", "ini-in.yml"):
        assert summary(load_ansible_inventory(tmp_path / name)) == expected(), name
    assert import_inventory(tmp_path / "ini-in.yml").reader == "ini"
    with pytest.raises(AnsibleInventoryError, match=r"missing\.ini: cannot read"):
        load_ansible_inventory(tmp_path / "missing.ini")


def test_host_vars_win_over_child_groups_over_parents() -> None:
    text = textwrap.dedent("""\
        [leaf]
        h1
        h2 ansible_user=own
        [mid:children]
        leaf
        [top:children]
        mid
        [top:vars]
        ansible_user=top
        [mid:vars]
        ansible_user=mid
        [all:vars]
        ansible_user=everyone
    """)
    hosts = parse_ini(text, "i.ini")
    assert hosts["h1"].user == "mid" and hosts["h2"].user == "own"
    assert set(hosts["h1"].groups) == {"leaf", "mid", "top"}


def test_ini_values_are_read_as_ansible_reads_them() -> None:
    text = textwrap.dedent("""\
        [web] # a comment after a section header
        w1 a=1 b="x y" c=true d="[1, 2]" e=True f='{"k": 1}' g=/srv/app h=0755 i="'03#x'"
        [web:vars]
        ansible_user="deploy"
        kubeconfig="~/.kube/config"
        osd_crush_location={ 'root': 'default', 'host': 'h1' }
        flag=true
        number=23
        listed=[1, 'a']
    """)
    (host,) = parse_ini(text, "i.ini").values()
    assert host.user == "deploy"
    v = host.vars
    assert v["kubeconfig"] == "~/.kube/config"
    assert v["osd_crush_location"] == {"root": "default", "host": "h1"}
    assert v["flag"] == "true" and v["number"] == 23 and v["listed"] == [1, "a"]
    assert (v["a"], v["b"], v["c"], v["d"], v["e"]) == (1, "x y", "true", [1, 2], True)
    assert v["f"] == {"k": 1} and v["g"] == "/srv/app" and v["h"] == "0755"
    assert v["i"] == "03#x"


def test_host_port_shorthand_ipv6_and_ranges_with_ports() -> None:
    text = "[web]\ncentos1:2222 ansible_user=root\n[::1]:2200\nweb[1:2].x:2022\n10.0.0.9:22\n"
    hosts = parse_ini(text, "i.ini")
    assert sorted(hosts) == ["10.0.0.9", "::1", "centos1", "web1.x", "web2.x"]
    assert hosts["centos1"].port == 2222 and hosts["centos1"].user == "root"
    assert hosts["::1"].port == 2200 and hosts["web2.x"].port == 2022
    assert hosts["10.0.0.9"].port == 22  # written: it wins over ~/.ssh/config
    yaml_hosts = parse_yaml("all:\n  hosts:\n    centos1:2222:\n    '[::1]:2200':\n", "i.yml")
    assert yaml_hosts["centos1"].port == 2222 and yaml_hosts["::1"].port == 2200


@pytest.mark.parametrize(("first", "second"), [
    ("ansible_host=10.0.0.1", "ansible_ssh_host=10.0.0.2"),
    ("ansible_ssh_host=10.0.0.2", "ansible_host=10.0.0.1"),
])
def test_ssh_spellings_take_precedence_in_any_order(first: str, second: str) -> None:
    line = (f"h1 {first} {second} ansible_port=1 ansible_ssh_port=2 ansible_ssh_user=b "
            "ansible_user=a ansible_ssh_private_key_file=k2 ansible_private_key_file=k1")
    host = parse_ini(f"[g]\n{line}\n", "i.ini")["h1"]
    assert (host.address, host.port, host.user, host.identity) == ("10.0.0.2", 2, "b", "k2")
    assert host.origin["address"] == "i.ini:2 (ansible_ssh_host)"


def test_group_and_host_precedence_between_spellings() -> None:
    # ansible_ssh_host from a group beats the host's own ansible_host (Ansible: the
    # later spelling wins whatever level set it)
    host = parse_ini("[g]\nh1 ansible_host=10.0.0.1\n[g:vars]\nansible_ssh_host=10.0.0.2\n",
                     "i.ini")["h1"]
    assert host.address == "10.0.0.2"


def test_connection_local_runs_locally_and_others_are_refused() -> None:
    hosts = parse_ini("localhost ansible_connection=local\nweb1\n", "i.ini")
    assert hosts["localhost"].is_local and hosts["localhost"].connection == "local"
    assert not hosts["web1"].is_local
    assert parse_ini("h ansible_connection=smart\n", "i.ini")["h"].connection == "ssh"
    with pytest.raises(AnsibleInventoryError) as caught:
        parse_ini("[sw]\nsw1\n[sw:vars]\nansible_connection=network_cli\n", "i.ini")
    assert str(caught.value) == ("i.ini:4: host 'sw1': connection type 'network_cli' is not "
                                 "supported (Baton runs steps over ssh or locally)")


@pytest.mark.parametrize(("args", "jump", "proxy"), [
    ("-o ProxyCommand=\"ssh -W %h:%p -q user@bastion\"", None, "ssh -W %h:%p -q user@bastion"),
    ("-o ProxyJump=ops@bastion:2222", "ops@bastion:2222", None),
    ("-J bastion", "bastion", None),
    ("-o 'ProxyJump bastion' -o ControlMaster=auto -o ControlPersist=60s -q", "bastion", None),
])
def test_bastion_in_ssh_args(args: str, jump: str | None, proxy: str | None) -> None:
    text = f"bastion\n[private]\np1 ansible_host=10.1.0.5\n[private:vars]\n" \
           f"ansible_ssh_common_args='{args}'\n" if "'" not in args else \
           f"bastion\n[private]\np1 ansible_host=10.1.0.5\n[private:vars]\n" \
           f"ansible_ssh_common_args=\"{args}\"\n"
    host = parse_ini(text, "i.ini")["p1"]
    assert (host.jump, host.proxy_command) == (jump, proxy)
    assert host.origin["jump" if jump else "proxy_command"].startswith("i.ini:5 ")


def test_bastion_in_yaml_extra_args_and_forward_agent() -> None:
    text = ("all:\n  hosts:\n    p1:\n      ansible_ssh_extra_args: -A -J jump@b\n")
    host = parse_yaml(text, "i.yml")["p1"]
    assert host.jump == "jump@b" and host.forward_agent


@pytest.mark.parametrize(("args", "message"), [
    ("-i ~/.ssh/other", "option -i is not supported"),
    ("-F ./ssh.cfg", "option -F is not supported"),
    ("-p 2222", "option -p is not supported"),
    ("-l root", "option -l is not supported"),
    ("-o StrictHostKeyChecking=no", "-o StrictHostKeyChecking is not supported: Baton "
                                    "always checks host keys"),
    ("-o UserKnownHostsFile=/dev/null", "-o UserKnownHostsFile is not supported"),
    ("-o LocalForward=8080:x:80", "-o LocalForward is not supported by Baton"),
])
def test_unsupported_ssh_args_are_refused_with_their_line(args: str, message: str) -> None:
    with pytest.raises(AnsibleInventoryError) as caught:
        parse_ini(f"[g]\nh1\n\n[g:vars]\nansible_ssh_common_args='{args}'\n", "i.ini")
    assert str(caught.value).startswith("i.ini:5: host 'h1': ansible_ssh_common_args: ")
    assert message in str(caught.value)
    value = args.split()[-1].split("=")[-1]
    assert len(value) < 4 or value not in str(caught.value)


@pytest.mark.parametrize("var", ["ansible_password", "ansible_ssh_pass", "ansible_ssh_password"])
def test_passwords_are_refused_without_echoing_them(var: str) -> None:
    with pytest.raises(AnsibleInventoryError) as caught:
        parse_ini(f"[g]\nh1\n[g:vars]\n{var}=Sup3rS3cret\n", "i.ini")
    text = str(caught.value)
    assert text.startswith(f"i.ini:4: host 'h1': {var} is not supported")
    assert "use a key" in text and "Sup3rS3cret" not in text


def test_errors_never_echo_values() -> None:
    for text in ("h1 ansible_port=s3cr3tvalue\n", "h1 ansible_ssh_common_args='-o X=s3cr3tvalue'\n",
                 "h1 ansible_connection=s3cr3tvalue\n"):
        with pytest.raises(AnsibleInventoryError) as caught:
            parse_ini(text, "i.ini")
        assert "s3cr3tvalue" not in str(caught.value).replace("'s3cr3tvalue' is not", "")


def test_become_is_kept_as_vars_with_a_note() -> None:
    host = parse_ini("h1 ansible_become=true ansible_become_user=postgres\n", "i.ini")["h1"]
    assert host.vars["ansible_become"] == "true"  # a string, as in Ansible's host vars
    assert host.vars["ansible_become_user"] == "postgres"
    assert any("runs steps as the connecting user" in note for note in host.notes)
    assert parse_ini("h1 ansible_become=False\n", "i.ini")["h1"].notes == ()


def test_group_named_local_and_host_named_like_a_group_are_renamed() -> None:
    imported = import_inventory_text("[local]\nlocalhost ansible_connection=local\n"
                                     "[bastion]\nbastion\n[web]\nlocal\n")
    assert imported.renamed_hosts == {"local": "host_local"}
    assert imported.renamed_groups == {"local": "group_local", "bastion": "group_bastion"}
    hosts = imported.hosts
    assert hosts["localhost"].groups == ("group_local",)
    assert hosts["bastion"].groups == ("group_bastion",)
    assert hosts["host_local"].groups == ("web",) and hosts["host_local"].address == "local"


def import_inventory_text(text: str, tmp: Path | None = None):  # type: ignore[no-untyped-def]
    import tempfile

    folder = Path(tempfile.mkdtemp())
    (folder / "hosts.ini").write_text(text)
    return import_inventory(folder / "hosts.ini")


def test_children_naming_an_undefined_group_is_a_located_error() -> None:
    with pytest.raises(AnsibleInventoryError) as caught:
        parse_ini("[x:children]\nweb\nundefined\n[web]\nw1\n", "i.ini")
    assert str(caught.value).startswith("i.ini:3: section [x:children] names group "
                                        "'undefined', which is declared nowhere")
    hosts = parse_ini("[x:children]\nweb\n[web]\nw1\n", "i.ini")  # declared later: fine
    assert set(hosts["w1"].groups) == {"web", "x"}


def test_yaml_lists_as_values_and_yaml_scalars() -> None:
    text = textwrap.dedent("""\
        all:
          children:
            empty:
            web:
              hosts:
                w1:
                  flag: yes
                  enabled: false
                  quoted: "a # not a comment"
                  single: 'it''s'
                  nothing: ~
                  url: http://x:80/y
                  disks: [sdb, sdc]
                  labels:
                    - a
                    - {b: 1}
    """)
    (host,) = parse_yaml(text, "i.yml").values()
    assert host.groups == ("web",)
    assert host.vars == {"flag": True, "enabled": False, "quoted": "a # not a comment",
                         "single": "it's", "nothing": None, "url": "http://x:80/y",
                         "disks": ["sdb", "sdc"], "labels": ["a", {"b": 1}]}


@pytest.mark.parametrize(("text", "message"), [
    ("all:\n  hosts:\n    1234:\n", "i.yml:3: a host name must be a string"),
    ("all:\n  hosts:\n    - web1\n", "i.yml:2: 'hosts' of group 'all' must be a mapping"),
    ("all:\n  hostz:\n    web1:\n", "i.yml:2: unknown key 'hostz' in group 'all'"),
    ("all:\n  hosts:\n    web1:\n      ansible_port: x\n", "i.yml:4: host 'web1': ansible_port"),
    ("all:\n  hosts:\n    web1: 3\n", "i.yml:3: variables of host 'web1' must be a mapping"),
    ("all:\n  vars:\n    a: 'open\n", "i.yml:4: YAML: found unexpected end of stream"),
    ("all:\n  vars:\n    a: *anchor\n", "i.yml:3: YAML: found undefined alias"),
    ("all:\n  hosts:\n    web1:\n   web2:\n", "i.yml:4: YAML:"),
])
def test_yaml_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "i.yml"
    path.write_text(text)
    with pytest.raises(AnsibleInventoryError) as caught:
        load_ansible_inventory(path)
    assert str(caught.value).replace(str(tmp_path) + "/", "").startswith(message)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("[web\nh1\n", "i.ini:1: bad host range (use"),
    ("[web:hostvars]\nh1\n", "i.ini:1: section [web:hostvars] has unknown type"),
    ("[web]\nh1 ansible_port\n", "i.ini:2: expected 'name=value' after host 'h1'"),
    ("[web]\nh1 ansible_port=ssh\n", "i.ini:2: host 'h1': ansible_port must be a number"),
    ("[web]\nh1 ansible_port=70000\n", "i.ini:2: host 'h1': ansible_port 70000 is out of"),
    ("[web:vars]\njust-a-word\n", "i.ini:2: expected 'name=value' in [web:vars]"),
    ("[web]\nh1 note='unclosed\n", "i.ini:2: cannot split host line"),
    ("[web]\nh[1:x]\n", "i.ini:2: bad host range"),
    ("[a:children]\nb\n[b:children]\na\n[b]\nh1\n", "recursive dependency loop"),
    ("[web:vars]\na=1\n", "i.ini:1: section [web:vars] is for a group declared nowhere"),
])
def test_ini_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(AnsibleInventoryError) as caught:
        parse_ini(text, "i.ini")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


LISTING = {"_meta": {"hostvars": {"ec2-1": {"ansible_host": "10.9.0.1", "zone": "a"}}},
           "all": {"children": ["ungrouped", "aws_ec2"]}, "aws_ec2": {"hosts": ["ec2-1"]}}


def test_dynamic_inventory_without_ansible_inventory_is_a_located_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    (tmp_path / "aws_ec2.yml").write_text("plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n")
    with pytest.raises(AnsibleInventoryError) as caught:
        load_ansible_inventory(tmp_path / "aws_ec2.yml")
    assert str(caught.value) == (
        f"{tmp_path / 'aws_ec2.yml'}: an inventory plugin configuration (plugin: "
        "amazon.aws.aws_ec2): Baton imports dynamic inventories through `ansible-inventory "
        "-i FILE --list`, which is not on PATH (install ansible-core)")


def test_dynamic_inventory_through_ansible_inventory(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # a stand-in ansible-inventory that prints a documented --list answer and its args
    _executable(bin_dir / "ansible-inventory",
                f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\ncat <<'EOF'\n"
                f"{json.dumps(LISTING)}\nEOF\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    script = _executable(tmp_path / "inventory.py", "#!/usr/bin/env python3\nprint('{}')\n")
    for source in (script, tmp_path / "aws_ec2.yml"):
        (tmp_path / "aws_ec2.yml").write_text("plugin: aws_ec2\n")
        hosts = load_ansible_inventory(source)
        assert (tmp_path / "args").read_text().split() == ["-i", str(source), "--list"]
        assert hosts["ec2-1"].address == "10.9.0.1" and hosts["ec2-1"].groups == ("aws_ec2",)
        assert hosts["ec2-1"].vars["zone"] == "a"


@pytest.mark.parametrize("line", [
    "h1 ansible_host='{{ lookup(\"env\", \"IP\") }}'",
    "h1 ansible_user='{{ deploy_user }}'",
    "h1 ansible_ssh_common_args='-o ProxyJump={{ bastion }}'",
])
def test_templated_connection_values_are_refused(line: str) -> None:
    # Ansible would evaluate the template; Baton connecting to the literal text would
    # silently go somewhere else
    with pytest.raises(AnsibleInventoryError) as caught:
        parse_ini(f"[g]\n{line}\n", "i.ini")
    assert str(caught.value).startswith("i.ini:2: host 'h1': ansible_")
    assert "is an Ansible template" in str(caught.value)
    host = parse_ini("h1 local_release_dir='{{ansible_env.HOME}}/releases'\n", "i.ini")["h1"]
    assert host.vars["local_release_dir"] == "{{ansible_env.HOME}}/releases"  # a plain var


def test_non_utf8_bytes_in_comments_are_accepted_elsewhere_located(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_bytes(b"# caf\xe9 (latin-1 comment)\n[web]\nweb1 ansible_port=2222\n")
    assert load_ansible_inventory(path)["web1"].port == 2222
    path.write_bytes(b"[web]\nweb1 note=caf\xe9\n")
    with pytest.raises(AnsibleInventoryError, match=rf"^{path}:2: not UTF-8 text$"):
        load_ansible_inventory(path)


def test_nested_yaml_aliases_do_not_explode(tmp_path: Path) -> None:
    from console.hosts import hosts_report

    lines = ["all:", "  vars:", "    a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 30)]
    path = tmp_path / "bomb.yml"
    path.write_text("\n".join([*lines, "  hosts:", "    h1:"]) + "\n")
    assert list(load_ansible_inventory(path)) == ["h1"]
    (row,) = hosts_report(str(path), [])["hosts"]
    assert row["vars"]["a29"] == "<too large to show>"
