"""Fan-out over SSH on 30 loopback sshd hosts: baton vs raw asyncssh, OpenSSH, Ansible.

    python bench/ssh_fanout.py [--hosts 30] [--rounds 3]

Starts real sshd processes (tests/sshd.py; needs root and openssh-server), then times,
in one process and one run each round (the best of the rounds is reported):

- baton: the engine (`Run`) with the SSH executor, one step on every host, then five
  steps chained by `needs` (connections opened lazily inside the measured run);
- raw asyncssh: one connection per host, `conn.run` per step (no barrier between steps);
- OpenSSH `ssh` under `xargs -P N`, one new ssh per host and step;
- `ansible-playbook` (forks N, pipelining, no facts, `raw` tasks) when it is installed
  (on PATH, or ANSIBLE_PLAYBOOK=/path/to/ansible-playbook).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from console.engine.run import Run, RunOptions  # noqa: E402
from console.executors.ssh import ssh_executor_factory  # noqa: E402
from console.model.workflow import Host, Step, Workflow  # noqa: E402
from tests.sshd import Fleet  # noqa: E402

COMMAND = "true"


def hosts_of(fleet: Fleet) -> dict[str, Host]:
    return {f"h{i:02d}": Host(f"h{i:02d}", s.address, port=s.port, user="root",
                              identity=str(fleet.client_key),
                              known_hosts=str(fleet.known_hosts))
            for i, s in enumerate(fleet.servers)}


async def baton(fleet: Fleet, steps: int, store: Any = None) -> None:
    """The engine with the SSH executor; recorded in ``store`` (the history) when given."""
    hosts = hosts_of(fleet)
    chain = {f"s{i}": Step(f"s{i}", f"s{i}", run=COMMAND, on=("all",),
                           needs=(f"s{i - 1}",) if i else ())
             for i in range(steps)}
    wf = Workflow(name="bench", hosts=hosts, steps=chain, concurrency=len(hosts))
    run = Run(wf, RunOptions(approval="auto"),
              executor_for=ssh_executor_factory(wf, ssh_config=[]))
    recorder = store.record(run) if store is not None else None
    try:
        state = await run.execute()
    finally:
        if recorder is not None:
            recorder.close()
    bad = [f"{t.label}: {t.reason}" for t in run.tasks.values() if t.state != "succeeded"]
    if str(state) != "succeeded" or bad:
        raise SystemExit(f"baton run {state}: {bad[:3]}")


async def raw_asyncssh(fleet: Fleet, steps: int) -> None:
    import asyncssh

    async def one(server) -> None:  # type: ignore[no-untyped-def]
        async with asyncssh.connect(server.address, port=server.port, username="root",
                                    client_keys=[str(fleet.client_key)], config=[],
                                    known_hosts=str(fleet.known_hosts)) as conn:
            for _ in range(steps):
                await conn.run(COMMAND, check=True)

    await asyncio.gather(*(one(s) for s in fleet.servers))


def openssh_xargs(fleet: Fleet, steps: int) -> None:
    targets = "".join(f"{s.port} root@{s.address}\n" for s in fleet.servers)
    ssh = ("ssh -q -o BatchMode=yes -o StrictHostKeyChecking=yes "
           f"-o UserKnownHostsFile={fleet.known_hosts} -i {fleet.client_key} -p")
    for _ in range(steps):
        subprocess.run(["xargs", "-P", str(len(fleet.servers)), "-L", "1", "sh", "-c",
                        f'{ssh} "$0" "$1" {COMMAND}'],
                       input=targets, text=True, check=True, stderr=subprocess.DEVNULL)


def ansible_playbook(fleet: Fleet, steps: int, tool: str, folder: Path) -> None:
    inventory = folder / "hosts.ini"
    inventory.write_text("[fleet]\n" + "".join(
        f"h{i:02d} ansible_host={s.address} ansible_port={s.port}\n"
        for i, s in enumerate(fleet.servers)) + (
        "[fleet:vars]\nansible_user=root\n"
        f"ansible_ssh_private_key_file={fleet.client_key}\n"
        f"ansible_ssh_common_args='-o UserKnownHostsFile={fleet.known_hosts} "
        "-o StrictHostKeyChecking=yes'\n"))
    playbook = folder / f"play{steps}.yml"
    playbook.write_text("- hosts: fleet\n  gather_facts: false\n  tasks:\n" + "".join(
        f"    - raw: \"{COMMAND}\"\n" for _ in range(steps)))
    env = dict(os.environ, ANSIBLE_PIPELINING="1", ANSIBLE_FORKS=str(len(fleet.servers)),
               ANSIBLE_HOST_KEY_CHECKING="1", ANSIBLE_SSH_CONTROL_PATH_DIR=str(folder / "cp"),
               ANSIBLE_LOCAL_TEMP=str(folder / "tmp"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    result = subprocess.run([tool, "-i", str(inventory), str(playbook)], env=env,
                            capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"ansible-playbook failed:\n{result.stdout[-2000:]}{result.stderr}")
    shutil.rmtree(folder / "cp", ignore_errors=True)  # no ControlPersist reuse across runs


def best_of(rounds: int, action: Callable[[], Awaitable[None] | None]) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        result = action()
        if result is not None:
            asyncio.run(result)  # type: ignore[arg-type]
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tool = os.environ.get("ANSIBLE_PLAYBOOK") or shutil.which("ansible-playbook")
    with tempfile.TemporaryDirectory(prefix="baton-bench-") as tmp:
        fleet = Fleet(Path(tmp), args.hosts)
        from console.store import Store

        store = Store.open(Path(tmp) / "home")
        try:
            rows: dict[str, tuple[float, float] | None] = {}
            peak_rss = 0.0
            for label, make in [
                ("baton (engine + SSHExecutor)", lambda n: lambda: baton(fleet, n)),
                ("baton, history store on", lambda n: lambda: baton(fleet, n, store)),
                ("raw asyncssh (conn.run per step)", lambda n: lambda: raw_asyncssh(fleet, n)),
                (f"OpenSSH ssh, xargs -P {args.hosts}", lambda n: lambda: openssh_xargs(fleet, n)),
                ("ansible-playbook (raw, pipelining)",
                 (lambda n: lambda: ansible_playbook(fleet, n, tool, Path(tmp)))
                 if tool else None),
            ]:
                if make is None:
                    rows[label] = None
                    continue
                rows[label] = (best_of(args.rounds, make(1)), best_of(args.rounds, make(5)))
                if label.startswith("baton"):  # measured first: the peak is baton's own
                    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        finally:
            store.close()
            fleet.stop()
    report(rows, args.hosts)
    print(f"{'baton peak RSS (this process, MB)':38} {peak_rss:6.0f}")


def report(rows: dict[str, tuple[float, float] | None], hosts: int) -> None:
    print(f"\nSSH fan-out on {hosts} loopback sshd hosts (best of rounds, seconds)\n")
    print(f"{'':38} {'1 step':>8} {'5 steps':>8}")
    for label, times in rows.items():
        if times is None:
            print(f"{label:38} skipped: ansible-playbook not installed")
        else:
            print(f"{label:38} {times[0]:8.3f} {times[1]:8.3f}")
    b1, b5 = rows["baton (engine + SSHExecutor)"] or (0, 0)
    s1, s5 = rows["baton, history store on"] or (0, 0)
    r1, r5 = rows["raw asyncssh (conn.run per step)"] or (0, 0)
    ansible = next((v for k, v in rows.items() if k.startswith("ansible")), None)
    print()
    checks = [
        ("1 step: baton / raw asyncssh", b1 / r1, "<= 1.2", b1 / r1 <= 1.2),
        ("5 steps: baton / baton 1 step", b5 / b1, "<= 1.5", b5 / b1 <= 1.5),
        ("5 steps: baton / raw asyncssh", b5 / r5, "<= 0.5", b5 / r5 <= 0.5),
    ]
    checks += [
        ("store on: 1 step / raw asyncssh", s1 / r1, "<= 1.2", s1 / r1 <= 1.2),
        ("store on: 5 steps / its 1 step", s5 / s1, "<= 1.5", s5 / s1 <= 1.5),
        ("store on: 5 steps / raw asyncssh", s5 / r5, "<= 0.5", s5 / r5 <= 0.5),
    ]
    if ansible is not None:
        checks.append(("5 steps: ansible-playbook / baton", ansible[1] / b5, ">= 3",
                       ansible[1] / b5 >= 3))
    for label, ratio, target, ok in checks:
        print(f"{label:38} {ratio:6.2f}x  target {target:6}  {'ok' if ok else 'MISSED'}")
    if ansible is not None:
        print(f"{'1 step: ansible-playbook / baton':38} {ansible[0] / b1:6.2f}x  (no target)")


if __name__ == "__main__":
    main()
