"""The SSH executor against real OpenSSH sshd processes on loopback (tests/sshd.py).

Remote processes are local processes here, so the tests inspect them with psutil.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from console.engine.events import TaskState
from console.engine.run import Run, RunOptions
from console.executors.base import CommandRequest, ExitStatus
from console.executors.ssh import SSHContext, SSHExecutor, ssh_executor_factory
from console.model.workflow import Host, SSHOptions, Step, Workflow
from tests.sshd import Fleet, SSHServer, free_port, keygen, loopback

pytestmark = pytest.mark.timeout(60)

TEST_OPTIONS: dict[str, Any] = {"ssh_config": [], "connect_timeout": 5.0}


def host_of(fleet: Fleet, server: SSHServer, name: str | None = None, **fields: Any) -> Host:
    values: dict[str, Any] = {
        "name": name or server.address, "address": server.address, "port": server.port,
        "user": "root", "identity": str(fleet.client_key),
        "known_hosts": str(fleet.known_hosts),
    }
    values.update(fields)
    return Host(**values)


class Collected:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, stream: str, text: str) -> None:
        self.lines.extend((stream, line) for line in text.split("\n"))

    def of(self, stream: str) -> list[str]:
        return [line for s, line in self.lines if s == stream]


async def run_one(executor: SSHExecutor, script: str,
                  **fields: Any) -> tuple[ExitStatus, Collected]:
    out = Collected()
    execution = await executor.start(CommandRequest("s", executor.host, script, **fields), out)
    return await execution.wait(), out


def processes_with(marker: str) -> list[psutil.Process]:
    """Live processes whose environment holds ``marker`` (every task process inherits it)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if marker in "".join(proc.environ().values()):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


async def wait_for_processes(marker: str, count: int, timeout: float = 10.0) -> bool:
    """Whether ``count`` processes carrying ``marker`` show up within ``timeout`` s (the
    connection, login shell and script hand-over take a moment on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while len(processes_with(marker)) < count:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def wait_gone(marker: str, timeout: float = 5.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while True:
        left = processes_with(marker)
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.1)


def workflow(fleet: Fleet, servers: list[SSHServer], steps: dict[str, Step],
             **fields: Any) -> Workflow:
    hosts = {f"h{i:02d}": host_of(fleet, s, f"h{i:02d}", groups=("web",))
             for i, s in enumerate(servers)}
    return Workflow(name="ssh test", hosts=hosts, steps=steps, **fields)


async def run_workflow(wf: Workflow, **options: Any) -> Run:
    run = Run(wf, RunOptions(approval="auto"),
              executor_for=ssh_executor_factory(wf, **{**TEST_OPTIONS, **options}))
    await asyncio.wait_for(run.execute(), 45)
    return run


@pytest.fixture
def fleet(sshd_fleet: Fleet) -> Fleet:
    return sshd_fleet


@pytest.fixture
async def executor(fleet: Fleet) -> AsyncIterator[SSHExecutor]:
    ex = SSHExecutor(host_of(fleet, fleet.servers[0], "web1"), **TEST_OPTIONS)
    yield ex
    await ex.close()


# --------------------------------------------------------------------- execution


async def test_streams_exit_codes_signals_and_one_connection(executor: SSHExecutor) -> None:
    status, out = await run_one(executor, "echo one; echo two >&2; echo three; printf tail")
    assert status == ExitStatus(0)
    assert out.of("stdout") == ["one", "three", "tail"]
    assert out.of("stderr") == ["two"]
    conn = executor._connector._conn
    status, out = await run_one(executor, "printf 'err-no-newline' >&2; exit 3")
    assert status == ExitStatus(3) and out.of("stderr") == ["err-no-newline"]
    status, _ = await run_one(executor, "kill -s KILL $$")
    assert status.signal == 9 and status.exit_code is None and status.error is None
    # output that looks like framing, a long line, many lines
    status, out = await run_one(
        executor, "echo baton-; printf 'baton-%s\\n' x; head -c 300000 /dev/zero | tr '\\0' a; "
                  "echo; seq 1 5000")
    assert status.ok
    stdout = out.of("stdout")
    assert stdout[:2] == ["baton-", "baton-x"] and len(stdout[2]) == 300000
    assert stdout[3:] == [str(i) for i in range(1, 5001)]
    assert executor._connector._conn is conn  # every task reused the first connection
    await executor.close()


async def test_env_cwd_and_clean_login_environment(fleet: Fleet, executor: SSHExecutor,
                                                   tmp_path: Path) -> None:
    status, out = await run_one(executor, 'pwd; echo "$GREETING"; echo "$SSH_CONNECTION"',
                                env={"GREETING": "it's  $HOME `x`"}, cwd=str(tmp_path))
    assert status.ok, status
    stdout = out.of("stdout")
    assert stdout[:2] == [str(tmp_path), "it's  $HOME `x`"]
    assert stdout[2].split()[2:] == [fleet.servers[0].address, str(fleet.servers[0].port)]
    status, out = await run_one(executor, "pwd")
    assert out.of("stdout") == ["/root"]  # a task's cd or env never leaks into the next
    _, out = await run_one(executor, "env", env={"ONLY_HERE": "1"})
    task_env = dict(line.split("=", 1) for line in out.of("stdout") if "=" in line)
    assert task_env.pop("ONLY_HERE") == "1"
    _, out = await run_one(executor, "env")
    assert "ONLY_HERE" not in "".join(out.of("stdout"))
    # the login environment of a plain `ssh host env` session
    import asyncssh

    server = fleet.servers[0]
    async with asyncssh.connect(server.address, port=server.port, username="root",
                                client_keys=[str(fleet.client_key)], config=[],
                                known_hosts=str(fleet.known_hosts)) as conn:
        plain = (await conn.run("env", check=True)).stdout or ""
    plain_env = dict(line.split("=", 1) for line in str(plain).splitlines() if "=" in line)
    ignore = {"SSH_CLIENT", "SSH_CONNECTION", "_", "SHLVL", "OLDPWD", "PWD",
              "BATON_ATTEMPT"}  # the attempt's tag (issue 11, item 8)
    assert set(task_env) - ignore == set(plain_env) - ignore
    assert task_env["HOME"] == plain_env["HOME"] and task_env["PATH"] == plain_env["PATH"]
    status, _ = await run_one(executor, "true", cwd="/does/not/exist")
    assert status.error == ("web1: cannot change to cwd /does/not/exist: no such directory "
                            "or permission denied")
    status, _ = await run_one(executor, "true", env={"BAD-NAME": "x"})
    assert status.error is not None and "BAD-NAME" in status.error
    await executor.close()


async def test_tasks_overlapping_on_one_host_use_several_shells(executor: SSHExecutor) -> None:
    # more at once than OpenSSH's MaxSessions: the pool queues the rest
    results = await asyncio.gather(*(run_one(executor, f"sleep 0.3; echo {i}")
                                     for i in range(12)))
    assert [out.of("stdout") for _, out in results] == [[str(i)] for i in range(12)]
    assert all(status.ok for status, _ in results)
    await executor.close()


async def test_back_to_back_tasks_wait_no_leftover_tick(executor: SSHExecutor) -> None:
    # the leftover grace (issue 11) must not tax a task whose output closed with its shell:
    # a 0.2 s poll tick after every task made 5 steps on 30 hosts 1.3x one step
    assert (await run_one(executor, "true"))[0].ok  # connection and shell set up
    started = time.monotonic()
    for _ in range(12):
        status, out = await run_one(executor, "echo x")
        assert status.ok and out.of("stdout") == ["x"]
    assert time.monotonic() - started < 1.6  # 2.4 s and more with a tick per task
    await executor.close()


# --------------------------------------------------------------------- fan-out


async def test_fan_out_respects_serial(fleet: Fleet, tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    # long enough that three tasks overlap even when session setup is slow on a busy machine
    script = (f'echo "S $(date +%s.%N)" >> {log}; sleep 0.8; echo "E $(date +%s.%N)" >> {log}; '
              "echo {{ host.name }}")
    steps = {"roll": Step("roll", "roll", run=script, on=("web",), serial=3)}
    run = await run_workflow(workflow(fleet, fleet.servers, steps))
    tasks = run.tasks_of("roll")
    assert len(tasks) == len(fleet.servers) >= 10
    assert all(t.state is TaskState.SUCCEEDED for t in tasks), [t.reason for t in tasks]
    assert all(t.outputs.stdout.strip() == t.host for t in tasks)
    events = sorted((float(t), 1 if kind == "S" else -1)
                    for kind, t in (line.split() for line in log.read_text().splitlines()))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 3


async def test_setup_limit_covers_the_start_of_each_remote_shell(
        fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 16: a herd of sessions starting at once costs the server far more per session;
    # with a limit of 1, no host's handshake or shell start overlaps another's
    from console.executors import ssh_connect, ssh_shell

    monkeypatch.setattr(ssh_connect, "MAX_PARALLEL_SETUP", 1)
    phases: list[tuple[float, float, str]] = []
    open_connection = ssh_connect.Connector._open

    async def timed_open(self: Any, tunnel: Any, settings: Any) -> Any:
        started = time.monotonic()
        try:
            return await open_connection(self, tunnel, settings)
        finally:
            phases.append((started, time.monotonic(), f"connect {self.host.name}"))

    starting: dict[int, float] = {}
    start, control_line = ssh_shell.ControlSession.start, ssh_shell.ControlSession._control_line

    def timed_start(self: Any) -> None:
        starting[id(self)] = time.monotonic()
        start(self)

    def timed_control_line(self: Any, line: bytes) -> None:
        control_line(self, line)
        if self._out_ready and id(self) in starting:
            phases.append((starting.pop(id(self)), time.monotonic(), f"shell {self.name}"))

    monkeypatch.setattr(ssh_connect.Connector, "_open", timed_open)
    monkeypatch.setattr(ssh_shell.ControlSession, "start", timed_start)
    monkeypatch.setattr(ssh_shell.ControlSession, "_control_line", timed_control_line)
    steps = {"s": Step("s", "s", run="true", on=("web",))}
    run = await run_workflow(workflow(fleet, fleet.servers[:4], steps))
    assert all(t.state is TaskState.SUCCEEDED for t in run.tasks_of("s"))
    phases.sort()
    assert len(phases) == 8, phases
    for (_, end, what), (begin, _, after) in itertools.pairwise(phases):
        assert end <= begin, f"{after} began while {what} was in progress"


async def test_max_fail_stops_launching(fleet: Fleet, tmp_path: Path) -> None:
    log = tmp_path / "started.log"
    script = f'echo {{{{ host.name }}}} >> {log}; test {{{{ host.name }}}} != h01'
    steps = {"s": Step("s", "s", run=script, on=("all",), serial=1, max_fail=0)}
    run = await run_workflow(workflow(fleet, fleet.servers[:6], steps))
    states = {t.host: t.state for t in run.tasks_of("s")}
    assert states["h00"] is TaskState.SUCCEEDED and states["h01"] is TaskState.FAILED
    assert {states[h] for h in ("h02", "h03", "h04", "h05")} == {TaskState.BLOCKED}
    assert log.read_text().split() == ["h00", "h01"]


async def test_rollout_canary_finishes_before_any_other_host_starts(fleet: Fleet,
                                                                     tmp_path: Path) -> None:
    from console.model.workflow import Rollout

    log = tmp_path / "rollout.log"
    line = f'echo "{{{{ host.name }}}} $(date +%s.%N)" >> {log}'
    steps = {
        "drain": Step("drain", "drain", run=f"{line}; sleep 0.2", on=("web",)),
        "deploy": Step("deploy", "deploy", run=f"{line}; sleep 0.2", on=("web",),
                       needs=("drain",)),
    }
    rollouts = {"web": Rollout("web", ("drain", "deploy"), (1, "100%"))}
    run = await run_workflow(workflow(fleet, fleet.servers, steps, rollouts=rollouts))
    assert all(t.state is TaskState.SUCCEEDED for t in run.tasks.values())
    records = [(float(stamp), host) for host, stamp in
               (entry.split() for entry in log.read_text().splitlines())]
    canary = [t for t, host in records if host == "h00"]
    others = [t for t, host in records if host != "h00"]
    assert len(canary) == 2 and len(others) == 2 * (len(fleet.servers) - 1)
    assert min(others) > max(canary) + 0.2  # the canary's deploy slept 0.2 s after logging


# --------------------------------------------------------------------- failures


async def test_host_keys_unknown_accepted_changed(fleet: Fleet, lone_sshd: SSHServer,
                                                  tmp_path: Path) -> None:
    known = tmp_path / "kh" / "known_hosts"
    host = host_of(fleet, lone_sshd, "lone", known_hosts=str(known))
    status, _ = await run_one(ex := SSHExecutor(host, **TEST_OPTIONS), "true")
    await ex.close()
    assert status.error is not None
    assert status.error.startswith(f"lone: host key unknown for [{lone_sshd.address}]:"
                                   f"{lone_sshd.port} (SHA256:")
    assert "--accept-new-host-keys" in status.error and not known.exists()

    ex = SSHExecutor(host, accept_new_host_keys=True, **TEST_OPTIONS)
    status, out = await run_one(ex, "echo hello")
    await ex.close()
    assert status.ok and out.of("stdout") == ["hello"]
    assert known.read_text() == lone_sshd.host_key_line()  # recorded, OpenSSH format
    assert oct(known.stat().st_mode & 0o777) == "0o600"
    status, _ = await run_one(ex := SSHExecutor(host, **TEST_OPTIONS), "true")
    await ex.close()
    assert status.ok  # trusted from now on, without the flag

    # the same address now presents another key: refused, loudly, even with accept-new
    other = fleet.servers[0].host_key_line().split(" ", 1)[1]
    known.write_text(f"[{lone_sshd.address}]:{lone_sshd.port} {other}")
    status, _ = await run_one(ex := SSHExecutor(host, accept_new_host_keys=True,
                                                **TEST_OPTIONS), "true")
    await ex.close()
    assert status.error is not None and status.error.startswith("lone: HOST KEY CHANGED for ")
    assert "man-in-the-middle" in status.error and "\n" not in status.error
    assert known.read_text().count("\n") == 1  # nothing recorded

    # a port-less entry does not vouch for another port (OpenSSH rules), hashed ones do
    known.write_text(lone_sshd.host_key_line().replace(f"[{lone_sshd.address}]:"
                                                       f"{lone_sshd.port}", lone_sshd.address))
    status, _ = await run_one(ex := SSHExecutor(host, **TEST_OPTIONS), "true")
    await ex.close()
    assert status.error is not None and "host key unknown" in status.error
    known.write_text(lone_sshd.host_key_line(hashed=True))
    status, _ = await run_one(ex := SSHExecutor(host, **TEST_OPTIONS), "true")
    await ex.close()
    assert status.ok, status


async def test_refused_timed_out_and_auth_failures(fleet: Fleet, tmp_path: Path) -> None:
    nobody, silent_address = loopback(41), loopback(42)
    port = free_port(nobody)
    refused = Host("db1", nobody, port=port, user="root", known_hosts=str(fleet.known_hosts))
    status, _ = await run_one(ex := SSHExecutor(refused, **TEST_OPTIONS), "true")
    await ex.close()
    assert status.error == f"db1: connection refused by {nobody}:{port}"

    with socket.socket() as silent:  # accepts (kernel backlog) but never speaks
        silent.bind((silent_address, 0))
        silent.listen(5)
        mute = Host("db2", silent_address, port=silent.getsockname()[1], user="root",
                    known_hosts=str(fleet.known_hosts))
        started = time.monotonic()
        ex = SSHExecutor(mute, ssh_config=[], connect_timeout=0.5)
        status, _ = await run_one(ex, "true")
        await ex.close()
        assert time.monotonic() - started < 3
    assert status.error == f"db2: connection to {silent_address}:{mute.port} timed out after 0.5s"

    stranger = keygen(tmp_path / "stranger")
    host = host_of(fleet, fleet.servers[1], "web2", identity=str(stranger))
    status, _ = await run_one(ex := SSHExecutor(host, **TEST_OPTIONS), "true")
    await ex.close()
    assert status.error is not None
    assert status.error.startswith("web2: authentication failed at ")

    host = host_of(fleet, fleet.servers[1], "web2", identity=str(tmp_path / "missing"))
    status, _ = await run_one(ex := SSHExecutor(host, **TEST_OPTIONS), "true")
    await ex.close()
    assert status.error == f"web2: identity file {tmp_path / 'missing'} not found"


async def test_sshd_killed_mid_step_then_retry_reconnects(fleet: Fleet,
                                                          lone_sshd: SSHServer) -> None:
    fleet.known_hosts.write_text(fleet.known_hosts.read_text() + lone_sshd.host_key_line())
    try:
        lone = SSHExecutor(host_of(fleet, lone_sshd, "lone"), **TEST_OPTIONS)
        other = SSHExecutor(host_of(fleet, fleet.servers[2], "web3"), **TEST_OPTIONS)
        doomed = await lone.start(CommandRequest("s", lone.host, "echo up; sleep 30"),
                                  up := Collected())
        survivor = await other.start(CommandRequest("s", other.host, "sleep 1; echo fine"),
                                     out := Collected())
        deadline = time.monotonic() + 20  # the step runs (not still starting) when cut
        while up.of("stdout") != ["up"] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        lone_sshd.stop()
        status = await asyncio.wait_for(doomed.wait(), 10)
        assert status.error is not None
        assert status.error.startswith("lone: connection lost mid-step")
        assert (await survivor.wait()).ok and out.of("stdout") == ["fine"]

        status, _ = await run_one(lone, "true")  # host down: a clear reason, no hang
        assert status.error == f"lone: connection refused by {lone_sshd.address}:{lone_sshd.port}"
        lone_sshd.start()
        status, out = await run_one(lone, "echo back")
        assert status.ok and out.of("stdout") == ["back"]
        await lone.close()
        await other.close()
    finally:
        fleet.write_known_hosts()


async def test_a_connection_lost_as_a_session_starts_is_a_clear_error(
        fleet: Fleet, lone_sshd: SSHServer) -> None:
    """The connection can go between a shell's start and the task sent to it (an sshd
    killed while a slow login shell starts): the task ends with one clear reason, and
    nothing is raised from the executor (it was BrokenPipeError: Channel not open for
    sending, out of the attempt)."""
    import asyncssh

    from console.executors.ssh_shell import BOOT_COMMAND, ControlSession

    fleet.known_hosts.write_text(fleet.known_hosts.read_text() + lone_sshd.host_key_line())
    try:
        conn = await asyncssh.connect(lone_sshd.address, lone_sshd.port, username="root",
                                      client_keys=[str(fleet.client_key)],
                                      known_hosts=str(fleet.known_hosts))
        _, opened = await conn.create_session(lambda: ControlSession("lone", lambda s: None),
                                              BOOT_COMMAND, encoding=None)
        session = opened
        assert isinstance(session, ControlSession)
        session.start()
        conn.abort()
        await asyncio.wait_for(session.ready, 5)
        session.start()  # a start after the loss is a no-op, not an exception
        task = session.run(b"echo never\n", out := Collected())
        status = await asyncio.wait_for(task.done, 5)
        assert status.error is not None
        assert status.error.startswith("lone: connection lost before the step started")
        assert out.lines == []
    finally:
        fleet.write_known_hosts()


async def test_jump_host(fleet: Fleet) -> None:
    bastion_server, target_server = fleet.servers[10], fleet.servers[11]
    bastion = host_of(fleet, bastion_server, "bastion")
    target = host_of(fleet, target_server, "inner", jump="bastion")
    context = SSHContext(hosts={"bastion": bastion, "inner": target}, **TEST_OPTIONS)
    ex = SSHExecutor(target, context=context)
    execution = await ex.start(CommandRequest("s", target, "echo $SSH_CONNECTION; sleep 1"),
                               out := Collected())
    await asyncio.sleep(0.6)
    me = psutil.Process()
    direct = [c for c in me.net_connections("tcp")
              if c.raddr and c.raddr[:2] == (target_server.address, target_server.port)]
    via = [c for p in psutil.Process(bastion_server.process.pid).children(recursive=True)  # type: ignore[union-attr]
           for c in p.net_connections("tcp")
           if c.raddr and c.raddr[:2] == (target_server.address, target_server.port)]
    status = await execution.wait()
    await ex.close()
    assert status.ok, status
    assert out.of("stdout")[0].split()[2:] == [target_server.address, str(target_server.port)]
    assert direct == [] and len(via) == 1

    lost = SSHExecutor(host_of(fleet, target_server, "inner", jump="nowhere"), **TEST_OPTIONS)
    status, _ = await run_one(lost, "true")
    await lost.close()
    assert status.error == "inner: jump host 'nowhere' is not a declared host"


async def test_ssh_config_aliases_are_honoured(fleet: Fleet, tmp_path: Path) -> None:
    server = fleet.servers[3]
    config = tmp_path / "ssh_config"
    config.write_text(f"Host web-alias\n  HostName {server.address}\n  Port {server.port}\n"
                      f"  User root\n  IdentityFile {fleet.client_key}\n")
    host = Host("web", "web-alias", known_hosts=str(fleet.known_hosts))
    ex = SSHExecutor(host, ssh_config=[str(config)], connect_timeout=5.0)
    status, out = await run_one(ex, "echo $SSH_CONNECTION")
    await ex.close()
    assert status.ok, status
    assert out.of("stdout")[0].split()[2:] == [server.address, str(server.port)]


# --------------------------------------------------------------------- process trees, secrets


async def test_remote_timeout_leaves_no_process_behind(fleet: Fleet) -> None:
    marker = f"baton-mark-{secrets.token_hex(6)}"
    script = "sh -c 'sleep 300' & sh -c 'sleep 301' & sleep 302"
    steps = {"slow": Step("slow", "slow", run=script, on=("h00",), timeout=0.5,
                          env={"MARK": marker})}
    started = time.monotonic()
    run = await run_workflow(workflow(fleet, fleet.servers[:1], steps))
    (task,) = run.tasks_of("slow")
    assert task.state is TaskState.FAILED and task.reason == "timed out after 0.5s"
    assert time.monotonic() - started < 10
    assert await wait_gone(marker, 1.0) == []


async def test_cancel_kills_term_ignoring_tree(executor: SSHExecutor) -> None:
    marker = f"baton-mark-{secrets.token_hex(6)}"
    execution = await executor.start(
        CommandRequest("s", executor.host, "sh -c 'trap \"\" TERM; sleep 300' & sleep 300",
                       env={"MARK": marker}), Collected())
    assert await wait_for_processes(marker, 3)
    await execution.terminate(grace=0.5)
    status = await execution.wait()
    assert status.signal == 15 or status.signal == 9
    assert await wait_gone(marker, 2.0) == []
    status, out = await run_one(executor, "echo still usable")
    assert status.ok and out.of("stdout") == ["still usable"]
    await executor.close()


async def test_client_going_away_kills_remote_tasks(executor: SSHExecutor) -> None:
    marker = f"baton-mark-{secrets.token_hex(6)}"
    await executor.start(CommandRequest("s", executor.host, "sleep 300",
                                        env={"MARK": marker}), Collected())
    assert await wait_for_processes(marker, 2)
    await executor.close()  # connection closed under a running task: stdin EOF remotely
    assert await wait_gone(marker, 5.0) == []


async def test_secret_absent_from_every_process_list(fleet: Fleet) -> None:
    secret = f"s3cr3t-{secrets.token_hex(8)}"
    marker = f"baton-mark-{secrets.token_hex(6)}"
    release = Path(tempfile.mkdtemp()) / "release"  # the step runs until 5 scans are done
    steps = {"use": Step("use", "use", on=("h00",), env={"TOKEN": secret, "MARK": marker},
                         run=f"test \"$TOKEN\" = '{secret}' && echo ok; "
                             f"while [ ! -e {release} ]; do sleep 0.05; done")}
    wf = workflow(fleet, fleet.servers[:1], steps)
    run = Run(wf, RunOptions(approval="auto", secrets={"t": secret}),
              executor_for=ssh_executor_factory(wf, **TEST_OPTIONS))
    job = asyncio.ensure_future(run.execute())
    seen: list[str] = []
    checked = 0
    while not job.done():
        if processes_with(marker):
            checked += 1
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    except OSError:
                        continue
                    if secret.encode() in cmdline:
                        seen.append(cmdline.decode(errors="replace"))
            if checked == 5:
                release.touch()
        await asyncio.sleep(0.1)
    await job
    assert run.tasks_of("use")[0].state is TaskState.SUCCEEDED
    assert checked >= 5 and seen == []


async def test_ssh_options_defaults_apply(fleet: Fleet) -> None:
    server = fleet.servers[4]
    host = Host("web5", server.address)
    defaults = SSHOptions(user="root", port=server.port, identity=str(fleet.client_key),
                          known_hosts=str(fleet.known_hosts))
    ex = SSHExecutor(host, context=SSHContext(defaults=defaults, ssh_config=[]))
    status, out = await run_one(ex, "id -un")
    await ex.close()
    assert status.ok and out.of("stdout") == ["root"]


def test_baton_run_headless_over_ssh_end_to_end(fleet: Fleet, tmp_path: Path) -> None:
    """The whole path: TOML hosts and [ssh] -> loader -> engine -> SSH -> JSON events."""
    import json

    from tests.conftest import baton, write_workflow

    servers = fleet.servers[:3]
    hosts = "\n".join(f'[hosts.web{i}]\naddress = "{s.address}"\nport = {s.port}\n'
                      f'groups = ["web"]\n' for i, s in enumerate(servers))
    path = write_workflow(tmp_path, f"""
        [workflow]
        name = "remote"

        [ssh]
        user = "root"
        identity = "{fleet.client_key}"
        known_hosts = "{fleet.known_hosts}"
        connect_timeout = "5s"

        [steps.hello]
        run = "echo hello from {{{{ host.name }}}}; echo oops >&2"
        on = "web"

        [steps.after]
        run = "echo done"
        needs = ["hello"]
        """ + "\n" + hosts.replace("\n[", "\n\n["))
    proc = baton("run", path, "--headless", "--json", timeout=60)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    logs = {(e["host"], e["stream"], e["line"]) for e in events if e["type"] == "log"}
    for i in range(3):
        assert (f"web{i}", "stdout", f"hello from web{i}") in logs
        assert (f"web{i}", "stderr", "oops") in logs
    assert events[-1]["type"] == "run" and events[-1]["state"] == "succeeded"


async def test_a_reload_that_fixes_the_ssh_section_reaches_the_next_connection(
        sshd_fleet: Fleet) -> None:
    """A wrong ``[ssh] port`` fails the task; the operator fixes the file and retries: the
    retry connects with the new section (the run kept its first SSH settings)."""
    from console.model.loader import load_text
    from tests.helpers import until

    server = sshd_fleet.servers[0]
    text = f'''
[workflow]
name = "fix the port"
[ssh]
user = "root"
identity = "{sshd_fleet.client_key}"
known_hosts = "{sshd_fleet.known_hosts}"
port = PORT
connect_timeout = "3s"
[hosts.h]
address = "{server.address}"
[steps.s]
on = "h"
run = "echo hello from the fixed port"
'''
    wrong = free_port(server.address)  # nothing listens there
    run = Run(load_text(text.replace("PORT", str(wrong))), RunOptions(keep_alive=True))
    executing = asyncio.create_task(run.execute())
    try:
        await until(lambda: run.tasks[("s", "h")].state is TaskState.FAILED, 15)
        reloaded = run.reload(load_text(text.replace("PORT", str(server.port))))
        assert reloaded.error is None
        run.retry("s", "h")
        await until(lambda: run.tasks[("s", "h")].state is TaskState.SUCCEEDED, 15)
        assert run.tasks[("s", "h")].outputs.stdout.strip() == "hello from the fixed port"
    finally:
        run.close()
        await asyncio.wait_for(executing, 15)
