"""Helpers for the console tests: a demo workflow, an app on the scripted executor,
a frozen clock and fixed host stats (so screens are deterministic)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from console.engine.events import TaskState
from console.ui.app import BatonApp, LaunchOptions
from console.ui.screens.run_screen import RunScreen
from console.ui.system import SystemStats, fixed_sampler
from console.ui.widgets.dag_tree import DagTree
from tests.fakes import ScriptedWorld
from tests.helpers import T0, FrozenClock, until

__all__ = ["T0", "FrozenClock", "until"]  # re-exported: the UI tests import them from here

SIZE = (120, 36)

DEMO = '''
[workflow]
name = "Rolling restart of the web tier"
description = "Restart the web tier host by host."

[params]
release = "2024.11.3"

[secrets]
token = { env = "BATON_TEST_TOKEN" }

[hosts.web1]
groups = ["web"]
[hosts.web2]
groups = ["web"]
[hosts.web3]
groups = ["web"]

[steps.preflight]
name = "Preflight checks"
description = "Checks **disk** and *health* before anything changes."
run = """echo checking disk
err warning: disk 81% full
echo preflight ok"""

[steps.drain]
name = "Drain web hosts"
needs = ["preflight"]
on = "web"
confirm = "Drain the web hosts?"
run = "echo draining {{ host.name }}"

[steps.deploy]
name = "Deploy release"
needs = ["drain"]
on = "web"
dangerous = true
confirm = "Deploy {{ params.release }} to {{ host.name }}?"
max_fail = 1
run = """echo deploy {{ params.release }} --token {{ secrets.token }}
{% if host.name == "web2" %}err deploy failed: port 8080 in use
exit 4{% endif %}"""

[steps.verify]
name = "Verify by hand"
needs = ["deploy"]
description = "Open the dashboard and check the error rate."

[steps.notify]
name = "Notify channel"
run = "hold notify"

[steps.migrate]
name = "Migrate database"
run = """echo migrating
err ERROR: relation "users" is locked
exit 3"""

[steps.cache]
name = "Warm caches"
when = "params.release == 'never'"
run = "echo warm"

[steps.flaky]
name = "Flaky probe"
run = """err probe failed: timeout
exit 1"""
retries = 2
retry_delay = "1h"

[steps.cleanup]
name = "Clean up"
needs = ["migrate"]
run = "echo cleanup"
'''


def make_app(tmp_path: Path, text: str = DEMO, *, name: str = "demo.toml",
             clock: Callable[[], float] | None = None, theme: str | None = None,
             **launch: object) -> tuple[BatonApp, ScriptedWorld]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    world = ScriptedWorld()
    options = LaunchOptions(run_id="r7k2m9x1", user="alice")
    for key, value in launch.items():
        setattr(options, key, value)
    app = BatonApp(path, options, executor_for=world.factory(), clock=clock or FrozenClock(),
                   sampler=fixed_sampler(SystemStats(12.0, 43.0, (0.52, 0.41, 0.30))),
                   config_file=tmp_path / "config.toml", theme=theme, blink=False)
    return app, world


async def run_screen(app: BatonApp) -> RunScreen:
    await until(lambda: any(isinstance(s, RunScreen) for s in app.screen_stack))
    return next(s for s in app.screen_stack if isinstance(s, RunScreen))


def state(screen: RunScreen, step: str, host: str = "local") -> TaskState:
    return screen.run.tasks[(step, host)].state


async def settle(app: BatonApp, screen: RunScreen) -> None:
    """Wait until the demo run reached its resting point: gates and holds waiting."""
    run = screen.run
    await until(lambda: run.tasks[("drain", "web1")].state is TaskState.AWAITING_APPROVAL
                and run.tasks[("cleanup", "local")].state is TaskState.BLOCKED
                and run.tasks[("notify", "local")].state is TaskState.RUNNING
                and run.tasks[("flaky", "local")].state is TaskState.RETRYING
                and run.tasks[("cache", "local")].state is TaskState.SKIPPED)
    await until(lambda: not screen.session.dirty)


async def select(pilot, screen: RunScreen, step: str, host: str | None = None) -> None:
    tree = screen.query_one(DagTree)
    await until(lambda: tree.select_step(step, host))  # the tree may not be built yet
    await pilot.pause()
