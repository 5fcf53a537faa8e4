"""The engine with the real local executor: timeouts, cancel and retries end real processes."""

from __future__ import annotations

import asyncio
import secrets

import psutil

from console.engine.events import RunState, TaskState
from console.engine.run import Run, RunOptions
from console.model.loader import load_text

S = TaskState


def survivors(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            env = proc.info["environ"] or {}
            if env.get("BATON_TEST_MARKER") == marker and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


async def gone(marker: str, timeout: float = 5.0) -> list[psutil.Process]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while survivors(marker) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return survivors(marker)


def workflow(marker: str, body: str) -> str:
    return f"""
[workflow]
name = "local"

[steps.tree]
run = '''
sleep 100 &
sh -c 'sleep 100' &
setsid sleep 100 &
{body}
'''
env = {{ BATON_TEST_MARKER = "{marker}" }}
timeout = "0.5s"

[steps.after]
run = "echo after"
needs = ["tree"]
"""


async def test_timeout_ends_the_whole_process_tree():
    marker = secrets.token_hex(8)
    run = Run(load_text(workflow(marker, "wait")))
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.wait_for(run.execute(), 20) is RunState.FAILED
    assert loop.time() - started < 5
    task = run.tasks[("tree", "local")]
    assert (task.state, task.reason) == (S.FAILED, "timed out after 0.5s")
    assert run.tasks[("after", "local")].state is S.BLOCKED
    assert await gone(marker) == []


async def test_cancel_ends_the_tree_and_retry_runs_again():
    marker = secrets.token_hex(8)
    text = workflow(marker, "wait").replace('timeout = "0.5s"', "")
    run = Run(load_text(text), RunOptions(keep_alive=True))
    runner = asyncio.create_task(run.execute())
    while len(survivors(marker)) < 4:  # the shell and its three sleeps
        await asyncio.sleep(0.05)
    run.cancel("tree")
    while run.tasks[("tree", "local")].state is not S.CANCELLED:
        await asyncio.sleep(0.02)
    assert await gone(marker) == []
    run.close()
    assert await asyncio.wait_for(runner, 10) is RunState.FAILED


async def test_retries_with_backoff_run_real_attempts(tmp_path):
    counter = tmp_path / "count"
    text = f"""
[workflow]
name = "flaky"

[steps.flaky]
run = '''
n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}
echo "attempt $n"
[ $n -ge 3 ]
'''
retries = 3
retry_delay = "0.05s"
retry_backoff = 2
"""
    run = Run(load_text(text))
    assert await asyncio.wait_for(run.execute(), 20) is RunState.SUCCEEDED
    task = run.tasks[("flaky", "local")]
    assert task.attempt == 3 and [a.exit_code for a in task.attempts] == [1, 1, 0]
    assert task.outputs.stdout == "attempt 3\n"
