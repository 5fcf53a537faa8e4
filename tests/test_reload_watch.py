"""Hot reload through watchfiles with real file writes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from console.engine.events import ReloadEvent, TaskState
from console.engine.run import Run, RunOptions
from console.model.loader import load_workflow
from console.workflow_watch import watch
from tests.fakes import ScriptedWorld
from tests.helpers import until

S = TaskState

BASE = """\
[workflow]
name = "live"

[steps.long]
run = "hold long"
"""

ADDED = BASE + """
[steps.extra]
run = "echo extra"
"""

BROKEN = BASE + """
[steps.bad]
run = "echo"
needs = ["nope"]
"""


class Live:
    def __init__(self, path: Path) -> None:
        self.world = ScriptedWorld()
        self.run = Run(load_workflow(path), RunOptions(keep_alive=True),
                       executor_for=self.world.factory())
        self.reloads: list[ReloadEvent] = []
        self.path = path

    async def __aenter__(self) -> Live:
        self.runner = asyncio.create_task(self.run.execute())
        self.stop = asyncio.Event()
        self.watcher = asyncio.create_task(
            watch(self.run, self.path, on_reload=self.reloads.append, stop_event=self.stop))
        await asyncio.sleep(0.3)  # let the watcher start
        return self

    async def __aexit__(self, *exc) -> None:
        self.stop.set()
        self.world.release("long")
        self.run.close()
        await asyncio.wait_for(self.runner, 5)
        await asyncio.wait_for(self.watcher, 5)

    async def until(self, predicate, timeout: float = 5) -> None:
        await until(predicate, timeout, interval=0.02)


async def test_in_place_write_adds_a_step_that_runs(tmp_path):
    path = tmp_path / "wf.toml"
    path.write_text(BASE)
    async with Live(path) as live:
        path.write_text(ADDED)
        await live.until(lambda: live.reloads)
        assert live.reloads[0].added == ["extra"]
        await live.until(lambda: live.run.tasks.get(("extra", "local")) is not None
                         and live.run.tasks[("extra", "local")].state is S.SUCCEEDED)
        assert live.run.tasks[("long", "local")].state is S.RUNNING  # nothing lost


async def test_rename_style_save_is_caught(tmp_path):
    path = tmp_path / "wf.toml"
    path.write_text(BASE)
    async with Live(path) as live:
        tmp = tmp_path / ".wf.toml.swp"
        tmp.write_text(ADDED)
        os.replace(tmp, path)
        await live.until(lambda: live.reloads)
        assert live.reloads[0].added == ["extra"]


async def test_burst_of_saves_gives_one_reload(tmp_path):
    path = tmp_path / "wf.toml"
    path.write_text(BASE)
    async with Live(path) as live:
        for i in range(8):
            path.write_text(ADDED + f"\n# save {i}\n")
            await asyncio.sleep(0.01)
        await live.until(lambda: live.reloads)
        await asyncio.sleep(0.5)
        assert len(live.reloads) == 1


async def test_invalid_then_fixed_file(tmp_path):
    path = tmp_path / "wf.toml"
    path.write_text(BASE)
    async with Live(path) as live:
        path.write_text(BROKEN)
        await live.until(lambda: live.reloads)
        error = live.reloads[0].error
        assert error is not None and error.startswith(f"{path}:")
        assert "unknown" in error and "nope" in error
        assert live.run.workflow.steps.keys() == {"long"}
        path.write_text(ADDED)
        await live.until(lambda: len(live.reloads) == 2)
        assert live.reloads[1].error is None and live.reloads[1].added == ["extra"]


async def test_delete_and_recreate(tmp_path):
    path = tmp_path / "wf.toml"
    path.write_text(BASE)
    async with Live(path) as live:
        path.unlink()
        await live.until(lambda: live.reloads)
        assert "file deleted" in live.reloads[0].error
        assert live.run.tasks[("long", "local")].state is S.RUNNING
        path.write_text(ADDED)
        await live.until(lambda: len(live.reloads) == 2)
        assert live.reloads[1].added == ["extra"]


async def test_a_cycle_or_a_removed_needed_step_is_refused(tmp_path):
    path = tmp_path / "wf.toml"
    path.write_text(ADDED + '\n[steps.z]\nrun = "echo z"\nneeds = ["extra"]\n')
    async with Live(path) as live:
        # a new cycle: extra needs z, z needs extra
        path.write_text(ADDED.replace('run = "echo extra"', 'run = "echo extra"\nneeds = ["z"]')
                        + '\n[steps.z]\nrun = "echo z"\nneeds = ["extra"]\n')
        await live.until(lambda: live.reloads)
        assert "dependency cycle" in live.reloads[0].error
        # removing a step that another still needs
        path.write_text(BASE + '\n[steps.z]\nrun = "echo z"\nneeds = ["extra"]\n')
        await live.until(lambda: len(live.reloads) == 2)
        assert "unknown step 'extra'" in live.reloads[1].error
        assert set(live.run.workflow.steps) == {"long", "extra", "z"}  # nothing applied


INVENTORY_FLOW = """\
[workflow]
name = "live"
inventory = "INVENTORY"

[steps.long]
run = "hold long"
"""


async def test_an_inventory_edit_is_applied(tmp_path):
    """The workflow's text is unchanged: the inventory's new host still reaches the run
    (it was watched, then skipped as "same definition")."""
    inventory = tmp_path / "hosts.toml"
    inventory.write_text('[hosts.web1]\naddress = "127.0.0.1"\ngroups = ["web"]\n')
    path = tmp_path / "wf.toml"
    path.write_text(INVENTORY_FLOW.replace("INVENTORY", "hosts.toml"))
    async with Live(path) as live:
        inventory.write_text('[hosts.web1]\naddress = "127.0.0.1"\ngroups = ["web"]\n'
                             '[hosts.web2]\naddress = "127.0.0.2"\ngroups = ["web"]\n')
        await live.until(lambda: live.reloads)
        assert live.reloads[0].error is None
        assert set(live.run.workflow.hosts) == {"web1", "web2"}


async def test_group_vars_and_host_vars_edits_are_applied(tmp_path):
    """Ansible reads group_vars/ and host_vars/ beside the inventory (files and folders):
    editing them, or making one, reloads like editing the inventory does."""
    (tmp_path / "inventory.ini").write_text("[web]\nweb1 ansible_host=127.0.0.1\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "web.yml").write_text("role: front\n")
    path = tmp_path / "wf.toml"
    path.write_text(INVENTORY_FLOW.replace("INVENTORY", "ansible:inventory.ini"))
    async with Live(path) as live:
        assert live.run.workflow.host("web1").vars["role"] == "front"
        (tmp_path / "group_vars" / "web.yml").write_text("role: back\n")
        await live.until(lambda: live.run.workflow.host("web1").vars["role"] == "back")
        # a host_vars folder made while the run is live, then a file in a subfolder of it
        (tmp_path / "host_vars").mkdir()
        await asyncio.sleep(0.4)
        (tmp_path / "host_vars" / "web1").mkdir()
        await asyncio.sleep(0.4)
        (tmp_path / "host_vars" / "web1" / "extra.yml").write_text("tier: gold\n")
        await live.until(lambda: live.run.workflow.host("web1").vars.get("tier") == "gold",
                         timeout=10)
        assert all(r.error is None for r in live.reloads)
