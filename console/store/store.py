"""The run history: one SQLite file (WAL) under ``$BATON_HOME`` plus per-attempt log files.

``Store.open()`` creates or migrates the file and turns every bad condition (unwritable or
full home, a file that is not a baton database, a newer schema) into a one-line
:class:`StoreError` naming the path. Reads return the dataclasses of
:mod:`console.store.records`; writes during a run
go through :class:`console.store.recorder.Recorder` (``Store.record(run)``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from console.engine.events import RunState
from console.store import interrupt, logs, migrations
from console.store.database import Database, open_error
from console.store.errors import LiveRunError, StoreError, UnsafePathError

if TYPE_CHECKING:
    from console.engine.run import Run
    from console.store.recorder import Recorder
    from console.store.records import RunSummary, StoredRun

DB_NAME = "history.sqlite"


# ---------------------------------------------------------------------------- store


class Store:
    """The history of every run under one baton home. Open with :meth:`Store.open`."""

    def __init__(self, home: Path, db: sqlite3.Connection) -> None:
        self.home = home
        self.db_path = home / DB_NAME
        self.database = Database(self.db_path, db)
        """The connection and its guard, shared with the recorder and the reaper."""
        db.create_function("baton_matches", 3, _matches, deterministic=True)
        db.create_function("baton_state", 3, self._shown_state)
        self.machine = socket.gethostname()
        """Recorded with each run as the machine it ran on."""
        self.read_only = False
        """Opened by :meth:`open_read` on a home that cannot take a write."""

    # ------------------------------------------------------------------ open / close

    @classmethod
    def open(cls, home: Path | None = None) -> Store:
        """Open (creating or migrating) the store under ``home`` (default ``$BATON_HOME``)."""
        home = logs.resolve_home(home)
        try:
            logs.ensure_dir(home, link_ok=True)
            for sub in ("logs", "locks"):
                logs.check_private(home / sub)
            _probe(home)
        except OSError as exc:
            raise StoreError(f"cannot write to baton home {home}: {exc.strerror or exc}") from None
        path = home / DB_NAME
        db = None
        try:
            logs.create_private(path)
            for suffix in ("-wal", "-shm", "-journal"):
                logs.refuse_link(Path(f"{path}{suffix}"))
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            migrations.migrate(db)
        except (sqlite3.Error, migrations.SchemaError, OSError) as exc:
            if db is not None:
                db.close()
            raise open_error(path, exc) from None
        except StoreError:
            if db is not None:
                db.close()
            raise
        for suffix in ("-wal", "-shm"):
            extra = Path(f"{path}{suffix}")
            try:
                os.close(logs.open_private(extra, os.O_RDONLY))
            except FileNotFoundError:
                pass
            except OSError as exc:
                db.close()
                raise open_error(extra, exc) from None
        return cls(home, db)

    @classmethod
    def open_read(cls, home: Path | None = None) -> Store:
        """Open the history for reading: normally as :meth:`open` does (so dead runs are
        marked interrupted), but on a read-only or full home read-only (nothing is
        created, migrated or marked); an absent history reads as empty."""
        home = logs.resolve_home(home)
        if os.access(home, os.W_OK):
            try:
                return cls.open(home)
            except UnsafePathError:
                raise
            except StoreError:
                pass  # read instead
        try:
            os.stat(home)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot read baton home {home}: {exc.strerror or exc}") from None
        logs.check_private(home, link_ok=True)
        for sub in ("logs", "locks"):
            logs.check_private(home / sub)
        path = home / DB_NAME
        if not os.path.lexists(path):
            empty = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            migrations.migrate(empty)
            return cls(home, empty)
        for suffix in ("", "-wal", "-shm", "-journal"):
            logs.refuse_link(Path(f"{path}{suffix}"))
        uri = "file:" + quote(str(path), safe="/")
        error: BaseException | None = None
        for mode in ("mode=ro", "immutable=1"):  # immutable: no -shm can be made here
            db = None
            try:
                db = sqlite3.connect(f"{uri}?{mode}", uri=True, isolation_level=None,
                                     check_same_thread=False)
                version = migrations.version_of(db)
                if version is not None and version < migrations.CURRENT:
                    db.close()
                    raise StoreError(f"{path} was written by an older baton (schema "
                                     f"{version}); open it once with write access to upgrade")
                if version is None:  # an empty file: an empty history
                    db.close()
                    db = sqlite3.connect(":memory:", isolation_level=None,
                                         check_same_thread=False)
                    migrations.migrate(db)
                store = cls(home, db)
                store.read_only = True
                return store
            except (sqlite3.Error, migrations.SchemaError) as exc:
                if db is not None:
                    db.close()
                error = exc
        assert error is not None
        raise open_error(path, error) from None

    @property
    def _db(self) -> sqlite3.Connection:
        return self.database.connection

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing

    def record(self, run: Run, on_error: Any = None) -> Recorder:
        """Store ``run`` and every event it emits from now on; locks the run.

        If this process already holds the run's lock (``acquire_run_lock``), it is reused
        and stays held after the recorder closes; otherwise the recorder takes the lock
        and releases it on ``close()``.
        """
        from console.store.recorder import Recorder

        return Recorder(self.database, self.home, self.machine, run, on_error=on_error)

    def acquire_run_lock(self, run_id: str) -> logs.RunLock:
        """Lock a run for this process; :class:`LiveRunError` if another process has it."""
        return logs.acquire_run_lock(run_id, self.home)

    def is_live(self, run_id: str) -> bool:
        return logs.is_live(run_id, self.home)

    def mark_interrupted(self, run_id: str, reason: str = "the console stopped while it ran",
                         now: float | None = None) -> list[tuple[str, str]]:
        """After a crash: running/retrying tasks (and their open attempts) become
        ``interrupted``, and the run too. Returns the (step, host) of those tasks.

        Refused while another process holds the run's lock."""
        run_id = self.resolve(run_id)
        if logs.held_here(run_id, self.home) is None and self.is_live(run_id):
            raise LiveRunError(f"run {run_id} is live in another process; cannot mark it "
                               f"interrupted")
        now = time.time() if now is None else now
        return interrupt.mark(self.database, run_id, reason, now)

    def reap_dead(self, run_id: str | None = None) -> list[str]:
        """Mark ``interrupted`` every ``running`` or ``paused`` run (or just ``run_id``)
        whose owner is gone (see :func:`console.store.dead.reap`); none on a read-only
        store, which shows such runs interrupted without writing."""
        from console.store import dead

        return [] if self.read_only else dead.reap(self.database, self.home, self.machine,
                                                    run_id)

    def owner_gone(self, run_id: str, machine: str | None) -> bool:
        """The run's lock is free (and it was recorded on this machine): its owner died."""
        if machine not in (None, self.machine) or logs.held_here(run_id, self.home):
            return False
        return not self.is_live(run_id)

    def _shown_state(self, run_id: str, state: str, machine: str | None) -> str:
        """SQL ``baton_state``: the state a command shows. On a read-only store a live
        state whose owner is gone reads ``interrupted`` (a writable one was reaped)."""
        if self.read_only and state in (RunState.RUNNING, RunState.PAUSED) and \
                self.owner_gone(run_id, machine):
            return str(RunState.INTERRUPTED)
        return state

    def prune(self, older_than: float, now: float | None = None) -> int:
        """Delete runs that started more than ``older_than`` seconds ago, with their logs.

        Live runs are kept. Returns how many runs were deleted."""
        cutoff = (time.time() if now is None else now) - older_than
        with self.database.guard() as db:
            ids = [row[0] for row in db.execute(
                "SELECT id FROM runs WHERE coalesce(started, 0) < ?", (cutoff,))]
            ids = [run_id for run_id in ids if not self.is_live(run_id)]
            db.execute("BEGIN IMMEDIATE")
            for table, column in _RUN_TABLES:
                db.executemany(f"DELETE FROM {table} WHERE {column} = ?",
                               [(run_id,) for run_id in ids])
            db.execute("DELETE FROM definitions WHERE digest NOT IN "
                       "(SELECT digest FROM runs WHERE digest IS NOT NULL "
                       "UNION SELECT digest FROM attempts WHERE digest IS NOT NULL)")
            db.execute("COMMIT")
        for run_id in ids:
            shutil.rmtree(self.home / "logs" / run_id, ignore_errors=True)
            logs.lock_path(self.home, run_id).unlink(missing_ok=True)
        return len(ids)

    # ------------------------------------------------------------------ reading

    def runs(self, workflow: str | None = None, status: str | None = None,
             since: float | None = None, limit: int | None = None,
             matching: str | None = None) -> list[RunSummary]:
        """Past runs, newest first. ``workflow`` matches the name or the file path exactly;
        ``matching`` (what an operator types: ``baton runs --workflow disk``) matches any
        part of the name or of the file name, ignoring case; ``status`` is a run state;
        ``since`` a start time (epoch seconds)."""
        from console.store.records import RunSummary

        self.reap_dead()
        where: list[str] = []
        args: list[object] = []
        shown = "baton_state(id, state, host)"
        if workflow is not None:
            where.append("(workflow = ? OR path = ?)")
            args += [workflow, workflow]
        if matching is not None:
            where.append("baton_matches(workflow, path, ?)")
            args.append(matching.casefold())
        if status is not None:
            if status not in RunState._value2member_map_:
                known = ", ".join(s.value for s in RunState)
                raise ValueError(f"unknown status '{status}' (one of: {known})")
            where.append(f"{shown} = ?")
            args.append(status)
        if since is not None:
            where.append("started >= ?")
            args.append(since)
        sql = f"SELECT {_SUMMARY.replace('state', shown)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self.database.guard() as db:
            return [RunSummary(*row) for row in db.execute(sql, args)]

    def resolve(self, prefix: str) -> str:
        """The full id of the run whose id starts with ``prefix`` (unique), else StoreError."""
        prefix = prefix.strip()
        if not prefix:
            raise StoreError("no run id given")
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self.database.guard() as db:
            ids = [row[0] for row in db.execute(
                "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT 6",
                (pattern,))]
        if prefix in ids:
            return prefix
        if not ids:
            raise StoreError(f"no run '{prefix}' in {self.db_path}")
        if len(ids) > 1:
            shown = ", ".join(ids[:5]) + (", …" if len(ids) > 5 else "")
            raise StoreError(f"run id '{prefix}' is ambiguous: {shown}")
        return ids[0]

    def load(self, run_id: str) -> StoredRun:
        """One run with its tasks, attempts, actions, events and definitions (id prefix ok)."""
        from console.store.records import (
            ActionRecord,
            AttemptRecord,
            EventRecord,
            RunRecord,
            StoredRun,
            TaskRecord,
            reload_prefixes,
        )

        run_id = self.resolve(run_id)
        self.reap_dead(run_id)
        with self.database.guard() as db:
            summary = _SUMMARY.replace("state", "baton_state(id, state, host)")
            row = db.execute(f"SELECT {summary}, digest, params, host, pid, options "
                             "FROM runs WHERE id = ?", (run_id,)).fetchone()
            # One tuple: mypy reads a starred slice as possibly filling every field.
            run = RunRecord(*(*row[:8], _json(row[8]) or {}, row[9], row[10],
                              _json(row[11]) or {}))
            tasks = [TaskRecord(*(*r[:8], _json(r[8], None))) for r in db.execute(
                "SELECT step, host, state, attempt, exit_code, reason, started, ended, outputs "
                "FROM tasks WHERE run_id = ? ORDER BY position, step, host", (run_id,))]
            order = {(t.step, t.host): i for i, t in enumerate(tasks)}
            attempts = sorted(
                (AttemptRecord(*r) for r in db.execute(
                    "SELECT step, host, number, started, ended, exit_code, signal, state, reason,"
                    " command, digest FROM attempts WHERE run_id = ?", (run_id,))),
                key=lambda a: (order.get((a.step, a.host), len(order)), a.number))
            actions = [ActionRecord(*r) for r in db.execute(
                "SELECT time, user, action, step, host, reason FROM actions WHERE run_id = ? "
                "ORDER BY time, id", (run_id,))]
            events = [EventRecord(seq, t, kind, _json(payload)) for seq, t, kind, payload in
                      db.execute("SELECT seq, time, type, payload FROM events WHERE run_id = ? "
                                 "ORDER BY seq", (run_id,))]
            digests = {run.digest} | {a.digest for a in attempts}
            digests |= {e.payload.get("digest") for e in events
                        if e.type == "reload" and isinstance(e.payload, dict)}
            digests.discard(None)
            definitions = {}
            for digest in sorted(d for d in digests if d):
                text = db.execute("SELECT text FROM definitions WHERE digest = ?",
                                  (digest,)).fetchone()
                if text is not None:
                    definitions[digest] = text[0]
            for prefix in reload_prefixes(actions):  # runs stored before reload events
                if any(d.startswith(prefix) for d in definitions):  # named their digest
                    continue
                row = db.execute("SELECT digest, text FROM definitions WHERE substr(digest, "
                                 "1, ?) = ? LIMIT 1", (len(prefix), prefix)).fetchone()
                if row is not None:
                    definitions[row[0]] = row[1]
        if self.read_only and run.state == RunState.INTERRUPTED:
            from console.store import dead

            tasks, attempts = dead.shown_interrupted(tasks, attempts, run.pid)
        return StoredRun(run, tasks, attempts, actions, events, definitions)

    def definition(self, digest: str) -> str | None:
        with self.database.guard() as db:
            row = db.execute("SELECT text FROM definitions WHERE digest = ?",
                             (digest,)).fetchone()
        return None if row is None else row[0]

    def log_path(self, run_id: str, step: str, host: str, attempt: int) -> Path:
        return logs.log_path(self.home, run_id, step, host, attempt)

    def stderr_tail(self, run_id: str, step: str, host: str, attempt: int,
                    count: int = 10) -> list[str]:
        """The last ``count`` stderr lines of one attempt (masked when written)."""
        return logs.tail_lines(logs.log_path(self.home, run_id, step, host, attempt,
                                             "stderr"), count)

    def read_log(self, run_id: str, step: str, host: str, attempt: int) -> str:
        """The output of one attempt ("" when it printed nothing)."""
        try:
            return self.log_path(run_id, step, host, attempt).read_text(encoding="utf-8",
                                                                        errors="replace")
        except FileNotFoundError:
            return ""


_SUMMARY = "id, workflow, path, state, user, started, ended"
_RUN_TABLES = (("runs", "id"), ("tasks", "run_id"), ("attempts", "run_id"),
               ("processes", "run_id"), ("events", "run_id"), ("actions", "run_id"))


def _matches(name: str | None, path: str | None, needle: str) -> bool:
    """``needle`` (casefolded) is part of the workflow's name or of its file's name.
    (SQLite's lower() knows only ASCII: names are folded as Python folds them.)"""
    return needle in (name or "").casefold() or needle in os.path.basename(path or "").casefold()


def _json(text: str | None, default: Any = None) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _probe(home: Path) -> None:
    """Fail early, with the OS's words, when the home cannot take a write. The probe is
    created exclusively (a planted file or symlink of that name is removed, never
    written through)."""
    probe = home / f".write-test-{os.getpid()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | logs.NOFOLLOW | logs.CLOEXEC
    try:
        fd = os.open(probe, flags, logs.FILE_MODE)
    except FileExistsError:
        probe.unlink()  # removes a planted link itself, not its target
        fd = os.open(probe, flags, logs.FILE_MODE)
    try:
        os.write(fd, b"\0" * 4096)
        os.fsync(fd)
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)
