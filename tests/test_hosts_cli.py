"""``baton hosts FILE [--json]``: hosts resolved as they will be connected, with sources."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import baton, write_workflow


def fleet_files(tmp_path: Path) -> tuple[Path, Path]:
    key = tmp_path / "id_present"
    key.write_text("not really a key")
    (tmp_path / "hosts.ini").write_text(
        "localhost ansible_connection=local\n"
        "[web]\n"
        "web1 ansible_host=10.0.0.11 ansible_ssh_host=10.0.0.12 db_password=hunter2\n"
        "lab-alias\n"
        "[web:vars]\n"
        "ansible_ssh_common_args='-o ProxyJump=ops@bastion.example:2022'\n"
        "api_token=\"tok-123\"\n"
        "[local]\n"
        "localhost\n")
    config = tmp_path / "ssh_config"
    config.write_text("Host lab-alias\n  HostName lab.internal\n  Port 2200\n  User cfg\n"
                      f"  IdentityFile {tmp_path}/id_gone\n  IdentityFile {key}\n")
    workflow = write_workflow(tmp_path, """
        [workflow]
        name = "hosts"
        inventory = "ansible:hosts.ini"

        [ssh]
        port = 22

        [hosts.db1]
        address = "10.0.0.30"
        user = "postgres"
        jump = "web1"

        [steps.a]
        run = "true"
        """)
    return workflow, config


def test_hosts_json_resolves_every_host_with_sources(tmp_path: Path) -> None:
    workflow, config = fleet_files(tmp_path)
    proc = baton("hosts", workflow, "--json", "--ssh-config", config)
    assert proc.returncode == 0, proc.stderr
    assert "hunter2" not in proc.stdout and "tok-123" not in proc.stdout
    rows = {row["name"]: row for row in json.loads(proc.stdout)["hosts"]}
    web1, lab, db1, local = rows["web1"], rows["lab-alias"], rows["db1"], rows["localhost"]
    assert local["connection"] == "local" and local["groups"] == ["group_local"]
    assert local.keys() == web1.keys()  # one shape for every host
    assert local["sources"]["connection"] == f"{tmp_path}/hosts.ini:1 (ansible_connection)"
    assert (web1["address"], web1["port"]) == ("10.0.0.12", 22)
    assert web1["sources"]["address"] == f"{tmp_path}/hosts.ini:3 (ansible_ssh_host)"
    assert web1["sources"]["port"] == "workflow [ssh]"  # port = 22 written: it wins
    assert web1["jump_chain"] == ["ops@bastion.example:2022"]
    assert web1["vars"]["db_password"] == "***" and web1["vars"]["api_token"] == "***"
    assert web1["var_sources"]["api_token"] == f"{tmp_path}/hosts.ini:7"
    assert (lab["address"], lab["port"], lab["user"]) == ("lab.internal", 22, "cfg")
    assert lab["sources"]["address"] == "ssh_config HostName"
    assert lab["sources"]["user"] == "ssh_config User"
    assert lab["identity_files"] == [f"{tmp_path}/id_present"]
    assert lab["missing_identity_files"] == [f"{tmp_path}/id_gone"]
    assert (db1["address"], db1["user"], db1["jump_chain"]) == (
        "10.0.0.30", "postgres", ["ops@bastion.example:2022", "web1"])
    assert db1["sources"]["user"] == "workflow [hosts]"


def test_hosts_text_lists_values_sources_and_notes(tmp_path: Path) -> None:
    workflow, config = fleet_files(tmp_path)
    proc = baton("hosts", workflow, "--ssh-config", config)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "note: Ansible group 'local' is imported as 'group_local'" in out or \
        "connection  local (this machine)" in out
    assert f"{tmp_path}/id_gone does not exist: skipped" in out
    assert "jump        ops@bastion.example:2022 -> web1" in out
    assert 'var         db_password = "***"' in out and "hunter2" not in out


def test_hosts_of_an_inventory_file_and_its_errors(tmp_path: Path) -> None:
    (tmp_path / "hosts.ini").write_text("[web]\nweb1:2222 ansible_user=root\n")
    proc = baton("hosts", f"ansible:{tmp_path}/hosts.ini", "--json", "--ssh-config", "none")
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)["hosts"]
    assert (row["name"], row["port"], row["user"]) == ("web1", 2222, "root")
    (tmp_path / "bad.ini").write_text("[web]\nweb1 ansible_ssh_pass=hunter2\n")
    proc = baton("hosts", tmp_path / "bad.ini")
    assert proc.returncode == 2
    assert proc.stderr == (f"{tmp_path}/bad.ini:2: host 'web1': ansible_ssh_pass is not "
                           "supported: Baton never sends passwords; use a key "
                           "(ansible_ssh_private_key_file) or an agent\n")
    assert proc.stdout == ""


def test_check_locates_import_errors_in_the_inventory(tmp_path: Path) -> None:
    (tmp_path / "hosts.ini").write_text("[x:children]\nweb\nnowhere\n[web]\nw1\n")
    workflow = write_workflow(tmp_path, """
        [workflow]
        name = "w"
        inventory = "ansible:hosts.ini"

        [steps.a]
        run = "true"
        on = "web"
        """)
    proc = baton("check", workflow)
    assert proc.returncode == 1
    assert any(line.startswith(f"{tmp_path}/hosts.ini:3: section [x:children] names group "
                               "'nowhere'") for line in proc.stdout.splitlines())
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def test_check_says_which_imported_names_were_changed(tmp_path: Path) -> None:
    (tmp_path / "hosts.ini").write_text("[local]\nlocalhost ansible_connection=local\n"
                                        "[bastion]\nbastion\n")
    workflow = write_workflow(tmp_path, """
        [workflow]
        name = "w"
        inventory = "ansible:hosts.ini"

        [steps.a]
        run = "true"
        on = "group_local"
        """)
    proc = baton("check", workflow)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (f"{workflow}: note: Ansible group 'local' is imported as 'group_local'"
            in proc.stderr)
    assert f"{workflow}: note: Ansible group 'bastion' is imported as 'group_bastion'" \
        in proc.stderr


def test_hosts_of_a_toml_inventory(tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text('[ssh]\nuser = "ops"\n[hosts.web1]\naddress = "10.0.0.5"\nport = 22\n')
    proc = baton("hosts", path, "--json", "--ssh-config", "none")
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)["hosts"]
    assert (row["address"], row["port"], row["user"]) == ("10.0.0.5", 22, "ops")
    assert row["sources"]["user"] == "workflow [ssh]"
