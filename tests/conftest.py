"""Shared fixtures: write workflow files, run the `baton` command as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sshd import lone_sshd, sshd_fleet  # noqa: F401 - fixtures for every module

REPO = Path(__file__).resolve().parent.parent


def _write_bytecode() -> None:
    """Let the interpreters the suite starts (xdist workers, `baton` commands, consoles in
    tmux) reuse compiled bytecode. With PYTHONDONTWRITEBYTECODE set (this machine sets
    it), every `python -m console.cli` compiled ~90 modules of console/ from source, 90 of
    its 260 ms of CPU, and the suite starts hundreds of them; each worker also rewrote
    and compiled every test module and pytest plugin again. The bytecode goes where Python
    puts it by default (``__pycache__``, ignored by git); installed packages keep theirs."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


_write_bytecode()  # at import: before xdist starts its workers


def write_workflow(tmp_path: Path, text: str, name: str = "workflow.toml") -> Path:
    """Write dedented workflow TOML to ``tmp_path/name`` and return its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def baton_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a `baton` subprocess: the working tree first on the path, no
    colour, state in the test's throw-away $BATON_HOME (see ``_private_baton_home``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["NO_COLOR"] = "1"
    env.pop("BATON_DEBUG", None)
    if extra:
        env.update(extra)
    return env


def baton(
    *args: str | Path,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m console.cli ARGS`` and return the finished process (text mode)."""
    return subprocess.run(
        [sys.executable, "-m", "console.cli", *map(str, args)],
        cwd=cwd,
        env=baton_env(env),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(autouse=True, scope="session")
def _private_baton_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """No test (nor the `baton` subprocesses it starts) ever writes to the real baton home:
    the whole session shares one throw-away $BATON_HOME; tests that need an empty one use
    the ``baton_home`` fixture."""
    home = tmp_path_factory.mktemp("session-baton-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("BATON_HOME", str(home))
    yield home
    patch.undo()


@pytest.fixture
def baton_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private $BATON_HOME for the test (and the subprocesses it starts)."""
    home = tmp_path / "baton-home"
    monkeypatch.setenv("BATON_HOME", str(home))
    return home


@pytest.fixture
def workflow_file(tmp_path: Path) -> Callable[..., Path]:
    """``workflow_file(text, name="workflow.toml")`` writes a workflow in tmp_path."""

    def write(text: str, name: str = "workflow.toml") -> Path:
        return write_workflow(tmp_path, text, name)

    return write


@pytest.fixture
def run_baton() -> Callable[..., subprocess.CompletedProcess[str]]:
    """The :func:`baton` helper as a fixture."""

    def call(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return baton(*args, **kwargs)

    return call


SLOWEST_FIRST = (
    "test_crash.py::",
    "test_crash_rollback.py::",
    "test_ui_e2e.py::",
    "test_attach_owned_e2e.py::",
    "test_history_cli.py::test_resume_after_a_kill",
    "test_hardening_proc.py::test_8_",
    "test_hardening_proc.py::test_9_",
    "test_ssh.py::test_fan_out_respects_serial",
    "test_ssh.py::test_rollout_canary_finishes_before_any_other_host_starts",
    "test_ssh_recovery.py::",
    "test_examples.py::",
    "test_serve.py::",
    "test_packaging.py::",
    "test_ui_e2e_rollback.py::",
    "test_ui_e2e_rollback_cli.py::",
    "test_attach_e2e.py::",
    "test_runner_flood.py::",
    "test_runner.py::test_kill_9_gives_interrupted_and_resume",
    "test_watch_headless.py::",
)
"""Tests that take seconds each (subprocesses, real terminals, real sshd), longest first.
pytest-xdist hands tests out in collection order, and one by one at the end: when these
ran last, one worker was still busy with them for up to 20 s while the other was done."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = f"{item.path.name}::{item.name}"
        return next((i for i, prefix in enumerate(SLOWEST_FIRST) if name.startswith(prefix)),
                    len(SLOWEST_FIRST))

    items.sort(key=rank)  # stable: the rest keeps its order


def _finer_idle_polls() -> None:
    """Textual's pilot waits after every key until the process looks idle: it sleeps
    20 ms at a time until one window used under 5 % CPU, so each key cost at least
    40 ms and the console tests spent about half their time there (71 of 130 s in
    test_ui_pilot, _view and _truth). The same test in 5 ms windows (same 5 % bar)
    notices the idle moment sooner; what it waits for does not change."""
    import textual._wait as wait

    wait.SLEEP_GRANULARITY = 1 / 200
    wait.SLEEP_IDLE = wait.SLEEP_GRANULARITY / 20.0


_finer_idle_polls()
