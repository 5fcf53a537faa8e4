"""Issue 11 items 14 and 15: special or huge files, secret commands that never stop
printing, and numbers no run can honour are each one clear, located error."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from console.model.durations import MAX_DURATION, retry_delay
from console.model.loader import WorkflowError, load_text, load_workflow
from console.model.secrets import SecretError, resolve_secret
from console.model.workflow import Secret
from tests.conftest import baton, write_workflow

HEAD = '[workflow]\nname = "w"\n'


# --- item 14: special files and sizes -----------------------------------------------------


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def test_a_fifo_workflow_is_refused_at_once(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path / "wf.toml")
    started = time.monotonic()
    result = baton("check", fifo, timeout=20)
    assert time.monotonic() - started < 15
    assert result.returncode != 0
    assert f"{fifo}: is a named pipe (FIFO), not a regular file" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_a_device_workflow_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match="/dev/zero: is a character device, not a regular"):
        load_workflow("/dev/zero")


def test_a_workflow_over_16_mib_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    with big.open("wb") as handle:
        handle.write(HEAD.encode())
        handle.truncate(16 * 1024 * 1024 + 1)
    with pytest.raises(WorkflowError, match=r"big\.toml: is larger than 16 MiB"):
        load_workflow(big)


def test_a_fifo_inventory_is_a_located_error(tmp_path: Path) -> None:
    _fifo(tmp_path / "hosts.toml")
    path = write_workflow(tmp_path, """
        [workflow]
        name = "w"
        inventory = "hosts.toml"
    """)
    with pytest.raises(WorkflowError) as info:
        load_workflow(path)
    (problem,) = info.value.problems
    assert problem.line == 3
    assert "cannot read inventory 'hosts.toml': is a named pipe (FIFO)" in problem.message


def test_a_fifo_ansible_inventory_is_refused(tmp_path: Path) -> None:
    _fifo(tmp_path / "hosts.ini")
    path = write_workflow(tmp_path, """
        [workflow]
        name = "w"
        inventory = "ansible:hosts.ini"
    """)
    with pytest.raises(WorkflowError, match=r"hosts.ini: is a named pipe \(FIFO\)"):
        load_workflow(path)


@pytest.mark.parametrize(("make", "reason"), [
    (lambda d: _fifo(d / "token"), "is a named pipe (FIFO), not a regular file"),
    (lambda d: Path("/dev/zero"), "is a character device, not a regular file"),
    (lambda d: (d / "token").write_bytes(b"x" * (1024 * 1024 + 1)) and d / "token",
     "is larger than 1 MiB"),
])
def test_special_or_huge_secret_files_are_refused(tmp_path: Path, make, reason: str) -> None:
    target = make(tmp_path)
    started = time.monotonic()
    with pytest.raises(SecretError) as info:
        resolve_secret(Secret("tok", "file", str(target)), base_dir=tmp_path)
    assert time.monotonic() - started < 10
    assert str(info.value) == f"secret 'tok': file {target} {reason}"


def test_a_secret_file_of_exactly_1_mib_is_read(tmp_path: Path) -> None:
    (tmp_path / "token").write_bytes(b"y" * (1024 * 1024))
    value = resolve_secret(Secret("tok", "file", "token"), base_dir=tmp_path)
    assert len(value) == 1024 * 1024


def test_a_secret_command_that_never_stops_printing_is_cut(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(SecretError) as info:
        resolve_secret(Secret("tok", "command", "yes"), base_dir=tmp_path)
    assert time.monotonic() - started < 10
    assert str(info.value) == "secret 'tok': command printed more than 1 MiB"


def test_a_secret_command_times_out_even_if_a_child_keeps_the_pipe(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(SecretError) as info:
        resolve_secret(Secret("tok", "command", "sleep 30 & sleep 30"), base_dir=tmp_path,
                       timeout=0.5)
    assert time.monotonic() - started < 10
    assert str(info.value) == "secret 'tok': command timed out after 0.5s"


def test_a_secret_command_still_works(tmp_path: Path) -> None:
    secret = Secret("tok", "command", "printf 'hunter2\\n'; echo noise >&2")
    assert resolve_secret(secret, base_dir=tmp_path) == "hunter2"


# --- item 15: numbers -------------------------------------------------------------------


@pytest.mark.parametrize(("snippet", "message", "line"), [
    ("[steps.a]\nretry_backoff = nan\n", "steps.a.retry_backoff: must be a finite number", 4),
    ("[steps.a]\nretry_backoff = inf\n", "steps.a.retry_backoff: must be a finite number", 4),
    ("[steps.a]\nretry_backoff = -inf\n", "steps.a.retry_backoff: must be a finite number", 4),
    ("[steps.a]\nretry_backoff = 1e308\n", "steps.a.retry_backoff: must be at most 100", 4),
    ("[steps.a]\ntimeout = inf\n", "steps.a.timeout: duration must be a positive", 4),
    ("[steps.a]\ntimeout = nan\n", "steps.a.timeout: duration must be a positive", 4),
    ("[steps.a]\ntimeout = 1e308\n", "steps.a.timeout: duration 1e+308 is too long", 4),
    ('[steps.a]\nretry_delay = "99999999999999999999d"\n',
     "steps.a.retry_delay: duration '99999999999999999999d' is too long: at most 365d", 4),
    ('[steps.a]\ntimeout = "400d"\n', "is too long", 4),
    ('[ssh]\nconnect_timeout = 1e300\n', "ssh.connect_timeout: duration 1e+300 is too long", 4),
    ("[params]\nratio = nan\n", "params.ratio: must be a finite number", 4),
    ('[params]\nratio = { type = "float", default = inf }\n',
     "params.ratio.default: must be a finite number", 4),
])
def test_numbers_no_run_can_honour_are_located(snippet: str, message: str, line: int) -> None:
    with pytest.raises(WorkflowError) as info:
        load_text(HEAD + snippet, "wf.toml")
    (problem,) = info.value.problems
    assert message in problem.message
    assert (problem.file, problem.line) == ("wf.toml", line)


@pytest.mark.parametrize("opener", ["{a = ", "["])
def test_deeply_nested_inline_tables_are_a_located_error(opener: str) -> None:
    closer = "}" if opener.startswith("{") else "]"
    text = HEAD + "[steps.a]\nenv = " + opener * 2000 + "1" + closer * 2000 + "\n"
    with pytest.raises(WorkflowError) as info:
        load_text(text, "wf.toml")
    (problem,) = info.value.problems
    assert problem.line == 4
    assert problem.col == len("env = ") + 400 * len(opener) + 1
    assert "nested more than 400 levels deep" in problem.message


@pytest.mark.parametrize("deep", ["[steps.a.env" + ".a" * 3000 + "]\nx = 1\n",
                                  "[params]\np" + ".a" * 3000 + " = 1\n"])
def test_deeply_dotted_keys_are_a_located_error(deep: str) -> None:
    with pytest.raises(WorkflowError) as info:
        load_text(HEAD + deep, "wf.toml")
    (problem,) = info.value.problems
    assert problem.line in (3, 4)
    assert "nested more than 400 levels deep" in problem.message


def test_deep_nesting_through_the_command(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(HEAD + "x = " + "{a = " * 2000 + "1" + "}" * 2000 + "\n")
    result = baton("check", path)
    assert result.returncode in (1, 2)
    assert "RecursionError" not in result.stderr + result.stdout
    assert f"{path}:3:" in result.stdout + result.stderr


def test_retry_delays_never_overflow() -> None:
    assert retry_delay(5.0, 2.0, 1) == 5.0
    assert retry_delay(5.0, 2.0, 3) == 20.0
    assert retry_delay(5.0, 100.0, 5000) == MAX_DURATION


def test_a_nan_backoff_run_is_refused_not_run(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, """
        [workflow]
        name = "w"
        [steps.a]
        run = "exit 1"
        retries = 2
        retry_backoff = nan
    """)
    result = baton("run", path, "--headless", timeout=30)
    assert result.returncode == 2
    assert "must be a finite number" in result.stderr
    assert "nans" not in result.stdout
