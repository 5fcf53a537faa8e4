"""Issue 13 keys in the loader, `check` and `plan`: undo, undo_on_failure, poll/within/delay,
delegate and status functions in `when`."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.model.loader import WorkflowError, load_text
from console.plan import build_plan, render_plan

HEAD = ('[workflow]\nname = "t"\n[secrets]\ntok = { env = "TOK" }\n'
        '[hosts.lb1]\n[hosts.web1]\ngroups = ["web"]\n[hosts.web2]\ngroups = ["web"]\n')
"""Nine lines: a snippet's first line is line 10."""


def problems(snippet: str) -> list[str]:
    with pytest.raises(WorkflowError) as info:
        load_text(HEAD + snippet, "wf.toml")
    return [str(p) for p in info.value.problems]


BAD = [
    ('[steps.a]\nrun = "x"\nundo = "echo {{ hots.name }}"\n',
     "wf.toml:12:1: steps.a.undo: unknown name 'hots' (did you mean 'host'?)"),
    ('[steps.a]\nrun = "x"\nundo = "echo {{ params.nope }}"\n',
     "wf.toml:12:1: steps.a.undo: unknown param 'nope'"),
    ('[steps.a]\nrun = "x"\nundo = "echo {% if %}"\n',
     "wf.toml:12:1: steps.a.undo: template error"),
    ('[steps.a]\nrun = "x"\nundo = "  "\n', "wf.toml:12:1: steps.a.undo: must not be empty"),
    ('[steps.a]\nrun = "x"\nundo = 3\n', "wf.toml:12:1: steps.a.undo: expected a string"),
    ('[steps.a]\nrun = "x"\nundo_on_failure = true\n',
     "wf.toml:12:1: steps.a.undo_on_failure: needs undo"),
    ('[steps.a]\nrun = "x"\npoll = "5s"\n', "wf.toml:12:1: steps.a.poll: needs within"),
    ('[steps.a]\nrun = "x"\nwithin = "5s"\n', "wf.toml:12:1: steps.a.within: needs poll"),
    ('[steps.a]\nrun = "x"\npoll = "5s"\nwithin = "1m"\ndelay = "x"\n',
     "wf.toml:14:1: steps.a.delay: invalid duration 'x'"),
    ('[steps.a]\nrun = "x"\npoll = 0\nwithin = "1m"\n',
     "wf.toml:12:1: steps.a.poll: must be more than 0 seconds"),
    ('[steps.a]\npoll = "1s"\nwithin = "1m"\n',
     "wf.toml:11:1: steps.a.poll: a manual step (no run) cannot poll"),
    ('[steps.a]\nrun = "x"\ndelegate = "lb2"\n',
     "wf.toml:12:1: steps.a.delegate: unknown host 'lb2' (did you mean 'lb1'?)"),
    ('[steps.a]\nrun = "x"\ndelegate = "web"\n',
     "wf.toml:12:1: steps.a.delegate: 'web' is a group; delegate names one host"),
    ('[steps.a]\nrun = "x"\ndelegate = "all"\n', "steps.a.delegate: 'all' is a group"),
    ('[steps.a]\nrun = "x"\ndelgate = "lb1"\n',
     "steps.a: unknown key 'delgate' (did you mean 'delegate'?)"),
    ('[steps.a]\nrun = "x"\nwhen = "always(1)"\n',
     "wf.toml:12:1: steps.a.when: always() takes no arguments"),
    ('[steps.a]\nrun = "x"\nwhen = "failure"\n',
     "steps.a.when: 'failure' is a status function: call it as failure()"),
    ('[steps.a]\nrun = "echo {{ failure() }}"\n',
     "steps.a.run: failure() is a status function: it works only in when"),
    ('[steps.a]\nrun = "x"\nwhen = "sucess()"\n', "unknown name 'sucess' (did you mean"),
]


@pytest.mark.parametrize(("snippet", "message"), BAD)
def test_bad_recovery_keys_are_located(snippet: str, message: str) -> None:
    found = problems(snippet)
    assert any(message in p for p in found), found
    assert len(found) == 1, found


def test_undo_gets_the_context_aware_quoting_and_checks_of_run() -> None:
    found = problems('[params]\nx = "a"\n[steps.a]\nrun = "x"\nundo = "echo `{{ params.x }}`"\n')
    assert found == ["wf.toml:14:15: steps.a.undo: {{ params.x }} is inside backticks, where it "
                     "cannot be quoted safely: use $( ) instead of backticks, or set it in env "
                     '(env = { NAME = "{{ … }}" }) and use "$NAME" there, or mark it "| raw" if '
                     "it is shell syntax on purpose"]
    wf = load_text(HEAD + '[params]\nx = "a"\n[steps.a]\nrun = "x"\n'
                   'undo = "echo \\"{{ params.x }}\\""\n')
    text = render_plan(build_plan(wf, {"x": 'it\'s "q" $HOME'}))
    assert '  undo on local:\n    | echo "it\'s \\"q\\" \\$HOME"\n' in text


def test_good_keys_load_into_the_step() -> None:
    wf = load_text(HEAD + '''
[steps.drain]
on = "web"
run = "echo drain"
undo = "echo undrain {{ host.name }}"
undo_on_failure = true
delegate = "lb1"
[steps.health]
on = "web"
needs = ["drain"]
run = "true"
poll = "5s"
within = "2m"
delay = "10s"
[steps.cleanup]
needs = ["health"]
when = "always() and workflow.name == 't' or failure() or cancelled() or success()"
run = "true"
delegate = "local"
''')
    drain, health, cleanup = (wf.steps[s] for s in ("drain", "health", "cleanup"))
    assert (drain.undo, drain.undo_on_failure, drain.delegate) == (
        "echo undrain {{ host.name }}", True, "lb1")
    assert (health.poll, health.within, health.delay) == (5.0, 120.0, 10.0)
    assert (health.undo, health.delegate, health.undo_on_failure) == (None, None, False)
    assert cleanup.delegate == "local"


def test_undo_is_quoted_like_run_and_plan_shows_it(tmp_path: Path) -> None:
    wf = load_text(HEAD + '''
[params]
path = "/srv/a b; rm -rf /"
[steps.deploy]
on = "web"
run = "echo {{ params.path }}"
undo = "restore {{ params.path }} {{ host.name }} {{ secrets.tok }}"
delegate = "lb1"
[steps.health]
needs = ["deploy"]
run = "true"
poll = "5s"
within = "2m"
delay = "10s"
''')
    text = render_plan(build_plan(wf, {"path": "/srv/a b; rm -rf /"}))
    assert "  undo on web1:\n    | restore '/srv/a b; rm -rf /' web1 ***\n" in text
    assert "  undo on web2:\n    | restore '/srv/a b; rm -rf /' web2 ***\n" in text
    assert "delegate: each host's command runs on lb1" in text
    assert "poll: every 5s until it exits 0, within 120s, after waiting 10s" in text
    plan = build_plan(wf, {"path": "x"})
    assert [c.hosts for c in plan.steps[0].undo] == [("web1",), ("web2",)]
    assert plan.steps[1].undo == ()


def test_plan_marks_delegated_polling_undoable_and_status_function_steps() -> None:
    wf = load_text(HEAD + '''
[steps.drain]
on = "web"
run = "true"
undo = "true"
delegate = "lb1"
[steps.health]
needs = ["drain"]
run = "true"
poll = "1s"
within = "1m"
[steps.page]
needs = ["health"]
when = "failure()"
run = "true"
[steps.report]
needs = ["health"]
when = "success() and workflow.name == 't'"
run = "true"
''')
    marks = {s.id: s.markers for s in build_plan(wf, {}).steps}
    assert marks == {"drain": ("delegate lb1", "undo"), "health": ("poll",),
                     "page": ("conditional", "runs once its needs end"),
                     "report": ("conditional",)}
    text = render_plan(build_plan(wf, {}))
    assert "drain   web1, web2 [delegate lb1] [undo]" in text
