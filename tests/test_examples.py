"""The bundled rollout examples run on a fresh machine, on this host only (issue 13 item 10):
their hosts are `connection = "local"`, every file lives under a `base` param in tmp."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import REPO, baton, write_workflow

ROLLOUT = REPO / "workflows" / "service-rollout.toml"
CONFIG = REPO / "workflows" / "config-change.toml"


def _run(path: Path, base: Path, *params: str) -> tuple[int, str, dict]:
    args = [a for p in params for a in ("--param", p)]
    done = baton("run", path, "--headless", "--yes", "--json", "--param", f"base={base}", *args)
    run_id = json.loads(done.stdout.splitlines()[0])["run_id"]
    shown = json.loads(baton("show", run_id, "--json").stdout)
    return done.returncode, run_id, shown


def _journal(base: Path) -> list[str]:
    return (base / "journal").read_text().splitlines()


def _states(shown: dict) -> dict[str, str]:
    return {f"{t['step']}@{t['host']}": t["state"] for t in shown["tasks"]}


def _before(lines: list[str], first: str, second: str) -> bool:
    return lines.index(first) < lines.index(second)


def test_service_rollout_rolls_out_canary_first_through_the_stand_in_lb(tmp_path: Path) -> None:
    base = tmp_path / "svc"
    code, _, shown = _run(ROLLOUT, base, "release=1.0.0")
    assert code == 0 and shown["run"]["state"] == "succeeded"
    for host in ("web1", "web2", "web3"):
        assert Path(base / host / "current").resolve() == base / "releases" / "1.0.0"
    assert sorted(p.name for p in (base / "lb" / "pool").iterdir()) == ["web1", "web2", "web3"]
    lines = _journal(base)
    for host in ("web2", "web3"):  # the canary web1 is done before batch 2 is drained
        assert _before(lines, "undrain web1", f"drain {host}")
        assert _before(lines, f"drain {host}", f"switch {host} 1.0.0")
        assert _before(lines, f"switch {host} 1.0.0", f"undrain {host}")
    assert _states(shown)["notify@local"] == "skipped"  # failure() is false
    assert not (base / "notifications.log").exists()


def test_service_rollout_failed_host_rolls_the_rollout_back(tmp_path: Path) -> None:
    base = tmp_path / "svc"
    assert _run(ROLLOUT, base, "release=1.0.0")[0] == 0
    (base / "journal").write_text("")
    code, run_id, shown = _run(ROLLOUT, base, "release=2.0.0", "fail_host=web2")
    assert code == 1 and shown["run"]["state"] == "rolled_back"
    states = _states(shown)
    assert states["health@web2"] == "failed"
    assert states["switch@web2"] == states["drain@web2"] == states["switch@web1"] == "undone"
    # every host serves the old release again and is back in rotation
    for host in ("web1", "web2", "web3"):
        assert Path(base / host / "current").resolve() == base / "releases" / "1.0.0"
    assert sorted(p.name for p in (base / "lb" / "pool").iterdir()) == ["web1", "web2", "web3"]
    lines = _journal(base)
    # per host in reverse, and the canary (batch 1) last
    assert _before(lines, "undo undrain web1", "undo switch web1")
    assert _before(lines, "undo switch web1", "undo drain web1")
    assert _before(lines, "undo switch web2", "undo drain web2")
    for line in ("undo switch web2", "undo drain web2", "undo switch web3", "undo drain web3"):
        assert _before(lines, line, "undo undrain web1")
    # the failure() step told the team
    assert states["notify@local"] == "succeeded"
    assert (base / "notifications.log").read_text().strip() == \
        f"rollout of 2.0.0 failed (run {run_id}): hosts rolled back"
    # the health poll was one attempt that failed once `within` had passed
    health = next(t for t in shown["tasks"] if t["step"] == "health" and t["host"] == "web2")
    assert len(health["attempts"]) == 1
    assert health["reason"].startswith("still failing after 5s")
    # drain/undrain ran on the delegate, yet stayed their own host's tasks
    assert {t["host"] for t in shown["tasks"] if t["step"] == "drain"} == {"web1", "web2", "web3"}


def _files(base: Path) -> dict[str, str]:
    return {f"{h}/{n}": (base / h / n).read_text()
            for h in ("app1", "app2", "app3") for n in ("app.conf", "live.conf")}


def test_config_change_is_rolled_back_from_history(tmp_path: Path) -> None:
    base = tmp_path / "cfg"
    assert _run(CONFIG, base, "value=300")[0] == 0
    before = _files(base)
    assert before["app2/live.conf"] == "max_connections = 300\ntimeout = 30\n"
    code, run_id, shown = _run(CONFIG, base, "value=500", "key=timeout")
    assert code == 0 and shown["run"]["state"] == "succeeded"
    assert _files(base)["app3/live.conf"] == "max_connections = 300\ntimeout = 500\n"
    (base / "journal").write_text("")

    done = baton("rollback", run_id, "--yes", "--headless")
    assert done.returncode == 1, done.stderr  # a rolled-back run exits 1
    assert _files(base) == before  # every file has its content of before the run
    shown = json.loads(baton("show", run_id, "--json").stdout)
    assert shown["run"]["state"] == "rolled_back"
    assert {s for k, s in _states(shown).items() if k.split("@")[0] in ("edit", "reload")} \
        == {"undone"}
    lines = _journal(base)
    assert sorted(lines) == sorted(f"undo {s} {h}" for s in ("edit", "reload")
                                   for h in ("app1", "app2", "app3"))
    for host in ("app1", "app2", "app3"):
        assert _before(lines, f"undo reload {host}", f"undo edit {host}")
    for host in ("app2", "app3"):  # newest batch first: the canary app1 last
        assert _before(lines, f"undo edit {host}", "undo reload app1")


def test_a_host_with_local_connection_runs_on_this_machine(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, """
        [workflow]
        name = "t"
        [hosts.box]
        connection = "local"
        [steps.a]
        on = "box"
        run = "echo ran {{ host.name }} > OUT"
    """.replace("OUT", str(tmp_path / "out")))
    assert baton("run", path, "--headless", "--yes").returncode == 0
    assert (tmp_path / "out").read_text() == "ran box\n"
    shown = json.loads(baton("hosts", path, "--json").stdout)
    assert "local" in json.dumps(shown)


def test_an_unknown_connection_type_is_one_located_line(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, """
        [workflow]
        name = "t"
        [hosts.box]
        connection = "winrm"
    """)
    done = baton("check", path)
    assert done.returncode != 0 and "Traceback" not in done.stderr + done.stdout
    out = (done.stdout + done.stderr).strip().splitlines()
    assert any(f"{path}:4:" in line and "hosts.box.connection: must be one of ssh, local"
               in line for line in out), out


def test_log_rotation_twice_in_one_second_rotates_both_times(tmp_path: Path) -> None:
    """A rotation that meets a file of an earlier rotation with the same timestamp (two runs
    within one second: the rendered-prompt test did that) picks a free name instead of
    failing gzip on an existing `.gz`."""
    import time

    logs = tmp_path / "logs"
    logs.mkdir()
    now = time.time()
    for ahead in range(10):  # the rotate step runs within these 10 seconds
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now + ahead))
        for name in ("app", "worker"):
            (logs / f"{name}.log.{stamp}.gz").write_text("earlier\n")
    done = baton("run", REPO / "workflows" / "log-rotation.toml", "--headless", "--yes",
                 "--param", f"dir={logs}", "--param", "keep_days=3")
    assert done.returncode == 0, done.stdout + done.stderr
    rotated = sorted(p.name for p in logs.glob("app.log.*.*.gz"))
    assert len(rotated) == 1 and rotated[0].endswith(".1.gz"), sorted(os.listdir(logs))
    assert all((logs / f"app.log.{s}.gz").read_text() == "earlier\n" for s in
               [time.strftime("%Y%m%d%H%M%S", time.gmtime(now + a)) for a in range(10)])
