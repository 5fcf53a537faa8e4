"""Templates: shell quoting, strictness, sandboxing, static refs and secret masking."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from console.model.templating import (
    Masker,
    TemplateError,
    analyze,
    evaluate,
    needs_render,
    render_command,
    render_value,
)

HOSTILE = [
    "two words",
    "it's \"quoted\"",
    "$(rm -rf /)",
    "`id`; echo pwned",
    "line1\nline2",
    "",
    "*",
    "a\\b $HOME ${PATH} | & > /dev/null",
]


def run_argv(command: str) -> list[str]:
    """Run ``command`` with /bin/sh; it prints its arguments as a JSON list."""
    out = subprocess.run(
        ["/bin/sh", "-c", command], capture_output=True, text=True, check=True, timeout=10
    )
    return json.loads(out.stdout)


PRINT_ARGV = f"{sys.executable} -c 'import json,sys; print(json.dumps(sys.argv[1:]))'"


@pytest.mark.parametrize("value", HOSTILE)
def test_substituted_value_is_one_literal_argument(value: str) -> None:
    command = render_command(PRINT_ARGV + " {{ params.v }} end", {"params": {"v": value}})
    assert run_argv(command) == [value, "end"]


def test_values_inside_loops_are_quoted_each() -> None:
    command = render_command(
        PRINT_ARGV + "{% for h in hosts %} {{ h }}{% endfor %}", {"hosts": ["a b", "$(c)"]}
    )
    assert run_argv(command) == ["a b", "$(c)"]


def test_raw_filter_inserts_unquoted() -> None:
    context = {"params": {"args": "one two", "extra": "x"}}
    command = render_command(PRINT_ARGV + " {{ params.args | raw }} {{ params.extra }}", context)
    assert run_argv(command) == ["one", "two", "x"]


def test_concatenation_after_raw_is_quoted_again() -> None:
    command = render_command("{{ (x | raw) ~ ' y' }}", {"x": "a"})
    assert command == "'a y'"


def test_scalars_render_with_str_and_booleans_as_true_false() -> None:
    context = {"b": True, "f": False, "n": None, "i": 3, "d": {"a": 1}}
    assert render_command("{{ b }} {{ n }} {{ i }}", context) == "true None 3"
    assert render_command('[ "{{ f }}" = false ] {{ b | raw }}', context) == \
        '[ "false" = false ] true'
    assert render_value("{{ d }}", context) == "{'a': 1}"
    assert render_value("{{ b }}/{{ f }}", context) == "true/false"
    assert evaluate("not f and b", context) is True  # `when` still sees real booleans


def test_render_value_does_not_quote_and_keeps_trailing_newline() -> None:
    assert render_value("/srv/{{ p }}\n", {"p": "my app"}) == "/srv/my app\n"


def test_text_without_braces_is_returned_as_is() -> None:
    assert not needs_render("echo $HOME 'x'")
    assert needs_render("echo {{ x }}")
    text = "echo $HOME 'x' }}\n"
    assert render_command(text, {}) is text


@pytest.mark.parametrize(
    ("source", "message", "line"),
    [
        ("echo {{ nope }}", "undefined name 'nope'", 1),
        ("echo\necho\necho {{ params.missing }}", "'dict object' has no attribute 'missing'", 3),
        ("{{ params.a.b.c }}", "'dict object' has no attribute 'a'", 1),
    ],
)
def test_undefined_is_an_error(source: str, message: str, line: int) -> None:
    with pytest.raises(TemplateError) as info:
        render_command(source, {"params": {}})
    assert str(info.value) == message
    assert info.value.line == line


def test_undefined_name_in_raw_is_an_error() -> None:
    with pytest.raises(TemplateError, match="undefined name 'ghost'"):
        render_command("{{ ghost | raw }}", {})


def test_syntax_error_reports_its_line() -> None:
    source = "echo one\necho two\necho {{ params.x }\n"
    for call in (lambda: render_command(source, {}), lambda: analyze(source)):
        with pytest.raises(TemplateError) as info:
            call()
        assert info.value.line == 3
        assert "\n" not in str(info.value)


def test_python_errors_become_template_errors() -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError: division by zero") as info:
        render_value("a\n{{ 1 / 0 }}", {})
    assert info.value.line == 2


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ params.__init__.__globals__ }}",
        "{{ params.update({'x': 1}) }}",
        "{{ items.append(1) }}",
        "{{ lipsum.__globals__ }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_sandbox_refuses_unsafe_access(source: str) -> None:
    with pytest.raises(TemplateError, match=r"is unsafe$"):
        render_command(source, {"params": {}, "items": []})


def test_evaluate_when_expressions() -> None:
    context = {"params": {"target": "prod", "count": 3}, "steps": {"a": {"exit_code": 0}}}
    assert evaluate("params.target == 'prod'", context) is True
    assert evaluate("params.count > 5", context) is False
    assert evaluate("steps.a.exit_code == 0 and params.count", context) is True
    assert evaluate("{{ params.target == 'staging' }}", context) is False
    assert evaluate("steps.a.json is defined", context) is False


def test_evaluate_errors() -> None:
    with pytest.raises(TemplateError, match="'dict object' has no attribute 'nope'"):
        evaluate("params.nope == 1", {"params": {}})
    with pytest.raises(TemplateError):
        evaluate("params.target ==", {"params": {}})
    with pytest.raises(TemplateError, match="chunk after expression"):
        evaluate("a b", {"a": 1, "b": 2})


def test_analyze_finds_references() -> None:
    refs = analyze(
        "curl {{ params.url }} -H {{ secrets.token }}\n"
        "echo {{ steps.a.stdout }} {{ steps['b'].json.version }}\n"
        "{{ steps.c.hosts['web1'].exit_code }} {{ host.vars.weight }}\n"
        "{% for g in host.groups %}{{ g }} {{ loop.index }}{% endfor %}"
    )
    assert refs.names == {"params", "secrets", "steps", "host"}
    assert refs.params == {"url"}
    assert refs.secrets == {"token"}
    assert refs.steps == {"a", "b", "c"}


def test_analyze_ignores_locally_defined_names() -> None:
    refs = analyze("{% set steps = {'x': 1} %}{{ steps.x }} {{ params['p'] }}")
    assert refs.names == {"params"}
    assert refs.steps == frozenset()
    assert refs.params == {"p"}


def test_analyze_expression() -> None:
    refs = analyze("params.target == 'prod' and steps.check.status == 'succeeded'",
                   expression=True)
    assert refs.names == {"params", "steps"}
    assert refs.params == {"target"}
    assert refs.steps == {"check"}
    assert analyze("{{ params.x }}", expression=True).params == {"x"}
    with pytest.raises(TemplateError):
        analyze("params.x ==", expression=True)


def test_analyze_plain_text() -> None:
    refs = analyze("echo hello")
    assert refs.names == refs.params == refs.secrets == refs.steps == frozenset()


# --- Masker ---------------------------------------------------------------------------


def test_masker_without_secrets_returns_text_unchanged() -> None:
    masker = Masker(["", ""])
    assert not masker
    text = "nothing to see"
    assert masker.mask(text) is text


def test_masker_masks_every_secret_everywhere() -> None:
    masker = Masker(["hunter2", "s3cr3t"])
    assert masker
    assert masker.mask("pw=hunter2 token=s3cr3t again hunter2") == "pw=*** token=*** again ***"
    assert masker.mask("") == ""
    clean = "no secrets in here"
    assert masker.mask(clean) is clean


def test_masker_overlapping_secrets_leave_no_fragment() -> None:
    masker = Masker(["abc", "abcdef", "cdefgh"])
    assert masker.mask("x abcdef y") == "x *** y"
    assert masker.mask("x abcdefgh y") == "x *** y"
    assert masker.mask("x abc y") == "x *** y"


def test_masker_masks_the_shell_quoted_form() -> None:
    secret = "it's a secret"
    masker = Masker([secret])
    command = render_command("login --password {{ secrets.pw }}", {"secrets": {"pw": secret}})
    assert masker.mask(command) == "login --password ***"
    assert "secret" not in masker.mask(command)


def test_masker_handles_regex_characters() -> None:
    masker = Masker(["a.b*c", "(x|y)"])
    assert masker.mask("aXb a.b*c (x|y) x") == "aXb *** *** x"


# --- Masker: encodings, lines, short secrets (issue 11 items 2, 3, 5) -------------------


@pytest.mark.parametrize("secret", ["p@ss w/rd+1", "tök€n'\"$`\\", "abcd", "x" * 40])
def test_masker_masks_common_encodings(secret: str) -> None:
    import base64
    import shlex
    from urllib.parse import quote, quote_plus

    masker = Masker([secret])
    raw = secret.encode()
    forms = [quote(secret), quote(secret, safe=""), quote_plus(secret),
             json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             shlex.quote(secret), base64.b64encode(raw).decode(),
             base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode(),
             base64.urlsafe_b64encode(raw).decode().rstrip("=")]
    for form in forms:
        assert masker.mask(f"x {form} y") == "x *** y", form


@pytest.mark.parametrize("prefix", ["", "a", "ab", "abc", "user:"])
def test_masker_masks_a_secret_inside_a_longer_base64_text(prefix: str) -> None:
    import base64

    secret = "hunter2-secret"
    masker = Masker([secret])
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode(f"{prefix}{secret}@tail".encode()).decode()
        masked = masker.mask(encoded)
        assert "***" in masked
        # at most 3 characters of the encoding that mix the secret with its neighbours stay
        visible = masked.replace("***", "")
        assert len(encoded) - len(visible) >= 4 * len(secret) // 3 - 3


def test_masker_masks_each_line_of_a_multiline_secret_on_its_own() -> None:
    key = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34\n\n  indented line  \nab\n-----END KEY-----\n"
    masker = Masker([key])
    assert masker.mask("MIIBOgIBAAJBAKj34") == "***"
    assert masker.mask("-----BEGIN KEY-----") == "***"
    assert masker.mask("  indented line  ") == "***"
    assert masker.mask("> indented line") == "> ***"
    assert masker.mask(key) == "***"
    assert masker.mask("ab") == "***" and masker.mask("cab abc") == "cab abc"
    assert masker.mask("a blank\n\nline") == "a blank\n\nline"  # blank lines are not secrets


def test_masker_masks_short_secrets_only_as_whole_tokens() -> None:
    masker = Masker(["h", "42", "!!"])
    assert masker.mask("hello there h") == "hello there ***"
    assert masker.mask("pin=42, 1042 42x (42)") == "pin=***, 1042 42x (***)"
    assert masker.mask("wow!!! ok!! !!") == "wow!!! ok*** ***"
    assert masker.mask("h-h") == "***-***"


def test_masker_ignores_blank_secrets() -> None:
    masker = Masker(["", "   ", "\n"])
    assert not masker
