"""tests/sshd.py's Farm (issue 16): hundreds of hosts from a few sshd listeners."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncssh
import psutil

from tests.sshd import MAX_LISTEN_SOCKS, Farm


async def test_every_farm_address_is_its_own_host_and_stop_kills_every_listener(
        tmp_path: Path) -> None:
    count = MAX_LISTEN_SOCKS + 2  # two listeners, the second with two addresses
    farm = Farm(tmp_path / "farm", count)
    pids = [listener.process.pid for listener in farm.listeners if listener.process]
    try:
        assert len(farm) == count and len(farm.listeners) == 2 == len(pids)
        assert len({s.address for s in farm.servers}) == count

        async def where(address: str, port: int) -> str:
            async with asyncssh.connect(address, port=port, username="root", config=[],
                                        client_keys=[str(farm.client_key)],
                                        known_hosts=str(farm.known_hosts)) as conn:
                result = await conn.run('echo "$SSH_CONNECTION"', check=True)
                return str(result.stdout)

        picked = [farm.servers[0], farm.servers[MAX_LISTEN_SOCKS - 1], farm.servers[-1]]
        seen = await asyncio.gather(*(where(s.address, s.port) for s in picked))
        for server, line in zip(picked, seen, strict=True):
            assert line.split()[2:4] == [server.address, str(server.port)], line
    finally:
        farm.stop()
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                   for pid in pids)
