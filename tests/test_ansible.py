"""Ansible inventory import: INI and the YAML subset, hosts/groups/children/vars."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from console.model.ansible import (
    AnsibleInventoryError,
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
region=eu

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


def expected() -> dict[str, Host]:
    web = ("web", "prod")
    return {
        "bastion": Host("bastion", "203.0.113.5", user="jump", vars={"region": "eu"}),
        "web1": Host("web1", "10.0.0.11", web, port=2222, user="deploy",
                     vars={"region": "eu"}),
        "web2": Host("web2", "10.0.0.12", web, port=2200, user="deploy",
                     vars={"region": "eu", "weight": 5, "note": "two words"}),
        "web03.example.com": Host("web03.example.com", "web03.example.com", web, port=2200,
                                  user="deploy", vars={"region": "eu"}),
        "web04.example.com": Host("web04.example.com", "web04.example.com", web, port=2200,
                                  user="deploy", vars={"region": "eu"}),
        "db1": Host("db1", "db1", ("db", "prod"), user="postgres",
                    identity="~/.ssh/db_key", vars={"region": "eu"}),
    }


def test_ini_inventory() -> None:
    hosts = parse_ini(INI.replace("[prod:vars]", "[all:vars]\nregion=eu\n\n[prod:vars]"),
                      "hosts.ini")
    assert hosts == expected()


def test_yaml_inventory_same_hosts() -> None:
    assert parse_yaml(YAML, "hosts.yml") == expected()


def test_load_picks_format_by_suffix_and_content(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(YAML)
    (tmp_path / "inventory").write_text(YAML)
    (tmp_path / "hosts.ini").write_text(INI + "[all:vars]\nregion=eu\n")
    assert load_ansible_inventory(tmp_path / "hosts.yml") == expected()
    assert load_ansible_inventory(tmp_path / "inventory") == expected()
    assert load_ansible_inventory(tmp_path / "hosts.ini") == expected()
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
    assert hosts["h1"].groups == ("leaf", "mid", "top")


@pytest.mark.parametrize(("text", "message"), [
    ("[web\nh1\n", "i.ini:1: bad section header (use [group]"),
    ("[web:hostvars]\nh1\n", "i.ini:1: unknown section type 'hostvars'"),
    ("[web]\nh1 ansible_port\n", "i.ini:2: expected 'name=value' after host 'h1'"),
    ("[web]\nh1 ansible_port=ssh\n", "i.ini:2: host 'h1': ansible_port must be a number"),
    ("[web]\nh1 ansible_port=70000\n", "i.ini:2: host 'h1': ansible_port 70000 is out of"),
    ("[web:vars]\njust-a-word\n", "i.ini:2: expected 'name=value' in [web:vars]"),
    ("[web]\nh1 note='unclosed\n", "i.ini:2: No closing quotation"),
    ("[web]\nh[1:x]\n", "i.ini:2: bad host range '[1:x]'"),
    ("[a:children]\nb\n[b:children]\na\n[b]\nh1\n", "groups nest in a cycle"),
    ("[web]\nweb\n", "i.ini:2: 'web' is both a host and a group"),
    ("[web]\nlocal\n", "i.ini:2: 'local' is a reserved name"),
])
def test_ini_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(AnsibleInventoryError) as caught:
        parse_ini(text, "i.ini")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("all:\n  hosts:\n    - web1\n", "i.yml:3: lists are not supported"),
    ("all:\n  hosts:\n    web1:\n   web2:\n", "i.yml:4: bad indentation"),
    ("all:\n  hostz:\n    web1:\n", "i.yml:2: unknown key 'hostz' in group 'all'"),
    ("all:\n  hosts:\n    web1:\n      ansible_port: x\n", "i.yml:3: host 'web1': ansible_port"),
    ("all:\n  hosts: web1\n", "i.yml:2: 'all.hosts' must be a mapping"),
    ("all:\n  hosts:\n    web1: 3\n", "i.yml:3: variables of host 'web1' must be a mapping"),
    ("all:\n\thosts:\n", "i.yml:2: tabs are not allowed"),
    ("all:\n  vars:\n    a: 'open\n", "i.yml:3: unterminated quoted string"),
    ("all:\n  hosts:\n    web1:\n    web1:\n", "i.yml:4: duplicate key 'web1'"),
    ("all:\n  vars:\n    a: *anchor\n", "i.yml:3: unsupported YAML here"),
    ("all\n", "i.yml:1: expected 'key: value'"),
])
def test_yaml_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(AnsibleInventoryError) as caught:
        parse_yaml(text, "i.yml")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_yaml_scalars_and_empty_groups() -> None:
    text = textwrap.dedent("""\
        all:
          children:
            empty:
            web:
              hosts:
                w1:
                  flag: yes
                  off: false
                  quoted: "a # not a comment"
                  single: 'it''s'
                  nothing: ~
                  url: http://x:80/y
    """)
    (host,) = parse_yaml(text, "i.yml").values()
    assert host.groups == ("web",)
    assert host.vars == {"flag": True, "off": False, "quoted": "a # not a comment",
                         "single": "it's", "nothing": None, "url": "http://x:80/y"}
