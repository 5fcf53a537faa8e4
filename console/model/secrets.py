"""Resolve `[secrets]` at run start: from an environment variable, a file or a command.

Values live only in memory. Error messages name the secret and its source but never
contain a value (nor a command's stdout, which would be the value).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from console.model.bounded import SECRET_LIMIT, BoundedError, read_regular, run_bounded
from console.model.workflow import Secret

__all__ = ["COMMAND_TIMEOUT", "SecretError", "resolve_secret", "resolve_secrets"]

COMMAND_TIMEOUT = 30.0
"""Seconds a `command` secret may take."""


class SecretError(Exception):
    """One or more secrets could not be resolved; the message names each of them."""


def _strip_newline(text: str) -> str:
    """Drop one trailing newline, as left by `echo` or an editor; keep other whitespace."""
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


def _from_env(secret: Secret, environ: Mapping[str, str]) -> str:
    try:
        return environ[secret.value]
    except KeyError:
        raise SecretError(
            f"secret '{secret.name}': environment variable {secret.value} is not set"
        ) from None


def _from_file(secret: Secret, base_dir: Path | None) -> str:
    path = Path(secret.value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        data = read_regular(path, SECRET_LIMIT).decode("utf-8")
    except BoundedError as exc:
        problem = str(exc)
    except FileNotFoundError:
        problem = "does not exist"
    except IsADirectoryError:
        problem = "is a directory, not a file"
    except PermissionError:
        problem = "is not readable (permission denied)"
    except UnicodeDecodeError:
        problem = "is not UTF-8 text"
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc})"
    else:
        return _strip_newline(data)
    raise SecretError(f"secret '{secret.name}': file {path} {problem}")


def _from_command(secret: Secret, base_dir: Path | None, timeout: float) -> str:
    prefix = f"secret '{secret.name}': command"
    try:
        # Own session: a timeout or too much output kills the whole process group.
        status, stdout, stderr = run_bounded(["/bin/sh", "-c", secret.value], cwd=base_dir,
                                             timeout=timeout, limit=SECRET_LIMIT)
    except OSError as exc:
        raise SecretError(f"{prefix} could not start: {exc.strerror or exc}") from None
    except BoundedError as exc:
        raise SecretError(f"{prefix} {exc}") from None
    if status != 0:
        lines = stderr.decode("utf-8", "replace").strip().splitlines()
        detail = f": {lines[0].strip()}" if lines else ""
        raise SecretError(f"{prefix} exited with status {status}{detail}")
    try:
        return _strip_newline(stdout.decode("utf-8"))
    except UnicodeDecodeError:
        raise SecretError(f"{prefix} printed something that is not UTF-8 text") from None


def resolve_secret(
    secret: Secret,
    *,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT,
) -> str:
    """The value of one secret; raises :class:`SecretError`.

    An empty value is an error (it could not be masked, and a step would run with a blank
    password) unless the secret is declared ``optional = true``; an optional secret whose
    environment variable is unset is empty too.
    """
    if secret.source == "env":
        env = os.environ if environ is None else environ
        if secret.optional and secret.value not in env:
            return ""
        value = _from_env(secret, env)
    elif secret.source == "file":
        value = _from_file(secret, base_dir)
    elif secret.source == "command":
        value = _from_command(secret, base_dir, timeout)
    else:
        raise SecretError(f"secret '{secret.name}': unknown source {secret.source!r}")
    if not value.strip() and not secret.optional:
        what = {"env": f"environment variable {secret.value} is", "file": f"file {secret.value} is",
                "command": "command printed"}[secret.source]
        blank = "nothing" if secret.source == "command" else "empty"
        if value:
            blank = "only whitespace" if secret.source == "command" else "blank"
        raise SecretError(f"secret '{secret.name}': {what} {blank} (set it, or declare the "
                          "secret optional = true)")
    return value


def resolve_secrets(
    secrets: Mapping[str, Secret],
    *,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT,
) -> dict[str, str]:
    """Resolve every secret. ``base_dir`` (the workflow's folder) anchors relative file
    paths and is the working directory of commands.

    Raises one :class:`SecretError` listing every failure, joined with "; ".
    """
    values: dict[str, str] = {}
    errors: list[str] = []
    for name, secret in secrets.items():
        try:
            values[name] = resolve_secret(
                secret, base_dir=base_dir, environ=environ, timeout=timeout
            )
        except SecretError as exc:
            errors.append(str(exc))
    if errors:
        raise SecretError("; ".join(errors))
    return values
