"""One way to open a run (issue 12, item 2): ``console/launch.py`` opens a run from a file
and rebuilds one from history for both front ends, with what differs between the console
and headless as explicit :class:`Frontend` settings; host selection lives on the model
(``Workflow.hosts_for``) and the template host context in ``templating.host_context``, so
the run and ``baton plan`` cannot drift apart; a ``baton`` subcommand is one registration.
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.engine.events import RunState, TaskState
from console.engine.run import Run, RunOptions
from console.launch import (
    DefinitionMissing,
    Frontend,
    LaunchError,
    load_file,
    rebuild,
    rebuild_for_rollback,
    view_stored,
)
from console.model.loader import load_text
from console.model.templating import host_context, render_command
from console.model.workflow import LOCAL, Host, Step, Workflow
from console.plan import build_plan
from console.store import Store
from tests.helpers import parsed
from tests.history_helpers import flow_file, record_run
from tests.ui_helpers import T0

ROOT = Path(__file__).resolve().parent.parent
S = TaskState

# ---------------------------------------------------------------------------- hosts

NAMES = ["web1", "web2", "db1", "app-a", "app-b"]
GROUPS = ["web", "db", "canary", "all"]
PATTERNS = [*NAMES, *GROUPS, "web*", "app-?", "*1", "d*", "nomatch", LOCAL, "loc*", "*"]


@st.composite
def fleets(draw: st.DrawFn) -> tuple[Workflow, tuple[str, ...]]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=5))
    hosts = {name: Host(name, f"{name}.example", groups=tuple(draw(st.lists(
        st.sampled_from(GROUPS[:3]), unique=True, max_size=2)))) for name in names}
    targets = [LOCAL, *names, *GROUPS]
    steps = {f"s{i}": Step(f"s{i}", f"s{i}", run="true", on=tuple(draw(st.lists(
        st.sampled_from(targets), unique=True, min_size=1, max_size=3)))) for i in range(3)}
    limit = tuple(draw(st.lists(st.sampled_from(PATTERNS), max_size=3)))
    return Workflow("fleet", hosts=hosts, steps=steps), limit


def expected_hosts(workflow: Workflow, step: Step, limit: tuple[str, ...]) -> list[str]:
    """The rule, written out: a step's targets in order (a group stands for its members,
    no name twice); with --limit only those a pattern names or a matched group holds;
    local steps are never limited."""
    members = {**{g: [h.name for h in workflow.hosts.values() if g in h.groups]
                  for g in GROUPS}, "all": list(workflow.hosts)}
    out: list[str] = []
    for target in step.on:
        names = [target] if target == LOCAL or target in workflow.hosts else members[target]
        out += [n for n in names if n not in out]
    if not limit:
        return out
    allowed = {n for n in workflow.hosts if any(fnmatch.fnmatchcase(n, p) for p in limit)}
    for group, names in members.items():
        if any(fnmatch.fnmatchcase(group, p) for p in limit):
            allowed.update(names)
    return [n for n in out if n == LOCAL or n in allowed]


@settings(max_examples=150, deadline=None)
@given(fleets())
def test_the_run_and_the_plan_select_hosts_by_the_models_one_rule(fleet) -> None:
    workflow, limit = fleet
    run = Run(workflow, RunOptions(limit=limit))
    plan = {s.id: list(s.hosts) for s in build_plan(workflow, {}, limit=limit).steps}
    for sid, step in workflow.steps.items():
        want = expected_hosts(workflow, step, limit)
        assert list(workflow.hosts_for(step, limit)) == want
        assert [t.host for t in run.tasks_of(sid)] == want
        assert plan[sid] == want


def test_a_limit_pattern_matches_hosts_groups_and_local() -> None:
    workflow = load_text(textwrap.dedent('''
        [workflow]
        name = "w"
        [hosts.web1]
        address = "10.0.0.1"
        groups = ["web"]
        [hosts.db1]
        address = "10.0.0.2"
        [steps.a]
        on = ["all"]
        run = "true"
    '''))
    assert workflow.limit_matches("web") == {"web1"}
    assert workflow.limit_matches("*1") == {"web1", "db1"}
    assert workflow.limit_matches("local") == {"local"}
    assert workflow.limit_matches("nope") == set()


def test_the_plan_renders_the_host_context_the_run_renders(monkeypatch) -> None:
    monkeypatch.setenv("USER", "operator")
    workflow = load_text(textwrap.dedent('''
        [workflow]
        name = "w"
        [ssh]
        user = "deploy"
        [hosts.web1]
        address = "10.0.0.1"
        groups = ["web", "eu"]
        vars = { role = "front" }
        [hosts.db1]
        address = "10.0.0.2"
        user = "postgres"
        [steps.a]
        on = ["all", "local"]
        run = "echo {{ host.name }} {{ host.address }} {{ host.user }} HOST_REST"
    ''').replace("HOST_REST", "{{ host.groups | join(',') }} {{ host.vars.role | default('-') }}"))
    source = workflow.steps["a"].run
    assert source is not None
    run = Run(workflow)
    plan = build_plan(workflow, {})
    planned = {host: command.text for command in plan.steps[0].commands
               for host in command.hosts}
    for task in run.tasks_of("a"):
        context = {"host": host_context(workflow, workflow.host(task.host))}
        expected = render_command(source, context)
        assert run.preview_command(task.step, task.host) == expected == planned[task.host]
    assert planned == {"web1": "echo web1 10.0.0.1 deploy web,eu front",
                       "db1": "echo db1 10.0.0.2 postgres '' -",
                       "local": "echo local localhost deploy '' -"}


def test_host_user_is_the_user_ssh_logs_in_as(monkeypatch, tmp_path) -> None:
    """No workflow setting names the user: ssh_config's ``User`` does, for the run's
    commands and the plan alike (they said the local login while SSH used the other)."""
    from console.executors.ssh_config import resolve

    for name in ("USER", "LOGNAME"):
        monkeypatch.setenv(name, "operator")
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Host 10.0.0.*\n    User fromconfig\n")
    workflow = load_text(textwrap.dedent('''
        [workflow]
        name = "w"
        [hosts.web1]
        address = "10.0.0.1"
        [hosts.db1]
        address = "10.0.0.2"
        user = "postgres"
        [hosts.other]
        address = "192.0.2.7"
        [steps.a]
        on = ["all", "local"]
        run = "echo {{ host.name }} {{ host.user }}"
    '''))
    run = Run(workflow)
    plan = build_plan(workflow, {})
    planned = {host: command.text for command in plan.steps[0].commands
               for host in command.hosts}
    shown = {t.host: run.preview_command(t.step, t.host) for t in run.tasks_of("a")}
    assert shown == planned == {"web1": "echo web1 fromconfig", "db1": "echo db1 postgres",
                                "other": "echo other operator", "local": "echo local operator"}
    for name in ("web1", "db1", "other"):  # what the connection logs in as
        assert resolve(workflow.host(name), workflow.ssh).user in shown[name]


def _imports(path: Path) -> set[str]:
    tree = parsed(path)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_host_matching_has_one_home() -> None:
    """Only the model matches --limit patterns; nobody builds the host context by hand."""
    for path in sorted((ROOT / "console").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative != "console/model/workflow.py":
            assert "fnmatch" not in _imports(path), relative
        if relative != "console/model/templating.py":
            assert '"address": host.address' not in path.read_text(encoding="utf-8"), relative


# ---------------------------------------------------------------------------- from a file


def test_a_run_opened_from_a_relative_path_stores_its_absolute_path(tmp_path, monkeypatch):
    flow_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    workflow = load_file(Path("release.toml"))
    assert workflow.path == tmp_path.resolve() / "release.toml"


def test_each_front_end_opens_a_run_with_its_own_settings() -> None:
    workflow = load_text('[workflow]\nname = "w"\n[steps.a]\nrun = "true"\n')
    console = Frontend.console(yes=False, user="alice").new_run(workflow, run_id="r1")
    assert (console.options.approval, console.options.keep_alive, console.user) == (
        "wait", True, "alice")
    headless = Frontend.headless(yes=False, can_ask=False).new_run(workflow)
    assert (headless.options.approval, headless.options.keep_alive) == ("fail", False)
    assert Frontend.headless(yes=False, can_ask=True).approval == "wait"
    assert Frontend.headless(yes=True, can_ask=False).approval == "auto"
    assert Frontend.console(yes=True).approval == "auto"
    with pytest.raises(LaunchError, match="--start-at: unknown step 'zz'"):
        Frontend().new_run(workflow, start_at="zz")


# ---------------------------------------------------------------------------- from history


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "home") as opened:
        yield opened


async def test_both_front_ends_rebuild_a_stored_run_alike_but_for_their_settings(
        tmp_path, store) -> None:
    path = flow_file(tmp_path)
    await record_run(store, path, "r0000aaa1", started=T0 - 60, stop_at="ship")
    store.mark_interrupted("r0000aaa1")
    stored = store.load("r0000aaa1")
    headless = rebuild(stored, Frontend.headless(yes=True, can_ask=False), step_mode=True)
    console = rebuild(stored, Frontend.console(user="alice"), show_past=True)
    states = {k: (t.state, t.reason, t.attempt) for k, t in headless.tasks.items()}
    assert states == {k: (t.state, t.reason, t.attempt) for k, t in console.tasks.items()}
    assert states[("build", "local")][0] is S.SUCCEEDED
    assert states[("ship", "local")][0] is S.INTERRUPTED  # a decision, never re-run silently
    assert headless.id == console.id == "r0000aaa1"
    assert headless.workflow.path == console.workflow.path == path
    # what differs is what each front end asked for
    assert (headless.options.approval, headless.options.keep_alive, headless.step_mode) == (
        "auto", False, True)
    assert (console.options.approval, console.options.keep_alive, console.step_mode) == (
        "wait", True, False)
    assert headless.started is None and console.started == stored.run.started
    assert not headless.tasks[("build", "local")].attempts
    assert [a.number for a in console.tasks[("build", "local")].attempts] == [1]


async def test_a_stored_run_viewed_as_recorded_and_rebuilt_for_a_rollback(tmp_path, store):
    from tests.history_helpers import record_reloaded

    path = tmp_path / "reloaded.toml"
    await record_reloaded(store, path, "r0000aaa2", versions=1)  # left waiting at a gate
    stored = store.load("r0000aaa2")
    assert {t.step: t.state for t in stored.tasks} == {
        "build": "succeeded", "ship": "awaiting_approval"}
    viewed = view_stored(stored, Frontend.console())
    assert viewed.tasks[("ship", "local")].state is S.AWAITING_APPROVAL
    assert viewed.state is RunState(stored.run.state) is RunState.INTERRUPTED
    assert (viewed.started, viewed.ended) == (stored.run.started, stored.run.ended)
    assert not viewed.options.secrets
    resumed = rebuild(stored, Frontend.console())
    assert resumed.tasks[("ship", "local")].state is S.PENDING  # decided again on a resume
    rollback = rebuild_for_rollback(stored, Frontend.headless(yes=True, can_ask=False))
    assert rollback.tasks[("ship", "local")].state is S.AWAITING_APPROVAL  # kept as it was
    assert rollback.tasks[("build", "local")].state is S.SUCCEEDED


async def test_a_rebuild_says_when_the_file_changed_and_why_it_cannot_open(tmp_path, store):
    path = flow_file(tmp_path)
    await record_run(store, path, "r0000aaa3", started=T0 - 60)
    stored = store.load("r0000aaa3")
    notes: list[str] = []
    rebuild(stored, Frontend(), say=notes.append)
    assert notes == []
    path.write_text(path.read_text() + '\n[steps.more]\nrun = "true"\n')
    rebuild(stored, Frontend(), say=notes.append)
    assert notes == [f"{path} changed since run r0000aaa3 ran; resuming with the definition "
                     f"the run used (`baton show r0000aaa3 --json` has its text)"]
    broken = dataclasses.replace(stored, definitions=dict.fromkeys(stored.definitions,
                                                                   "[steps.a]\nneeds = 3\n"))
    with pytest.raises(LaunchError) as caught:
        rebuild(broken, Frontend())
    assert caught.value.message == "run r0000aaa3: its stored definition no longer loads"
    assert caught.value.problems and str(caught.value) == (
        f"{caught.value.message}: {caught.value.problems[0]}")
    with pytest.raises(DefinitionMissing, match="its workflow definition is not in the store"):
        rebuild(dataclasses.replace(stored, definitions={}), Frontend())


# ---------------------------------------------------------------------------- the CLI


def test_a_subcommand_is_one_registration(monkeypatch, capsys) -> None:
    import argparse

    from console import cli
    from console.commands.shared import Command

    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name")

    def hello(args: argparse.Namespace) -> int:
        print(f"hello {args.name}")
        return 3

    monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, Command("hello", "greet", arguments,
                                                                 hello)))
    assert cli.main(["hello", "ops"]) == 3
    assert capsys.readouterr().out == "hello ops\n"
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "    hello     greet\n" in capsys.readouterr().out


def test_the_command_line_modules_stay_small() -> None:
    files = [ROOT / "console" / name for name in ("cli.py", "launch.py", "headless.py",
                                                    "plan.py", "workflow_watch.py")]
    files += sorted((ROOT / "console" / "commands").glob("*.py"))
    for path in files:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines < 450, f"{path.relative_to(ROOT)}: {lines} lines"


def test_launch_and_the_commands_import_what_their_docstrings_allow() -> None:
    """``console.launch`` serves both front ends, so it imports neither (nor Textual);
    the commands never import ``console.cli``, which lists them."""
    from tests.test_import_hygiene import import_graph

    graph = import_graph(types=True)
    front_ends = ("console.ui", "console.commands", "console.cli", "console.headless")
    assert not {t for t in graph["console.launch"] if t.startswith(front_ends)}
    assert not {n for n in _imports(ROOT / "console" / "launch.py") if n.startswith("textual")}
    commands = {m: targets for m, targets in graph.items() if m.startswith("console.commands")}
    assert commands and not {(m, t) for m, targets in commands.items() for t in targets
                             if t == "console.cli"}


def test_the_front_end_modules_have_names_of_their_own() -> None:
    """A newcomer searching for ``reload`` or ``history`` finds one module each (item 4):
    no module of ``console/`` itself or of ``console/commands/`` shares its name with
    another module of the package (``console/reload.py`` beside ``engine/reload.py``)."""
    modules = [p for p in (ROOT / "console").rglob("*.py") if p.stem != "__init__"]
    ours = [p for p in modules if p.parent.name in ("console", "commands")]
    for path in ours:
        twins = [p.relative_to(ROOT).as_posix() for p in modules
                 if p.stem == path.stem and p != path]
        assert not twins, f"{path.relative_to(ROOT).as_posix()} shares its name with {twins}"
