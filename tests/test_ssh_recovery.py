"""Issue 13 on the real sshd farm (tests/sshd.py): delegation and health polls over SSH."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from console.engine.events import RunState, TaskState
from console.engine.run import Run, RunOptions
from console.executors.ssh import ssh_executor_factory
from console.model.loader import load_text
from tests.sshd import Fleet, SSHServer

pytestmark = pytest.mark.timeout(90)

TEST_OPTIONS: dict[str, Any] = {"ssh_config": [], "connect_timeout": 5.0}


def host_table(fleet: Fleet, name: str, server: SSHServer, groups: str = "") -> str:
    return (f'[hosts.{name}]\naddress = "{server.address}"\nport = {server.port}\n'
            f'user = "root"\nidentity = "{fleet.client_key}"\n'
            f'known_hosts = "{fleet.known_hosts}"\n' + (f"groups = [{groups}]\n" if groups
                                                          else ""))


async def run_text(text: str, path: Path) -> Run:
    path.write_text(text)
    wf = load_text(text, path)
    run = Run(wf, RunOptions(approval="auto"),
              executor_for=ssh_executor_factory(wf, **TEST_OPTIONS))
    await asyncio.wait_for(run.execute(), 75)
    return run


async def test_rollout_drains_and_undrains_each_host_on_one_delegate(sshd_fleet: Fleet,
                                                                     tmp_path: Path) -> None:
    """4 web hosts in batches of 2; drain and undrain of each web host run on lb1 (its own
    sshd writes the journal: $SSH_CONNECTION names the server), deploy on the host itself."""
    fleet = sshd_fleet
    lb1, webs = fleet.servers[4], fleet.servers[:4]
    journal = tmp_path / "lb1-journal"
    deploys = tmp_path / "deploys"
    line = '"{verb} {{{{ host.name }}}} $(date +%s.%N) ${{SSH_CONNECTION}}"'
    hosts = "".join(host_table(fleet, f"web{i + 1}", s, '"web"') for i, s in enumerate(webs))
    text = f'''
[workflow]
name = "delegated drain"

{host_table(fleet, "lb1", lb1)}
{hosts}
[steps.drain]
on = "web"
delegate = "lb1"
run = 'echo {line.format(verb="drain")} >> {journal}; sleep 0.1'

[steps.deploy]
on = "web"
needs = ["drain"]
run = 'echo {line.format(verb="deploy")} >> {deploys}; sleep 0.1'

[steps.undrain]
on = "web"
needs = ["deploy"]
delegate = "lb1"
run = 'echo {line.format(verb="undrain")} >> {journal}; echo back {{{{ host.name }}}}'

[rollouts.web]
steps = ["drain", "deploy", "undrain"]
serial = 2
'''
    run = await run_text(text, tmp_path / "wf.toml")
    assert run.state is RunState.SUCCEEDED, [(t.label, t.reason) for t in run.tasks.values()]
    assert {t.host for t in run.tasks.values()} == {"web1", "web2", "web3", "web4"}
    assert run.tasks[("undrain", "web3")].outputs.stdout == "back web3\n"
    entries = [entry.split() for entry in journal.read_text().splitlines()]
    assert len(entries) == 8
    # every journal line was written by a session of lb1's sshd
    assert {(e[5], e[6]) for e in entries} == {(lb1.address, str(lb1.port))}
    stamps = {(e[0], e[1]): float(e[2]) for e in entries}
    done = {}
    for entry in deploys.read_text().splitlines():
        _verb, host, stamp, _client, _cport, server, port = entry.split()
        assert (server, port) == next((s.address, str(s.port)) for s in webs
                                      if f"web{webs.index(s) + 1}" == host)
        done[host] = float(stamp)
    for host in ("web1", "web2", "web3", "web4"):
        assert stamps[("drain", host)] < done[host] < stamps[("undrain", host)], host
    # batch 2 leaves the load balancer only after batch 1 is back in it
    assert max(stamps[("undrain", h)] for h in ("web1", "web2")) < min(
        stamps[("drain", h)] for h in ("web3", "web4"))


async def test_health_poll_over_ssh_succeeds_on_a_later_poll_and_fails_at_within(
        sshd_fleet: Fleet, tmp_path: Path) -> None:
    fleet = sshd_fleet
    counter = tmp_path / "polls"
    text = f'''
[workflow]
name = "poll over ssh"

{host_table(fleet, "web1", fleet.servers[0])}
{host_table(fleet, "web2", fleet.servers[1])}
[steps.health]
on = "web1"
poll = "0.2s"
within = "30s"
run = """echo poll >> {counter}-{{{{ host.name }}}}
n=$(wc -l < {counter}-{{{{ host.name }}}})
if [ "$n" -ge 3 ]; then echo healthy; exit 0; fi
echo "not yet $n"; exit 3"""

[steps.sick]
on = "web2"
poll = "0.5s"
within = "3s"
run = """echo poll >> {counter}-{{{{ host.name }}}}
echo "not yet $(wc -l < {counter}-{{{{ host.name }}}})"; exit 3"""
'''
    run = await run_text(text, tmp_path / "wf.toml")
    web1, web2 = run.tasks[("health", "web1")], run.tasks[("sick", "web2")]
    assert web1.state is TaskState.SUCCEEDED and web1.attempt == 1
    assert web1.outputs.stdout == "healthy\n"
    assert len(Path(f"{counter}-web1").read_text().splitlines()) == 3
    assert web2.state is TaskState.FAILED and web2.attempt == 1
    polls = len(Path(f"{counter}-web2").read_text().splitlines())
    assert 1 <= polls <= 6  # every 0.5s for 3s, fewer when sessions are slow to open
    plural = "s" if polls != 1 else ""
    assert web2.reason == f"still failing after 3s ({polls} poll{plural}): exit 3"
    assert web2.outputs.stdout == f"not yet {polls}\n"


async def test_cancel_and_pause_mid_poll_over_ssh(sshd_fleet: Fleet, tmp_path: Path) -> None:
    """Pause: no new poll starts; cancel while a poll runs on the host ends it at once."""
    import secrets
    import time

    from tests.test_ssh import wait_gone

    marker = f"baton-poll-{secrets.token_hex(4)}"
    counter = tmp_path / "polls"
    text = f'''
[workflow]
name = "poll cancel"

{host_table(sshd_fleet, "web1", sshd_fleet.servers[2])}
[steps.health]
on = "web1"
poll = "0.1s"
within = "60s"
env = {{ MARK = "{marker}" }}
run = """echo poll >> {counter}
if [ -e {tmp_path}/slow ]; then sleep 30; fi
exit 1"""
'''
    path = tmp_path / "wf.toml"
    path.write_text(text)
    wf = load_text(text, path)
    run = Run(wf, RunOptions(approval="auto"),
              executor_for=ssh_executor_factory(wf, **TEST_OPTIONS))
    execution = asyncio.ensure_future(run.execute())

    def polls() -> int:
        return len(counter.read_text().splitlines()) if counter.exists() else 0

    while polls() < 2:
        await asyncio.sleep(0.02)
    run.pause()
    task = run.tasks[("health", "web1")]
    while not (task.reason or "").startswith("polling paused"):  # a running poll ends first
        await asyncio.sleep(0.02)
    held = polls()
    await asyncio.sleep(0.6)
    assert polls() == held
    (tmp_path / "slow").touch()
    run.resume()
    while polls() == held:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # the remote sleep runs
    began = time.monotonic()
    run.cancel("health", "web1")
    assert await asyncio.wait_for(execution, 10) is RunState.FAILED
    assert time.monotonic() - began < 5
    assert run.tasks[("health", "web1")].state is TaskState.CANCELLED
    assert await wait_gone(marker) == []
