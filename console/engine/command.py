"""One command of a task, run once on its host: the request (env, cwd, tag), the run
through the executor (a timeout, a cancel, the process identity) and the masked output.

Shared by an attempt (:mod:`console.engine.attempt`), each poll of a health check
(:mod:`console.engine.poll`) and each undo of a rollback (:mod:`console.engine.rollback`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from console.engine.core import RunCore
from console.engine.events import LogEvent
from console.engine.identity import note_started
from console.engine.task import Task
from console.executors.base import CommandRequest, ExitStatus, Stream
from console.executors.containment import new_tag
from console.model import templating
from console.model.workflow import Step, Workflow

__all__ = ["execute_command", "local_cwd", "output_sink", "request"]


def request(run: RunCore, task: Task, step: Step, command: str) -> CommandRequest:
    """``command`` (rendered) with the step's env and cwd rendered for ``task``."""
    env: dict[str, str] = {}
    context = None
    for name, value in step.env.items():
        if templating.needs_render(value):
            context = context or run.context(task)
            value = templating.render_value(value, context)
        env[name] = value
    cwd = step.cwd
    if cwd and templating.needs_render(cwd):
        cwd = templating.render_value(cwd, context or run.context(task))
    host = run.workflow.host(step.command_host(task.host))
    if cwd and host.is_local:
        cwd = local_cwd(cwd, run.workflow)
    return CommandRequest(task.step, host, command, step.shell, env, cwd, tag=new_tag())


def local_cwd(cwd: str, workflow: Workflow) -> str:
    """A local task's ``cwd``: ``~`` expanded; a relative one is relative to the workflow
    file's folder (as ``file`` secrets and inventories are), not to baton's own working
    directory. A remote host's ``cwd`` is left to the remote shell (relative to its home)."""
    path = os.path.expanduser(cwd)
    if os.path.isabs(path) or workflow.path is None:
        return path
    return os.path.join(os.path.dirname(os.path.abspath(workflow.path)), path)


async def execute_command(run: RunCore, task: Task, step: Step, request: CommandRequest,
                          timeout: float | None,
                          sink: Callable[[Stream, str], None] | None = None,
                          ) -> tuple[ExitStatus, bool]:
    """Run the command once on its host (the step's delegate, if any); returns its
    exit status and whether ``timeout`` ended it."""
    try:
        executor = run.executor(step.command_host(task.host))
        execution = await executor.start(request, sink or output_sink(run, task))
    except Exception as exc:  # an executor that cannot start reports one line
        return ExitStatus(None, error=str(exc)), False
    task.execution = execution
    note_started(task, task.attempts[-1], execution, run.started_hooks)
    if task.cancel_requested:
        await execution.terminate()
    timed_out = False
    try:
        if timeout is None:
            status = await execution.wait()
        else:
            waiter = asyncio.ensure_future(execution.wait())
            done, _ = await asyncio.wait({waiter}, timeout=timeout)
            if not done:
                timed_out = True
                await execution.terminate()
            status = await waiter
    except asyncio.CancelledError:
        # the whole run is being torn down: end the process tree, then stop
        await execution.terminate()
        await asyncio.shield(asyncio.ensure_future(execution.wait()))
        raise
    return status, timed_out


def output_sink(run: RunCore, task: Task) -> Callable[[Stream, str], None]:
    """Where a command's output goes: masked, kept in the task's stdout tail, emitted."""
    masker = run.masker
    emit = run.emit
    clock = run.clock
    tail = task.stdout_tail
    step, host, attempt = task.step, task.host, task.attempt

    def sink(stream: Stream, text: str) -> None:
        if masker:
            text = masker.mask(text)
        if stream == "stdout" and tail is not None:
            tail.append(text)
            tail.append("\n")
        emit(LogEvent(step, host, stream, text, clock(), attempt))

    return sink
