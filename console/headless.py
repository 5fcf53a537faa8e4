"""`baton run FILE --headless` and `baton resume RUN --headless`: drive a Run without
the console.

Records the run in the store, subscribes a printer (human or JSON), answers gates and
manual steps on a terminal (one prompt at a time), and a failed undo (retry, skip or
stop), applies file changes with ``--watch``,
turns Ctrl-C into :meth:`Run.interrupt` and maps the final run state to the exit code of
SPEC section 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import sys
from collections import deque
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from console.engine.events import Event, RunState, TaskEvent, TaskState
from console.engine.rollback import failed_undos
from console.engine.run import ActionError, Run
from console.exitcodes import EXIT_FAILED, EXIT_HISTORY, EXIT_INTERRUPTED, EXIT_OK
from console.model.workflow import LOCAL
from console.printers import HumanPrinter, JsonPrinter, format_summary, task_label, use_color
from console.sanitize import sanitize

if TYPE_CHECKING:
    from console.store import Store, StoreError
    from console.store.recorder import Recorder


_MAX_LABEL = 32


class Prompter:
    """Asks the operator on the terminal about gates, manual steps and failed undos, one
    at a time.

    stdin is read through the event loop (``add_reader``), not a thread, so an
    unanswered prompt never keeps the process alive after Ctrl-C.
    """

    def __init__(self, run: Run, stdin_fd: int, err: IO[str], *, echo_reason: bool = False) -> None:
        self._run = run
        self._echo_reason = echo_reason
        self._fd = stdin_fd
        self._err = err
        self._queue: deque[tuple[str, str]] = deque()
        self._wakeup = asyncio.Event()
        self._buffer = b""
        self._eof = False
        self._worker: asyncio.Task[None] | None = None

    def __call__(self, event: Event) -> None:
        if type(event) is not TaskEvent:
            return
        if event.state.waiting:
            self._queue.append((event.step, event.host))
            self._wakeup.set()
        elif event.state is TaskState.UNDO_FAILED and self._run.rollback is not None \
                and failed_undos(self._run, event.step, event.host):
            # SPEC section 5: it holds back what follows it until the operator retries or
            # skips it; the rollback waits for the answer (before it could stop)
            self._run.rollback.asking()
            self._queue.append((event.step, event.host))
            self._wakeup.set()

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._serve())

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None

    async def _serve(self) -> None:
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            step, host = self._queue.popleft()
            task = self._run.tasks.get((step, host))
            if task is not None and task.state is TaskState.UNDO_FAILED:
                await self._ask_undo(step, host, task.reason)
                continue
            if task is None or not task.state.waiting:
                continue  # answered or cancelled meanwhile
            try:
                await self._ask(step, host, task.state, task.reason)
            except ActionError as exc:
                self._say(f"baton: {exc}")

    async def _ask_undo(self, step: str, host: str, reason: str | None) -> None:
        """A failed undo: retry it, skip it (what it holds back goes on), or stop."""
        rollback = self._run.rollback
        try:
            if rollback is None or not failed_undos(self._run, step, host):
                return  # retried or skipped meanwhile
            on = "" if host == LOCAL else f" on {host}"
            why = f" ({reason})" if reason else ""
            answer = (await self._read(
                f"The undo of '{step}'{on} failed{why}: retry it, skip it, or stop the "
                f"rollback? [r/s/N] ")).strip().lower()
            if not failed_undos(self._run, step, host):
                return
            if answer in ("r", "retry"):
                self._run.retry(step, host)
            elif answer in ("s", "skip"):
                self._run.skip(step, host, "skipped at the prompt")
        except ActionError as exc:
            self._say(f"baton: {exc}")
        finally:
            if rollback is not None:
                rollback.answered()

    async def _ask(self, step: str, host: str, state: TaskState, reason: str | None) -> None:
        on = "" if host == LOCAL else f" on {host}"
        definition = self._run.workflow.steps[step]
        if reason and self._echo_reason:  # the human printer already showed it
            self._say(f"{task_label(step, host)}: {reason}")
        if state is TaskState.AWAITING_OPERATOR:
            description = self._run.step_description(step, host).strip()
            if description:  # what the operator is asked to do, rendered
                self._say(f"{task_label(step, host)}: {description}")
            answer = await self._read(f"Mark '{step}'{on} done? [y/N] ")
            if self._current(step, host, state):
                if _yes(answer):
                    self._run.done(step, host)
                else:
                    self._run.skip(step, host, "not done (answered no at the prompt)")
        elif definition.dangerous:
            answer = await self._read(f"Step '{step}' is dangerous: type '{step}' to approve{on}: ")
            if self._current(step, host, state):
                if answer.strip() == step:
                    self._run.approve(step, host)
                else:
                    self._run.deny(step, host, "not confirmed at the prompt")
        else:
            answer = await self._read(f"Approve step '{step}'{on}? [y/N] ")
            if self._current(step, host, state):
                if _yes(answer):
                    self._run.approve(step, host)
                else:
                    self._run.deny(step, host, "denied at the prompt")

    async def ask_interrupted(self) -> None:
        """After a resume: ask, task by task, whether to re-run what was interrupted."""
        for task in self._run.tasks_in_order():
            if task.state is not TaskState.INTERRUPTED:
                continue
            on = "" if task.host == LOCAL else f" on {task.host}"
            answer = await self._read(
                f"'{task.step}'{on} was running when baton stopped; run it again? [y/N] ")
            if _yes(answer) and task.state is TaskState.INTERRUPTED:
                self._run.retry(task.step, task.host)

    def _current(self, step: str, host: str, state: TaskState) -> bool:
        task = self._run.tasks.get((step, host))
        return task is not None and task.state is state

    def _say(self, text: str) -> None:
        self._err.write(sanitize(text) + "\n")
        self._err.flush()

    async def _read(self, prompt: str) -> str:
        self._err.write(sanitize(prompt))
        self._err.flush()
        if self._eof:
            self._say("")
            return ""
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[str] = loop.create_future()

        def readable() -> None:
            try:
                data = os.read(self._fd, 4096)
            except OSError:
                data = b""
            if not data:
                self._eof = True
                if not answered.done():
                    answered.set_result(self._buffer.decode(errors="replace"))
                self._buffer = b""
                return
            self._buffer += data
            if b"\n" in self._buffer and not answered.done():
                line, _, self._buffer = self._buffer.partition(b"\n")
                answered.set_result(line.decode(errors="replace"))

        if b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            return line.decode(errors="replace")
        loop.add_reader(self._fd, readable)
        try:
            return await answered
        finally:
            loop.remove_reader(self._fd)


def _yes(answer: str) -> bool:
    return answer.strip().lower() in ("y", "yes")


def _binary(stream: Any) -> IO[bytes]:
    """The binary side of a text stream (sys.stdout), or the stream itself.

    Under ``python -u`` / PYTHONUNBUFFERED that side is a raw file, whose ``write`` may
    take only part of what the printer hands it once per pass (a pipe that is full). A
    buffered writer on a duplicate of the descriptor writes it all.
    """
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        return stream
    stream.flush()
    if isinstance(buffer, io.RawIOBase):
        return open(os.dup(buffer.fileno()), "wb", buffering=1 << 16)
    return buffer


async def execute_headless(
    run: Run,
    *,
    json_mode: bool = False,
    interactive: bool = False,
    out: Any = None,
    err: IO[str] | None = None,
    stdin_fd: int = 0,
    store: Store | None = None,
    watch: Path | None = None,
    resumed: bool = False,
    printing: bool = True,
) -> int:
    """Run ``run`` to the end, printing events; returns the exit code.

    ``store``: record the run (the printer commits the recorder before any output
    leaves, so whatever it reports is already durable). ``watch``: apply changes of
    that workflow file to the live run. ``resumed``: the run was rebuilt with
    :meth:`Run.restore`; on a terminal the operator is asked about interrupted tasks.
    ``printing=False``: print no events (a runner: its history and its socket carry
    them, and nobody reads its stdout); warnings and errors still go to ``err``.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    binary = _binary(out)
    tty = use_color(out)
    recorder = None
    if store is not None:
        def history_failed(error: StoreError) -> None:
            _say(err, f"baton: error: {error}; no new task starts")
            run.halt(str(error))

        recorder = store.record(run, on_error=history_failed)
    code = EXIT_FAILED
    try:
        from console.runner.server import listening  # `baton attach` (docs/attach-protocol.md)

        async with listening(run, store, recorder):
            code = await _drive(run, recorder, json_mode=json_mode,
                                interactive=interactive, binary=binary, tty=tty, err=err,
                                stdin_fd=stdin_fd, watch=watch, resumed=resumed,
                                printing=printing)
    finally:
        if recorder is not None:
            recorder.close()
            if recorder.error is not None:
                _say(err, f"baton: error: run {run.id} could not be recorded ("
                     f"{recorder.error}); it is not reported as a success, and tasks "
                     f"whose result was not recorded are not shown as done")
                code = EXIT_HISTORY
        if binary is not out and binary is not getattr(out, "buffer", None):
            with contextlib.suppress(OSError):  # our own writer on a dup of stdout
                binary.close()
    return code


async def _drive(run: Run, recorder: Recorder | None, *, json_mode: bool, interactive: bool,
                 binary: IO[bytes], tty: bool, err: IO[str], stdin_fd: int,
                 watch: Path | None, resumed: bool, printing: bool = True) -> int:
    # Nothing is printed before the store holds it: the recorder commits first.
    commit = None
    if recorder is not None:
        def commit() -> bool:
            recorder.flush()
            return recorder.error is None
    if json_mode:
        printer: HumanPrinter | JsonPrinter = JsonPrinter(
            binary, flush_each=tty, mask=run.masker.mask, before_output=commit
        )
    else:
        width = min(_MAX_LABEL, max((len(task_label(*k)) for k in run.tasks), default=0))
        printer = HumanPrinter(
            binary, color=tty, flush_each=tty, width=width, mask=run.masker.mask,
            before_output=commit,
        )
        if recorder is not None:
            verb = "resuming run" if resumed else "run"
            _say(err, f"{verb} {run.id} (baton show {run.id})")
    for warning in run.secret_warnings:
        _say(err, f"baton: warning: {warning}")
    if printing:
        run.subscribe(printer)
    prompter = None
    if interactive:
        prompter = Prompter(run, stdin_fd, err, echo_reason=json_mode)
        run.subscribe(prompter)
        prompter.start()
        if resumed and run.options.approval != "auto":
            await prompter.ask_interrupted()

    loop = asyncio.get_running_loop()
    signals: list[int] = []

    def on_signal(signum: int) -> None:
        signals.append(signum)
        if len(signals) == 1:
            _say(err, "\nbaton: interrupted, stopping every running task…")
        run.interrupt("stopped by Ctrl-C" if signum == signal.SIGINT else
                      f"stopped by {signal.Signals(signum).name}")

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    watcher = loop.create_task(_watch(run, watch, err)) if watch is not None else None
    try:
        state = await run.execute()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        if prompter is not None:
            await prompter.close()

    total = (run.ended - run.started) if run.started and run.ended else None
    if recorder is not None and recorder.error is not None:
        printer.flush()  # dropped: the history does not hold what it would report
    elif not printing:
        pass  # no summary either (a runner: nobody reads its stdout)
    elif isinstance(printer, JsonPrinter):  # json_mode
        printer.flush()
        err.write(format_summary(run.tasks_in_order(), state, total,
                                 color=use_color(err), mask=run.masker.mask))
        err.flush()
    else:
        printer.text(format_summary(run.tasks_in_order(), state, total,
                                    color=tty, mask=run.masker.mask).rstrip("\n"))
        printer.flush()
    left = [t for t in run.tasks_in_order() if t.state is TaskState.INTERRUPTED]
    if resumed and left:
        noun = "task was" if len(left) == 1 else "tasks were"
        _say(err, f"baton: {len(left)} interrupted {noun} not re-run ("
             f"{', '.join(t.label for t in left)}); use --yes to retry interrupted tasks: "
             f"baton resume {run.id} --headless --yes")
    if signals:
        if recorder is not None:
            _say(err, f"baton: run {run.id} stopped; continue it with: "
                 f"baton resume {run.id} --headless --yes")
        return 128 + signals[0] if signals[0] != signal.SIGINT else EXIT_INTERRUPTED
    return EXIT_OK if state is RunState.SUCCEEDED else EXIT_FAILED


async def _watch(run: Run, path: Path, err: IO[str]) -> None:
    """Hot reload for ``--watch``; the printers show each reload (a ReloadEvent)."""
    from console.workflow_watch import watch

    try:
        await watch(run, path)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a broken watcher must not end the run
        text = " ".join(str(exc).split()) or type(exc).__name__
        _say(err, f"baton: --watch stopped: {text}")


def _say(err: IO[str], text: str) -> None:
    err.write(sanitize(text) + "\n")
    err.flush()


def run_headless(run: Run, **kwargs: Any) -> int:
    """Synchronous entry point for the CLI (owns the event loop)."""
    return asyncio.run(execute_headless(run, **kwargs))
