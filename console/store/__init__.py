"""Durable run history: SQLite (WAL) plus per-attempt log files under ``$BATON_HOME``.

Public API::

    store = Store.open(home=None)            # StoreError: unwritable/full home, corrupt file
    recorder = store.record(run)             # subscribes to run events, takes the run lock
    recorder.flush(); recorder.close()       # close() when the run is over (releases lock)
    store.runs(workflow=None, status=None, since=None, limit=None) -> list[RunSummary]
    store.load(run_id_or_prefix) -> StoredRun   # run, tasks+outputs, attempts, actions,
                                                # events, definition texts
    store.resolve(prefix) -> str             # unique id prefix -> id, else StoreError
    store.mark_interrupted(run_id) -> list[(step, host)]
    store.prune(older_than_seconds) -> int   # deletes runs and their logs (not live ones)
    store.log_path(run_id, step, host, attempt) / store.read_log(...)
    store.acquire_run_lock(run_id) -> RunLock   # LiveRunError "run X is live in process …"

``console.store.show`` renders a StoredRun (table, JSON, Markdown incident timeline);
``console.store.replay`` turns it back into the engine events a console replays.
When each write becomes durable is documented in :mod:`console.store.recorder`.

For: everything durable about runs (rows, log files, run locks), and reading it back.
May import: the standard library, the engine's value types (:mod:`console.engine.events`,
task labels from :mod:`console.engine.task`, step diffs), the model and
:mod:`console.paths`; the run itself only for the checker. Never imports the UI,
Textual, the executors or the front ends (they import the store). Inside, the Store, the
Recorder and the reaper share the :class:`~console.store.database.Database`, not each
other's private state; errors live in :mod:`console.store.errors`.
"""

from typing import TYPE_CHECKING, Any

from console.store.errors import LiveRunError, StoreError
from console.store.logs import RunLock, acquire_run_lock
from console.store.store import Store

if TYPE_CHECKING:
    from console.store.recorder import Recorder
    from console.store.records import (
        ActionRecord,
        AttemptRecord,
        EventRecord,
        RunRecord,
        RunSummary,
        StoredRun,
        TaskRecord,
    )

_RECORDS = ("ActionRecord", "AttemptRecord", "EventRecord", "RunRecord", "RunSummary",
            "StoredRun", "TaskRecord")


def __getattr__(name: str) -> Any:
    """The record types load on first use: a run that only records never needs them; the
    Recorder (and asyncio with it) too: `baton runs` and `show` only read."""
    if name in _RECORDS:
        from console.store import records

        return getattr(records, name)
    if name == "Recorder":
        from console.store.recorder import Recorder

        return Recorder
    raise AttributeError(f"module 'console.store' has no attribute '{name}'")

__all__ = [
    "ActionRecord",
    "AttemptRecord",
    "EventRecord",
    "LiveRunError",
    "Recorder",
    "RunLock",
    "RunRecord",
    "RunSummary",
    "Store",
    "StoreError",
    "StoredRun",
    "TaskRecord",
    "acquire_run_lock",
]
