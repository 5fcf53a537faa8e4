"""The command a task will run, rendered from the run's public state with secrets masked.

Used by the gate modal and the detail pane before a task has started (once it has, the
attempt's own ``command`` is shown). Mirrors the template context of SPEC section 1.
"""

from __future__ import annotations

import os
from typing import Any

from console.engine.outputs import StepsView
from console.engine.run import Run
from console.model import templating


def context_for(run: Run, step: str, host: str) -> dict[str, Any]:
    target = run.workflow.host(host)
    return {
        "params": dict(run.options.params),
        "secrets": dict(run.options.secrets),
        "run": {"id": run.id, "started": run.started},
        "workflow": {"name": run.workflow.name},
        "host": {
            "name": target.name,
            "address": target.address,
            "user": target.user or run.workflow.ssh.user or os.environ.get("USER", ""),
            "groups": list(target.groups),
            "vars": dict(target.vars),
        },
        "steps": StepsView(run.workflow.steps, host,
                           lambda sid: {t.host: t.outputs for t in run.tasks_of(sid)}),
    }


def command_for(run: Run, step: str, host: str) -> str:
    """The masked command of ``step`` on ``host``: the last attempt's, else a preview.

    A template that cannot be rendered yet (it reads outputs of steps that have not run)
    shows the template source and the reason instead.
    """
    task = run.tasks.get((step, host))
    if task is not None and task.attempts and task.attempts[-1].command:
        return task.attempts[-1].command
    source = run.workflow.steps[step].run or ""
    if not templating.needs_render(source):
        return run.masker.mask(source)
    try:
        rendered = templating.render_command(source, context_for(run, step, host))
    except templating.TemplateError as exc:
        return run.masker.mask(f"{source}\n# not rendered yet: {exc}")
    return run.masker.mask(rendered)
