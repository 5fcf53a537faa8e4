"""Running a task once the scheduler launches it (Dagu's ``node.go``): each attempt is
rendered, turned into a request, run with its timeout (or as a health poll) and finished
into a task state; a failed attempt within ``retries`` waits out its delay and goes again.

:class:`Attempts` is handed the run's core and a ``spawn`` that owns the asyncio task of
each launched task (``Run.execute``'s task group), kept on :attr:`Task.attempt_loop`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from console.engine.command import execute_command, request
from console.engine.core import RunCore
from console.engine.events import TaskState
from console.engine.outputs import Outputs, TailBuffer
from console.engine.poll import run_polls
from console.engine.shown import shown_template_error
from console.engine.task import Attempt, Task
from console.executors.base import ExitStatus
from console.model import templating
from console.model.durations import retry_delay
from console.model.workflow import Step

__all__ = ["Attempts", "seconds"]

S = TaskState

Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


def seconds(value: float) -> str:
    return f"{value:g}s"


class Attempts:
    def __init__(self, run: RunCore, spawn: Spawn) -> None:
        self.run = run
        self.spawn = spawn

    def start(self, task: Task, step: Step) -> None:
        """Launch ``task`` now (the scheduler has taken it off the ready list)."""
        agenda = self.run.agenda
        task.approved = False
        task.cancel_requested = None
        agenda.running += 1
        agenda.running_by_step[step.id] += 1
        task.attempt_loop = self.spawn(self._run_task(task, step))

    async def _run_task(self, task: Task, step: Step) -> None:
        run = self.run
        try:
            while True:
                retry_in = await self._attempt(task, step)
                if retry_in is None:
                    break
                try:
                    await asyncio.sleep(retry_in)
                except asyncio.CancelledError:
                    if task.state is S.RETRYING and task.key in run.interrupting:
                        run.set_state(task, S.INTERRUPTED, run.interrupting[task.key])
                    elif task.state is S.RETRYING:
                        run.set_state(task, S.CANCELLED, "cancelled while waiting to retry")
                    break
                if task.state is not S.RETRYING:
                    break
                step = run.workflow.steps.get(task.step, step)
        finally:
            run.agenda.running -= 1
            run.agenda.running_by_step[task.step] -= 1
            task.attempt_loop = None
            task.execution = None
            run.wake.set()

    async def _attempt(self, task: Task, step: Step) -> float | None:
        """Run one attempt; return the delay before an automatic retry, or None."""
        run = self.run
        task.attempt += 1
        task.exit_code = None
        now = run.clock()
        if task.started is None or task.state is not S.RETRYING:
            task.started = now
        task.ended = None
        attempt = Attempt(task.attempt, now, run.workflow.digest)
        task.attempts.append(attempt)
        sources = [(step.run or "", True), *((v, False) for v in step.env.values()),
                   (step.cwd or "", False)]  # in the order they are rendered
        try:
            with templating.trace_values() as values:
                command = self.render(task, step)
                req = request(run, task, step, command)
            attempt.command = run.shown(task, step, command)
        except templating.TemplateError as exc:
            message = shown_template_error(exc, sources, run.context(task),
                                           run.placeholders, run.masker)
            return self.finish(task, step, attempt, None, f"template error: {message}")
        if values and run.masker:
            run.mask_derived(task, sources, values)
        attempt.tag = req.tag
        run.set_state(task, S.RUNNING, None)
        task.stdout_tail = TailBuffer()
        # One loop pass before launching: what subscribers scheduled for the end of this
        # pass (the store's commit of ``running``) happens before the side effect starts.
        await asyncio.sleep(0)
        if run.halted:  # that commit failed: the side effect must not start unrecorded
            return self.finish(task, step, attempt,
                               ExitStatus(None, error=f"not started: {run.halted}"), None)
        if step.poll is not None:  # a health poll: many runs, one attempt (engine/poll.py)
            return self.finish(task, step, attempt,
                               *await run_polls(run, task, step, attempt, req))
        status, timed_out = await execute_command(run, task, step, req, step.timeout)
        reason = None
        if timed_out:
            reason = f"timed out after {seconds(step.timeout or 0)}"
        return self.finish(task, step, attempt, status, reason)

    def render(self, task: Task, step: Step) -> str:
        source = step.run or ""
        if not templating.needs_render(source):
            return source
        return templating.render_command(source, self.run.context(task))

    def finish(self, task: Task, step: Step, attempt: Attempt, status: ExitStatus | None,
               reason: str | None) -> float | None:
        """The attempt's outcome as the task's state; the retry delay when it goes again."""
        run = self.run
        attempt.ended = run.clock()
        if status is not None:
            attempt.exit_code = status.exit_code
            attempt.signal = status.signal
            task.exit_code = status.exit_code
            if reason is None:
                if status.error:
                    reason = status.error
                elif status.signal:
                    reason = f"killed by signal {status.signal}"
                elif status.exit_code:
                    reason = f"exit {status.exit_code}"
        if reason is not None:  # the attempt's record is written from it too: mask it here
            reason = run.masker.mask(reason)  # (a cwd error names the rendered cwd)
        ok = status is not None and status.ok and reason is None
        tail = task.stdout_tail.value() if task.stdout_tail is not None else ""
        task.stdout_tail = None
        if task.cancel_requested:
            state = S.INTERRUPTED if task.key in run.interrupting else S.CANCELLED
            reason = run.masker.mask(task.cancel_requested)
        elif ok:
            state = S.SUCCEEDED
        elif task.auto_retries < step.retries and not run.closing \
                and not run.is_excluded(task.host):
            task.auto_retries += 1
            delay = retry_delay(step.retry_delay, step.retry_backoff, task.auto_retries)
            attempt.state, attempt.reason = S.FAILED, reason
            task.outputs = Outputs("failed", task.exit_code, tail)
            run.set_state(task, S.RETRYING, f"{reason}; retry {task.auto_retries}/"
                                            f"{step.retries} in {seconds(delay)}")
            return delay
        else:
            state = S.FAILED
            if step.continue_on_error and reason:
                reason = f"{reason} (ignored: continue_on_error)"
        attempt.state, attempt.reason = state, reason
        task.outputs = Outputs(str(state), task.exit_code, tail)
        run.set_state(task, state, reason)
        return None
