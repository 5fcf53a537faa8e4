"""Commands and template errors as they are shown and stored: never the real script.

The real script (secrets substituted) exists only in memory and in the pipe to the
shell. Everything else (the attempt's stored command, ``--dry-run``, the console's
preview, ``plan``, ``show`` in every format) gets the command rendered a second time with
:class:`~console.model.masking.Placeholders` in place of the secrets, then masked: a
secret a filter transformed (``{{ secrets.pw | urlencode }}``, ``| upper``) shows as
``***`` like a plain one, although masking after the fact could not recognise it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from console.model import templating
from console.model.masking import Masker, Placeholders

__all__ = ["derived_secrets", "shown_command", "shown_template_error"]


def _reads_secrets(source: str) -> bool:
    try:
        return "secrets" in templating.analyze(source).names
    except templating.TemplateError:
        return True


def shown_command(source: str, context: Mapping[str, Any], placeholders: Placeholders,
                  masker: Masker, rendered: str | None = None) -> str:
    """``source`` (a ``run`` or ``undo`` template) rendered for display, secrets as ``***``.

    ``rendered`` is the real rendering when the caller has it (it saves a render when the
    template reads no secret). Raises :class:`~console.model.templating.TemplateError`
    (its message safe to show) when the template fails with the placeholders too.
    """
    if not templating.needs_render(source):
        return masker.mask(source)
    if not _reads_secrets(source):
        text = rendered if rendered is not None else templating.render_command(source,
                                                                               context)
        return masker.mask(text)
    try:
        text = templating.render_command(source, {**context, "secrets": placeholders.values})
    except templating.TemplateError as exc:
        if rendered is None:
            raise templating.TemplateError(placeholders.hide(exc.message), exc.line) from None
        text = rendered  # fails only with the placeholders (a test on the value): mask it
    return masker.mask(placeholders.hide(text))


def shown_template_error(error: templating.TemplateError,
                         sources: Iterable[tuple[str, bool]], context: Mapping[str, Any],
                         placeholders: Placeholders, masker: Masker) -> str:
    """The message of a failed render, safe to show and store.

    The message of the real rendering can hold a secret, even transformed beyond what
    :class:`Masker` recognises (``params[secrets.pw | upper]`` names the upper-cased
    value). So the templates (``(source, is_command)`` pairs, in the order the engine
    renders them) are rendered again with placeholders, and the first failure's message
    is used; only when none fails that way is the real message used, masked.
    """
    shown = {**context, "secrets": placeholders.values}
    for source, is_command in sources:
        if not source or not templating.needs_render(source) or not _reads_secrets(source):
            continue
        render = templating.render_command if is_command else templating.render_value
        try:
            render(source, shown)
        except templating.TemplateError as exc:
            return masker.mask(placeholders.hide(exc.message))
    return masker.mask(error.message)


def derived_secrets(sources: Iterable[tuple[str, bool]], context: Mapping[str, Any],
                    placeholders: Placeholders, real: list[str]) -> list[str]:
    """The values a template made out of a secret (``{{ secrets.pw | upper }}``,
    ``{{ "user:" ~ secrets.pw }}``), so the step's output can be masked for them too.

    ``real`` is what :func:`~console.model.templating.trace_values` collected while the
    engine rendered ``sources`` (``(template, is_command)`` pairs, in that order); they are
    rendered again with two sets of placeholders, and a value derives from a secret when
    its twin contains a placeholder (in any case, or reversed) or when the two twins differ
    (a slice, a hash: ``{{ secrets.pw[:5] }}``). When the renderings take different paths
    (a test on the value), nothing is learnt.
    """
    sources = [(s, c) for s, c in sources if s and templating.needs_render(s)]
    if not any(_reads_secrets(source) for source, _ in sources):
        return []
    twins = _traced(sources, {**context, "secrets": placeholders.values})
    others = _traced(sources, {**context, "secrets": Placeholders(placeholders.values).values})
    if twins is None or others is None or not len(real) == len(twins) == len(others):
        return []
    return [value for value, twin, other in zip(real, twins, others, strict=True)
            if value and (placeholders.hide(twin) != twin or twin != other)]


def _traced(sources: list[tuple[str, bool]], context: Mapping[str, Any]) -> list[str] | None:
    """Every ``{{ }}`` value the ``sources`` render in ``context``; None when one fails."""
    try:
        with templating.trace_values() as values:
            for source, is_command in sources:
                render = templating.render_command if is_command else templating.render_value
                render(source, context)
    except templating.TemplateError:
        return None
    return values
