"""Issue 15: a console whose event loop is busy (drawing) still receives every line of a
flood: its client drains the socket in a thread, so the runner's bounded queue for it
never overflows into a resync (which would drop output the console then never shows)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from console.runner import protocol as p
from console.runner.client import connect
from console.runner.daemon import spawn

LINES = 2_000_000
FLOOD = f'[workflow]\nname = "flood"\n[steps.flood]\nrun = "seq 1 {LINES}"\n'


async def test_a_busy_console_loses_no_line_of_a_flood(tmp_path: Path,
                                                       baton_home: Path) -> None:
    path = tmp_path / "flood.toml"
    path.write_text(FLOOD)
    spawned = spawn([str(path), "--step"], baton_home)  # held until approved
    try:
        # as the console connects: output as bytes after each log message
        client = await connect(spawned.socket, host_keys=True, log_bytes=True)
        assert (await client.act(p.Action("approve", "flood"))).ok
        time.sleep(4)  # the loop is busy (a console drawing) while the flood goes out
        lines = 0
        resyncs = 0

        async def follow() -> None:
            nonlocal lines, resyncs
            async for message in client.events():
                if message["type"] == "log":
                    lines += message["text"].count("\n") + 1
                elif message["type"] == "snapshot":
                    resyncs += 1
                    return  # what followed is in it: the succeeded event never comes
                elif message["type"] == "task" and message["state"] == "succeeded":
                    return

        await asyncio.wait_for(follow(), 60)
        assert resyncs == 0
        assert lines == LINES
        await client.close()
    finally:
        try:
            os.kill(spawned.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
