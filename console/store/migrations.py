"""The SQLite schema of the run history and the steps that bring older files up to date.

``schema_version`` holds one row, the version of the file. A new file gets the current
schema directly; an older one runs every migration after its version, all in one
transaction, so a crash mid-migration leaves the file at its previous version.

Version 1 (the first release) had no ``attempts.digest``, no ``definitions`` table and no
index of runs by state. Version 2 adds them; attempts migrated from version 1 get the
digest of their run. Version 3 adds ``processes``: the identity of each attempt's
processes (its ``BATON_ATTEMPT`` tag, the shell's pid, start time and session id).
"""

from __future__ import annotations

import sqlite3

CURRENT = 3

SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    path TEXT,
    digest TEXT,
    state TEXT NOT NULL,
    user TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    started REAL,
    ended REAL,
    host TEXT,
    pid INTEGER,
    options TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE tasks (
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    host TEXT NOT NULL,
    position INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    reason TEXT,
    started REAL,
    ended REAL,
    outputs TEXT,
    PRIMARY KEY (run_id, step, host)
) WITHOUT ROWID;
CREATE TABLE attempts (
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    host TEXT NOT NULL,
    number INTEGER NOT NULL,
    started REAL,
    ended REAL,
    exit_code INTEGER,
    signal INTEGER,
    state TEXT,
    reason TEXT,
    command TEXT,
    digest TEXT,
    PRIMARY KEY (run_id, step, host, number)
) WITHOUT ROWID;
CREATE TABLE events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE actions (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    time REAL NOT NULL,
    user TEXT NOT NULL,
    action TEXT NOT NULL,
    step TEXT,
    host TEXT,
    reason TEXT
);
CREATE TABLE definitions (
    digest TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    path TEXT
);
CREATE TABLE processes (
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    host TEXT NOT NULL,
    number INTEGER NOT NULL,
    tag TEXT,
    pid INTEGER,
    started REAL,
    sid INTEGER,
    PRIMARY KEY (run_id, step, host, number)
) WITHOUT ROWID;
CREATE INDEX runs_by_started ON runs (started);
CREATE INDEX runs_by_workflow ON runs (workflow, started);
CREATE INDEX runs_by_state ON runs (state, started);
CREATE INDEX actions_by_run ON actions (run_id, time);
"""

MIGRATIONS: dict[int, str] = {
    # 1 -> 2: definition hash per attempt, the text of every workflow version used
    1: """
    ALTER TABLE attempts ADD COLUMN digest TEXT;
    UPDATE attempts SET digest = (SELECT runs.digest FROM runs WHERE runs.id = attempts.run_id);
    CREATE TABLE definitions (digest TEXT PRIMARY KEY, text TEXT NOT NULL, path TEXT);
    CREATE INDEX runs_by_state ON runs (state, started);
    """,
    # 2 -> 3: the process identity of each attempt (tag, pid, start time, session), so a
    # resume can find and end what an interrupted attempt left running
    2: """
    CREATE TABLE processes (run_id TEXT NOT NULL, step TEXT NOT NULL, host TEXT NOT NULL,
        number INTEGER NOT NULL, tag TEXT, pid INTEGER, started REAL, sid INTEGER,
        PRIMARY KEY (run_id, step, host, number)) WITHOUT ROWID;
    """,
}


class SchemaError(Exception):
    """The file is an SQLite database but not one baton can use."""


def version_of(db: sqlite3.Connection) -> int | None:
    """The schema version, or None for an empty file."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return None
    if "schema_version" not in tables:
        raise SchemaError("no schema_version table")
    row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    if row is None or row[0] is None:
        raise SchemaError("empty schema_version table")
    return int(row[0])


def migrate(db: sqlite3.Connection) -> int:
    """Create or upgrade the schema of an autocommit connection; return the old version
    (0 for a new file).

    Two processes may open a new (or older) file at the same moment: a run starting and
    a ``baton runs`` looking at it. The work happens under SQLite's write lock, taken
    before the version is read, so the second waits for the first (the busy timeout) and
    then finds the schema done; it used to create the tables again and fail ("table
    schema_version already exists")."""
    version = version_of(db)
    if version == CURRENT:
        return version  # the usual case: no write lock taken
    _refuse(version)  # before waiting for a lock a live run of a newer baton may hold
    db.execute("BEGIN IMMEDIATE")
    try:
        version = version_of(db)
        _refuse(version)
        if version is None:
            sql = f"{SCHEMA}INSERT INTO schema_version VALUES ({CURRENT});"
        else:
            sql = "".join(f"{MIGRATIONS[step]}UPDATE schema_version SET version = {step + 1};"
                          for step in range(version, CURRENT))
        for statement in _statements(sql):
            db.execute(statement)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return 0 if version is None else version


def _refuse(version: int | None) -> None:
    """SchemaError for a version this baton cannot upgrade from."""
    if version is not None and version > CURRENT:
        raise SchemaError(f"written by a newer baton (schema {version}, this one knows "
                          f"{CURRENT})")
    if version is not None and version < 1:
        raise SchemaError(f"unknown schema version {version}")


def _statements(sql: str) -> list[str]:
    """The statements of a script, one by one (``executescript`` would commit the open
    transaction first)."""
    statements, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    assert not buffer.strip(), f"unterminated statement: {buffer}"
    return statements
