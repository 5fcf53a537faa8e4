"""Jinja2 templates for `run`, `env`, `cwd` and `when`: sandboxed, strict, shell-safe.

Templates run in :class:`jinja2.sandbox.ImmutableSandboxedEnvironment` with
``StrictUndefined``: an undefined name or attribute is an error, never an empty string,
and templates cannot reach Python internals (``''.__class__``) or mutate values.

Context shape (built by the engine, documented here because templates depend on it)::

    params    {name: value}                    coerced operator inputs
    secrets   {name: value}                    resolved at run start, masked in output
    host      {name, address, user, groups, vars}
    steps     {step_id: {status, exit_code, stdout, json, hosts: {host: {...same...}}}}
    run       {id, started}
    workflow  {name}

Rendering modes:

- :func:`render_command` (``run``): every ``{{ value }}`` is quoted for the shell context
  it lands in (a bare word, inside ``"…"``, inside ``'…'``; :mod:`shellquote`), so the
  program always receives exactly the value; where that cannot be proved safe (backticks,
  ``$(( ))``, an unquoted heredoc body …) rendering fails and ``check`` reports it.
  ``{{ value | raw }}`` inserts it unquoted (for deliberate shell syntax).
- :func:`render_value` (``env`` values, ``cwd``): plain text, no quoting (an environment
  variable or a directory is never parsed by a shell).
- :func:`evaluate` (``when``): a bare expression, truthiness by Python's ``bool``.

Every value renders with ``str()`` (``None``, ``3``, dicts/lists in their Python repr
``{'a': 1}``; use ``| tojson`` for JSON), except booleans: ``true`` / ``false``, as shells,
JSON and YAML spell them (a ``bool`` param in ``[ "{{ params.force }}" = true ]``).
Every Jinja failure becomes a one-line :class:`TemplateError`; error text can contain
values, so callers must pass it through the run's :class:`Masker` like any other output.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from console.model.masking import MASK, Masker

if TYPE_CHECKING:
    from jinja2 import nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from console.model.workflow import Host, Workflow

__all__ = [
    "MASK",
    "Masker",
    "TemplateError",
    "TemplateRefs",
    "analyze",
    "evaluate",
    "host_context",
    "needs_render",
    "render_command",
    "render_value",
    "trace_values",
]

_TEMPLATE_FILENAME = "<template>"
_CACHE_LIMIT = 4096


class TemplateError(Exception):
    """A template failed to parse or render. ``str()`` is one line without the line number;
    ``line`` is the 1-based line within the template when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = " ".join(message.split()) or "template error"
        self.line = line
        super().__init__(self.message)


class Raw(str):
    """A string the ``raw`` filter marked to be inserted into a command unquoted."""

    __slots__ = ()


def _raw(value: Any) -> Raw:
    return Raw(text_of(value))


def host_context(workflow: Workflow, host: Host, login: str | None = None) -> dict[str, Any]:
    """The ``host`` value of the template context (the run's commands, ``baton plan``):
    ``user`` is ``login`` when given (the user SSH logs in as, ssh_config's ``User``
    included: :func:`console.executors.ssh_config.login_user`), else the host's, else
    ``[ssh] user``, else the local login (``$USER``)."""
    return {
        "name": host.name,
        "address": host.address,
        "user": login or host.user or workflow.ssh.user or os.environ.get("USER", ""),
        "groups": list(host.groups),
        "vars": dict(host.vars),
    }


def text_of(value: Any) -> str:
    """How a value reads in rendered text: ``str()``, but booleans are ``true``/``false``."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def quote(text: str) -> str:
    """``shlex.quote`` (shlex is imported on first use: most runs never quote)."""
    from shlex import quote as shell_quote

    return shell_quote(text)


_slots: ContextVar[list[str] | None] = ContextVar("baton_template_slots", default=None)
"""The values of the command being rendered, in marker order (see :mod:`shellquote`)."""


_trace: ContextVar[list[str] | None] = ContextVar("baton_template_trace", default=None)
"""When set (:func:`trace_values`): the text of every ``{{ }}`` rendered, in order."""


@contextlib.contextmanager
def trace_values() -> Iterator[list[str]]:
    """Collect the text of every ``{{ }}`` that ``render_command`` and ``render_value``
    output inside the block, in order, before any quoting: what the program receives.
    The engine compares it with a placeholder rendering to learn which values derive
    from a secret (see :mod:`console.engine.shown`)."""
    values: list[str] = []
    token = _trace.set(values)
    try:
        yield values
    finally:
        _trace.reset(token)


def _value_finalize(value: Any) -> Any:
    if isinstance(value, bool):
        value = text_of(value)
    trace = _trace.get()
    if trace is not None:
        trace.append(str(value))
    return value


def _shell_finalize(value: Any) -> Any:
    from console.model.shellquote import MARK, marker

    trace = _trace.get()
    if trace is not None:
        trace.append(text_of(value))
    values = _slots.get()
    if isinstance(value, Raw):
        if MARK in value:
            raise TemplateError("a raw value contains a NUL byte, which no shell command "
                                "can receive")
        return value
    text = text_of(value)
    if values is None:  # rendered outside render_command: plain quoting
        return quote(text)
    values.append(text)
    return marker(len(values) - 1)


def _make_env(**kwargs: Any) -> ImmutableSandboxedEnvironment:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        **kwargs,
    )
    env.filters["raw"] = _raw
    return env


@functools.cache
def _value_env() -> ImmutableSandboxedEnvironment:
    """Jinja is imported on first use (30 ms of start-up a plain-text workflow never pays)."""
    return _make_env(finalize=_value_finalize)


def _shell_finalize_in(context: Any, value: Any) -> Any:
    return _shell_finalize(value)


@functools.cache
def _command_env() -> ImmutableSandboxedEnvironment:
    from jinja2 import pass_context

    # pass_context: Jinja must not fold a constant ({{ 'a b' }}) at compile time, where
    # the shell context it lands in is not known yet; every value is quoted at render.
    return _make_env(finalize=pass_context(_shell_finalize_in))


_cache: dict[tuple[str, str], Any] = {}


def needs_render(source: str) -> bool:
    """False when ``source`` cannot contain Jinja syntax, so rendering can be skipped."""
    return "{" in source


# --- errors --------------------------------------------------------------------------

_UNDEFINED_NAME = re.compile(r"^'([^']*)' is undefined$")


def _error_line(exc: BaseException) -> int | None:
    """The template line of a runtime error, from Jinja's rewritten traceback."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _TEMPLATE_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _convert(exc: Exception) -> TemplateError:
    from jinja2 import TemplateError as JinjaTemplateError
    from jinja2 import TemplateSyntaxError, UndefinedError

    if isinstance(exc, TemplateSyntaxError):
        return TemplateError(exc.message or str(exc), exc.lineno)
    if isinstance(exc, JinjaTemplateError):
        message = exc.message or type(exc).__name__
        if isinstance(exc, UndefinedError):
            match = _UNDEFINED_NAME.match(message)
            if match:
                message = f"undefined name '{match.group(1)}'"
        message = message.rstrip(".")
    else:
        message = f"{type(exc).__name__}: {exc}"
    return TemplateError(message, _error_line(exc))


# --- compile (cached) ----------------------------------------------------------------


def _strip_braces(expression: str) -> str:
    """Accept ``when = "{{ expr }}"`` as well as the bare ``when = "expr"``."""
    text = expression.strip()
    if text.startswith("{{") and text.endswith("}}") and "{{" not in text[2:]:
        return text[2:-2]
    return expression


def _compile(source: str, mode: str) -> Any:
    key = (source, mode)
    compiled = _cache.get(key)
    if compiled is not None:
        return compiled
    from jinja2 import TemplateSyntaxError

    untraced = _trace.set(None)  # Jinja finalizes constants while compiling: not values
    try:
        if mode == "command":
            compiled = _command_env().from_string(source)
        elif mode == "value":
            compiled = _value_env().from_string(source)
        else:
            compiled = _value_env().compile_expression(_strip_braces(source),
                                                       undefined_to_none=False)
    except TemplateSyntaxError as exc:
        raise _convert(exc) from None
    finally:
        _trace.reset(untraced)
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[key] = compiled
    return compiled


# --- render --------------------------------------------------------------------------


def render_command(source: str, context: Mapping[str, Any]) -> str:
    """Render a ``run`` script; each substituted value is quoted for the shell context it
    lands in (bare word, ``"…"``, ``'…'`` …), unless ``| raw``; a value where quoting
    cannot be proved safe is a :class:`TemplateError` (see :mod:`shellquote`)."""
    if not needs_render(source):
        return source
    from console.model.shellquote import MARK, QuotingError, substitute

    if MARK in source:
        raise TemplateError("the command contains a NUL byte, which no shell can run")
    template = _compile(source, "command")
    values: list[str] = []
    token = _slots.set(values)
    try:
        text = template.render(context)
    except TemplateError:
        raise
    except Exception as exc:
        raise _convert(exc) from None
    finally:
        _slots.reset(token)
    if not values:
        return text
    try:
        return substitute(text, values)
    except QuotingError as exc:
        raise TemplateError(str(exc)) from None


def render_value(source: str, context: Mapping[str, Any]) -> str:
    """Render an ``env`` value or ``cwd`` as plain text (no quoting)."""
    if not needs_render(source):
        return source
    template = _compile(source, "value")
    try:
        return template.render(context)
    except Exception as exc:
        raise _convert(exc) from None


def evaluate(expression: str, context: Mapping[str, Any]) -> bool:
    """Evaluate a ``when`` expression such as ``params.target == 'prod'``."""
    compiled = _compile(expression, "expression")
    try:
        return bool(compiled(context))
    except Exception as exc:
        error = _convert(exc)
        error.line = None  # the compiled wrapper's line numbers mean nothing to the user
        raise error from None


# --- static analysis -----------------------------------------------------------------


@dataclass(frozen=True)
class TemplateRefs:
    """What a template reads, for validation and dependency checks before a run."""

    names: frozenset[str]
    """Top-level names used and not defined by the template itself."""
    params: frozenset[str]
    secrets: frozenset[str]
    steps: frozenset[str]
    """Step ids read as ``steps.X`` or ``steps["X"]``."""


def _parse_expression(source: str) -> nodes.Template:
    from jinja2 import TemplateSyntaxError, nodes
    from jinja2.parser import Parser

    env = _value_env()
    parser = Parser(env, source, state="variable")
    expr = parser.parse_expression()
    if not parser.stream.eos:
        raise TemplateSyntaxError("chunk after expression", parser.stream.current.lineno)
    tree = nodes.Template([nodes.Output([expr], lineno=1)], lineno=1)
    tree.set_environment(env)
    return tree


def _check_filters_and_tests(tree: nodes.Template) -> None:
    """Refuse an unknown filter or test before the run: inside ``{% if %}`` Jinja only
    fails when the branch is rendered, which would pass ``check`` and fail mid-run."""
    from jinja2 import nodes

    env = _value_env()
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        assert isinstance(node, nodes.Filter | nodes.Test)  # for the type checker
        known = env.filters if isinstance(node, nodes.Filter) else env.tests
        if node.name not in known:
            kind = "filter" if isinstance(node, nodes.Filter) else "test"
            raise TemplateError(f"No {kind} named '{node.name}'", node.lineno)


_NO_REFS = TemplateRefs(frozenset(), frozenset(), frozenset(), frozenset())


@functools.lru_cache(maxsize=_CACHE_LIMIT)
def analyze(source: str, *, expression: bool = False) -> TemplateRefs:
    """Parse ``source`` (a template, or a bare expression) and list what it references.

    Raises :class:`TemplateError` with the template line on a syntax error. Only literal
    keys are seen: ``params[name]`` with a variable ``name`` is not reported. Cached: the
    console asks again for every selection change, reloads re-check unchanged steps.
    """
    if not expression and not needs_render(source):
        return _NO_REFS  # plain text: nothing to parse (most commands of a large graph)
    from jinja2 import TemplateSyntaxError, meta, nodes

    try:
        tree = (_parse_expression(_strip_braces(source)) if expression
                else _value_env().parse(source))
        # Code generation checks filters and tests: an unknown one is reported here
        # (TemplateAssertionError is a syntax error with the template line).
        names = frozenset(meta.find_undeclared_variables(tree))
    except TemplateSyntaxError as exc:
        raise _convert(exc) from None
    _check_filters_and_tests(tree)
    found: dict[str, set[str]] = {"params": set(), "secrets": set(), "steps": set()}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)  # for the type checker
        base = node.node
        if not isinstance(base, nodes.Name) or base.name not in found or base.name not in names:
            continue
        if isinstance(node, nodes.Getattr):
            found[base.name].add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found[base.name].add(node.arg.value)
    return TemplateRefs(
        names=names,
        params=frozenset(found["params"]),
        secrets=frozenset(found["secrets"]),
        steps=frozenset(found["steps"]),
    )
