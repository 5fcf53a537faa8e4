"""Issue 10 item 19: an unknown SSH host key in the console is a dialog with the host, the
key type and the SHA256 fingerprint; trusting records it in known_hosts (as
--accept-new-host-keys does) and is an action in the timeline; refusing fails the
connection; a changed key is refused without asking. Against a real sshd (tests/sshd.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from console.engine.events import TaskState
from console.ui.app import BatonApp, LaunchOptions
from console.ui.screens.hostkey import HostKeyModal
from console.ui.system import SystemStats, fixed_sampler
from tests.sshd import Fleet, SSHServer
from tests.ui_helpers import SIZE, FrozenClock, run_screen, state, until

S = TaskState


def _flow(path: Path, fleet: Fleet, server: SSHServer, known: Path,
          steps: dict[str, str]) -> Path:
    """A workflow of ``steps`` (id: command) on the host ``lone`` served by ``server``."""
    text = f'''
[workflow]
name = "Host keys"
[ssh]
user = "root"
identity = "{fleet.client_key}"
known_hosts = "{known}"
connect_timeout = "5s"
[hosts.lone]
address = "{server.address}"
port = {server.port}
''' + "".join(f'[steps.{sid}]\non = "lone"\nrun = "{run}"\n' for sid, run in steps.items())
    path.write_text(text, encoding="utf-8")
    return path


def _app(tmp_path: Path, fleet: Fleet, server: SSHServer) -> tuple[BatonApp, Path]:
    known = tmp_path / "kh" / "known_hosts"
    path = _flow(tmp_path / "keys.toml", fleet, server, known, {"hello": "echo hello over ssh"})
    app = BatonApp(path, LaunchOptions(run_id="rkeys0001", user="alice", start=True),
                   clock=FrozenClock(),
                   sampler=fixed_sampler(SystemStats(12.0, 43.0, (0.5, 0.4, 0.3))),
                   config_file=tmp_path / "config.toml", blink=False)
    return app, known


def _fingerprint(server: SSHServer) -> tuple[str, str]:
    out = subprocess.run(["ssh-keygen", "-lf", str(server.host_key.with_suffix(".pub"))],
                         capture_output=True, text=True, check=True).stdout.split()
    return out[1], "ssh-ed25519"


async def test_unknown_key_dialog_trust_records_it_and_the_timeline_says_so(
        tmp_path: Path, sshd_fleet: Fleet, lone_sshd: SSHServer) -> None:
    app, known = _app(tmp_path, sshd_fleet, lone_sshd)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await until(lambda: isinstance(app.screen, HostKeyModal), timeout=20)
        question = app.screen.question
        fingerprint, key_type = _fingerprint(lone_sshd)
        assert (question.host, question.key_type, question.fingerprint) == (
            "lone", key_type, fingerprint)
        assert question.label == f"[{lone_sshd.address}]:{lone_sshd.port}"
        assert not known.exists()  # nothing recorded before the operator answers
        await pilot.press("t")
        await until(lambda: state(screen, "hello", "lone") is S.SUCCEEDED, timeout=20)
        assert known.read_text() == lone_sshd.host_key_line()
        actions = [(e.text, e.user) for e in screen.session.timeline if e.kind == "action"]
        assert (f"trust host key lone: {key_type} {fingerprint} of {question.label}, "
                f"recorded in {known}", "alice") in actions
        await pilot.press("q")
        await until(lambda: app.return_code is not None)


async def test_refused_key_fails_the_task_and_a_changed_key_is_never_asked(
        tmp_path: Path, sshd_fleet: Fleet, lone_sshd: SSHServer) -> None:
    app, known = _app(tmp_path, sshd_fleet, lone_sshd)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await until(lambda: isinstance(app.screen, HostKeyModal), timeout=20)
        await pilot.press("escape")  # refuse
        await until(lambda: state(screen, "hello", "lone") is S.FAILED, timeout=20)
        reason = screen.run.tasks[("hello", "lone")].reason or ""
        assert "host key unknown" in reason and not known.exists()
        actions = [e.text for e in screen.session.timeline if e.kind == "action"]
        assert any(a.startswith("refuse host key lone: ssh-ed25519 SHA256:") for a in actions)
        # the address now vouched for with ANOTHER key: refused outright, no dialog
        other = sshd_fleet.servers[0].host_key_line().split(" ", 1)[1]
        known.parent.mkdir(parents=True, exist_ok=True)
        known.write_text(f"[{lone_sshd.address}]:{lone_sshd.port} {other}")
        await pilot.press("r")
        await until(lambda: state(screen, "hello", "lone") is S.FAILED
                    and screen.run.tasks[("hello", "lone")].attempt == 2, timeout=20)
        assert not isinstance(app.screen, HostKeyModal)
        assert "HOST KEY CHANGED" in (screen.run.tasks[("hello", "lone")].reason or "")
        assert known.read_text().count("\n") == 1
        await pilot.press("q")
        await until(lambda: app.return_code is not None)


async def test_a_refused_key_is_asked_once_per_host_until_a_retry(
        tmp_path: Path, sshd_fleet: Fleet, lone_sshd: SSHServer) -> None:
    """Two steps on a host whose key the operator refused: one question, both tasks
    fail with the refusal; retrying one asks again (the operator may have misread)."""
    import asyncio

    from console.engine.run import Run, RunOptions
    from console.executors.base import HostKeyQuestion
    from console.model.loader import load_workflow

    path = _flow(tmp_path / "two.toml", sshd_fleet, lone_sshd, tmp_path / "known_hosts",
                 {"one": "echo one", "two": "echo two"})
    run = Run(load_workflow(path), RunOptions(user="alice", keep_alive=True))
    asked: list[HostKeyQuestion] = []

    async def refuse(question: HostKeyQuestion) -> bool:
        asked.append(question)
        return False

    run.host_key_prompt = refuse
    executing = asyncio.create_task(run.execute())
    try:
        await until(lambda: all(t.state is S.FAILED for t in run.tasks.values()), timeout=20)
        assert len(asked) == 1
        for task in run.tasks.values():
            assert "host key unknown" in (task.reason or ""), task.reason
        run.retry("two", "lone")
        await until(lambda: run.tasks[("two", "lone")].attempt == 2
                    and run.tasks[("two", "lone")].state is S.FAILED, timeout=20)
        assert len(asked) == 2 and asked[1].fingerprint == asked[0].fingerprint
    finally:
        run.close()
        await asyncio.wait_for(executing, 20)
