"""Operator inputs: parse ``--param NAME=VALUE``, coerce to the declared type, fill defaults.

A param that is neither required nor given a default resolves to ``""`` for a string,
the first choice for a choice, and ``None`` for the other types.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from console.model.workflow import Param

__all__ = ["ParamError", "coerce", "missing_required", "parse_assignments", "resolve_params"]

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class ParamError(Exception):
    """A param value is unknown, missing or invalid; the message names the param."""


def _describe(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise ValueError("expected true or false (also yes/no, on/off, 1/0)")


def _to_int(raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            pass
    raise ValueError("expected an int")


def _to_float(raw: Any) -> float:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            pass
        else:
            if math.isfinite(value):
                return value
    raise ValueError("expected a number")


def _to_string(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    raise ValueError("expected a string")


def _convert_like(example: Any, raw: Any) -> Any:
    """Convert ``raw`` to the type of a choice, so `choices = [1, 2]` accepts "2"."""
    if isinstance(example, bool):
        return _to_bool(raw)
    if isinstance(example, int):
        return _to_int(raw)
    if isinstance(example, float):
        return _to_float(raw)
    return raw if isinstance(raw, str) else str(raw)


def coerce(param: Param, raw: Any) -> Any:
    """Convert ``raw`` (text from the command line or the console form, or an already typed
    value such as a TOML default) to the param's type; raises :class:`ParamError`."""
    try:
        if param.type == "choice":
            return _coerce_choice(param, raw)
        if param.type == "int":
            return _to_int(raw)
        if param.type == "float":
            return _to_float(raw)
        if param.type == "bool":
            return _to_bool(raw)
        return _to_string(raw)
    except ValueError as exc:
        raise ParamError(f"param '{param.name}': {exc}, got {_describe(raw)}") from None


def _coerce_choice(param: Param, raw: Any) -> Any:
    if not param.choices:
        raise ValueError("no choices are declared")
    try:
        value = _convert_like(param.choices[0], raw)
    except ValueError:
        value = None
    if value is not None and value in param.choices:
        return value
    allowed = ", ".join(str(choice) for choice in param.choices)
    hint = ""
    if isinstance(raw, str):
        import difflib  # only for a wrong value

        close = difflib.get_close_matches(raw, [str(c) for c in param.choices], n=1)
        if close:
            hint = f" (did you mean '{close[0]}'?)"
    raise ValueError(f"expected one of {allowed}{hint}")


def _default(param: Param) -> Any:
    if param.default is not None:
        return coerce(param, param.default)
    if param.type == "string":
        return ""
    if param.type == "choice" and param.choices:
        return param.choices[0]
    return None


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def missing_required(params: Mapping[str, Param], overrides: Mapping[str, Any]) -> list[str]:
    """Names of required params with no default and no non-blank value in ``overrides``."""
    return [
        name
        for name, param in params.items()
        if param.required and param.default is None and not _given(overrides.get(name))
    ]


def _unknown(name: str, params: Mapping[str, Param]) -> str:
    if not params:
        return f"unknown param '{name}' (this workflow has no params)"
    import difflib  # only for a wrong name

    close = difflib.get_close_matches(name, list(params), n=1)
    if close:
        return f"unknown param '{name}' (did you mean '{close[0]}'?)"
    return f"unknown param '{name}' (known: {', '.join(params)})"


def resolve_params(params: Mapping[str, Param], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared param's value: the override coerced to its type, else its default.

    Raises one :class:`ParamError` listing every problem, joined with "; ".
    """
    errors = [_unknown(name, params) for name in overrides if name not in params]
    errors += [
        f"param '{name}' is required (use --param {name}=VALUE)"
        for name in missing_required(params, overrides)
    ]
    values: dict[str, Any] = {}
    for name, param in params.items():
        if name in overrides and (_given(overrides[name]) or not param.required):
            try:
                values[name] = coerce(param, overrides[name])
            except ParamError as exc:
                errors.append(str(exc))
        elif not (param.required and param.default is None):
            try:
                values[name] = _default(param)
            except ParamError as exc:
                errors.append(f"{exc} (default)")
    if errors:
        raise ParamError("; ".join(errors))
    return values


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """``["NAME=VALUE", ...]`` -> ``{NAME: VALUE}``; the value may contain ``=``; the last
    assignment of a name wins."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParamError(f"--param {item!r}: expected NAME=VALUE")
        out[name] = value
    return out
