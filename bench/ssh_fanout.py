"""Fan-out over SSH on N loopback sshd hosts: baton vs OpenSSH's floor, raw asyncssh, Ansible.

    python bench/ssh_fanout.py [--hosts 30] [--steps 1 5] [--rounds 1]
                               [--modes floor baton raw ansible] [--setup-limit K]
                               [--timeout 900]

Starts a farm of sshd listeners (tests/sshd.py :class:`Farm`: one loopback address per
host, 16 per sshd; needs root and openssh-server), then, each round, for 1 and 5 steps of
``echo "$SSH_CONNECTION"`` on every host:

- **floor**: OpenSSH's ``ssh`` under ``xargs -P N``, ONE session per host running all the
  steps' commands (``cmd; cmd; ...``): what one ssh connection per host costs;
- **baton**: the engine (``Run``) with the SSH executor, the steps chained by ``needs``,
  in a child process (its peak RSS and CPU are its own); every host's output must name
  that host's own address (``$SSH_CONNECTION``), or the bench fails;
- **raw**: plain asyncssh, all hosts at once, one connection per host and ``conn.run`` per
  step (a channel and a remote shell per step), in a child process too;
- **ansible**: ``ansible-playbook`` (forks N, pipelining, no facts, ``raw`` tasks) when
  installed (on PATH, or ANSIBLE_PLAYBOOK=/path/to/ansible-playbook).

Every measurement has a timeout. The ratios printed at the end are those of issue 16:
5 steps within 1.4x of the floor at 300 hosts (1.2x at 100), >= 3x faster than Ansible,
baton's peak RSS <= 150 MB at 300 hosts (<= 400 MB at 1,000 hosts, 1 step). The load
average is printed beside every figure: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COMMAND = 'echo "$SSH_CONNECTION"'


# -- the children: baton and raw asyncssh each run in their own process

def _hosts(spec: dict[str, Any]) -> list[tuple[str, int]]:
    return [(address, spec["port"]) for address in spec["addresses"]]


async def _baton(spec: dict[str, Any], steps: int, setup_limit: int) -> dict[str, Any]:
    from console.engine.events import LogEvent
    from console.engine.run import Run, RunOptions
    from console.executors import ssh_connect
    from console.executors.ssh import ssh_executor_factory
    from console.model.workflow import Host, Step, Workflow

    if setup_limit:  # a fixed limit: the adaptive one pinned
        ssh_connect.MAX_PARALLEL_SETUP = setup_limit
        ssh_connect.INITIAL_PARALLEL_SETUP = setup_limit
        ssh_connect.LEAST_PARALLEL_SETUP = setup_limit
    hosts = {f"h{i:04d}": Host(f"h{i:04d}", address, port=port, user="root",
                               identity=spec["key"], known_hosts=spec["known_hosts"])
             for i, (address, port) in enumerate(_hosts(spec))}
    chain = {f"s{i}": Step(f"s{i}", f"s{i}", run=COMMAND, on=("all",),
                           needs=(f"s{i - 1}",) if i else ())
             for i in range(steps)}
    wf = Workflow(name="bench", hosts=hosts, steps=chain, concurrency=len(hosts))
    run = Run(wf, RunOptions(approval="auto"),
              executor_for=ssh_executor_factory(wf, ssh_config=[]))
    output: dict[tuple[str, str], str] = {}

    def on_event(event: object) -> None:
        if isinstance(event, LogEvent) and event.stream == "stdout":
            key = (event.step, event.host)
            output[key] = output.get(key, "") + event.text

    run.subscribe(on_event)
    started = time.perf_counter()
    state = await run.execute()
    wall = time.perf_counter() - started
    bad = [f"{t.label}: {t.reason}" for t in run.tasks.values() if t.state != "succeeded"]
    for (step, name), task in run.tasks.items():
        address = hosts[name].address
        if task.state == "succeeded" and f" {address} " not in output.get((step, name), ""):
            bad.append(f"{step}@{name}: output {output.get((step, name), '')!r} does not "
                       f"name {address}")
    if str(state) != "succeeded" or bad:
        return {"error": f"baton run {state}: {len(bad)} bad, e.g. {bad[:3]}", "wall": wall}
    limit = ssh_connect._setup_limit()
    return {"wall": wall, "checked": len(run.tasks), "setup_peak": limit.peak}


async def _raw(spec: dict[str, Any], steps: int) -> dict[str, Any]:
    import asyncssh

    async def one(address: str, port: int) -> None:
        async with asyncssh.connect(address, port=port, username="root",
                                    client_keys=[spec["key"]], config=[],
                                    known_hosts=spec["known_hosts"]) as conn:
            for _ in range(steps):
                result = await conn.run(COMMAND, check=True)
                if f" {address} " not in str(result.stdout):
                    raise RuntimeError(f"{address}: unexpected output {result.stdout!r}")

    started = time.perf_counter()
    results = await asyncio.gather(*(one(a, p) for a, p in _hosts(spec)),
                                   return_exceptions=True)
    wall = time.perf_counter() - started
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    if errors:
        return {"error": f"raw asyncssh: {len(errors)} hosts failed, e.g. {errors[:2]}",
                "wall": wall}
    return {"wall": wall}


def child(args: argparse.Namespace) -> None:
    spec = json.loads(Path(args.child_spec).read_text())
    cpu0 = time.process_time()
    if args.child == "baton":
        result = asyncio.run(_baton(spec, args.child_steps, args.setup_limit[0]))
    else:
        result = asyncio.run(_raw(spec, args.child_steps))
    result["cpu"] = time.process_time() - cpu0
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


# -- the parent: the farm and the tools

class Failed(Exception):
    pass


def run_child(kind: str, spec_file: Path, steps: int, args: argparse.Namespace,
              limit: int = 0) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind, "--child-spec", str(spec_file),
               "--child-steps", str(steps), "--setup-limit", str(limit)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        raise Failed(f"{kind}: timed out after {args.timeout}s") from None
    if done.returncode:
        raise Failed(f"{kind} failed: {done.stderr[-1500:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if "error" in result:
        raise Failed(result["error"])
    return result


def floor(farm: Any, steps: int, timeout: float) -> dict[str, Any]:
    """``ssh`` under ``xargs -P N``: one session per host running every step's command."""
    targets = "".join(f"{s.port} root@{s.address}\n" for s in farm.servers)
    ssh = ("ssh -q -o BatchMode=yes -o StrictHostKeyChecking=yes "
           f"-o UserKnownHostsFile={farm.known_hosts} -i {farm.client_key} -p")
    script = "; ".join([COMMAND] * steps).replace('"', '\\"')
    started = time.perf_counter()
    done = subprocess.run(["xargs", "-P", str(len(farm.servers)), "-L", "1", "sh", "-c",
                           f'{ssh} "$0" "$1" "{script}"'], input=targets, text=True,
                          capture_output=True, timeout=timeout)
    wall = time.perf_counter() - started
    lines = done.stdout.splitlines()
    if done.returncode or len(lines) != steps * len(farm.servers):
        raise Failed(f"floor: exit {done.returncode}, {len(lines)} lines of "
                     f"{steps * len(farm.servers)}: {done.stderr[-500:]}")
    return {"wall": wall}


def ansible(farm: Any, steps: int, tool: str, folder: Path, timeout: float) -> dict[str, Any]:
    inventory = folder / "hosts.ini"
    inventory.write_text("[fleet]\n" + "".join(
        f"h{i:04d} ansible_host={s.address} ansible_port={s.port}\n"
        for i, s in enumerate(farm.servers)) + (
        "[fleet:vars]\nansible_user=root\n"
        f"ansible_ssh_private_key_file={farm.client_key}\n"
        f"ansible_ssh_common_args='-o UserKnownHostsFile={farm.known_hosts} "
        "-o StrictHostKeyChecking=yes'\n"))
    playbook = folder / f"play{steps}.yml"
    playbook.write_text("- hosts: fleet\n  gather_facts: false\n  tasks:\n" + "".join(
        f"    - raw: '{COMMAND}'\n" for _ in range(steps)))
    env = dict(os.environ, ANSIBLE_PIPELINING="1", ANSIBLE_FORKS=str(len(farm.servers)),
               ANSIBLE_HOST_KEY_CHECKING="1", ANSIBLE_SSH_CONTROL_PATH_DIR=str(folder / "cp"),
               ANSIBLE_LOCAL_TEMP=str(folder / "tmp"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    started = time.perf_counter()
    try:
        result = subprocess.run([tool, "-i", str(inventory), str(playbook)], env=env,
                                capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failed(f"ansible-playbook: timed out after {timeout}s") from None
    finally:
        shutil.rmtree(folder / "cp", ignore_errors=True)  # no ControlPersist reuse
    wall = time.perf_counter() - started
    if result.returncode:
        raise Failed(f"ansible-playbook failed:\n{result.stdout[-1500:]}{result.stderr[-500:]}")
    return {"wall": wall}


def quiesce(farm: Any, timeout: float = 120.0) -> None:
    """Wait until the previous measurement's sessions (and their shells) are gone."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = 0
        for listener in farm.listeners:
            try:
                alive += len(psutil.Process(listener.process.pid).children(recursive=True))
            except (psutil.Error, AttributeError):
                pass
        if not alive:
            break
        time.sleep(0.5)
    time.sleep(2.0)


def measure(label: str, action: Any, farm: Any) -> dict[str, Any] | None:
    quiesce(farm)
    load = os.getloadavg()[0]
    try:
        result = action()
    except Failed as exc:
        print(f"  {label}: FAILED {exc}", flush=True)
        return None
    result["load"] = load
    extra = "".join(f", {k} {result[k]:.1f}" for k in ("cpu", "rss_mb", "setup_peak")
                    if k in result)
    print(f"  {label}: {result['wall']:.2f}s (load {load:.1f}{extra})", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--modes", nargs="+", default=["floor", "baton", "raw", "ansible"],
                        choices=["floor", "baton", "raw", "ansible"])
    parser.add_argument("--setup-limit", type=int, nargs="+", default=[0],
                        help="a fixed setup limit in baton (0: the adaptive one); several "
                             "values: one baton row each (a sweep in the same run)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds allowed to each measurement")
    parser.add_argument("--child", choices=["baton", "raw"], help=argparse.SUPPRESS)
    parser.add_argument("--child-spec", help=argparse.SUPPRESS)
    parser.add_argument("--child-steps", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from tests.sshd import Farm

    tool = os.environ.get("ANSIBLE_PLAYBOOK") or shutil.which("ansible-playbook")
    rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="baton-bench-") as tmp, \
            Farm(Path(tmp), args.hosts) as farm:
        spec_file = Path(tmp) / "farm.json"
        spec_file.write_text(json.dumps({
            "addresses": [s.address for s in farm.servers], "port": farm.port,
            "key": str(farm.client_key), "known_hosts": str(farm.known_hosts)}))
        print(f"farm: {args.hosts} hosts, {len(farm.listeners)} sshd listeners", flush=True)
        for round_ in range(args.rounds):
            for steps in args.steps:
                print(f"round {round_ + 1}, {steps} step(s):", flush=True)
                actions = {
                    "floor": lambda s=steps: floor(farm, s, args.timeout),
                    "raw": lambda s=steps: run_child("raw", spec_file, s, args),
                    "ansible": ((lambda s=steps: ansible(farm, s, tool, Path(tmp),
                                                         args.timeout)) if tool else None),
                }
                for limit in args.setup_limit:
                    actions[baton_mode(limit, args)] = (
                        lambda s=steps, k=limit: run_child("baton", spec_file, s, args, k))
                for mode in modes(args):
                    if actions[mode] is None:
                        print(f"  {mode}: skipped (ansible-playbook not installed)")
                        continue
                    result = measure(mode, actions[mode], farm)
                    if result is not None:
                        rows.setdefault((mode, steps), []).append(result)
    report(rows, args)


def baton_mode(limit: int, args: argparse.Namespace) -> str:
    return f"baton@{limit}" if len(args.setup_limit) > 1 else "baton"


def modes(args: argparse.Namespace) -> list[str]:
    """The measurements of one round, in order (baton once per setup limit)."""
    out: list[str] = []
    for mode in args.modes:
        if mode == "baton":
            out += [baton_mode(limit, args) for limit in args.setup_limit]
        else:
            out.append(mode)
    return out


def report(rows: dict[tuple[str, int], list[dict[str, Any]]], args: argparse.Namespace) -> None:
    hosts = args.hosts
    best = {key: min(results, key=lambda r: r["wall"]) for key, results in rows.items()}
    print(f"\nSSH fan-out on {hosts} loopback hosts (best of {args.rounds} round(s), "
          "seconds; load average at the start of each)\n")
    print(f"{'':44} " + "".join(f"{f'{s} step(s)':>20}" for s in args.steps))
    labels = {"floor": f"OpenSSH floor (ssh, xargs -P {hosts}, 1 session)",
              "baton": "baton (engine + SSH executor)",
              "raw": "raw asyncssh (conn.run per step)",
              "ansible": "ansible-playbook (raw, pipelining)"}
    for limit in args.setup_limit:
        if len(args.setup_limit) > 1:
            labels[baton_mode(limit, args)] = (f"baton, setup limit fixed at {limit}" if limit
                                                 else "baton, adaptive setup limit")
    for mode in dict.fromkeys(modes(args)):
        cells = []
        for steps in args.steps:
            found = best.get((mode, steps))
            cells.append(f"{found['wall']:9.2f} (load {found['load']:4.1f})" if found
                         else f"{'-':>20}")
        print(f"{labels[mode]:44} " + "".join(f"{c:>20}" for c in cells))
    for steps in args.steps:
        for mode in dict.fromkeys(modes(args)):
            found = best.get((mode, steps))
            if found and mode.startswith("baton"):
                print(f"{f'{mode}, {steps} step(s): peak RSS / CPU':44} "
                      f"{found['rss_mb']:7.1f} MB {found['cpu']:7.2f} s")
    print()
    checks: list[tuple[str, float, str, bool | None]] = []

    def wall(mode: str, steps: int) -> float | None:
        found = best.get((mode, steps))
        return found["wall"] if found else None

    for steps in args.steps:
        if len(args.setup_limit) > 1:
            for limit in args.setup_limit:
                b, f = wall(baton_mode(limit, args), steps), wall("floor", steps)
                if b and f:
                    checks.append((f"{steps} step(s): limit {limit} / floor", b / f, "",
                                   None))
        b = wall(baton_mode(args.setup_limit[0], args), steps)
        f, r, a = wall("floor", steps), wall("raw", steps), wall("ansible", steps)
        if b and f:
            limit = {300: 1.4, 100: 1.2}.get(hosts) if steps == 5 else None
            checks.append((f"{steps} step(s): baton / OpenSSH floor", b / f,
                           f"<= {limit}" if limit else "", b / f <= limit if limit else None))
        if b and r:
            checks.append((f"{steps} step(s): baton / raw asyncssh", b / r, "", None))
        if b and a:
            target = steps == 5 and hosts >= 300
            checks.append((f"{steps} step(s): ansible / baton", a / b, ">= 3" if target else "",
                           a / b >= 3 if target else None))
        found = best.get((baton_mode(args.setup_limit[0], args), steps))
        if found:
            rss_limit = 150 if hosts <= 300 else 400
            checks.append((f"{steps} step(s): baton peak RSS (MB)", found["rss_mb"],
                           f"<= {rss_limit}", found["rss_mb"] <= rss_limit))
    for label, value, target, ok in checks:
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        print(f"{label:44} {value:7.2f}  {('target ' + target) if target else '':14} {verdict}")


if __name__ == "__main__":
    main()
