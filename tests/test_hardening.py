"""Issue 11 (hardening), secrets: no secret value reaches any sink in clear.

Every test runs the real `baton` command (or the real engine) and hunts for the value in
everything it wrote: the terminal, the JSON events, the history (SQLite), the logs and
every format of `baton show`.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import baton, write_workflow

SECRET = "Hunter2-SECRET"


def _everything_written(home: Path) -> str:
    """Every byte under $BATON_HOME: the SQLite history (and its WAL) and every log."""
    parts = []
    for path in sorted(home.rglob("*")):
        if path.is_file():
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    db = home / "history.sqlite"
    if db.exists():
        with sqlite3.connect(db) as conn:
            for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
                for row in conn.execute(f"SELECT * FROM {table}"):
                    parts.append(repr(row))
    return "\n".join(parts)


# --- item 6: Ansible inventory errors never echo a value ----------------------------------


@pytest.mark.parametrize(("name", "text"), [
    ("creds.yml", f"all:\n  hosts:\n    web1:\n      ansible_password: [{SECRET}]\n"),
    ("creds.yml", f"all:\n  hosts:\n    web1:\n  vars:\n    ansible_password: '{SECRET}\n"),
    ("creds.yml", f"all:\n  hosts:\n    web1:\n  vars:\n    ansible_password: !vault {SECRET}\n"),
    ("creds.yml", f"all:\n  hosts:\n    web1:\n  vars:\n    pw {SECRET}\n"),
    ("creds.ini", f"[web]\nweb1 ansible_password='{SECRET}\n"),
    ("creds.ini", f"[web]\nweb1 {SECRET}\n"),
    ("creds.ini", f"[web:vars]\n{SECRET}\n"),
    ("creds.ini", f"[web:children]\n{SECRET} x\n"),
    ("creds.ini", f"[{SECRET}\n"),
    ("creds.ini", f"[web]\nweb1 ansible_port={SECRET}\n"),
])
def test_ansible_inventory_errors_never_echo_values(tmp_path: Path, name: str,
                                                    text: str) -> None:
    """`check` names the file, the line and the construct; the value stays in the file."""
    (tmp_path / name).write_text(text, encoding="utf-8")
    wf = write_workflow(tmp_path, f"""
        [workflow]
        name = "w"
        inventory = "ansible:{name}"
        [steps.a]
        run = "true"
        on = "all"
    """)
    result = baton("check", wf)
    output = result.stdout + result.stderr
    assert SECRET not in output
    if result.returncode == 0:  # a reader may accept the construct: then nothing to show
        return
    assert result.returncode in (1, 2)
    assert re.search(rf"{re.escape(name)}:\d+: \S", output), output
    assert "Traceback" not in output


# --- helpers for the run tests ------------------------------------------------------------


def _forms(value: str) -> list[str]:
    """The value and the encodings a step or a template can print of it."""
    import base64
    import json
    import shlex
    from urllib.parse import quote, quote_plus

    raw = value.encode()
    return [value, quote(value), quote(value, safe=""), quote_plus(value),
            json.dumps(value)[1:-1], shlex.quote(value), base64.b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode().rstrip("="), value.upper(), value[::-1]]


def _assert_nowhere(value: str, home: Path, *outputs: str) -> None:
    """No form of ``value`` in the outputs given nor in anything under $BATON_HOME."""
    written = _everything_written(home)
    for form in _forms(value):
        for text in (*outputs, written):
            assert form not in text, (form, text[max(0, text.find(form) - 200):][:400])


def _show_everything(run_id: str) -> str:
    """`baton show` in every format, and `runs`."""
    out = []
    for args in ((), ("--json",), ("--markdown",)):
        result = baton("show", run_id, *args)
        assert result.returncode == 0, result.stderr
        out.append(result.stdout + result.stderr)
    result = baton("runs")
    out.append(result.stdout + result.stderr)
    return "\n".join(out)


def _run_id(stderr: str) -> str:
    match = re.search(r"run (\w+) \(baton show", stderr)
    assert match, stderr
    return match.group(1)


# --- item 1: every sink masks, reasons included --------------------------------------------


LEAKY_REASONS = """
    [workflow]
    name = "leaky reasons"
    [params]
    x = "1"
    [secrets]
    e = { env = "BATON_TEST_E" }
    [steps.cwd]
    run = "true"
    cwd = "/nonexistent/{{ secrets.e }}"
    [steps.lookup]
    run = "echo {{ params[secrets.e] }}"
    [steps.lookup_upper]
    run = "echo {{ params[secrets.e | upper] }}"
    [steps.env]
    run = "true"
    env = { X = "{{ params[secrets.e] }}" }
    [steps.when]
    run = "true"
    when = "params[secrets.e] == 1"
    [steps.exit]
    run = "exit 3"
    [steps.retry]
    run = "false"
    cwd = "/nonexistent/{{ secrets.e | urlencode }}/{{ secrets.e }}"
    retries = 1
    retry_delay = "0s"
"""


@pytest.mark.parametrize("mode", [(), ("--json",)])
def test_secrets_in_reasons_are_masked_in_every_sink(tmp_path: Path, baton_home: Path,
                                                     mode: tuple[str, ...]) -> None:
    """A secret that reaches a reason (a cwd that does not exist, a template error naming
    the value, even upper-cased) is masked in the terminal, the JSON events, the attempts
    and tasks tables, the events table and every format of `show`."""
    secret = "Hunter2 SECRET/x+y"
    wf = write_workflow(tmp_path, LEAKY_REASONS)
    result = baton("run", wf, "--headless", "--yes", *mode, env={"BATON_TEST_E": secret})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    run_id = baton("runs").stdout.splitlines()[1].split()[0]
    shown = _show_everything(run_id)
    assert "cwd /nonexistent/*** does not exist" in shown
    assert "template error: 'dict object' has no attribute '***'" in shown
    _assert_nowhere(secret, baton_home, result.stdout, result.stderr, shown)


# --- item 2: commands stored and shown with placeholders; encodings masked in output -------


TRANSFORMED = """
    [workflow]
    name = "transformed"
    [secrets]
    pw = { env = "BATON_TEST_PW" }
    [steps.use]
    run = '''echo curl -u "admin:{{ secrets.pw | urlencode | raw }}" http://x/ >/dev/null
    echo {{ secrets.pw | upper }} {{ secrets.pw | reverse }} {{ secrets.pw | tojson }}
    echo {{ secrets.pw | lower | urlencode }} {{ secrets.pw }}'''
"""


def test_transformed_secrets_never_stored_or_shown(tmp_path: Path, baton_home: Path) -> None:
    """The stored command, `--dry-run`, `plan` and `show` carry the command rendered with
    placeholders: no transformed secret (urlencode, upper, reverse, tojson) in any. What
    a template made of a secret is masked in the step's output too."""
    secret = "Pa ss/wörd+1"
    wf = write_workflow(tmp_path, TRANSFORMED)
    env = {"BATON_TEST_PW": secret, "PATH": "/usr/bin:/bin"}
    dry = baton("run", wf, "--headless", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert 'curl -u "admin:***" http://x/' in dry.stdout
    assert "echo *** *** '\"***\"'" in dry.stdout
    assert "echo *** ***" in dry.stdout
    plan = baton("plan", wf, env=env)
    assert 'curl -u "admin:***" http://x/' in plan.stdout
    real = baton("run", wf, "--headless", "--yes", "--json", env=env)
    assert real.returncode == 0, real.stderr
    human = baton("run", wf, "--headless", "--yes", env=env)
    shown = _show_everything(_run_id(human.stderr))
    assert 'curl -u "admin:***" http://x/' in shown
    assert "use | *** *** ***\nuse | *** ***\n" in human.stdout  # the output, masked
    for form in (secret.lower(), *_forms(secret.lower())):
        assert form not in dry.stdout + plan.stdout + real.stdout + human.stdout + shown
    _assert_nowhere(secret, baton_home, dry.stdout, plan.stdout, real.stdout, human.stdout,
                    shown)


ENCODER = r'''
import base64, json, os, shlex, sys
from urllib.parse import quote, quote_plus
s = os.environ["S"]
b = s.encode()
for line in (s, quote(s), quote(s, safe=""), quote_plus(s), json.dumps(s),
             json.dumps(s, ensure_ascii=False), shlex.quote(s),
             base64.b64encode(b).decode(), base64.b64encode(b).decode().rstrip("="),
             base64.urlsafe_b64encode(b).decode(),
             base64.urlsafe_b64encode(b).decode().rstrip("=")):
    print("value:", line, flush=True)
for prefix in ("", "u", "us", "use", "user:"):
    data = (prefix + s + "@trailer").encode()
    print("auth:", base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode(),
          flush=True)
'''


@pytest.mark.parametrize("secret", ["correct horse/battery+staple?&=", "tök€n~1>2'\"$`\\",
                                    "abcd", "Zm9v!!"])
def test_encoded_forms_of_a_secret_are_masked_in_output(tmp_path: Path, baton_home: Path,
                                                        secret: str) -> None:
    """A step printing the secret URL-encoded, JSON-escaped, shell-quoted or in base64
    (alone, or inside a longer base64 text at any offset) shows ***."""
    (tmp_path / "enc.py").write_text(ENCODER, encoding="utf-8")
    wf = write_workflow(tmp_path, """
        [workflow]
        name = "encodings"
        [secrets]
        s = { env = "BATON_TEST_S" }
        [steps.print]
        run = "python3 enc.py"
        env = { S = "{{ secrets.s }}" }
    """)
    result = baton("run", wf, "--headless", "--yes", "--json", cwd=tmp_path,
                   env={"BATON_TEST_S": secret})
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x)["line"] for x in result.stdout.splitlines()
             if json.loads(x)["type"] == "log"]
    values = [line for line in lines if line.startswith("value:")]
    assert values and all(line[7:].strip("'\"") == "***" for line in values), values
    raw = secret.encode()
    for line in (x for x in lines if x.startswith("auth:")):
        for encoded in line.split()[1:]:
            # what is left visible decodes to nothing of the secret
            assert "***" in encoded, line
    for prefix in ("", "u", "us", "use", "user:"):
        whole = base64.b64encode((prefix + secret + "@trailer").encode()).decode()
        assert whole not in result.stdout
    assert base64.b64encode(raw).decode() not in _everything_written(baton_home)


# --- item 3: each line of a multi-line secret is masked on its own -------------------------


def test_multiline_secret_lines_written_separately_are_masked(tmp_path: Path,
                                                             baton_home: Path) -> None:
    """A key file printed line by line, each line in its own write (with a pause between),
    shows *** for every line, in the terminal, the JSON events and the log."""
    key = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n  indented-line-2 \n-----END KEY-----"
    (tmp_path / "key.pem").write_text(key + "\n", encoding="utf-8")
    wf = write_workflow(tmp_path, """
        [workflow]
        name = "multi-line"
        [secrets]
        key = { file = "key.pem" }
        [steps.print]
        run = '''printf '%s\\n' "$KEY" | while IFS= read -r line; do
          printf '%s\\n' "$line"; sleep 0.2
        done
        printf 'one line: %s\\n' "$(printf '%s' "$KEY" | sed -n 2p)"'''
        env = { KEY = "{{ secrets.key }}" }
    """)
    for mode in ((), ("--json",)):
        result = baton("run", wf, "--headless", "--yes", *mode)
        assert result.returncode == 0, result.stderr
        for line in key.splitlines():
            assert line.strip() not in result.stdout, (line, result.stdout)
        assert result.stdout.count("***") >= 5
        assert "one line: ***" in result.stdout
    written = _everything_written(baton_home)
    for line in key.splitlines():
        assert line.strip() not in written


# --- item 5: empty and short secrets --------------------------------------------------------


EMPTY = """
    [workflow]
    name = "empty"
    [secrets]
    token = { env = "BATON_TEST_TOKEN" }
    debug = { env = "BATON_TEST_DEBUG", optional = true }
    [steps.a]
    run = "echo [{{ secrets.debug }}]"
"""


@pytest.mark.parametrize("env", [{"BATON_TEST_TOKEN": ""}, {"BATON_TEST_TOKEN": " \t"}])
def test_empty_secret_is_an_error_naming_it(tmp_path: Path, env: dict[str, str]) -> None:
    wf = write_workflow(tmp_path, EMPTY)
    result = baton("run", wf, "--headless", "--yes", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "secret 'token'" in lines[0] and "optional = true" in lines[0]
    assert "Traceback" not in result.stderr


def test_optional_secret_may_be_unset_or_empty(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path, EMPTY)
    for debug in (None, ""):
        env = {"BATON_TEST_TOKEN": "tok-12345"}
        if debug is not None:
            env["BATON_TEST_DEBUG"] = debug
        result = baton("run", wf, "--headless", "--yes", env=env)
        assert result.returncode == 0, result.stderr
        assert "a | []" in result.stdout
        assert "warning" not in result.stderr


def test_short_secret_warns_and_is_masked_only_as_a_whole_word(tmp_path: Path,
                                                               baton_home: Path) -> None:
    wf = write_workflow(tmp_path, """
        [workflow]
        name = "short"
        [secrets]
        pin = { env = "BATON_TEST_PIN" }
        long = { env = "BATON_TEST_LONG" }
        [steps.a]
        run = "echo hello there h, pin=$PIN h-h end; echo {{ secrets.pin }}"
        env = { PIN = "{{ secrets.pin }}" }
    """)
    result = baton("run", wf, "--headless", "--yes",
                   env={"BATON_TEST_PIN": "h", "BATON_TEST_LONG": "long-enough"})
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "secret 'pin'" in warnings[0], result.stderr
    assert "a | hello there ***, pin=*** ***-*** end" in result.stdout
    assert "a | ***" in result.stdout


async def test_short_secret_warning_is_a_console_notification(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.ui_helpers import SIZE, make_app, run_screen, until

    monkeypatch.setenv("BATON_TEST_PIN", "42")
    app, _world = make_app(tmp_path, """
        [workflow]
        name = "short"
        [secrets]
        pin = { env = "BATON_TEST_PIN" }
        [steps.a]
        run = "echo {{ secrets.pin }}"
    """.replace("\n        ", "\n"), start=True)
    async with app.run_test(size=SIZE):
        await run_screen(app)
        await until(lambda: any("secret 'pin'" in n.message for n in app._notifications))
        (note,) = [n for n in app._notifications if "secret 'pin'" in n.message]
        assert note.severity == "warning"
