"""The persistent remote shell: one SSH session that runs task after task.

A new SSH session costs a fork in sshd plus the user's login shell reading its rc files
(tens to hundreds of milliseconds). A :class:`ControlSession` pays that once: it starts
``/bin/sh`` through the login shell, sends it :data:`PRELUDE` on stdin, then one line of
shell code per task. For each task the remote side

- forks a *watcher* subshell, so the control shell stays free to read the next command
  (a ``kill`` for cancel/timeout, or end of file);
- starts the task with ``setsid`` (its own session and process group) and an exported
  ``BATON_ATTEMPT`` tag, the script fed through a pipe on its stdin: a POSIX shell reads
  all of it, swaps stdin for ``/dev/null`` and only then runs it, so the script never
  appears on a command line and no process of the task can read it back (another
  interpreter reads it as ``/dev/fd/3``);
- cancel and timeout signal the task's whole session: its group, every process of its
  session and every process carrying its tag (a daemon that left the session), and
  name on the task's stderr what could not be ended (``__baton_kill``,
  ``__baton_report``);
- when the task's shell has exited but something it started still holds its output
  after :data:`LEFTOVER_GRACE` s, the task ends anyway, its stderr names those
  processes, and the session ends them when it closes (at the end of the run);
- exports the step's env in the task's subshell only: the control shell sets no exported
  variable, so every task starts from the login environment of the session (as a fresh
  ``ssh host cmd`` would), and signals ignored by background jobs are reset where
  ``env --default-signal`` exists;
- relays the task's stdout and stderr through two FIFOs with ``cat``, so the task is over
  when it exited AND every process holding its output has closed it (like ``ssh``), and
  stdout and stderr stay separate channel streams;
- frames the task with a random per-session marker: ``M S pgid`` before its stdout,
  ``M E status`` after it, and ``M`` alone after its stderr. Task output without a final
  newline is kept: the marker is found wherever it starts.

The remote shell cannot tell ``exit 143`` from death by SIGTERM: a status above 128 is
reported as the signal ``status - 128``, as shells do.

When the client goes away (stdin reaches end of file, or the session is hung up) the
control shell's EXIT trap ends the running task's session and every leftover itself.

One session runs one task at a time; the executor keeps a small pool per connection
(below OpenSSH's ``MaxSessions`` of 10) for tasks that overlap on one host.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncssh

from console.executors.base import ExitStatus, OutputCallback, Stream
from console.executors.lines import LineSplitter

BOOT_COMMAND = "exec /bin/sh"
"""The only text on the exec line; everything else goes through stdin."""

PRELUDE = r"""
__baton_d=$(mktemp -d "${TMPDIR:-/tmp}/baton.XXXXXXXXXX") || exit 111
mkfifo -m 600 "$__baton_d/o" "$__baton_d/e" || exit 112
: > "$__baton_d/p"
: > "$__baton_d/left"
__baton_sig=
env --default-signal=INT,QUIT true 2>/dev/null && __baton_sig='env --default-signal=INT,QUIT'
__baton_boot='__baton_s=$(command -p cat) || exit 126
eval "exec </dev/null; unset __baton_s; $__baton_s"'
__baton_small='__baton_s=; while IFS= read -r __baton_l; do __baton_s="$__baton_s$__baton_l
"; done; __baton_s="$__baton_s$__baton_l"
eval "exec </dev/null; unset __baton_s __baton_l; $__baton_s"'
__baton_pids() {
  { [ -n "$2" ] && grep -lsxz "BATON_ATTEMPT=$2" /proc/[0-9]*/environ
    awk -v s="$1" '{ l = $0; sub(/.*\) /, "", l); split(l, f, " ")
      if (f[3] == s || f[4] == s) print FILENAME }' /proc/[0-9]*/stat 2>/dev/null
  } | sed -n 's|^/proc/\([0-9]*\)/.*|\1|p' | sort -u | grep -vx "$$"
}
__baton_kill() {
  kill -s "$1" -- "-$2" 2>/dev/null
  for __baton_q in $(__baton_pids "$2" "$3"); do kill -s "$1" "$__baton_q" 2>/dev/null; done
}
__baton_report() {
  __baton_l=
  for __baton_q in $(__baton_pids "$2" "$3"); do
    [ -r "/proc/$__baton_q/comm" ] || continue
    __baton_l="$__baton_l${__baton_l:+, }pid $__baton_q ($(cat "/proc/$__baton_q/comm"))"
  done
  [ -n "$__baton_l" ] && printf 'baton: %s on %s: %s\n' "$1" "$(uname -n)" "$__baton_l" >&2
}
__baton_end() {
  __baton_kill TERM "$1" "$2"
  sleep 1
  __baton_kill KILL "$1" "$2"
}
__baton_clean() {
  __baton_g=$(cat "$__baton_d/p" 2>/dev/null)
  [ -n "$__baton_g" ] && __baton_end $__baton_g
  while read -r __baton_g; do __baton_end $__baton_g; done < "$__baton_d/left"
  rm -rf "$__baton_d"
}
trap __baton_clean EXIT
trap 'exit 129' HUP
trap 'exit 141' PIPE
trap 'exit 143' TERM
__baton_run() {
  (
    if [ -n "$2" ] && ! cd -- "$2" 2>/dev/null; then
      printf '%s\n' "$__baton_m" >&2
      printf '%s F cwd\n' "$__baton_m"
      exit 0
    fi
    if [ "$6" != f ]; then
      [ "$6" = s ] && __baton_b=$__baton_small || __baton_b=$__baton_boot
      printf '%s' "$4" | ( eval "$3" || exit 125; export BATON_ATTEMPT="$5"
        exec setsid $__baton_sig "$1" -c "$__baton_b" "$7" ) >"$__baton_d/o" 2>"$__baton_d/e" &
    else
      printf '%s' "$4" | ( eval "$3" || exit 125; export BATON_ATTEMPT="$5"
        exec setsid $__baton_sig "$1" /dev/fd/3 3<&0 </dev/null ) >"$__baton_d/o" 2>"$__baton_d/e" &
    fi
    __baton_p=$!
    echo "$__baton_p $5" > "$__baton_d/p"
    printf '%s S %s\n' "$__baton_m" "$__baton_p"
    cat "$__baton_d/o" &
    __baton_co=$!
    cat "$__baton_d/e" >&2 &
    __baton_ce=$!
    wait "$__baton_p"
    __baton_rc=$?
    __baton_i=0
    while [ $__baton_i -lt __BATON_SPIN__ ] &&
        { kill -0 $__baton_co || kill -0 $__baton_ce; } 2>/dev/null; do
      __baton_i=$((__baton_i + 1))
    done
    for __baton_t in __BATON_TICKS__; do
      { kill -0 $__baton_co || kill -0 $__baton_ce; } 2>/dev/null || break
      sleep $__baton_t 2>/dev/null || sleep 1
    done
    if { kill -0 $__baton_co || kill -0 $__baton_ce; } 2>/dev/null; then
      __baton_report "still running after the step's shell exited (ended when the run ends)" \
        "$__baton_p" "$5"
      echo "$__baton_p $5" >> "$__baton_d/left"
      kill $__baton_co $__baton_ce 2>/dev/null
    fi
    wait
    : > "$__baton_d/p"
    printf '%s\n' "$__baton_m" >&2
    printf '%s E %s\n' "$__baton_m" "$__baton_rc"
  ) &
}
printf '%s R\n' "$__baton_m" >&2
printf '%s R\n' "$__baton_m"
"""

POSIX_SHELLS = frozenset({"sh", "ash", "dash", "bash", "ksh", "mksh", "zsh", "yash"})
"""Remote interpreters that read the script from stdin and close it before running it."""

SMALL_SCRIPT = 1024
"""Scripts up to this size are read with the shell's ``read`` (no ``cat`` to start)."""

LEFTOVER_GRACE = 2.0
"""As the local executor's: how long a task's output may stay open after its shell exited."""


SPIN_CHECKS = 200
"""``kill -0`` checks (shell builtins, a few microseconds each) before the first ``sleep``:
the relays usually exit within a millisecond of the task's shell, and a ``sleep`` tick
after every task cost each remote step a fifth of a second (issue 11's fan-out bench)."""


def grace_ticks(grace: float = LEFTOVER_GRACE) -> list[float]:
    """The ``sleep`` intervals of the leftover grace: short first, 0.2 s at most, summing
    to ``grace``."""
    ticks: list[float] = []
    for tick in (0.005, 0.01, 0.02, 0.05, 0.115):
        if sum(ticks) + tick > grace:
            break
        ticks.append(tick)
    while sum(ticks) + 1e-9 < grace:
        ticks.append(round(min(0.2, grace - sum(ticks)), 3))
    return ticks


def prelude(marker: str) -> str:
    """The control shell's set-up code for one session."""
    ticks = " ".join(f"{tick:g}" for tick in grace_ticks())
    return (f"__baton_m={marker}\n" + PRELUDE.replace("__BATON_SPIN__", str(SPIN_CHECKS))
            .replace("__BATON_TICKS__", ticks))


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class TaskSetupError(ValueError):
    """The request cannot be expressed remotely (bad env name, NUL byte …)."""


def task_command(shell: str, script: str, env: dict[str, str], cwd: str | None,
                 tag: str = "", name: str = "baton") -> bytes:
    """The line of shell code that makes the control shell run one task."""
    exports = []
    for key, value in env.items():
        if not _ENV_NAME.match(key):
            raise TaskSetupError(f"invalid environment variable name {key!r}")
        exports.append(f"export {key}={shlex.quote(value)}")
    if cwd in ("~", "~/"):
        cwd = "."
    elif cwd and cwd.startswith("~/"):
        cwd = cwd[2:]  # relative to the login directory, which is $HOME
    shell = shell or "/bin/sh"
    mode = "f"  # the script as /dev/fd/3; a POSIX shell reads it all first (s: short, c: cat)
    if shell.rsplit("/", 1)[-1] in POSIX_SHELLS:
        mode = "s" if len(script) <= SMALL_SCRIPT else "c"
    parts = [shell, cwd or "", "\n".join(exports) or ":", script, tag, mode, name]
    if any("\0" in part for part in parts):
        raise TaskSetupError("NUL byte in the command, env or cwd")
    line = "__baton_run " + " ".join(shlex.quote(part) for part in parts) + "\n"
    return line.encode("utf-8", "surrogateescape")


@dataclass
class RemoteTask:
    """The client side of one task on a control session."""

    on_output: OutputCallback
    done: asyncio.Future[ExitStatus]
    cwd: str | None = None
    started: asyncio.Future[int] = field(default_factory=lambda: asyncio.get_running_loop()
                                         .create_future())
    out: LineSplitter = field(default_factory=LineSplitter)
    err: LineSplitter = field(default_factory=LineSplitter)
    stdout_end: str | None = None
    stderr_ended: bool = False

    def emit(self, stream: Stream, data: bytes) -> None:
        splitter = self.out if stream == "stdout" else self.err
        text = splitter.feed(data)
        if text is not None:
            self.on_output(stream, text)

    def flush(self) -> None:
        pairs: tuple[tuple[Stream, LineSplitter], ...] = (
            ("stdout", self.out), ("stderr", self.err))
        for stream, splitter in pairs:
            text = splitter.flush()
            if text is not None:
                self.on_output(stream, text)


def _keep(buffer: bytes | bytearray, marker: bytes) -> int:
    """How many trailing bytes of ``buffer`` could be the start of ``marker``."""
    for size in range(min(len(marker) - 1, len(buffer)), 0, -1):
        if buffer.endswith(marker[:size]):
            return size
    return 0


class ControlSession(asyncssh.SSHClientSession[bytes]):
    """One persistent remote shell (see the module docstring)."""

    def __init__(self, name: str, on_closed: Callable[[ControlSession], None]) -> None:
        self.name = name
        self.marker = f"baton-{secrets.token_hex(16)}".encode()
        self._on_closed = on_closed
        self._chan: asyncssh.SSHClientChannel[bytes] | None = None
        self._out = bytearray()
        self._err = bytearray()
        self._out_ready = False
        self._err_ready = False
        self._task: RemoteTask | None = None
        self.closed = False
        self.close_reason = "session closed"
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Resolved once the remote shell has run the prelude (or the session closed)."""

    # -- asyncssh callbacks

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self._chan = chan

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            self._err += data
            self._parse_err()
        else:
            self._out += data
            self._parse_out()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_result(None)
        if exc is not None:
            self.close_reason = str(exc) or type(exc).__name__
        task, self._task = self._task, None
        if task is not None:
            task.flush()
            if not task.done.done():
                task.done.set_result(ExitStatus(
                    None, error=f"{self.name}: connection lost mid-step ({self.close_reason})"))
            if not task.started.done():
                task.started.cancel()
        self._on_closed(self)

    # -- client API

    def start(self) -> None:
        assert self._chan is not None
        if not self.closed:
            with contextlib.suppress(OSError, asyncssh.Error):  # lost: connection_lost says
                self._chan.write(prelude(self.marker.decode()).encode())

    @property
    def busy(self) -> bool:
        return self._task is not None

    def run(self, command: bytes, on_output: OutputCallback, cwd: str | None = None) -> RemoteTask:
        assert self._chan is not None and self._task is None
        task = RemoteTask(on_output, asyncio.get_running_loop().create_future(), cwd)
        if not self.closed:
            self._task = task
            try:
                self._chan.write(command)
                return task
            except (OSError, asyncssh.Error) as exc:  # closed, not yet reported: nothing ran
                self._task, self.close_reason = None, str(exc) or type(exc).__name__
        task.done.set_result(ExitStatus(None, error=f"{self.name}: connection lost before "
                                                    f"the step started ({self.close_reason})"))
        task.started.cancel()
        return task

    def signal(self, pgid: int, name: str, tag: str = "") -> None:
        """Signal a task's whole session (its process group, every process of its session
        and every process carrying its tag) from the remote side (works on any sshd)."""
        if self._chan is not None and not self.closed:
            self._chan.write(f"__baton_kill {name} {int(pgid)} {shlex.quote(tag)}\n".encode())

    def report(self, pgid: int, tag: str = "") -> None:
        """Name, on the task's stderr, the processes of the task that are still alive."""
        if self._chan is not None and not self.closed:
            self._chan.write(f"__baton_report 'could not end' {int(pgid)} "
                             f"{shlex.quote(tag)}\n".encode())

    def close(self) -> None:
        """End of file on the shell's stdin: it cleans up and exits."""
        if self._chan is not None and not self.closed:
            try:
                self._chan.write_eof()
            except (OSError, asyncssh.Error):
                pass
            self._chan.close()

    # -- framing

    def _parse_out(self) -> None:
        buf, marker = self._out, self.marker
        while buf:
            if not self._out_ready or self._task is None or not self._task.started.done():
                end = buf.find(b"\n")
                if end < 0:
                    return
                line = bytes(buf[:end])
                del buf[: end + 1]
                self._control_line(line)
                continue
            task = self._task
            at = buf.find(marker)
            if at < 0:
                keep = _keep(buf, marker)
                if len(buf) > keep:
                    task.emit("stdout", bytes(buf[: len(buf) - keep]))
                    del buf[: len(buf) - keep]
                return
            end = buf.find(b"\n", at)
            if at:
                task.emit("stdout", bytes(buf[:at]))
                del buf[:at]
                end -= at
            if end < 0:
                return
            line = bytes(buf[:end])
            del buf[: end + 1]
            self._control_line(line)

    def _control_line(self, line: bytes) -> None:
        at = line.find(self.marker + b" ")
        if at < 0:
            return  # rc-file chatter before the prelude, or stray output between tasks
        line = line[at:]
        kind, _, value = line[len(self.marker) + 1 :].decode("ascii", "replace").partition(" ")
        task = self._task
        if kind == "R":
            self._out_ready = True
            if not self.ready.done():
                self.ready.set_result(None)
        elif task is None:
            return
        elif kind == "S" and not task.started.done():
            task.started.set_result(int(value))
        elif kind in ("E", "F"):
            task.stdout_end = line[len(self.marker) + 1 :].decode("ascii", "replace")
            if not task.started.done():
                task.started.set_result(0)
            self._maybe_finish()

    def _parse_err(self) -> None:
        buf, marker = self._err, self.marker
        if not self._err_ready:
            at = buf.find(marker + b" R\n")
            if at < 0:
                return
            del buf[: at + len(marker) + 3]
            self._err_ready = True
        task = self._task
        if task is None or task.stderr_ended:
            buf.clear()  # nothing may write here between tasks; drop strays
            return
        at = buf.find(marker + b"\n")
        if at < 0:
            keep = _keep(buf, marker + b"\n")
            if len(buf) > keep:
                task.emit("stderr", bytes(buf[: len(buf) - keep]))
                del buf[: len(buf) - keep]
            return
        if at:
            task.emit("stderr", bytes(buf[:at]))
        del buf[: at + len(marker) + 1]
        task.stderr_ended = True
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        task = self._task
        if task is None or task.stdout_end is None or not task.stderr_ended:
            return
        self._task = None
        task.flush()
        kind, _, value = task.stdout_end.partition(" ")
        if kind == "F":
            status = ExitStatus(None, error=f"{self.name}: cannot change to cwd {task.cwd}: "
                                             "no such directory or permission denied")
        else:
            code = int(value) if value.isdigit() else 255
            status = (ExitStatus(None, signal=code - 128) if 128 < code < 128 + 65
                      else ExitStatus(code))
        if not task.done.done():
            task.done.set_result(status)
        if self._err:
            self._parse_err()
