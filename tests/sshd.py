"""Real OpenSSH ``sshd`` processes on loopback for the SSH tests and the fan-out bench.

Each :class:`SSHServer` listens on its own 127.0.N.x address and a free non-standard port,
with a throwaway ed25519 host key, its own ``sshd_config`` (no PAM, root allowed, keys
from a temporary ``authorized_keys``) and runs in the foreground (``-D -e``) as a child
of the test process. :class:`Fleet` starts several of them, plus the client key and a
``known_hosts`` file that trusts them all.

:class:`Farm` is the benches' fleet of hundreds or thousands of hosts (issue 16): one
address per host on 127.0.100.1 onwards (250 per third octet), all on one port, served
by ``ceil(N / 16)`` sshd listeners with 16 ``ListenAddress`` lines each (sshd's limit,
``MAX_LISTEN_SOCKS``) and one shared host key. ``MaxStartups`` is raised so a herd of
handshakes is never refused; each host's session count stays sshd's default.

N is 0 in a serial run and the worker's number under pytest-xdist (``-n``): each worker
starts its own fleet, and workers never share an address (:func:`loopback`), so no two
can race for a port.

The fixtures never skip: when ``sshd`` is missing they fail with a message saying how to
install it (``.ci/run`` does ``apt-get install openssh-server``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "ssh-keygen"


class SSHDMissing(RuntimeError):
    pass


def require_sshd() -> str:
    """The sshd binary, or an error saying how to get it."""
    path = SSHD if os.access(SSHD, os.X_OK) else shutil.which("sshd")
    if not path:
        raise SSHDMissing("OpenSSH sshd not found: install it with "
                          "`apt-get install -y openssh-server` (.ci/run does this)")
    if not shutil.which(SSH_KEYGEN):
        raise SSHDMissing("ssh-keygen not found: install openssh-client")
    # sshd refuses to start without its privilege separation directory
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    return path


def keygen(path: Path, comment: str = "baton-test") -> Path:
    """A new ed25519 key pair at ``path`` / ``path.pub``; returns ``path``."""
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL)
    return path


def _worker_octet() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under xdist
    return int(worker[2:]) % 256 if worker[:2] == "gw" and worker[2:].isdigit() else 0


def loopback(last: int) -> str:
    """This process's loopback address ending in ``last``: 127.0.0.last when serial,
    127.0.N.last on pytest-xdist worker N."""
    return f"127.0.{_worker_octet()}.{last}"


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def wait_listening(address: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@dataclass
class SSHServer:
    """One sshd on ``address:port``; ``stop``/``start`` keep the same address and key."""

    address: str
    folder: Path
    authorized_keys: Path
    port: int = 0
    extra_config: str = ""
    """More ``sshd_config`` lines (the test fixtures add :data:`TEST_CONFIG`)."""
    host_key: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.host_key = self.folder / "host_ed25519"
        if not self.host_key.exists():
            keygen(self.host_key, f"host-{self.address}")
        if not self.port:
            self.port = free_port(self.address)

    @property
    def config(self) -> Path:
        return self.folder / "sshd_config"

    @property
    def log(self) -> Path:
        return self.folder / "sshd.log"

    def host_key_line(self, hashed: bool = False) -> str:
        """This server's ``known_hosts`` line (OpenSSH format, ``[addr]:port`` form)."""
        kind, blob = (self.host_key.with_suffix(".pub")).read_text().split()[:2]
        name = f"[{self.address}]:{self.port}"
        if hashed:
            import base64
            import hashlib
            import hmac

            salt = os.urandom(20)
            digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
            name = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
        return f"{name} {kind} {blob}\n"

    def listen_lines(self) -> str:
        return f"ListenAddress {self.address}:{self.port}\n"

    max_startups = "200:30:400"
    log_level = "VERBOSE"

    def write_config(self) -> None:
        self.config.write_text(
            self.listen_lines() +
            f"HostKey {self.host_key}\n"
            f"PidFile {self.folder / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.authorized_keys}\n"
            "UsePAM no\n"
            "PermitRootLogin yes\n"
            "StrictModes no\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "AllowTcpForwarding yes\n"
            "PrintMotd no\n"
            "PrintLastLog no\n"
            f"MaxStartups {self.max_startups}\n"
            f"LogLevel {self.log_level}\n"
            + self.extra_config
        )

    def start(self) -> None:
        sshd = require_sshd()
        self.write_config()
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.process = subprocess.Popen([sshd, "-D", "-e", "-f", str(self.config)],
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        try:
            wait_listening(self.address, self.port)
        except OSError:
            self.stop()
            raise RuntimeError(f"sshd on {self.address}:{self.port} did not start: "
                               f"{self.log.read_text()[-2000:]}") from None

    def stop(self) -> None:
        """Kill the listener AND every session it serves: the host goes away."""
        if self.process is None:
            return
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        self.process.kill()
        self.process.wait()
        for child in children:
            try:
                if child.name() == "sshd":
                    child.kill()
            except psutil.NoSuchProcess:
                pass
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Fleet:
    """``count`` sshd servers on 127.0.N.2 … plus a client key and a known_hosts file."""

    def __init__(self, folder: Path, count: int, first: int = 2,
                 extra_config: str = "") -> None:
        require_sshd()
        self.folder = folder
        self.extra_config = extra_config
        self.client_key = keygen(folder / "client_ed25519", "baton-client")
        self.authorized_keys = folder / "authorized_keys"
        self.authorized_keys.write_text(self.client_key.with_suffix(".pub").read_text())
        self.known_hosts = folder / "known_hosts"
        self.servers: list[SSHServer] = []
        for index in range(count):
            self.add(loopback(first + index))
        self.start()

    def add(self, address: str) -> SSHServer:
        server = SSHServer(address, self.folder / address, self.authorized_keys,
                           extra_config=self.extra_config)
        self.servers.append(server)
        return server

    def start(self) -> None:
        for server in self.servers:
            if not server.running:
                server.write_config()
                server.start()
        self.write_known_hosts()

    def write_known_hosts(self) -> None:
        self.known_hosts.write_text("".join(s.host_key_line() for s in self.servers))

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __len__(self) -> int:
        return len(self.servers)


MAX_LISTEN_SOCKS = 16
"""ListenAddress lines one sshd accepts (OpenSSH's compile-time limit)."""


def farm_address(index: int) -> str:
    """The farm's ``index``-th host address: 127.0.100.1 ... 127.0.100.250, 127.0.101.1 ...
    (clear of the tests' 127.0.N.x, N being an xdist worker's number)."""
    third, last = divmod(index, 250)
    return f"127.0.{100 + third}.{last + 1}"


@dataclass
class FarmHost:
    """One host of a :class:`Farm`: an address its listener serves."""

    address: str
    port: int


@dataclass
class FarmListener(SSHServer):
    """One sshd of a :class:`Farm`, listening on up to 16 addresses with the farm's key."""

    addresses: list[str] = field(default_factory=list)
    shared_key: Path | None = None
    max_startups = "1000:30:2000"
    log_level = "INFO"

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        assert self.shared_key is not None and self.port
        self.host_key = self.shared_key

    def listen_lines(self) -> str:
        return "".join(f"ListenAddress {a}:{self.port}\n" for a in self.addresses)

    def launch(self, nice: int = 0, group: CpuGroup | None = None) -> None:
        """Start the sshd without waiting (the farm waits for all of them at once);
        in ``group`` when given (its sessions are forked into it too)."""
        sshd = require_sshd()
        self.write_config()
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        command = [sshd, "-D", "-e", "-f", str(self.config)]
        try:
            self.process = subprocess.Popen(["nice", "-n", str(nice), *command] if nice
                                            else command,
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        if group is not None:
            group.add(self.process.pid)


class CpuGroup:
    """A cpu cgroup of small weight for a farm's processes, or None where the machine has
    none to give (:meth:`create`). Niceness is per process: 300 sshd sessions at nice 19
    still outweigh one client process at nice 0 together (300 x 15 against 1,024 in the
    kernel's weights); in one group of weight ``shares`` they weigh that much together, as
    a fleet on other machines weighs nothing on the operator's cores, and still take
    every cycle the client leaves."""

    ROOTS = (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup"))

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, shares: int) -> CpuGroup | None:
        for root in cls.ROOTS:
            control = root / "cgroup.subtree_control"  # cgroup v2: cpu given to children
            if (root / "cpu.shares").exists() or (
                    control.exists() and "cpu" in control.read_text().split()):
                path = root / f"baton-farm-{os.getpid()}"
                try:
                    path.mkdir(exist_ok=True)
                    if (path / "cpu.shares").exists():
                        (path / "cpu.shares").write_text(f"{max(2, shares)}\n")
                    else:  # cgroup v2: weight 1..10,000 for shares 2..262,144 (1,024 = 100)
                        (path / "cpu.weight").write_text(f"{max(1, shares * 100 // 1024)}\n")
                except OSError:
                    continue
                return cls(path)
        return None

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def remove(self) -> None:
        """Remove the group once its processes are gone (they were killed just before)."""
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)


def _port_free_on(addresses: list[str], port: int) -> bool:
    for address in addresses:
        with socket.socket() as sock:
            try:
                sock.bind((address, port))
            except OSError:
                return False
    return True


class Farm:
    """``count`` SSH hosts for the benches: one loopback address each, served by
    ``ceil(count / 16)`` sshd listeners on one port, one host key, a client key and a
    ``known_hosts`` line per host. ``servers`` lists the hosts (address, port), like
    :class:`Fleet`'s; ``listeners`` the sshd processes. Use it as a context manager (or
    call :meth:`stop`): every sshd it started, and every session they serve, is killed."""

    def __init__(self, folder: Path, count: int, nice: int = 0, rc_files: bool = False,
                 cpu_shares: int = 0) -> None:
        """``nice``: the listeners (and so every session) run at that niceness.
        ``cpu_shares``: they run in one :class:`CpuGroup` of that weight (``group`` is
        None when the machine has no cgroup to give).
        ``rc_files``: the login shells read root's ``~/.bashrc`` (by default they skip it
        as the test servers do, see :data:`TEST_CONFIG`: the farm stands in for remote
        machines, whose rc files cost nothing on the operator's; here it would be 300
        ``pyenv init`` runs on the two cores the client measured shares)."""
        require_sshd()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.client_key = keygen(folder / "client_ed25519", "baton-client")
        self.authorized_keys = folder / "authorized_keys"
        self.authorized_keys.write_text(self.client_key.with_suffix(".pub").read_text())
        self.host_key = keygen(folder / "host_ed25519", "baton-farm")
        self.known_hosts = folder / "known_hosts"
        addresses = [farm_address(i) for i in range(count)]
        self.port = self._common_port(addresses)
        self.servers = [FarmHost(address, self.port) for address in addresses]
        self.listeners = [
            FarmListener(addresses[i], folder / f"sshd{i // MAX_LISTEN_SOCKS:03d}",
                         self.authorized_keys, self.port,
                         addresses=addresses[i:i + MAX_LISTEN_SOCKS],
                         shared_key=self.host_key,
                         extra_config="" if rc_files else TEST_CONFIG)
            for i in range(0, count, MAX_LISTEN_SOCKS)]
        kind, blob = self.host_key.with_suffix(".pub").read_text().split()[:2]
        self.known_hosts.write_text("".join(f"[{a}]:{self.port} {kind} {blob}\n"
                                            for a in addresses))
        self.group = CpuGroup.create(cpu_shares) if cpu_shares else None
        try:
            for listener in self.listeners:
                listener.launch(nice, self.group)
            for listener in self.listeners:
                for address in listener.addresses:
                    try:
                        wait_listening(address, self.port, timeout=20.0)
                    except OSError:
                        raise RuntimeError(f"farm sshd on {address}:{self.port} did not "
                                           f"start: {listener.log.read_text()[-2000:]}"
                                           ) from None
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _common_port(addresses: list[str]) -> int:
        for _ in range(50):
            port = free_port(addresses[0])
            if _port_free_on(addresses, port):
                return port
        raise RuntimeError("no port is free on every farm address")

    def stop(self) -> None:
        for listener in self.listeners:
            listener.stop()
        if self.group is not None:
            self.group.remove()

    def __enter__(self) -> Farm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __len__(self) -> int:
        return len(self.servers)


TEST_CONFIG = "SetEnv SHLVL=1\n"
"""The test servers' login shells start at level 2, so bash does not read ~/.bashrc (it
does for an sshd-started shell at level 1). A developer's bashrc is no part of what the
tests check, and may cost seconds per shell: on the dev machine it runs ``pyenv init``,
which queues on a lock shared with every other shell (10 s per login while a fan-out
bench ran; 0.35 s without). ``ssh host env`` still shows the login environment the
tests compare against."""


@pytest.fixture(scope="session")
def sshd_fleet() -> Iterator[Fleet]:
    """12 real sshd processes on 127.0.N.2-13 (the session, or the xdist worker, shares
    them)."""
    with tempfile.TemporaryDirectory(prefix="baton-sshd-") as tmp:
        fleet = Fleet(Path(tmp), 12, extra_config=TEST_CONFIG)
        try:
            yield fleet
        finally:
            fleet.stop()


@pytest.fixture
def lone_sshd(tmp_path: Path, sshd_fleet: Fleet) -> Iterator[SSHServer]:
    """A private sshd on 127.0.N.40 that a test may kill, restart or re-key; it trusts the
    fleet's client key but is NOT in the fleet's known_hosts."""
    server = SSHServer(loopback(40), tmp_path / "lone", sshd_fleet.authorized_keys,
                       extra_config=TEST_CONFIG)
    server.start()
    try:
        yield server
    finally:
        server.stop()
