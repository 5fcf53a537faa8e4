"""Issue 15: a run resumed from the console's history screen is owned by a runner (the
app's RunOwner), as `baton run FILE` is; the console shows it through its client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from console.engine.events import RunState, TaskState
from console.runner.attach_app import AttachedRunScreen
from console.runner.mirror import RemoteRun
from console.runner.owned import RunnerOwner
from console.store import Store
from tests.conftest import REPO, baton_env
from tests.history_helpers import flow_file, history_app
from tests.ui_helpers import SIZE, until


async def test_resume_from_the_history_screen_is_owned_by_a_runner(tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    path = flow_file(tmp_path, "killed.toml", textwrap.dedent(f'''
        [workflow]
        name = "killed"
        [steps.first]
        run = "echo first >> {side}"
        [steps.slow]
        needs = ["first"]
        run = "echo slow >> {side}; sleep 30"
        [steps.after]
        needs = ["slow"]
        run = "echo after >> {side}"
    ''').lstrip())
    with Store.open(tmp_path / "home") as store:
        proc = subprocess.Popen(
            [sys.executable, "-m", "console.cli", "run", str(path), "--headless", "--json"],
            cwd=REPO, env=baton_env({"BATON_HOME": str(store.home)}),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if '"step":"slow"' in line.replace(" ", "") and '"running"' in line:
                break
        proc.kill()
        proc.wait()
        [summary] = store.runs()
        app, _ = history_app(path, store, start=False)
        app.owner = RunnerOwner(store.home)
        runner_pid = None
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: app.screen.is_mounted and app.screen is not app.screen_stack[0],
                        timeout=15)
            app.resume_run(summary.id)  # what the history screen's resume asks for
            await until(lambda: isinstance(app.screen, AttachedRunScreen), timeout=30)
            screen = app.screen
            remote = screen.run
            assert isinstance(remote, RemoteRun) and remote.id == summary.id
            runner_pid = remote.owner_pid
            assert runner_pid is not None and runner_pid != os.getpid()
            await until(lambda: remote.tasks[("slow", "local")].state
                        is TaskState.INTERRUPTED, timeout=15)
            remote.skip("slow", "local", "killed")  # through the runner
            await until(lambda: remote.state is RunState.SUCCEEDED, timeout=30)
            await pilot.press("q")
            await until(lambda: app.return_code is not None, timeout=15)
        assert app.return_code == 0
        stored = store.load(summary.id)
        assert stored.run.state == "succeeded"
        assert [w for w in side.read_text().split() if w != "slow"] == ["first", "after"]
        if runner_pid is not None:
            try:
                os.kill(runner_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


async def test_esc_on_a_folder_run_detaches_and_goes_back_to_the_folder(
        tmp_path: Path) -> None:
    """A run opened from the folder view is a runner's: Esc asks detach / cancel / stay;
    detach goes back to the folder (the console stays) and the run goes on."""
    from console.runner.attach_app import DetachModal
    from console.runner.commands import live_ids
    from console.ui.app import BatonApp
    from console.ui.screens.folder import FolderScreen

    folder = tmp_path / "flows"
    folder.mkdir()
    stop = tmp_path / "stop"
    (folder / "wait.toml").write_text(
        '[workflow]\nname = "Folder wait"\n[steps.wait]\n'
        f'run = "while [ ! -e {stop} ]; do sleep 0.05; done"\n')
    home = tmp_path / "home"
    with Store.open(home) as store:
        app = BatonApp(folder, store=store, owner=RunnerOwner(home),
                       config_file=tmp_path / "c.toml")
        pid = None
        try:
            async with app.run_test(size=SIZE) as pilot:
                await until(lambda: isinstance(app.screen, FolderScreen))
                await pilot.press("enter")
                await until(lambda: isinstance(app.screen, AttachedRunScreen), timeout=30)
                remote = app.screen.run
                assert isinstance(remote, RemoteRun)
                pid = remote.owner_pid
                await until(lambda: remote.tasks[("wait", "local")].state
                            is TaskState.RUNNING, timeout=15)
                await pilot.press("escape")
                await until(lambda: isinstance(app.screen, DetachModal))
                await pilot.press("enter")  # detach
                await until(lambda: isinstance(app.screen, FolderScreen), timeout=10)
                assert app.return_code is None  # the console stays
                assert live_ids(home) == {remote.id}  # the run goes on in its runner
                await pilot.press("q")
                await until(lambda: app.return_code is not None)
            assert app.return_code == 0
        finally:
            stop.touch()
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
