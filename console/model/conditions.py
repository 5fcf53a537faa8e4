"""Status functions in ``when`` (GitHub Actions' ``if:``): what a condition calls.

``success()`` (every need is done: the default), ``failure()`` (some task of the run
failed), ``always()`` and ``cancelled()``. A step whose ``when`` calls ``failure()``,
``always()`` or ``cancelled()`` is evaluated once every need is terminal, not only done,
and is never blocked by a failed need (SPEC section 1). This module only reads the
expression; the engine gives the functions their values (console.engine.conditions).
"""

from __future__ import annotations

import functools

STATUS_FUNCTIONS = ("success", "failure", "always", "cancelled")
TERMINAL_FUNCTIONS = frozenset({"failure", "always", "cancelled"})
"""Calling one of these makes a step wait for terminal needs instead of done ones."""


@functools.lru_cache(maxsize=1024)
def status_calls(expression: str) -> tuple[frozenset[str], tuple[tuple[str, str], ...]]:
    """The status functions ``expression`` calls, and the misuses found (name, message).

    A syntax error yields no calls and no messages: the template check reports it.
    """
    from jinja2 import TemplateSyntaxError, nodes

    from console.model.templating import TemplateError, _parse_expression, _strip_braces

    try:
        tree = _parse_expression(_strip_braces(expression))
    except (TemplateSyntaxError, TemplateError):
        return frozenset(), ()
    called: set[str] = set()
    callees: set[int] = set()
    problems: list[tuple[str, str]] = []
    for call in tree.find_all(nodes.Call):
        target = call.node
        if isinstance(target, nodes.Name) and target.name in STATUS_FUNCTIONS:
            callees.add(id(target))
            called.add(target.name)
            if call.args or call.kwargs or call.dyn_args or call.dyn_kwargs:
                problems.append((target.name, f"{target.name}() takes no arguments"))
    for name in tree.find_all(nodes.Name):
        if name.name in STATUS_FUNCTIONS and id(name) not in callees and name.ctx == "load":
            problems.append((name.name, f"'{name.name}' is a status function: call it as "
                                        f"{name.name}()"))
    return frozenset(called), tuple(dict.fromkeys(problems))


def waits_for_terminal(expression: str | None) -> bool:
    """Whether a step with this ``when`` runs once its needs are terminal (not only done)."""
    if not expression or "(" not in expression:
        return False
    return bool(status_calls(expression)[0] & TERMINAL_FUNCTIONS)
