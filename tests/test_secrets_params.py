"""Secrets resolution (env, file, command) and param parsing/coercion."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from console.model.params import (
    ParamError,
    coerce,
    missing_required,
    parse_assignments,
    resolve_params,
)
from console.model.secrets import SecretError, resolve_secrets
from console.model.workflow import Param, Secret

# --- secrets ---------------------------------------------------------------------------


@pytest.mark.parametrize(("secret", "environ", "message"), [
    (Secret("t", "env", "T"), {"T": ""}, "secret 't': environment variable T is empty"),
    (Secret("t", "env", "T"), {"T": "  \n"}, "secret 't': environment variable T is blank"),
    (Secret("t", "command", "true"), {}, "secret 't': command printed nothing"),
    (Secret("t", "file", "empty.txt"), {}, "secret 't': file empty.txt is empty"),
])
def test_empty_secret_is_an_error_unless_optional(secret: Secret, environ: dict[str, str],
                                                  message: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SecretError) as info:
        resolve_secrets({"t": secret}, environ=environ)
    assert str(info.value) == f"{message} (set it, or declare the secret optional = true)"
    optional = Secret(secret.name, secret.source, secret.value, optional=True)
    assert resolve_secrets({"t": optional}, environ=environ)["t"].strip() == ""


def test_optional_env_secret_may_be_unset() -> None:
    secrets = {"d": Secret("d", "env", "DEBUG_TOKEN", optional=True)}
    assert resolve_secrets(secrets, environ={}) == {"d": ""}
    assert resolve_secrets(secrets, environ={"DEBUG_TOKEN": "x"}) == {"d": "x"}


def test_env_secret() -> None:
    secrets = {"db": Secret("db", "env", "DB_PASSWORD")}
    assert resolve_secrets(secrets, environ={"DB_PASSWORD": "pw 1\n"}) == {"db": "pw 1\n"}


def test_env_secret_missing() -> None:
    secrets = {"db_password": Secret("db_password", "env", "DB_PASSWORD")}
    with pytest.raises(SecretError) as info:
        resolve_secrets(secrets, environ={})
    assert str(info.value) == (
        "secret 'db_password': environment variable DB_PASSWORD is not set"
    )


def test_file_secret_relative_to_base_dir_strips_one_newline(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("abc \n\n")
    secrets = {"token": Secret("token", "file", "token")}
    assert resolve_secrets(secrets, base_dir=tmp_path) == {"token": "abc \n"}


def test_file_secret_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "tok").write_text("xyz\r\n")
    secrets = {"t": Secret("t", "file", "~/tok")}
    assert resolve_secrets(secrets, base_dir=Path("/nonexistent")) == {"t": "xyz"}


def test_file_secret_missing_names_secret_and_file(tmp_path: Path) -> None:
    secrets = {"token": Secret("token", "file", "nope.txt")}
    with pytest.raises(SecretError) as info:
        resolve_secrets(secrets, base_dir=tmp_path)
    assert str(info.value) == f"secret 'token': file {tmp_path / 'nope.txt'} does not exist"


def test_file_secret_directory(tmp_path: Path) -> None:
    secrets = {"token": Secret("token", "file", str(tmp_path))}
    with pytest.raises(SecretError, match=r"^secret 'token': file .* is a directory, not a file$"):
        resolve_secrets(secrets)


def test_command_secret() -> None:
    secrets = {"vault": Secret("vault", "command", "printf 'a b\\n'")}
    assert resolve_secrets(secrets) == {"vault": "a b"}


def test_command_secret_runs_in_base_dir(tmp_path: Path) -> None:
    (tmp_path / "v").write_text("from-file")
    secrets = {"v": Secret("v", "command", "cat v")}
    assert resolve_secrets(secrets, base_dir=tmp_path) == {"v": "from-file"}


def test_command_failure_reports_status_and_stderr_never_stdout() -> None:
    script = "echo TOPSECRET; echo 'vault is sealed' >&2; echo more >&2; exit 3"
    secrets = {"vault": Secret("vault", "command", script)}
    with pytest.raises(SecretError) as info:
        resolve_secrets(secrets)
    message = str(info.value)
    assert message == "secret 'vault': command exited with status 3: vault is sealed"
    assert "TOPSECRET" not in message


def test_command_timeout_kills_the_whole_group() -> None:
    secrets = {"slow": Secret("slow", "command", "sleep 30; echo late")}
    started = time.monotonic()
    with pytest.raises(SecretError, match=r"^secret 'slow': command timed out after 0.3s$"):
        resolve_secrets(secrets, timeout=0.3)
    assert time.monotonic() - started < 5


def test_all_failures_are_reported() -> None:
    secrets = {
        "a": Secret("a", "env", "A_VAR"),
        "ok": Secret("ok", "env", "OK"),
        "b": Secret("b", "command", "exit 1"),
    }
    with pytest.raises(SecretError) as info:
        resolve_secrets(secrets, environ={"OK": "1"})
    assert str(info.value) == (
        "secret 'a': environment variable A_VAR is not set; "
        "secret 'b': command exited with status 1"
    )


# --- params: coercion ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "raw", "expected"),
    [
        (Param("s"), "  hello world ", "  hello world "),
        (Param("n", "int"), "42", 42),
        (Param("n", "int"), " -7 ", -7),
        (Param("n", "int"), 5, 5),
        (Param("f", "float"), "2.5", 2.5),
        (Param("f", "float"), "3", 3.0),
        (Param("f", "float"), 3, 3.0),
        (Param("b", "bool"), "TRUE", True),
        (Param("b", "bool"), "yes", True),
        (Param("b", "bool"), "On", True),
        (Param("b", "bool"), "1", True),
        (Param("b", "bool"), "false", False),
        (Param("b", "bool"), "No", False),
        (Param("b", "bool"), "off", False),
        (Param("b", "bool"), "0", False),
        (Param("b", "bool"), False, False),
        (Param("t", "choice", choices=("staging", "prod")), "prod", "prod"),
        (Param("w", "choice", choices=(1, 5, 10)), "5", 5),
        (Param("r", "choice", choices=(0.5, 1.0)), "0.5", 0.5),
        (Param("y", "choice", choices=(True, False)), "no", False),
    ],
)
def test_coerce(param: Param, raw: object, expected: object) -> None:
    value = coerce(param, raw)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("param", "raw", "message"),
    [
        (Param("count", "int"), "abc", "param 'count': expected an int, got 'abc'"),
        (Param("count", "int"), "1.5", "param 'count': expected an int, got '1.5'"),
        (Param("count", "int"), True, "param 'count': expected an int, got True"),
        (Param("ratio", "float"), "x", "param 'ratio': expected a number, got 'x'"),
        (Param("ratio", "float"), "nan", "param 'ratio': expected a number, got 'nan'"),
        (
            Param("flag", "bool"),
            "maybe",
            "param 'flag': expected true or false (also yes/no, on/off, 1/0), got 'maybe'",
        ),
        (
            Param("target", "choice", choices=("staging", "prod")),
            "prd",
            "param 'target': expected one of staging, prod (did you mean 'prod'?), got 'prd'",
        ),
        (
            Param("weight", "choice", choices=(1, 5)),
            "7",
            "param 'weight': expected one of 1, 5, got '7'",
        ),
        (
            Param("weight", "choice", choices=(1, 5)),
            "heavy",
            "param 'weight': expected one of 1, 5, got 'heavy'",
        ),
        (Param("name"), 3, "param 'name': expected a string, got 3"),
    ],
)
def test_coerce_errors_name_the_param(param: Param, raw: object, message: str) -> None:
    with pytest.raises(ParamError) as info:
        coerce(param, raw)
    assert str(info.value) == message


# --- params: resolve -------------------------------------------------------------------

PARAMS = {
    "release": Param("release", default="2024.11.3"),
    "count": Param("count", "int", default=2),
    "target": Param("target", "choice", choices=("staging", "prod"), default="staging"),
    "ticket": Param("ticket", required=True),
    "dry": Param("dry", "bool", default=False),
}


def test_resolve_fills_defaults_and_coerces_overrides() -> None:
    values = resolve_params(PARAMS, {"ticket": "INC-1", "count": "5", "dry": "yes"})
    assert values == {
        "release": "2024.11.3",
        "count": 5,
        "target": "staging",
        "ticket": "INC-1",
        "dry": True,
    }


def test_resolve_required_missing() -> None:
    with pytest.raises(ParamError) as info:
        resolve_params(PARAMS, {})
    assert str(info.value) == "param 'ticket' is required (use --param ticket=VALUE)"
    with pytest.raises(ParamError, match="param 'ticket' is required"):
        resolve_params(PARAMS, {"ticket": "  "})


def test_resolve_unknown_param_suggests() -> None:
    with pytest.raises(ParamError) as info:
        resolve_params(PARAMS, {"ticket": "x", "relase": "1"})
    assert str(info.value) == "unknown param 'relase' (did you mean 'release'?)"
    with pytest.raises(ParamError, match=r"unknown param 'zzz' \(known: release, count"):
        resolve_params(PARAMS, {"ticket": "x", "zzz": "1"})
    with pytest.raises(ParamError, match=r"this workflow has no params"):
        resolve_params({}, {"a": "1"})


def test_resolve_reports_every_problem() -> None:
    with pytest.raises(ParamError) as info:
        resolve_params(PARAMS, {"count": "many", "target": "dev"})
    assert str(info.value) == (
        "param 'ticket' is required (use --param ticket=VALUE); "
        "param 'count': expected an int, got 'many'; "
        "param 'target': expected one of staging, prod, got 'dev'"
    )


def test_resolve_params_without_default() -> None:
    params = {
        "note": Param("note"),
        "n": Param("n", "int"),
        "env": Param("env", "choice", choices=("a", "b")),
        "req": Param("req", "int", required=True, default=3),
    }
    assert resolve_params(params, {}) == {"note": "", "n": None, "env": "a", "req": 3}


def test_resolve_bad_default_is_reported() -> None:
    with pytest.raises(ParamError, match=r"param 'n': expected an int, got 'x' \(default\)"):
        resolve_params({"n": Param("n", "int", default="x")}, {})


def test_missing_required() -> None:
    assert missing_required(PARAMS, {}) == ["ticket"]
    assert missing_required(PARAMS, {"ticket": ""}) == ["ticket"]
    assert missing_required(PARAMS, {"ticket": "INC-9"}) == []


def test_parse_assignments() -> None:
    items = ["a=1", "url=http://x/?q=1&r=2", "empty=", " spaced =v", "a=2"]
    assert parse_assignments(items) == {
        "a": "2",
        "url": "http://x/?q=1&r=2",
        "empty": "",
        "spaced": "v",
    }


@pytest.mark.parametrize("item", ["novalue", "=value", ""])
def test_parse_assignments_rejects_malformed(item: str) -> None:
    with pytest.raises(ParamError, match="expected NAME=VALUE"):
        parse_assignments([item])
