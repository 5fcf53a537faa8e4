"""Loader and validator: every problem located, good files parsed into the model."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.model.durations import format_duration, parse_duration, parse_percent
from console.model.inventory import load_inventory
from console.model.loader import Problem, WorkflowError, load_text, load_workflow
from console.model.locate import Locator
from console.model.workflow import LOCAL, Host, Param, Rollout, Secret, SSHOptions

HEAD = '[workflow]\nname = "t"\n'
"""Two lines: the snippets of the bad cases start on line 3."""


def problems_of(text: str, path: str = "wf.toml") -> list[Problem]:
    with pytest.raises(WorkflowError) as info:
        load_text(text, path)
    return info.value.problems


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# (snippet after HEAD, message substring, line, col or None)
BAD = [
    pytest.param("[steps.a]\nrun = = 1\n", "invalid TOML: invalid value", 4, 7, id="toml-syntax"),
    pytest.param("[stepz.a]\nrun = 'x'\n", "unknown table [stepz] (did you mean 'steps'?)", 3, 1,
                 id="unknown-top-table"),
    pytest.param("concurency = 3\n", "workflow: unknown key 'concurency' (did you mean "
                 "'concurrency'?)", 3, 1, id="unknown-workflow-key"),
    pytest.param("[steps.a]\nrun = 'x'\n  retires = 2\n", "steps.a: unknown key 'retires' "
                 "(did you mean 'retries'?)", 5, 3, id="unknown-step-key"),
    pytest.param('[params]\ntarget = { type = "string", descripton = "x" }\n',
                 "params.target: unknown key 'descripton' (did you mean 'description'?)", 4, 29,
                 id="unknown-inline-key"),
    pytest.param('[steps."my-step"]\nretires = 1\n', 'steps.my-step: unknown key', 4, 1,
                 id="unknown-key-quoted-step"),
    pytest.param('[ssh]\nusr = "x"\n', "ssh: unknown key 'usr' (did you mean 'user'?)", 4, 1,
                 id="unknown-ssh-key"),
    pytest.param('[steps.a]\nretries = "2"\n',
                 "steps.a.retries: expected an integer, got string", 4, 1, id="wrong-type"),
    pytest.param('[steps.a]\ndangerous = "yes"\n',
                 "steps.a.dangerous: expected true or false, got string", 4, 1,
                 id="wrong-type-bool"),
    pytest.param('[steps.a]\ntimeout = "90x"\n', "steps.a.timeout: invalid duration '90x'",
                 4, 1, id="bad-duration"),
    pytest.param('[steps.a]\nretry_delay = -1\n', "steps.a.retry_delay: duration must be",
                 4, 1, id="negative-duration"),
    pytest.param('[steps.a]\nserial = "150%"\n', "percentage '150%' out of range", 4, 1,
                 id="percent-range"),
    pytest.param('[steps.a]\nserial = "abc%"\n', "invalid percentage 'abc%'", 4, 1,
                 id="percent-syntax"),
    pytest.param("[steps.a]\nmax_fail = -1\n", "steps.a.max_fail: must be at least 0, got -1",
                 4, 1, id="max-fail-negative"),
    pytest.param("[steps.a]\nretry_backoff = 0.5\n", "steps.a.retry_backoff: must be at least 1",
                 4, 1, id="backoff"),
    pytest.param("concurrency = 0\n", "workflow.concurrency: must be at least 1, got 0", 3, 1,
                 id="concurrency"),
    pytest.param("[steps.a]\nconfirm = 3\n", "expected true, false or prompt text", 4, 1,
                 id="confirm-type"),
    pytest.param('[steps.a]\n\n[steps.b]\nneeds = ["a", "c"]\n',
                 "steps.b.needs: unknown step 'c'", 6, 15, id="unknown-need"),
    pytest.param('[steps.build]\n[steps.b]\nneeds = ["biuld"]\n',
                 "unknown step 'biuld' (did you mean 'build'?)", 5, 10, id="need-suggestion"),
    pytest.param('[hosts.web1]\ngroups = ["web"]\n[steps.a]\non = ["web", "dbs"]\n',
                 "steps.a.on: unknown host or group 'dbs'", 6, 14, id="unknown-on"),
    pytest.param('[steps.a]\nneeds = ["c"]\n[steps.b]\nneeds = ["a"]\n[steps.c]\nneeds = "b"\n',
                 "dependency cycle: a -> c -> b -> a", 4, 1, id="cycle"),
    pytest.param('[hosts.web1]\ngroups = ["web"]\n[hosts.web]\n',
                 "hosts.web: 'web' is both a host and a group", 5, 1, id="host-group-clash"),
    pytest.param('[hosts.local]\naddress = "x"\n', "'local' is a reserved name", 3, 1,
                 id="host-local"),
    pytest.param('[hosts.all]\n', "'all' is a reserved name", 3, 1, id="host-all"),
    pytest.param('[hosts.web1]\njump = "bastoin"\n[hosts.bastion]\n',
                 "hosts.web1.jump: unknown host 'bastoin' (did you mean 'bastion'?)", 4, 1,
                 id="unknown-jump"),
    pytest.param('[hosts.web1]\nport = 70000\n', "hosts.web1.port: must be at most 65535", 4, 1,
                 id="port-range"),
    pytest.param("[steps.a]\nrun = \"echo {{ x \"\n", "steps.a.run: template error", 4, 1,
                 id="template-syntax-single-line"),
    pytest.param('[steps.a]\nrun = """\necho one\necho {% if %}\n"""\n',
                 "steps.a.run: template error", 6, None, id="template-syntax-multiline"),
    pytest.param('[params]\nrelease = "1"\n[steps.a]\nrun = "echo {{ params.relase }}"\n',
                 "steps.a.run: unknown param 'relase' (did you mean 'release'?)", 6, 1,
                 id="unknown-param"),
    pytest.param('[params]\nrelease = "1"\n[steps.a]\nrun = """\necho\necho {{ params.relase }}'
                 '\n"""\n', "unknown param 'relase'", 8, None, id="unknown-param-multiline"),
    pytest.param('[secrets]\ntoken = { env = "T" }\n[steps.a]\nrun = "{{ secrets.tokn }}"\n',
                 "unknown secret 'tokn' (did you mean 'token'?)", 6, 1, id="unknown-secret"),
    pytest.param('[params]\nrelease = "1"\n[steps.a]\nrun = "echo {{ release }}"\n',
                 "unknown name 'release' (did you mean 'params.release'?)", 6, 1,
                 id="unknown-name"),
    pytest.param('[steps.a]\nrun = "echo {{ steps.x.stdout }}"\n', "unknown step 'x'", 4, 1,
                 id="template-unknown-step"),
    pytest.param('[steps.build]\nrun = "make"\n[steps.deploy]\nrun = "{{ steps.build.stdout }}"\n',
                 "steps.build is read but 'build' is not upstream of 'deploy' (add it to needs)",
                 6, 1, id="not-upstream"),
    pytest.param("[steps.build]\n[steps.deploy]\nwhen = \"steps.build.exit_code == 0\"\n",
                 "steps.deploy.when: steps.build is read but 'build' is not upstream", 5, 1,
                 id="when-not-upstream"),
    pytest.param('[steps.a]\nwhen = "params.x =="\n', "steps.a.when: template error", 4, 1,
                 id="when-syntax"),
    pytest.param('[steps.a]\nenv = { A = "{{ params.nope }}" }\n',
                 "steps.a.env.A: unknown param 'nope'", 4, 9, id="env-template"),
    pytest.param('[steps.a]\nenv = { A = [1] }\n', "steps.a.env.A: expected a string, number",
                 4, 9, id="env-array"),
    pytest.param('[steps.a]\nenv = { "A-B" = "1" }\n', "invalid variable name 'A-B'", 4, 9,
                 id="env-name"),
    pytest.param('[steps.a]\ncwd = "{{ params.dir }}"\n', "steps.a.cwd: unknown param 'dir'",
                 4, 1, id="cwd-template"),
    pytest.param('[steps.a]\nconfirm = "Deploy {{ params.x }}?"\n',
                 "steps.a.confirm: unknown param 'x'", 4, 1, id="confirm-template"),
    pytest.param('[params]\nenv = { type = "choice" }\n',
                 'params.env: type = "choice" needs a choices list', 4, 1,
                 id="choice-without-choices"),
    pytest.param('[params]\nenv = { type = "choice", choices = ["a", "b"], default = "c" }\n',
                 'params.env.default: "c" is not one of the choices ("a", "b")', 4, 48,
                 id="choice-default"),
    pytest.param('[params]\nn = { type = "int", default = "x" }\n',
                 "params.n.default: expected an integer, got string", 4, 21,
                 id="param-default-type"),
    pytest.param('[params]\nn = { type = "integer" }\n',
                 "params.n.type: unknown type 'integer' (did you mean 'int'?)", 4, 7,
                 id="param-type"),
    pytest.param('[params]\nn = [1, 2]\n', "params.n: expected a string, integer, float, "
                 "boolean or table, got array", 4, 1, id="param-array"),
    pytest.param('[secrets]\ns = { env = "A", file = "b" }\n',
                 "secrets.s: needs exactly one of env, file or command", 4, 1,
                 id="secret-two-sources"),
    pytest.param('[secrets]\ns = { }\n', "secrets.s: needs exactly one of env, file or command",
                 4, 1, id="secret-no-source"),
    pytest.param('[secrets]\ns = { env = "S", optional = "yes" }\n',
                 "secrets.s.optional: expected true or false", 4, 18,
                 id="secret-optional-type"),
    pytest.param('[secrets]\ns = { optional = true }\n',
                 "secrets.s: needs exactly one of env, file or command", 4, 1,
                 id="secret-optional-alone"),
    pytest.param('[ssh]\nconnect_timeout = "soon"\n',
                 "ssh.connect_timeout: invalid duration 'soon'", 4, 1, id="ssh-timeout"),
    pytest.param('[steps.a]\n[rollouts.web]\nsteps = ["a", "b"]\n',
                 "rollouts.web.steps: unknown step 'b'", 5, 15, id="rollout-unknown-step"),
    pytest.param('[steps.a]\n[rollouts.one]\nsteps = ["a"]\n[rollouts.two]\nsteps = ["a"]\n',
                 "step 'a' is already in rollout 'one'", 7, 10, id="rollout-twice"),
    pytest.param('[steps.a]\n[rollouts.web]\nsteps = ["a"]\nserial = [1, "50%", "0%"]\n',
                 "percentage '0%' out of range", 6, 21, id="rollout-serial-element"),
    pytest.param('[steps.a]\n[rollouts.web]\nsteps = ["a"]\npause = true\n',
                 "rollouts.web: unknown key 'pause' (did you mean 'pause_between'?)", 6, 1,
                 id="rollout-unknown-key"),
    pytest.param('[steps.a]\n[rollouts.web]\nsteps = ["a"]\non_failure = "rollbak"\n',
                 "rollouts.web.on_failure: must be one of stop, pause, rollback, not 'rollbak' "
                 "(did you mean 'rollback'?)", 6, 1, id="rollout-on-failure"),
    pytest.param('[steps.a]\n[rollouts.web]\nsteps = ["a"]\non_failure = 1\n',
                 "rollouts.web.on_failure: expected a string", 6, 1, id="rollout-on-failure-type"),
    pytest.param('[steps.a]\nrun = "{{ steps.a.stdout }}"\n',
                 "is read by step 'a' itself", 4, 1, id="self-read"),
    pytest.param('[steps.a]\non = "all"\n', "'all' matches no hosts", 4, 1, id="all-no-hosts"),
    pytest.param('[hosts.web1]\ngroups = ["all"]\n', "'all' is a reserved name and cannot be a "
                 "group", 4, 11, id="group-all"),
]


@pytest.mark.parametrize(("snippet", "message", "line", "col"), BAD)
def test_bad_input_is_located(snippet: str, message: str, line: int, col: int | None) -> None:
    problems = problems_of(HEAD + snippet)
    assert len(problems) == 1, "\n".join(map(str, problems))
    problem = problems[0]
    assert message in problem.message
    assert (problem.file, problem.line, problem.col) == ("wf.toml", line, col)
    assert "\n" not in str(problem)


def test_missing_workflow_table_and_name() -> None:
    (problem,) = problems_of('[steps.a]\nrun = "true"\n')
    assert problem.line is None
    assert "missing [workflow] table" in problem.message
    (problem,) = problems_of('[workflow]\ndescription = "x"\n')
    assert (problem.line, problem.message) == (1, "workflow.name is required")


def test_reports_every_problem_at_once() -> None:
    text = dedent('''
        [workflow]
        name = "t"
        concurency = 2

        [steps.a]
        timeout = "90x"
        needs = ["nope"]

        [steps.b]
        run = "echo {{ params.missing }}"
    ''')
    problems = problems_of(text)
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (3, "workflow"),
        (6, "steps.a.timeout"),
        (7, "steps.a.needs"),
        (10, "steps.b.run"),
    ]
    assert str(WorkflowError(problems)).count("\n") == 3


def test_problem_str_formats() -> None:
    assert str(Problem("f.toml", 3, 7, "bad")) == "f.toml:3:7: bad"
    assert str(Problem("f.toml", 3, None, "bad")) == "f.toml:3: bad"
    assert str(Problem("f.toml", None, None, "bad")) == "f.toml: bad"


def test_missing_file_is_one_problem(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError) as info:
        load_workflow(tmp_path / "nope.toml")
    assert [str(p) for p in info.value.problems] == [f"{tmp_path / 'nope.toml'}: no such file"]
    with pytest.raises(WorkflowError, match="is a directory"):
        load_workflow(tmp_path)


def test_bad_utf8_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "bin.toml"
    path.write_bytes(b'[workflow]\nname = "\xff"\n')
    with pytest.raises(WorkflowError, match="not a UTF-8 text file"):
        load_workflow(path)


FULL = dedent('''
    [workflow]
    name = "Full"
    description = """Markdown."""
    concurrency = 4

    [params]
    release = "2024.11.3"
    count = 3
    ratio = 0.5
    force = false
    target = { type = "choice", choices = ["stg", "prod"], default = "stg", description = "where" }
    ticket = { type = "string", required = true, description = "Incident ticket" }
    limit = { type = "float", default = 2 }

    [secrets]
    db = { env = "DB_PASSWORD" }
    token = { file = "~/.config/ops/token" }
    vault = { command = "pass show ops/vault" }

    [ssh]
    user = "deploy"
    port = 2200
    identity = "~/.ssh/id_ed25519"
    known_hosts = "~/.ssh/known_hosts"
    connect_timeout = "15s"

    [hosts.bastion]
    address = "10.0.0.1"

    [hosts.web1]
    address = "10.0.0.11"
    groups = ["web"]
    port = 2222
    user = "www"
    identity = "~/.ssh/web"
    known_hosts = "/etc/ssh/known"
    jump = "bastion"
    vars = { weight = 10 }
    forward_agent = true

    [hosts.web2]
    groups = ["web", "canary"]

    [steps.build]
    run = "make {{ params.release }}"

    [steps.deploy]
    name = "Deploy"
    description = "Ship it."
    run = """
    echo {{ steps.build.stdout }} {{ secrets.db }}
    """
    on = ["web", "bastion", "web1"]
    needs = ["build"]
    when = "params.target == 'prod'"
    timeout = "1h30m"
    retries = 2
    retry_delay = "5s"
    retry_backoff = 2
    confirm = true
    dangerous = true
    continue_on_error = true
    serial = "25%"
    max_fail = 1
    env = { RELEASE = "{{ params.release }}", WORKERS = 4, DEBUG = false, RATIO = 0.5 }
    cwd = "/srv/{{ host.name }}"
    shell = "bash"

    [steps.verify]
    description = "Check the dashboards."
    needs = "deploy"
    confirm = "Looks good?"
    serial = 2

    [rollouts.web]
    steps = ["deploy", "verify"]
    serial = [1, "50%", "100%"]
    max_fail = 1
    pause_between = true
''')


def test_full_file_parses_every_key() -> None:
    wf = load_text(FULL, "full.toml")
    assert (wf.name, wf.description, wf.concurrency, wf.inventory) == ("Full", "Markdown.", 4,
                                                                        None)
    assert wf.params["release"] == Param("release", "string", "2024.11.3")
    assert wf.params["count"] == Param("count", "int", 3)
    assert wf.params["ratio"] == Param("ratio", "float", 0.5)
    assert wf.params["force"] == Param("force", "bool", False)
    assert wf.params["target"] == Param("target", "choice", "stg", False, ("stg", "prod"),
                                        "where")
    assert wf.params["ticket"] == Param("ticket", "string", None, True, (), "Incident ticket")
    assert wf.params["limit"].default == 2.0 and isinstance(wf.params["limit"].default, float)
    assert wf.secrets == {
        "db": Secret("db", "env", "DB_PASSWORD"),
        "token": Secret("token", "file", "~/.config/ops/token"),
        "vault": Secret("vault", "command", "pass show ops/vault"),
    }
    assert wf.ssh == SSHOptions("deploy", 2200, "~/.ssh/id_ed25519", "~/.ssh/known_hosts", 15.0)
    assert wf.hosts["web1"] == Host("web1", "10.0.0.11", ("web",), 2222, "www", "~/.ssh/web",
                                    "/etc/ssh/known", "bastion", True, {"weight": 10})
    assert wf.hosts["web2"] == Host("web2", "web2", ("web", "canary"))
    deploy = wf.steps["deploy"]
    assert deploy.name == "Deploy" and deploy.description == "Ship it."
    assert deploy.run == "echo {{ steps.build.stdout }} {{ secrets.db }}\n"
    assert deploy.on == ("web", "bastion", "web1")
    assert deploy.needs == ("build",)
    assert deploy.when == "params.target == 'prod'"
    assert (deploy.timeout, deploy.retries, deploy.retry_delay, deploy.retry_backoff) == (
        5400.0, 2, 5.0, 2.0)
    assert deploy.confirm == "Run step 'deploy'?"
    assert deploy.dangerous and deploy.continue_on_error and deploy.gated
    assert (deploy.serial, deploy.max_fail) == ("25%", 1)
    assert deploy.env == {"RELEASE": "{{ params.release }}", "WORKERS": "4", "DEBUG": "false",
                          "RATIO": "0.5"}
    assert (deploy.cwd, deploy.shell) == ("/srv/{{ host.name }}", "bash")
    build = wf.steps["build"]
    assert (build.name, build.on, build.shell, build.confirm, build.max_fail, build.serial) == (
        "build", (LOCAL,), "/bin/sh", None, None, None)
    verify = wf.steps["verify"]
    assert verify.manual and verify.needs == ("deploy",) and verify.confirm == "Looks good?"
    assert verify.serial == 2
    assert wf.rollouts == {"web": Rollout("web", ("deploy", "verify"), (1, "50%", "100%"), 1,
                                          True)}
    assert wf.rollout_of("verify") is wf.rollouts["web"]
    assert wf.source == FULL and len(wf.digest) == 64
    assert wf.path == Path("full.toml")


def test_order_and_resolve_targets() -> None:
    wf = load_text(FULL)
    assert wf.path is None
    assert wf.order() == ["build", "deploy", "verify"]
    assert wf.resolve_targets(wf.steps["deploy"].on) == ("web1", "web2", "bastion")
    assert wf.resolve_targets(("all",)) == ("bastion", "web1", "web2")
    assert wf.resolve_targets(("canary", LOCAL)) == ("web2", LOCAL)
    assert wf.upstream("verify") == {"build", "deploy"}


def test_order_is_stable_in_file_order() -> None:
    wf = load_text(HEAD + dedent('''
        [steps.c]
        needs = ["a"]
        [steps.b]
        [steps.a]
        [steps.d]
        needs = ["c", "b"]
    '''))
    assert wf.order() == ["b", "a", "c", "d"]


def test_confirm_false_and_defaults() -> None:
    wf = load_text(HEAD + '[steps.a]\nconfirm = false\n')
    step = wf.steps["a"]
    assert step.confirm is None and not step.gated and step.manual
    assert (wf.concurrency, wf.ssh) == (16, SSHOptions())


def test_template_error_line_in_multiline_without_leading_newline() -> None:
    (problem,) = problems_of(HEAD + '[steps.a]\nrun = """echo a\necho {{ x }\n"""\n')
    assert (problem.line, problem.col) == (5, None)


@pytest.mark.parametrize(("field", "source", "message", "line"), [
    ("run", '"""\necho {{ secrets.s | b64encode }}\n"""', "No filter named 'b64encode'", 7),
    ("run", '"echo {% if 1 is frobbed %}y{% endif %}"', "No test named 'frobbed'", 6),
    ("run", '"""\n{% if false %}\n{{ 1 | nosuch }}\n{% endif %}\n"""',
     "No filter named 'nosuch'", 8),
    ("when", '"{{ 1 is frobbed }}"', "No test named 'frobbed'", 6),
])
def test_an_unknown_filter_or_test_is_a_located_problem(field: str, source: str,
                                                        message: str, line: int) -> None:
    """Jinja only fails inside an untaken ``{% if %}`` branch when it renders it: check
    finds every unknown filter and test before the run (it was an internal error or a pass)."""
    text = HEAD + f'[secrets]\ns = {{ env = "S" }}\n[steps.a]\n{field} = {source}\n'
    if field == "when":
        text += 'run = "true"\n'
    (problem,) = problems_of(text)
    assert problem.message == f"steps.a.{field}: template error: {message}"
    assert problem.line == line


def test_unknown_template_names_and_builtins() -> None:
    text = HEAD + dedent('''
        [steps.a]
        run = """
        {% for i in range(3) %}{{ loop.index }} {{ i }}{% endfor %}
        {% set x = 1 %}{{ x }} {{ host.name }} {{ run.id }} {{ workflow.name }} {{ true }}
        {{ hots.name }}
        """
    ''')
    (problem,) = problems_of(text)
    assert problem.message == "steps.a.run: unknown name 'hots' (did you mean 'host'?)"
    assert problem.line == 7


def test_steps_hosts_form_and_transitive_upstream() -> None:
    wf = load_text(HEAD + dedent('''
        [steps.a]
        run = "true"
        [steps.b]
        needs = ["a"]
        [steps.c]
        needs = ["b"]
        run = "echo {{ steps['a'].hosts['local'].stdout }}"
    '''))
    assert wf.steps["c"].needs == ("b",)


# --- inventory --------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(dedent(text))
    return path


def test_inventory_is_merged(tmp_path: Path) -> None:
    write(tmp_path / "inventory.toml", '''
        [ssh]
        user = "ops"
        port = 2022
        [hosts.db1]
        groups = ["db"]
        [hosts.bastion]
    ''')
    wf_path = write(tmp_path / "wf.toml", '''
        [workflow]
        name = "t"
        inventory = "inventory.toml"
        [ssh]
        port = 22
        [hosts.web1]
        jump = "bastion"
        [steps.a]
        on = ["db", "web1"]
    ''')
    wf = load_workflow(wf_path)
    assert list(wf.hosts) == ["db1", "bastion", "web1"]
    assert wf.ssh == SSHOptions(user="ops", port=22)
    assert wf.resolve_targets(wf.steps["a"].on) == ("db1", "web1")


def test_inventory_problems_name_their_file(tmp_path: Path) -> None:
    inv = write(tmp_path / "inv.toml", '''
        [hosts.db1]
        prot = 22
        [hosts.web1]
    ''')
    wf_path = write(tmp_path / "wf.toml", '''
        [workflow]
        name = "t"
        inventory = "inv.toml"
        [hosts.web1]
    ''')
    problems = problems_of(wf_path.read_text(), str(wf_path))
    assert [(p.file, p.line, p.col) for p in problems] == [(str(wf_path), 4, 1),
                                                         (str(inv), 2, 1)]
    assert "host 'web1' is also defined in" in problems[0].message
    assert problems[1].message == "hosts.db1: unknown key 'prot' (did you mean 'port'?)"


def test_inventory_missing_and_ansible(tmp_path: Path) -> None:
    (problem,) = problems_of(HEAD + 'inventory = "nope.toml"\n', str(tmp_path / "wf.toml"))
    assert (problem.line, problem.message) == (
        3, "workflow.inventory: cannot read inventory 'nope.toml': no such file")
    (problem,) = problems_of(HEAD + 'inventory = "ansible:hosts.ini"\n',
                             str(tmp_path / "wf.toml"))
    assert problem.line == 3 and problem.message.startswith(
        "workflow.inventory: cannot import inventory 'ansible:hosts.ini': ")
    assert "hosts.ini: cannot read" in problem.message


def test_ansible_inventory_is_imported(tmp_path: Path) -> None:
    write(tmp_path / "hosts.ini", """
        [web]
        web1 ansible_host=127.0.0.2 ansible_port=2222 ansible_user=deploy
        web2 ansible_host=127.0.0.3

        [db]
        db1 ansible_host=127.0.0.4
        """)
    wf_path = write(tmp_path / "wf.toml", """
        [workflow]
        name = "fleet"
        inventory = "ansible:hosts.ini"

        [steps.restart]
        run = "true"
        on = "web"
        """)
    wf = load_workflow(wf_path)
    assert wf.resolve_targets(("web",)) == ("web1", "web2")
    web1 = wf.hosts["web1"]
    assert (web1.address, web1.port, web1.user, web1.groups) == ("127.0.0.2", 2222, "deploy",
                                                                  ("web",))


def test_ansible_inventory_errors_point_into_the_inventory(tmp_path: Path) -> None:
    inv = write(tmp_path / "hosts.ini", """
        [web]
        web1 ansible_port=notaport
        """)
    wf_path = write(tmp_path / "wf.toml", """
        [workflow]
        name = "fleet"
        inventory = "ansible:hosts.ini"
        """)
    (problem,) = problems_of(wf_path.read_text(), str(wf_path))
    assert (problem.file, problem.line) == (str(inv), 2)
    assert "ansible_port" in problem.message


def test_load_inventory_alone(tmp_path: Path) -> None:
    path = write(tmp_path / "inv.toml", '''
        [ssh]
        user = "ops"
        [hosts.web1]
        jump = "web2"
        [hosts.web2]
        jump = "web1"
    ''')
    ssh, hosts, problems = load_inventory(path)
    assert ssh == SSHOptions(user="ops")
    assert list(hosts) == ["web1", "web2"]
    assert [(p.line, p.message) for p in problems] == [
        (4, "hosts.web1.jump: jump hosts loop: web1 -> web2 -> web1"),
        (6, "hosts.web2.jump: jump hosts loop: web2 -> web1 -> web2"),
    ]
    assert load_inventory(tmp_path / "none.toml")[2][0].message == "no such file"


# --- durations --------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "seconds"), [
    (90, 90.0), (1.5, 1.5), ("90s", 90.0), ("5m", 300.0), ("1h30m", 5400.0), ("0.5s", 0.5),
    ("250ms", 0.25), ("2h", 7200.0), ("1d", 86400.0), ("30", 30.0), ("1m 30s", 90.0),
])
def test_parse_duration(value: int | float | str, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["90x", "", "m", "5m3", "-5s", -1, True, "1h-30m"])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)  # type: ignore[arg-type]


def test_percent_and_format() -> None:
    assert parse_percent("25%") == 25.0
    assert parse_percent("100%") == 100.0
    for bad in ("0%", "150%", "abc%", "25", ""):
        with pytest.raises(ValueError, match="percentage"):
            parse_percent(bad)
    assert [format_duration(s) for s in (0.04, 1.23, 59.9, 185, 3725)] == [
        "0.0s", "1.2s", "59.9s", "3m05s", "1h02m"]


# --- locator ----------------------------------------------------------------------------


def test_locator_inline_tables_multiline_strings_and_quoted_keys() -> None:
    text = dedent('''
        # comment [not.a.table]
        [params]
        target = { type = "choice", choices = ["a", "b"] }
        [steps."my step"]
        run = """
        [fake.header]
        fake = 1
        """
        env = { A = "1", "B.C" = { d = 2 } }
        a.b = 3
        lit = \'\'\'
        x = 1\'\'\'
        needs = [
          "x",  # comment
          "y",
        ]
        [[arr]]
        k = 1
        [[arr]]
        k = 2
    ''')
    loc = Locator(text)
    assert loc.find(("params", "target", "choices")) == (3, 29)
    assert loc.find(("params", "target", "choices", 1)) == (3, 45)
    assert loc.find(("steps", "my step")) == (4, 1)
    assert loc.find(("steps", "my step", "run")) == (5, 1)
    assert loc.value_line(("steps", "my step", "run")) == 6
    assert loc.find(("fake",)) == (None, None)
    assert loc.find(("steps", "my step", "env", "B.C", "d")) == (9, 28)
    assert loc.find(("steps", "my step", "a", "b")) == (10, 3)
    assert loc.find(("steps", "my step", "x")) == (4, None)
    assert loc.find(("steps", "my step", "needs", 1)) == (15, 3)
    assert loc.find(("arr", 1, "k")) == (20, 1)
    assert loc.value_line(("steps", "my step", "lit")) == 12


ODD_TAILS = ['a = "unterminated', "[[x", "= 1", 'k = """never closed', "{", "a.=1",
             "[t]\nx = [1, {", "q = '''", '"\\', '[a."b', "x = 1 2", "[" * 5000]


def _in_text(text: str, position: tuple[int | None, int | None]) -> bool:
    """A (line, col) that points into ``text`` (or None: unknown)."""
    line, col = position
    if line is None:
        return col is None
    lines = text.split("\n")
    return 1 <= line <= len(lines) and (col is None or 1 <= col <= len(lines[line - 1]) + 1)


@pytest.mark.parametrize("tail", ODD_TAILS)
def test_locator_keeps_what_precedes_odd_text(tail: str) -> None:
    """Broken TOML after good keys: the scanner stops at the odd part (the parser reports
    the syntax error) and still locates every key before it; it never raises."""
    text = 'name = "t"\n[steps.a]\nrun = "x"\n' + tail
    loc = Locator(text)
    assert loc.find(("name",)) == (1, 1)
    assert loc.find(("steps", "a")) == (2, 1)
    assert loc.find(("steps", "a", "run")) == (3, 1)
    assert loc.value_line(("steps", "a", "run")) == 3
    assert loc.find(("steps", "a", "missing")) == (2, None)  # nearest known parent
    assert loc.find(("nowhere", 3)) == (None, None)
    for position in [*loc.keys.values(), *loc.values.values()]:
        assert _in_text(text, position), (tail, position)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('ab=."\'[]{},#\n \\1')), max_size=80),
       st.lists(st.sampled_from(["a", "b", "a.b", 0, 1]), max_size=3))
def test_locator_never_raises_and_points_into_the_text(text: str, path: list) -> None:
    loc = Locator(text)
    found = loc.find(tuple(path))
    assert isinstance(found, tuple) and len(found) == 2
    assert _in_text(text, found)
    for position in [*loc.keys.values(), *loc.values.values()]:
        assert _in_text(text, position)


# --- shipped examples -------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "workflows"


@pytest.mark.parametrize("name", ["disk-pressure-triage", "service-rollout", "log-rotation",
                                  "config-change"])
def test_example_workflows_load_cleanly(name: str) -> None:
    wf = load_workflow(EXAMPLES / f"{name}.toml")
    # every example runs on a fresh machine: its hosts, if any, are this machine
    assert wf.steps and all(host.is_local for host in wf.hosts.values())
    assert any(step.manual for step in wf.steps.values()) or name != "disk-pressure-triage"
    assert any(step.gated for step in wf.steps.values()) or name == "disk-pressure-triage"


def test_secret_optional_flag() -> None:
    wf = load_text('[workflow]\nname = "w"\n[secrets]\na = { env = "A", optional = true }\n'
                   'b = { env = "B" }\n', "wf.toml")
    assert wf.secrets["a"].optional is True and wf.secrets["b"].optional is False


def test_rollout_on_failure_is_read() -> None:
    wf = load_text(HEAD + '[steps.a]\n[rollouts.web]\nsteps = ["a"]\non_failure = "rollback"\n',
                   "wf.toml")
    assert wf.rollouts["web"].on_failure == "rollback"
    wf = load_text(HEAD + '[steps.a]\n[rollouts.web]\nsteps = ["a"]\n', "wf.toml")
    assert wf.rollouts["web"].on_failure == "stop"


def test_ansible_problems_travel_as_problems_not_strings(tmp_path: Path) -> None:
    """Issue 12 item 5: an Ansible inventory's error reaches the workflow's problems as the
    Problem it was raised with; a path holding ``:7: `` is no longer split at it."""
    odd = tmp_path / "site:7: prod"
    odd.mkdir()
    (problem,) = problems_of(HEAD + 'inventory = "ansible:site:7: prod/hosts.ini"\n',
                             str(odd / "wf.toml"))
    assert (problem.file, problem.line) == (str(odd / "wf.toml"), 3)
    assert problem.message == (
        "workflow.inventory: cannot import inventory 'ansible:site:7: prod/hosts.ini': "
        f"{odd / 'site:7: prod' / 'hosts.ini'}: cannot read: No such file or directory")
    inv = write(odd / "hosts.ini", """
        [web]
        web1 ansible_port=notaport
        """)
    (problem,) = problems_of(HEAD + 'inventory = "ansible:hosts.ini"\n', str(odd / "wf.toml"))
    assert (problem.file, problem.line, problem.col) == (str(inv), 2, None)
    assert problem.message == "host 'web1': ansible_port must be a number"
