"""What a run says about its steps, rendered: names, gate prompts, manual-step descriptions
and the command each host of a gate will run.

Step names, ``confirm`` prompts and descriptions are Jinja templates (SPEC section 1) with
the same context as ``run`` (params, host, steps outputs, secrets), rendered as plain text
with placeholders for the secrets (see :mod:`console.engine.shown`) and masked. Every
place that shows them (console, headless prompt and printers, the stored reason, ``baton
show``) takes them from here, so they all say the same thing. A template that cannot be
rendered (yet) never raises: the source is shown with one line saying why.

:class:`RunTexts` is the run's core with these texts; :class:`console.engine.run.Run` is
one.
"""

from __future__ import annotations

from dataclasses import dataclass

from console.engine.core import RunCore
from console.engine.task import Task
from console.engine.undo_attempts import last_command
from console.model import templating
from console.model.workflow import LOCAL
from console.sanitize import visible


class _AnyVars(dict[str, str]):
    """``host.vars.NAME`` of no host in particular: reads as written."""

    def __missing__(self, key: str) -> str:
        return f"{{{{ host.vars.{key} }}}}"


ANY_HOST = {"name": "{{ host.name }}", "address": "{{ host.address }}",
            "user": "{{ host.user }}", "groups": ["{{ host.groups }}"], "vars": _AnyVars()}
"""The ``host`` of a text shown for all of a step's hosts at once."""


@dataclass(frozen=True)
class CommandGroup:
    """One rendered command and the hosts that run exactly it."""

    command: str
    hosts: tuple[str, ...]


class RunTexts(RunCore):

    def render_text(self, source: str, step: str, host: str | None = None) -> str:
        """``source`` rendered as plain text for ``step`` on ``host``, secrets masked; on a
        template error the source plus why. Without a host (the step's own line): as its
        hosts all read it; a text that differs from host to host keeps its ``{{ host.… }}``
        parts as written (it said the first host's name for all 300)."""
        if not templating.needs_render(source):
            return visible(self.masker.mask(source))
        if host is not None:
            return self._render(source, step, host)
        tasks = self.graph.by_step.get(step) or ()
        first = self._render(source, step, tasks[0].host if tasks else LOCAL)
        if len(tasks) < 2 or self._render(source, step, tasks[1].host) == first:
            return first
        return self._render(source, step, tasks[0].host, any_host=True)

    def _render(self, source: str, step: str, host: str, any_host: bool = False) -> str:
        task = self.tasks.get((step, host)) or Task(step, host)
        try:  # display only: rendered with placeholders, never with the secrets
            # a secret not resolved (a past run, --read-only) still reads as "***"
            shown = {**dict.fromkeys(self.workflow.secrets, templating.MASK),
                     **self.placeholders.values}
            context = {**self.context(task), "secrets": shown}
            if any_host:
                context["host"] = ANY_HOST
            text = self.placeholders.hide(templating.render_value(source, context))
        except templating.TemplateError as exc:
            text = f"{source} [not rendered: {self.placeholders.hide(str(exc))}]"
        except Exception as exc:  # an unknown host, a broken context: say so, never raise
            text = f"{source} [not rendered: {exc}]"
        return visible(self.masker.mask(text))  # a param could carry an escape sequence

    def step_name(self, step: str, host: str | None = None) -> str:
        """The step's display name, rendered."""
        definition = self.workflow.steps.get(step)
        if definition is None:
            return step
        return self.render_text(definition.name, step, host)

    def step_description(self, step: str, host: str | None = None) -> str:
        """The step's description (Markdown runbook text), rendered."""
        definition = self.workflow.steps.get(step)
        if definition is None or not definition.description:
            return ""
        return self.render_text(definition.description, step, host)

    def step_prompt(self, step: str, host: str | None = None) -> str:
        """The gate prompt (``confirm``) rendered; "" when the step has none."""
        definition = self.workflow.steps.get(step)
        if definition is None or not definition.confirm:
            return ""
        return self.render_text(definition.confirm, step, host)

    def command_groups(self, step: str, hosts: list[str]) -> list[CommandGroup]:
        """The command each of ``hosts`` will run (secrets masked), hosts with the same
        command grouped, in the order of ``hosts``."""
        definition = self.workflow.steps.get(step)
        if definition is None or definition.manual:
            return []
        token = self._preview_token(step)
        memo: dict[tuple[str, str], tuple[object, str]] = self.__dict__.setdefault(
            "_preview_memo", {})
        groups: dict[str, list[str]] = {}
        for host in hosts:
            task = self.tasks.get((step, host))
            ran = last_command(task) if task is not None and task.attempts else ""
            if ran:
                command = ran  # what it ran (not its undo): no rendering
            else:
                known = memo.get((step, host))
                if known is not None and known[0] == token:
                    command = known[1]
                else:
                    command = self.preview_command(step, host)
                    memo[(step, host)] = (token, command)
            groups.setdefault(command, []).append(host)
        return [CommandGroup(command, tuple(members)) for command, members in groups.items()]

    def _preview_token(self, step: str) -> object:
        """What a not yet started task's rendered command depends on, besides its host:
        the definition, params and secrets, and the outputs of the steps it reads. The
        console asks for every host's command each frame; rendering 1,000 of them costs
        0.1 s, so an unchanged token reuses the last rendering."""
        definition = self.workflow.steps[step]
        source = definition.run or ""
        try:
            reads = sorted(templating.analyze(source).steps) if templating.needs_render(
                source) else []
        except templating.TemplateError:
            reads = []
        outputs = tuple((t.outputs.status, t.outputs.exit_code, len(t.outputs.stdout))
                        for sid in reads for t in self.graph.by_step.get(sid, ()))
        params = tuple(sorted((k, repr(v)) for k, v in self.options.params.items()))
        started = self.started  # {{ run.started }}
        return (source, self.workflow.digest, params, id(self.masker), started, outputs)

    def preview_command(self, step: str, host: str) -> str:
        """The command of ``step`` on ``host`` with secrets masked: the last attempt's, else
        rendered now. A template that reads outputs not produced yet shows its source and
        why it is not rendered yet."""
        task = self.tasks.get((step, host)) or Task(step, host)
        ran = last_command(task) if task.attempts else ""
        if ran:  # what it ran (not its undo)
            return ran
        definition = self.workflow.steps[step]
        source = definition.run or ""
        if templating.needs_render(source):
            try:
                reads = templating.analyze(source).steps
            except templating.TemplateError:
                reads = frozenset()
            waiting = sorted(sid for sid in reads if all(
                t.outputs.status is None for t in self.graph.by_step.get(sid, ())))
            if waiting:
                return self.masker.mask(f"{source}\n# rendered once {', '.join(waiting)} ran")
        try:
            return self.shown(task, definition)
        except templating.TemplateError as exc:
            return self.masker.mask(f"{definition.run or ''}\n# not rendered yet: {exc}")
