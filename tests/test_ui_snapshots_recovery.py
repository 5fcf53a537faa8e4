"""Snapshot scenes of issue 13 in the console: a polling task of a rollout with delegated
drain steps, and an excluded host. Same determinism as tests/test_ui_snapshots.py."""

from __future__ import annotations

from tests.test_ui_snapshots import _deterministic, frame, snapshot  # noqa: F401 (fixtures)
from tests.ui_helpers import SIZE, T0, FrozenClock, make_app, run_screen, select, until

ROLLOUT = """
[workflow]
name = "Rolling restart"

[hosts.lb1]
[hosts.web1]
groups = ["web"]
[hosts.web2]
groups = ["web"]
[hosts.web3]
groups = ["web"]

[steps.drain]
on = "web"
delegate = "lb1"
run = "echo drain {{ host.name }}"

[steps.restart]
on = "web"
needs = ["drain"]
run = "echo restart"

[steps.health]
on = "web"
needs = ["restart"]
run = "{{ ('exit 1' if host.name == 'web2' else 'echo healthy') | raw }}"
poll = "30s"
within = "10m"

[steps.undrain]
on = "web"
needs = ["health"]
delegate = "lb1"
run = "echo undrain {{ host.name }}"

[rollouts.web]
steps = ["drain", "restart", "health", "undrain"]
serial = 2
"""


def test_polling_task(snap_compare, tmp_path):
    clock = FrozenClock()
    app, world = make_app(tmp_path, ROLLOUT, name="rolling.toml", clock=clock, start=True)

    async def before(pilot):
        screen = await run_screen(app)
        run = screen.run
        await until(lambda: run.tasks[("undrain", "web1")].state.finished
                    and len(world.starts("health")) == 2
                    and all(r.end_seq is not None for r in world.records))
        clock.now = T0 + 42
        await select(pilot, screen, "health", "web2")
        await frame(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_excluded_host(snap_compare, tmp_path):
    clock = FrozenClock()
    app, world = make_app(tmp_path, ROLLOUT, name="rolling.toml", clock=clock, start=True)

    async def before(pilot):
        screen = await run_screen(app)
        run = screen.run
        await until(lambda: len(world.starts("health")) == 2
                    and all(r.end_seq is not None for r in world.records))
        run.exclude_host("web2", reason="disk failing")
        run.cancel("health", "web2")
        await until(lambda: run.tasks[("health", "web2")].state.finished)
        run.skip("health", "web2", reason="web2 out of LB")  # the rollout goes on
        await until(lambda: run.tasks[("undrain", "web3")].state.finished)
        clock.now = T0 + 42
        await select(pilot, screen, "undrain", "web2")
        await frame(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)
