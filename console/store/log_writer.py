"""Log files written by a thread of their own, so the event loop never waits on the disk.

Creating a file costs 0.5-2 ms on an ordinary ext4 disk (more on a loaded one), and a
fleet-sized run starts an attempt, so creates a log file, for every task: on the event loop
that was most of a keypress's latency. :class:`LogWriter` hands each chunk to one writer
thread, in order, which opens, writes, flushes and closes the files (:class:`LogFiles` does
the work, unchanged). The loop pays a queue put per chunk.

Two ways to push what was handed over to the OS:

- :meth:`LogWriter.flush` asks the thread to flush and returns at once (the recorder's
  once-per-pass flush: the output reaches the OS a moment later, without blocking the loop);
- :meth:`LogWriter.sync` waits until the thread has written and flushed everything handed
  over so far: the barrier of ``Recorder.flush`` (before the headless printer lets a line
  out, before a log file is read) and of :meth:`LogWriter.close`.

A write error of the thread (disk full …) is raised by the next ``flush``/``sync``/``close``
on the loop's side, as :class:`LogFiles` would have raised it at the write.
"""

from __future__ import annotations

import threading
from collections import deque
from queue import SimpleQueue
from typing import Any

from console.store.errors import StoreError
from console.store.logs import LogFiles

_WRITE, _FLUSH, _CLOSE_TASK, _SYNC, _STOP = range(5)


class LogWriter:
    """The :class:`LogFiles` of a run, behind a writer thread (started on first use)."""

    def __init__(self, files: LogFiles) -> None:
        self._files = files
        self._queue: SimpleQueue[tuple[Any, ...]] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._errors: deque[BaseException] = deque()
        self._dirty = False
        self._closed = False

    @property
    def dirty(self) -> bool:
        """Output was handed over since the last flush."""
        return self._dirty

    def write(self, step: str, host: str, attempt: int, text: str,
              stderr: bool = False) -> None:
        """Hand ``text`` over for the attempt's log (``stderr``: its stderr file too)."""
        self._put((_WRITE, step, host, attempt, text, stderr))
        self._dirty = True

    def close_task(self, step: str, host: str) -> None:
        """Close the files of a task whose attempt has ended (after what was handed over)."""
        if self._thread is not None:
            self._put((_CLOSE_TASK, step, host))

    def flush(self) -> None:
        """Ask the thread to push its buffers to the OS; do not wait. Raises the first
        error the thread met since the last call."""
        if self._dirty:
            self._dirty = False
            self._put((_FLUSH,))
        self._raise()

    def sync(self) -> None:
        """Wait until everything handed over is written and flushed to the OS."""
        self._dirty = False
        if self._thread is not None and self._thread.is_alive():
            done = threading.Event()
            self._queue.put((_SYNC, done))
            done.wait()
        self._raise()

    def close(self) -> None:
        """Write what is pending, close every file, stop the thread."""
        if self._closed:
            self._raise()
            return
        self._closed = True
        self._dirty = False
        if self._thread is None:
            self._files.close()
        else:
            self._queue.put((_STOP,))
            self._thread.join()
        self._raise()

    # ------------------------------------------------------------------ internals

    def _put(self, op: tuple[Any, ...]) -> None:
        if self._closed:  # after close (the recorder stops listening first): write here
            self._apply(op)
            self._raise()
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, daemon=True,
                                            name=f"baton-logs-{self._files.run_id}")
            self._thread.start()
        self._queue.put(op)

    def _raise(self) -> None:
        if self._errors:
            error = self._errors.popleft()
            self._errors.clear()  # one report per call, as one failed write raised once
            raise error

    def _apply(self, op: tuple[Any, ...]) -> None:
        files = self._files
        try:
            kind = op[0]
            if kind == _WRITE:
                files.write(op[1], op[2], op[3], op[4], op[5])
            elif kind in (_FLUSH, _SYNC):
                files.flush()
            elif kind == _CLOSE_TASK:
                files.close_task(op[1], op[2])
            elif kind == _STOP:
                files.close()
        except Exception as exc:  # reported on the loop's side; the thread goes on
            self._errors.append(exc if isinstance(exc, (OSError, StoreError))
                                else StoreError(f"cannot write the logs of run "
                                                f"{files.run_id}: {exc}"))

    def _work(self) -> None:
        get = self._queue.get
        while True:
            op = get()
            self._apply(op)
            if op[0] == _SYNC:
                op[1].set()
            elif op[0] == _STOP:
                return
