"""Console on a fleet: a rollout of 5 steps over 1,000 hosts in 10 batches (scripted
executor, recorded in a throw-away history) while a Pilot presses keys. Reports the time
to the first frame, the keypress-to-screen latency (median, worst) and the peak RSS.

Targets: first frame < 1 s, median < 50 ms, worst < 250 ms, peak RSS <= 400 MB.

    python bench/console_fleet.py [--hosts N] [--presses K] [--ssh]

``--ssh``: the steps run over the real SSH executor on a farm of N loopback sshd hosts
(tests/sshd.py :class:`Farm`; use ``--hosts 300``), not the scripted one (issue 16: the
console stays usable while 300 hosts connect and run). ``--runner`` runs it as
``baton run FILE`` does (a runner process, the console attached). The farm runs in one cpu
cgroup of weight ``--farm-shares`` (default 2) where the machine has one to give (the line
printed says so): a real fleet's sshd sessions run on other machines, while here 300 of
them share the console's cores, and even at nice 19 they outweigh it together (300 x 15
against 1,024); in the group they still take every cycle the console and the runner
leave. ``--farm-shares 0`` shares the cores as they are (with ``--farm-nice``).

    python bench/console_fleet.py --ssh --runner --hosts 300

Exit code 0 when every target is met, 1 otherwise.

- First frame: from creating the app (the workflow is not loaded yet) to the first frame
  written with the run screen's tree built.
- Keypress-to-screen: from posting the key event (as a terminal would) to the first frame
  written whose state shows the key's effect: the tree's cursor moved (``j``/``k``), a
  fan-out expanded or collapsed (``space``), the log's timestamps or follow toggled
  (``T``/``f``), the cursor on the next task that needs the operator (``N``).
  A frame is "written" when Textual hands the composed update to the driver.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.store import Store
from console.ui import navigation
from console.ui.app import BatonApp, LaunchOptions
from console.ui.screens.run_screen import RunScreen
from console.ui.system import SystemStats, fixed_sampler
from console.ui.widgets.dag_tree import DagTree
from console.ui.widgets.log_pane import LogPane
from tests.fakes import ScriptedWorld
from tests.sshd import Farm

STEPS = ("drain", "stop", "deploy", "start", "undrain")


def write_workflow(folder: Path, hosts: int, farm: Farm | None = None) -> Path:
    """The rollout; on ``farm``'s hosts over SSH when given (else 127.0.0.1, scripted)."""
    lines = ['[workflow]', 'name = "Fleet rollout"', 'concurrency = 100', '',
             '[rollouts.fleet]', f'steps = {list(STEPS)!r}'.replace("'", '"'),
             'serial = "10%"', 'max_fail = 50', '']
    if farm is not None:
        lines += ['[ssh]', 'user = "root"', f'port = {farm.port}',
                  f'identity = "{farm.client_key}"', f'known_hosts = "{farm.known_hosts}"', '']
    for index in range(1, hosts + 1):
        address = farm.servers[index - 1].address if farm is not None else "127.0.0.1"
        lines += [f'[hosts.web{index:04d}]', f'address = "{address}"', 'groups = ["web"]']
    previous = None
    for step in STEPS:
        lines += ['', f'[steps.{step}]', f'name = "{step.capitalize()} the web tier"',
                  'on = "web"']
        if previous:
            lines.append(f'needs = ["{previous}"]')
        # a few hosts fail the deploy: the summary line and N have something to show
        err = "err" if farm is None else "echo >&2"  # the scripted world's stderr line
        fail = (f'{{% if host.name.endswith("37") %}}\n{err} deploy failed on {{{{ host.name }}}}'
                '\nexit 3{% endif %}') if step == "deploy" else ""
        lines.append(f'run = """echo {step} {{{{ host.name }}}}\nsleep 0.02\n'
                     f'echo {step} done{fail}"""')
        previous = step
    path = folder / "fleet.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class FrameProbe:
    """Notes when Textual writes a frame, and the first frame for which a condition holds
    (the frame hook wakes the waiter: no polling in the process measured)."""

    def __init__(self) -> None:
        self.condition: Callable[[], bool] | None = None
        self.met: asyncio.Future[float] | None = None
        self.original = BatonApp._display
        probe = self

        def display(app: BatonApp, screen, renderable):  # type: ignore[no-untyped-def]
            probe.original(app, screen, renderable)
            if (renderable is not None and probe.condition is not None
                    and probe.met is not None and not probe.met.done() and probe.condition()):
                probe.met.set_result(time.perf_counter())
                probe.condition = None

        BatonApp._display = display  # type: ignore[method-assign]

    async def wait(self, condition: Callable[[], bool], timeout: float = 10.0) -> float:
        """When the first frame showing ``condition`` was written (at most ``timeout``
        seconds from now: a key whose effect never shows counts as that long)."""
        self.met = asyncio.get_running_loop().create_future()
        self.condition = condition
        give_up = time.perf_counter() + timeout
        try:
            return await asyncio.wait_for(asyncio.shield(self.met), timeout)
        except TimeoutError:
            return give_up
        finally:
            self.condition = None

    def close(self) -> None:
        BatonApp._display = self.original  # type: ignore[method-assign]


def effect_of(key: str, screen: RunScreen) -> Callable[[], bool]:
    """A condition that holds once the screen's state shows ``key``'s effect."""
    tree = screen.query_one(DagTree)
    view = screen.query_one(LogPane).view
    if key in ("j", "k"):
        line = tree.cursor_line
        wanted = min(line + 1, tree.last_line) if key == "j" else max(0, line - 1)
        return lambda: tree.cursor_line == wanted
    if key == "space":
        node = tree.cursor_node
        expanded = node.is_expanded if node is not None else False
        return lambda: node is None or node.is_expanded != expanded
    if key == "T":
        shown = view.show_time
        return lambda: view.show_time != shown
    if key == "f":
        follow = view.follow
        return lambda: view.follow != follow
    if key == "N":
        target = navigation.next_needing(screen.run, tree.selection)
        return lambda: target is None or tree.selection == target
    raise ValueError(key)


KEYS = ("j", "j", "space", "j", "j", "k", "k", "space", "T", "f", "f", "T", "N", "k")


async def console(path: Path, home: Path, presses: int, interval: float, ssh: bool = False,
                  runner: Path | None = None) -> tuple[float, list[tuple[str, float]], str]:
    """``runner``: attach to the run that runner serves (its socket) instead of running
    it in this process."""
    probe = FrameProbe()
    world = ScriptedWorld()
    latencies: list[tuple[str, float]] = []
    with Store.open(home) as store:
        created = time.perf_counter()
        sampler = fixed_sampler(SystemStats(0, 0, (0, 0, 0)))
        if runner is not None:
            from console.runner.attach_app import AttachApp

            app: BatonApp = AttachApp(runner, config_file=home / "c.toml", sampler=sampler,
                                      blink=False)
        else:
            app = BatonApp(path, LaunchOptions(start=True, run_id="fleet", user="bench"),
                           executor_for=None if ssh else world.factory(),
                           config_file=home / "c.toml", sampler=sampler, blink=False,
                           store=store)
        first_frame = asyncio.ensure_future(probe.wait(
            lambda: isinstance(app.screen, RunScreen)
            and app.screen.query_one(DagTree).last_line > 0))
        async with app.run_test(size=(160, 48)) as pilot:
            first = await first_frame - created
            screen = app.screen
            assert isinstance(screen, RunScreen)
            for index in range(presses):
                if screen.run.state.finished:
                    break
                key = KEYS[index % len(KEYS)]
                node = screen.query_one(DagTree).cursor_node
                if key == "space" and (node is None or not node.allow_expand):
                    continue  # on a host's line: nothing to expand or collapse
                condition = effect_of(key, screen)
                pressed = time.perf_counter()
                app.simulate_key(key)  # the Key event a terminal would post
                latencies.append((key, await probe.wait(condition) - pressed))
                await asyncio.sleep(interval)
            while not screen.run.state.finished:
                await asyncio.sleep(0.05)
            final = str(screen.run.state)
            await pilot.press("l", "escape")  # still driven by the Pilot after the run
            screen.run.close()
            await pilot.pause()
    probe.close()
    return first, latencies, final


def _stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1_000)
    parser.add_argument("--presses", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.1,
                        help="seconds between keypresses (default 0.1: a fast operator)")
    parser.add_argument("--ssh", action="store_true",
                        help="run the steps over SSH on a loopback sshd farm of --hosts hosts")
    parser.add_argument("--runner", action="store_true",
                        help="--ssh: the run in a runner process (as `baton run FILE`), "
                             "the console attached to it")
    parser.add_argument("--farm-nice", type=int, default=0,
                        help="--ssh: run the sshd farm at this niceness (on a real fleet "
                             "the server side is not on the console's cores)")
    parser.add_argument("--farm-shares", type=int, default=2,
                        help="--ssh: run the sshd farm in one cpu cgroup of this weight "
                             "(default 2; 1,024 = one process at nice 0; 0: no cgroup, the "
                             "farm shares the cores at --farm-nice): 300 sessions at nice "
                             "19 still outweigh the console together, one group does not")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        farm = (stack.enter_context(Farm(folder / "farm", args.hosts, args.farm_nice,
                                               cpu_shares=args.farm_shares))
                if args.ssh else None)
        farm_group = farm.group if farm is not None else None
        path = write_workflow(folder, args.hosts, farm)
        socket = None
        if args.runner:
            from console.runner.daemon import spawn

            spawned = spawn([str(path), "--yes"], folder / "home")
            stack.callback(_stop, spawned.pid)
            socket = spawned.socket
        started = time.perf_counter()
        first, latencies, final = asyncio.run(
            console(path, folder / "home", args.presses, args.interval, args.ssh, socket))
        wall = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if not latencies:
        print("no keypress was measured: the run ended first")
        return 1
    values = [ms for _, ms in latencies]
    median = statistics.median(values) * 1000
    worst_key, worst_s = max(latencies, key=lambda kv: kv[1])
    worst = worst_s * 1000
    checks = {
        f"first frame {first * 1000:.0f} ms (< 1000)": first < 1.0,
        f"median keypress-to-screen {median:.1f} ms (< 50)": median < 50,
        f"worst keypress-to-screen {worst:.1f} ms (< 250, key {worst_key})": worst < 250,
        f"peak RSS {rss_mb:.0f} MB (<= 400)": rss_mb <= 400,
    }
    executor = ("scripted executor" if not args.ssh else
                f"SSH executor, loopback sshd farm at nice {args.farm_nice}")
    if farm_group is not None:
        executor += f", in a cpu cgroup of weight {args.farm_shares}"
    elif args.ssh and args.farm_shares:
        executor += " (no cpu cgroup to be had: --farm-shares ignored)"
    if args.runner:
        executor += ", run in a runner process, console attached"
    print(f"console fleet: {len(STEPS)} steps x {args.hosts:,} hosts in 10 batches "
          f"({executor}), run {final} in {wall:.1f} s, {len(latencies)} keypresses during "
          f"the run, load {os.getloadavg()[0]:.1f}")
    for text, ok in checks.items():
        print(f"  {'ok  ' if ok else 'MISS'} {text}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
