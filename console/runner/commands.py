"""``baton attach``, ``baton serve``, the runner behind ``baton run FILE`` and the live
mark of ``baton runs``. Errors are :class:`RunnerError`: one line for the operator."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.commands.shared import Command, UsageError
from console.runner import protocol as p


class RunnerError(UsageError):
    """A live run cannot be found, reached or started: one line (exit 2)."""


@dataclass(frozen=True)
class LiveRun:
    run_id: str
    socket: Path


def live_runs(home: Path) -> list[LiveRun]:
    """The live runs of this user on this machine, newest first (a socket whose run still
    holds its lock; run ids sort by start time)."""
    from console.store import logs

    folder = p.live_dir(home)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in names:
        if not name.endswith(p.SUFFIX):
            continue
        run_id = name[: -len(p.SUFFIX)]
        if logs.is_live(run_id, home):
            found.append(LiveRun(run_id, folder / name))
    return sorted(found, key=lambda r: r.run_id, reverse=True)


def choose(home: Path, run: str | None, *, ask: bool) -> LiveRun:
    """The live run ``run`` names (a unique prefix is enough), else the newest; with
    several and ``ask`` (a terminal), a numbered picker."""
    runs = live_runs(home)
    if run is not None:
        matches = [r for r in runs if r.run_id.startswith(run)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise RunnerError(f"'{run}' matches {len(matches)} live runs: "
                              f"{', '.join(r.run_id for r in matches)}")
        raise RunnerError(f"no live run '{run}' (baton runs lists runs; a finished or "
                          f"interrupted run is continued with baton resume)")
    if not runs:
        raise RunnerError("no live run to attach to (baton runs lists past runs)")
    if len(runs) == 1 or not ask:
        return runs[0]
    return runs[_pick(_labels(home, [r.run_id for r in runs]))]


def _labels(home: Path, ids: Sequence[str]) -> list[str]:
    """Each live run as the picker shows it: id, workflow, user, start time (the id alone
    when the history cannot say)."""
    import time

    from console.sanitize import sanitize
    from console.store import Store, StoreError

    try:
        store = Store.open_read(home)
    except (StoreError, OSError):
        return list(ids)
    try:
        known = {r.id: r for r in store.runs(limit=200)}
    except (StoreError, OSError):
        known = {}
    finally:
        store.close()
    out = []
    for run_id in ids:
        run = known.get(run_id)
        if run is None:
            out.append(run_id)
            continue
        started = time.strftime("%H:%M:%S", time.localtime(run.started or 0))
        out.append(sanitize(f"{run_id}  {run.workflow}  ({run.user}, started {started})"))
    return out


def _pick(labels: Sequence[str]) -> int:
    for number, label in enumerate(labels, 1):
        sys.stderr.write(f"  {number}. {label}\n")
    sys.stderr.write(f"attach to which run? [1-{len(labels)}, default 1 = newest] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip()
    if not answer:
        return 0
    if answer.isdigit() and 1 <= int(answer) <= len(labels):
        return int(answer) - 1
    raise RunnerError(f"no run number {answer!r}")


def attach(home: Path, run: str | None, *, theme: str | None = None,
           read_only: bool = False) -> int:
    """Open the console on a live run; returns the exit code (0 when detached)."""
    chosen = choose(home, run, ask=_tty())
    return run_attached(chosen.socket, theme=theme, read_only=read_only)


def run_attached(socket: Path, *, theme: str | None = None, read_only: bool = False) -> int:
    from console.runner.attach_app import AttachApp

    app = AttachApp(socket, read_only=read_only, theme=theme)
    app.run()
    return app.return_code if app.return_code is not None else 0


def console_run(run_args: Sequence[str], home: Path, *, theme: str | None = None,
                command: str = "run") -> int:
    """``baton run FILE`` / ``baton resume RUN`` in console mode: a runner owns the run,
    this console attaches."""
    from console.runner.daemon import SpawnError, spawn

    try:
        spawned = spawn(run_args, home, command=command)
    except SpawnError as exc:  # the runner's own lines (every problem), then the last one
        from console.commands.shared import err

        *lines, last = str(exc).splitlines() or [""]
        for line in lines:
            err(line)
        raise RunnerError(last.removeprefix("baton: ")) from None
    return run_attached(spawned.socket, theme=theme)


def _tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def live_ids(home: Path) -> set[str]:
    """The ids of the runs a console may attach to now."""
    return {r.run_id for r in live_runs(home)}


def mark_live(runs: Iterable[Any], home: Path) -> list[Any]:
    """``baton runs``: a live run's status reads ``running (live)``."""
    live = live_ids(home)
    out: list[Any] = []
    for run in runs:
        if getattr(run, "id", None) in live:
            run = dataclasses.replace(run, state=f"{run.state} (live)")
        out.append(run)
    return out


def _attach_arguments(parser: Any) -> None:
    parser.add_argument("run", nargs="?", metavar="RUN",
                        help="live run id (a unique prefix is enough; default: your newest)")
    parser.add_argument("--read-only", action="store_true", help="watch only")
    parser.add_argument("--theme", metavar="NAME", help="console theme")


def _serve_arguments(parser: Any) -> None:
    parser.add_argument("run", nargs="?", metavar="RUN",
                        help="live run id (a unique prefix is enough; default: your newest)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    parser.add_argument("--control", action="store_true",
                        help="let the browser act on the run (needs the printed token)")
    parser.add_argument("--theme", metavar="NAME", help="console theme")


def cmd_attach(args: Any) -> int:
    from console.paths import baton_home

    return attach(baton_home(), args.run, theme=args.theme, read_only=args.read_only)


def cmd_serve(args: Any) -> int:
    from console.paths import baton_home
    from console.runner.serve import serve

    chosen = choose(baton_home(), args.run, ask=_tty())
    return serve(chosen.run_id, host=args.host, port=args.port, control=args.control,
                 theme=args.theme)


ATTACH = Command("attach", "open the console on a live run (default: your newest)",
                 _attach_arguments, cmd_attach)
SERVE = Command("serve", "share a live run's console in a web browser", _serve_arguments,
                cmd_serve)


def runner_wanted(args: Any = None) -> bool:
    """Whether a console run is owned by a runner: always, except ``--dry-run`` and
    ``--read-only`` (nothing to share) and with ``BATON_RUNNER=0``."""
    if os.environ.get("BATON_RUNNER", "1") == "0":
        return False
    return args is None or not (args.read_only or getattr(args, "dry_run", False))


def console_run_args(args: Any) -> int | None:
    """``baton run FILE`` in console mode: through a runner (None: stay in-process)."""
    if not runner_wanted(args):
        return None
    from console.paths import baton_home

    return console_run(run_args(args), baton_home(), theme=args.theme)


def console_resume_args(args: Any) -> int | None:
    """``baton resume RUN`` in console mode: through a runner (None: stay in-process)."""
    if not runner_wanted(args):
        return None
    from console.commands.shared import read_store, store_errors
    from console.launch import not_resumable
    from console.paths import baton_home

    store = read_store()
    with store, store_errors():
        run_id = store.resolve(args.run)
        if not_resumable(store.load(run_id).run.state) is not None:
            return None  # nothing to run: the console shows it read-only, as it always did
    if run_id in live_ids(baton_home()):
        raise RunnerError(f"run {run_id} is live (its process goes on with it): "
                          f"baton attach {run_id} opens it")
    out = [run_id]
    for flag in ("yes", "step", "accept_new_host_keys"):
        if getattr(args, flag, False):
            out.append("--" + flag.replace("_", "-"))
    return console_run(out, baton_home(), theme=args.theme, command="resume")


def run_args(args: Any) -> list[str]:
    """``baton run`` options again, for the runner's command line."""
    out = [str(Path(args.file).resolve())]
    for value in args.param:
        out += ["--param", value]
    for value in args.limit:
        out += ["--limit", value]
    if args.start_at:
        out += ["--start-at", args.start_at]
    for flag in ("yes", "step", "dry_run", "accept_new_host_keys"):
        if getattr(args, flag, False):
            out.append("--" + flag.replace("_", "-"))
    return out
