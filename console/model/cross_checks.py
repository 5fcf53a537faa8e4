"""Cross-step checks of a workflow, once every step is read: unknown needs and targets,
dependency cycles, and each template's names, references and shell quoting, every problem
located at the key (or the template line) at fault.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from graphlib import CycleError, TopologicalSorter

from console.model.conditions import STATUS_FUNCTIONS, status_calls
from console.model.reader import Reader, dotted, suggest
from console.model.recovery import check_delegate
from console.model.step_section import Located, Template
from console.model.templating import TemplateError, analyze
from console.model.workflow import ALL, LOCAL, Host, Param, Secret, Step, step_order, upstream_of

__all__ = ["CONTEXT_NAMES", "SHELL_TEMPLATES", "CrossChecks"]

SHELL_TEMPLATES = ("run", "undo")
"""Step keys whose templates are shell scripts, checked for safe quoting."""
CONTEXT_NAMES = ("params", "secrets", "host", "steps", "run", "workflow")


@functools.cache
def _template_names() -> frozenset[str]:
    """Names a template may use freely (Jinja is imported only once a template needs it)."""
    from jinja2.defaults import DEFAULT_NAMESPACE

    return frozenset({*CONTEXT_NAMES, *DEFAULT_NAMESPACE, "loop", "true", "false", "none",
                      "True", "False", "None"})


class CrossChecks:
    """The checks that need every step, param, secret and host of one workflow."""

    def __init__(self, reader: Reader, text: str, *, steps: Mapping[str, Step],
                 params: Mapping[str, Param], secrets: Mapping[str, Secret],
                 hosts: Mapping[str, Host], templates: Mapping[str, list[Template]],
                 located: Mapping[str, tuple[Located, Located]]) -> None:
        self.r = reader
        self.text = text
        self.steps = steps
        self.params = params
        self.secrets = secrets
        self.hosts = hosts
        self.templates = templates
        self.located = located
        self._upstream_cache: dict[str, set[str]] = {}

    def check(self) -> None:
        """Cross-step checks: needs, targets, cycles, template references."""
        r = self.r
        groups = {g for host in self.hosts.values() for g in host.groups}
        targets = {LOCAL, ALL, *self.hosts, *groups}
        for step_id in self.steps:
            path = ("steps", step_id)
            needs, on = self.located[step_id]
            for need, where in needs:
                if need not in self.steps:
                    r.report(where, f"{dotted(path)}.needs: unknown step '{need}'"
                                    f"{suggest(need, self.steps)}")
            for target, where in on:
                if target not in targets:
                    r.report(where, f"{dotted(path)}.on: unknown host or group '{target}'"
                                    f"{suggest(target, targets)}")
                elif target == ALL and not self.hosts:
                    r.report(where, f"{dotted(path)}.on: 'all' matches no hosts "
                                    "(no [hosts] defined)")
            check_delegate(r, path, self.steps[step_id].delegate, self.hosts, {*groups, ALL})
        self.check_cycles()
        for step_id in self.steps:
            for template in self.templates.get(step_id, []):
                self.check_template(step_id, template)

    def check_cycles(self) -> None:
        if len(step_order(self.steps)) == len(self.steps):
            return
        graph = {sid: s.needs for sid, s in self.steps.items()}
        try:  # graphlib names the cycle
            TopologicalSorter({sid: [n for n in needs if n in graph]
                               for sid, needs in graph.items()}).prepare()
        except CycleError as exc:
            cycle = list(reversed(exc.args[1]))[:-1]  # "a -> b": a needs b
            order = list(self.steps)
            first = min(range(len(cycle)), key=lambda i: order.index(cycle[i]))
            cycle = cycle[first:] + cycle[:first]
            self.r.report(("steps", cycle[0], "needs"),
                          f"dependency cycle: {' -> '.join([*cycle, cycle[0]])}")

    def _upstream(self, step_id: str) -> set[str]:
        """Computed only for steps whose templates read ``steps.*``: O(edges) each."""
        cached = self._upstream_cache.get(step_id)
        if cached is not None:
            return cached
        seen = self._upstream_cache[step_id] = upstream_of(self.steps, step_id)
        return seen

    def check_template(self, step_id: str, template: Template) -> None:
        r = self.r
        label = dotted(template.path)
        try:
            refs = analyze(template.source, expression=template.expression)
        except TemplateError as exc:
            line, col = self._template_position(template, exc.line)
            message = exc.message.rstrip(".")
            r.report(template.path, f"{label}: template error: {message}", line=line,
                     col=col)
            return

        def at(word: str, message: str) -> None:
            line, col = self._template_position(template, _line_of(template.source, word))
            r.report(template.path, f"{label}: {message}", line=line, col=col)

        if template.path[-1] in SHELL_TEMPLATES:
            from console.model.shellquote import check_template

            for line_in, _col, tag, message in check_template(template.source):
                line, col = self._tag_position(template, line_in, tag)
                r.report(template.path, f"{label}: {message}", line=line, col=col)

        unknown = refs.names - _template_names() if refs.names else refs.names
        if unknown & set(STATUS_FUNCTIONS):
            unknown = self.check_status_functions(template, unknown, at)
        for name in sorted(unknown):
            if name in self.params:
                hint = f" (did you mean 'params.{name}'?)"
            elif name in self.secrets:
                hint = f" (did you mean 'secrets.{name}'?)"
            else:
                hint = suggest(name, (*CONTEXT_NAMES,
                                      *(STATUS_FUNCTIONS if template.expression else ())))
            at(name, f"unknown name '{name}'{hint}")
        for name in sorted(refs.params - set(self.params)):
            at(name, f"unknown param '{name}'{suggest(name, self.params)}")
        for name in sorted(refs.secrets - set(self.secrets)):
            at(name, f"unknown secret '{name}'{suggest(name, self.secrets)}")
        for name in sorted(refs.steps):
            if name not in self.steps:
                at(name, f"unknown step '{name}'{suggest(name, self.steps)}")
            elif name == step_id:
                at(name, f"steps.{name} is read by step '{step_id}' itself; a step can only "
                         "read the outputs of steps it needs")
            elif name not in self._upstream(step_id):
                at(name, f"steps.{name} is read but '{name}' is not upstream of "
                         f"'{step_id}' (add it to needs)")

    def _tag_position(self, template: Template, line_in_template: int,
                      tag: str) -> tuple[int | None, int | None]:
        """File line and column of the ``{{ }}`` tag ``tag`` on a line of a template."""
        line, col = self._template_position(template, line_in_template)
        start = self.r.locator.value_line(template.path)
        if start is not None:
            line = start + line_in_template - 1
            lines = self.text.splitlines()
            if 0 < line <= len(lines) and tag in lines[line - 1]:
                return line, lines[line - 1].index(tag) + 1
        return line, col
    def check_status_functions(self, template: Template, unknown: frozenset[str],
                               at: Callable[[str, str], None]) -> frozenset[str]:
        """Status functions are names of ``when`` only; returns the names still unknown."""
        used = unknown & set(STATUS_FUNCTIONS)
        if template.expression:
            for name, message in status_calls(template.source)[1]:
                at(name, message)
        else:
            for name in sorted(used):
                at(name, f"{name}() is a status function: it works only in when")
        return unknown - used

    def _template_position(self, template: Template,
                           line_in_template: int | None) -> tuple[int | None, int | None]:
        """File position of a line of a template value: the key's own position when that
        line sits on the key's line, else the line with no column."""
        key_line, key_col = self.r.locator.find(template.path)
        start = self.r.locator.value_line(template.path)
        if start is None or not line_in_template:
            return key_line, key_col
        line = start + line_in_template - 1
        return (key_line, key_col) if line == key_line else (line, None)


def _line_of(source: str, word: str) -> int | None:
    """1-based line of the first whole-word occurrence of ``word`` in ``source``."""
    pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])")
    for number, text in enumerate(source.splitlines(), start=1):
        if pattern.search(text):
            return number
    return None
