"""The history's SQLite connection and the small API the store's writers share.

:class:`Database` is what :class:`~console.store.store.Store`, the
:class:`~console.store.recorder.Recorder` and the dead-run reaper
(:mod:`console.store.dead`) use to talk to ``history.sqlite``: :meth:`Database.guard`
turns SQLite failures into a one-line :class:`StoreError` naming the file, and
:meth:`Database.next_seq` numbers a run's next event. It imports neither the store nor the
recorder, so neither has to reach into the other's private state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from console.store import migrations
from console.store.errors import StoreError

__all__ = ["Database", "open_error"]


class Database:
    """One open ``history.sqlite`` (autocommit mode: writers open their own transactions
    with ``BEGIN IMMEDIATE``)."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self.connection = connection

    @contextmanager
    def guard(self) -> Iterator[sqlite3.Connection]:
        """The connection; a SQLite failure inside rolls back an open transaction and
        becomes a one-line :class:`StoreError` naming the file."""
        db = self.connection
        try:
            yield db
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise open_error(self.path, exc) from None

    def next_seq(self, run_id: str) -> int:
        """The sequence number of the run's next event."""
        row = self.connection.execute("SELECT max(seq) FROM events WHERE run_id = ?",
                                      (run_id,)).fetchone()
        return 1 if row[0] is None else row[0] + 1

    def close(self) -> None:
        self.connection.close()


def open_error(path: Path, exc: BaseException) -> StoreError:
    """The one line a failure to open or use ``path`` reads as."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, OSError):
        return StoreError(f"cannot write {path}: {exc.strerror or text}")
    if isinstance(exc, migrations.SchemaError) and "newer" in text:
        return StoreError(f"{path} was {text}; upgrade baton")
    if isinstance(exc, migrations.SchemaError) or any(
            word in text for word in ("not a database", "malformed", "corrupt")):
        return StoreError(f"{path} is not a valid baton database ({text}); move it aside")
    return StoreError(f"cannot use {path}: {text}")
