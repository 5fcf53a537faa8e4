"""Imported inventories and ~/.ssh/config on the real sshd farm (tests/sshd.py):
``ansible_connection=local``, a bastion given in ``ansible_ssh_common_args``, the
``host:port`` shorthand, a ProxyCommand, an ssh_config whose first IdentityFile is missing,
a ProxyJump alias whose key is unknown (recorded with accept-new), and ``port = 22``-style
written ports winning over ssh_config."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psutil
import pytest

from console.engine.events import TaskState
from console.engine.run import Run, RunOptions
from console.executors.ssh import SSHContext, SSHExecutor, ssh_executor_factory
from console.model.loader import load_workflow
from console.model.workflow import Host, SSHOptions
from tests.sshd import Fleet, SSHServer
from tests.test_ssh import run_one

pytestmark = pytest.mark.timeout(90)


def via_bastion(bastion: SSHServer, target: SSHServer) -> int:
    """Connections to ``target`` held by the bastion's sshd processes."""
    assert bastion.process is not None
    count = 0
    for child in psutil.Process(bastion.process.pid).children(recursive=True):
        try:
            count += len([c for c in child.net_connections("tcp")
                          if c.raddr and c.raddr[:2] == (target.address, target.port)])
        except psutil.Error:  # a session process that just ended
            continue
    return count


def write(tmp_path: Path, fleet: Fleet, inventory: str, steps: str) -> Path:
    (tmp_path / "hosts.ini").write_text(inventory)
    path = tmp_path / "wf.toml"
    path.write_text(f"""
[workflow]
name = "imported"
inventory = "ansible:hosts.ini"

[ssh]
user = "root"
identity = "{fleet.client_key}"
known_hosts = "{fleet.known_hosts}"
connect_timeout = "5s"
{steps}""")
    return path


async def run(path: Path, **options: Any) -> Run:
    wf = load_workflow(path)
    engine = Run(wf, RunOptions(approval="auto"),
                 executor_for=None if options.pop("default", False) else
                 ssh_executor_factory(wf, ssh_config=[], **options))
    await asyncio.wait_for(engine.execute(), 60)
    return engine


async def test_imported_local_shorthand_and_bastion_all_run(sshd_fleet: Fleet, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    fleet = sshd_fleet
    shorthand, bastion, inner = fleet.servers[7], fleet.servers[8], fleet.servers[9]
    inventory = f"""\
localhost ansible_connection=local

[web]
{shorthand.address}:{shorthand.port}

[private]
inner ansible_host={inner.address} ansible_port={inner.port}

[private:vars]
ansible_ssh_common_args='-o ProxyJump=root@{bastion.address}:{bastion.port} -o ControlMaster=auto'
"""
    steps = """
[steps.here]
run = "echo ${BATON_TEST_MARK:-remote}; echo ${SSH_CONNECTION:-none}"
on = "localhost"

[steps.web]
run = "echo $SSH_CONNECTION"
on = "web"

[steps.inner]
run = "echo $SSH_CONNECTION; sleep 1.5"
on = "inner"
"""
    monkeypatch.setenv("BATON_TEST_MARK", "ran-in-baton")
    monkeypatch.setenv("HOME", str(tmp_path))  # the engine's default reads ~/.ssh/config
    path = write(tmp_path, fleet, inventory, steps)
    wf = load_workflow(path)
    assert wf.hosts["localhost"].is_local
    assert wf.hosts["inner"].jump == f"root@{bastion.address}:{bastion.port}"

    engine_task = asyncio.ensure_future(run(path, default=True))
    await asyncio.sleep(1.0)
    seen_via = 0
    for _ in range(20):  # the inner task holds its connection 1.5 s: look for it
        seen_via = max(seen_via, via_bastion(bastion, inner))
        if seen_via:
            break
        await asyncio.sleep(0.1)
    engine = await engine_task
    tasks = {t.step: t for t in engine.tasks_of("here") + engine.tasks_of("web")
             + engine.tasks_of("inner")}
    assert all(t.state is TaskState.SUCCEEDED for t in tasks.values()), \
        {s: t.reason for s, t in tasks.items()}
    # local: the engine's own environment, no SSH session
    assert tasks["here"].outputs.stdout.split() == ["ran-in-baton", "none"]
    # host:port shorthand: host named by its address, port from the shorthand
    assert tasks["web"].host == shorthand.address
    assert tasks["web"].outputs.stdout.split()[2:] == [shorthand.address, str(shorthand.port)]
    # bastion: the target saw the session, and the bastion's sshd held the TCP connection
    assert tasks["inner"].outputs.stdout.split()[2:] == [inner.address, str(inner.port)]
    assert seen_via == 1


async def test_proxy_command_from_inventory(sshd_fleet: Fleet, tmp_path: Path) -> None:
    fleet = sshd_fleet
    bastion, inner = fleet.servers[8], fleet.servers[6]
    proxy = (f"ssh -W %h:%p -q -i {fleet.client_key} -o UserKnownHostsFile={fleet.known_hosts} "
             f"-o StrictHostKeyChecking=yes -o BatchMode=yes -p {bastion.port} "
             f"root@{bastion.address}")
    inventory = (f"[private]\nbehind ansible_host={inner.address} ansible_port={inner.port} "
                 f"ansible_ssh_common_args='-o ProxyCommand=\"{proxy}\"'\n")
    path = write(tmp_path, fleet, inventory,
                 '\n[steps.s]\nrun = "echo $SSH_CONNECTION; sleep 1.5"\non = "behind"\n')
    engine_task = asyncio.ensure_future(run(path))
    seen = 0
    for _ in range(40):
        seen = max(seen, via_bastion(bastion, inner))
        if seen:
            break
        await asyncio.sleep(0.1)
    engine = await engine_task
    (task,) = engine.tasks_of("s")
    assert task.state is TaskState.SUCCEEDED, task.reason
    assert task.outputs.stdout.split()[2:] == [inner.address, str(inner.port)]
    assert seen == 1


async def test_ssh_config_missing_first_identity_file_is_skipped(sshd_fleet: Fleet,
                                                                 tmp_path: Path) -> None:
    fleet = sshd_fleet
    server = fleet.servers[5]
    config = tmp_path / "ssh_config"
    config.write_text(f"Host lab-extra-key\n  HostName {server.address}\n  Port {server.port}\n"
                      f"  User root\n  IdentityFile {tmp_path}/id_gone\n"
                      f"  IdentityFile {fleet.client_key}\n")
    host = Host("lab", "lab-extra-key", known_hosts=str(fleet.known_hosts))
    ex = SSHExecutor(host, ssh_config=[str(config)], connect_timeout=5.0)
    status, out = await run_one(ex, "echo $SSH_CONNECTION")
    await ex.close()
    assert status.ok, status
    assert out.of("stdout")[0].split()[2:] == [server.address, str(server.port)]


async def test_every_identity_missing_names_the_files_and_the_resolved_port(
        sshd_fleet: Fleet, tmp_path: Path) -> None:
    fleet = sshd_fleet
    server = fleet.servers[5]
    config = tmp_path / "ssh_config"
    config.write_text(f"Host lab-extra-key\n  HostName {server.address}\n  Port {server.port}\n"
                      f"  User nobody-here\n  IdentityFile {tmp_path}/id_gone\n")
    host = Host("lab", "lab-extra-key", known_hosts=str(fleet.known_hosts))
    ex = SSHExecutor(host, ssh_config=[str(config)], connect_timeout=5.0)
    status, _ = await run_one(ex, "true")
    await ex.close()
    assert status.error is not None
    assert f"{server.address}:{server.port}" in status.error
    assert f"{tmp_path}/id_gone does not exist" in status.error
    assert ":22" not in status.error


async def test_written_port_wins_over_ssh_config(sshd_fleet: Fleet, tmp_path: Path) -> None:
    fleet = sshd_fleet
    server = fleet.servers[5]
    config = tmp_path / "ssh_config"
    # ssh_config sends this host to a port where nothing listens; the workflow says better
    config.write_text(f"Host {server.address}\n  Port 1\n  User root\n"
                      f"  IdentityFile {fleet.client_key}\n")
    host = Host("w", server.address, known_hosts=str(fleet.known_hosts))
    defaults = SSHOptions(port=server.port)
    ex = SSHExecutor(host, context=SSHContext(defaults=defaults, ssh_config=[str(config)],
                                              connect_timeout=5.0))
    status, out = await run_one(ex, "echo $SSH_CONNECTION")
    await ex.close()
    assert status.ok, status
    assert out.of("stdout")[0].split()[3] == str(server.port)
    # and without the written port, ssh_config's Port is used (and named on failure)
    ex = SSHExecutor(host, ssh_config=[str(config)], connect_timeout=5.0)
    status, _ = await run_one(ex, "true")
    await ex.close()
    assert status.error == f"w: connection refused by {server.address}:1"


async def test_proxyjump_alias_with_unknown_key_is_recorded_with_accept_new(
        sshd_fleet: Fleet, lone_sshd: SSHServer, tmp_path: Path) -> None:
    fleet = sshd_fleet
    target = fleet.servers[4]
    known = tmp_path / "known_hosts"
    known.write_text(target.host_key_line())  # the target is known, the jump host is not
    config = tmp_path / "ssh_config"
    config.write_text(f"Host lab-bastion\n  HostName {lone_sshd.address}\n"
                      f"  Port {lone_sshd.port}\n  User root\n"
                      f"  IdentityFile {fleet.client_key}\n"
                      f"Host lab-behind\n  HostName {target.address}\n  Port {target.port}\n"
                      f"  User root\n  IdentityFile {fleet.client_key}\n"
                      f"  ProxyJump lab-bastion\n")
    host = Host("behind", "lab-behind", known_hosts=str(known))
    refused = SSHExecutor(host, ssh_config=[str(config)], connect_timeout=5.0)
    status, _ = await run_one(refused, "true")
    await refused.close()
    assert status.error is not None and "host key unknown for " \
        f"[{lone_sshd.address}]:{lone_sshd.port}" in status.error
    accepted = SSHExecutor(host, ssh_config=[str(config)], connect_timeout=5.0,
                           accept_new_host_keys=True)
    status, out = await run_one(accepted, "echo $SSH_CONNECTION")
    await accepted.close()
    assert status.ok, status
    assert out.of("stdout")[0].split()[2:] == [target.address, str(target.port)]
    assert f"[{lone_sshd.address}]:{lone_sshd.port} " in known.read_text()
    assert out.of("stderr")[0].startswith(
        f"baton: permanently added the host key of [{lone_sshd.address}]:{lone_sshd.port} "
        "(SHA256:")




async def test_jump_loop_from_ssh_config_is_refused_not_hung(sshd_fleet: Fleet,
                                                            tmp_path: Path) -> None:
    fleet = sshd_fleet
    config = tmp_path / "ssh_config"
    config.write_text("Host alpha\n  ProxyJump beta\nHost beta\n  ProxyJump alpha\n")
    host = Host("alpha", "alpha", known_hosts=str(fleet.known_hosts))
    ex = SSHExecutor(host, ssh_config=[str(config)], connect_timeout=5.0)
    status, _ = await asyncio.wait_for(run_one(ex, "true"), 20)
    await ex.close()
    assert status.error is not None and "jump hosts loop: alpha -> beta -> alpha" in status.error
