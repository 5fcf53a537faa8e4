"""Issue 10 ("Console truth"), the console's part: what the operator sees, approves and
quits is exactly what happens. Items 1, 3, 4, 10, 12, 14, 15 (item 2 and 18 are also in
tests/test_ui_pilot.py; item 19 in tests/test_ui_hostkeys.py)."""

from __future__ import annotations

import io
import textwrap

import pytest
from rich.console import Console
from textual.widgets import Button, Input, Static

from console.engine.events import RunState, TaskState
from console.store import Store
from console.ui.screens.folder import FolderScreen
from console.ui.screens.history_screen import HistoryScreen
from console.ui.screens.modals import DangerousModal, GateModal, QuitModal, TextPrompt
from console.ui.screens.params_form import ParamsForm
from console.ui.screens.run_screen import RunScreen
from console.ui.screens.timeline_screen import TimelineScreen
from console.ui.widgets.dag_tree import DagTree
from console.ui.widgets.header import RunHeader
from console.ui.widgets.step_detail import StepDetail
from tests.history_helpers import flow_file, history_app, record_run
from tests.ui_helpers import SIZE, T0, make_app, run_screen, select, state, until

S = TaskState


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_TEST_TOKEN", "s3cr3t-value")


def text_of(renderable: object) -> str:
    console = Console(width=300, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def notices(app) -> list[str]:
    seen: list[str] = []
    notify = app.notify

    def spy(message: str, **kwargs: object) -> None:
        seen.append(message)
        notify(message, **kwargs)  # type: ignore[arg-type]

    app.notify = spy
    return seen


TEMPLATED = textwrap.dedent('''
    [workflow]
    name = "Templated"

    [params]
    release = "2.5.1"
    keep_days = 7

    [secrets]
    token = { env = "BATON_TEST_TOKEN" }

    [hosts.web1]
    groups = ["web"]
    [hosts.web2]
    groups = ["web"]
    [hosts.web3]
    groups = ["web"]

    [steps.probe]
    name = "Probe {{ params.release }}"
    run = "echo ok"

    [steps.prune]
    name = "Prune older than {{ params.keep_days }} days"
    needs = ["probe"]
    description = "Deletes logs of **{{ params.release }}** (token {{ secrets.token }})."
    confirm = "Delete logs older than {{ params.keep_days }} days for {{ params.release }}?"
    run = "echo pruning"

    [steps.drain]
    name = "Drain"
    needs = ["prune"]
    on = "web"
    dangerous = true
    confirm = "Drain web for {{ params.release }}?"
    run = "echo draining {{ host.name }}"

    [steps.verify]
    name = "Verify {{ params.release }} by hand"
    needs = ["drain"]
    description = "Open the dashboard of release {{ params.release }}."
''')


async def _at_gate(pilot, app, step: str, host: str = "local") -> RunScreen:
    screen = await run_screen(app)
    await until(lambda: state(screen, step, host) is S.AWAITING_APPROVAL)
    await until(lambda: not screen.session.dirty)
    await select(pilot, screen, step)
    return screen


# ---------------------------------------------------------------------- item 1


async def test_item1_gate_detail_tree_and_timeline_show_rendered_text(tmp_path):
    app, _ = make_app(tmp_path, TEMPLATED, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _at_gate(pilot, app, "prune")
        rendered = "Delete logs older than 7 days for 2.5.1?"
        # the tree
        tree = screen.query_one(DagTree)
        labels = [str(node.label) for node in tree.root.children]
        assert any("Prune older than 7" in label for label in labels), labels
        assert not any("{{" in label for label in labels), labels
        # the detail pane: name, rendered reason, rendered description with the secret masked
        detail = screen.query_one(StepDetail)
        facts = text_of(detail.query_one("#facts", Static).content)
        assert "Prune older than 7 days" in facts and f"reason: {rendered}" in facts
        assert "{{" not in facts
        assert detail._description == "Deletes logs of **2.5.1** (token ***)."
        # the timeline
        entries = [e.text for e in screen.session.timeline]
        assert f"prune awaiting approval: {rendered}" in entries
        # the gate dialog
        await pilot.press("a")
        assert isinstance(app.screen, GateModal)
        assert app.screen.prompt == rendered
        assert app.screen.title_text == "Approve 'Prune older than 7 days'"
        await pilot.press("escape")
        await pilot.press("l")
        assert isinstance(app.screen, TimelineScreen)
        table = app.screen.query_one("#timeline")
        cells = [str(table.get_row_at(i)[-1]) for i in range(table.row_count)]
        assert f"prune awaiting approval: {rendered}" in cells
        assert not any("{{" in cell for cell in cells)


# ---------------------------------------------------------------------- items 2 and 3


async def test_item3_dangerous_dialog_prompt_command_per_host_and_deny(tmp_path):
    app, _ = make_app(tmp_path, TEMPLATED, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _at_gate(pilot, app, "prune")
        await pilot.press("a", "a")
        screen = await _at_gate(pilot, app, "drain", "web1")
        await pilot.press("a")
        dialog = app.screen
        assert isinstance(dialog, DangerousModal)
        assert dialog.prompt == "Drain web for 2.5.1?"
        assert dialog.commands == {h: f"echo draining {h}" for h in ("web1", "web2", "web3")}
        shown = " ".join(text_of(w.render()) for w in dialog.query(Static))
        assert "Drain web for 2.5.1?" in shown
        assert "command on web1:" in shown and "echo draining web3" in shown
        deny = dialog.query_one("#deny", Button)
        assert isinstance(dialog.focused, Input)
        await pilot.press("tab")
        assert dialog.focused is deny
        await pilot.press("enter")  # Deny: asks for a reason
        assert isinstance(app.screen, TextPrompt)
        await pilot.press(*"not today", "enter")
        await until(lambda: state(screen, "drain", "web2") is S.FAILED)
        assert screen.run.tasks[("drain", "web1")].reason == "denied by alice: not today"
        assert any(e.text == "deny drain: not today" and e.user == "alice"
                   for e in screen.session.timeline)


# ---------------------------------------------------------------------- item 4


async def test_item4_q_with_only_gates_waiting_asks_and_records_the_answer(tmp_path):
    app, _world = make_app(tmp_path, TEMPLATED, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _at_gate(pilot, app, "prune")
        assert not screen.running_tasks()  # nothing runs: only a gate waits
        await pilot.press("q")
        assert isinstance(app.screen, QuitModal)
        assert app.screen.waiting == ["prune"] and app.screen.running == []
        await pilot.press("n")
        assert app.screen is screen and screen.run.state is RunState.RUNNING
        await pilot.press("q", "escape")  # Esc in the question: stay as well
        assert app.screen is screen
        quits = [(e.text, e.user) for e in screen.session.timeline if e.kind == "action"]
        assert quits == [("quit: stay", "alice"), ("quit: stay", "alice")]
        await pilot.press("q", "y")
        await until(lambda: app.return_code is not None)
    assert state(screen, "prune") is S.CANCELLED
    assert screen.run.state is RunState.CANCELLED
    assert [(e.text, e.user) for e in screen.session.timeline if e.kind == "action"][-1] == (
        "quit: cancel the run", "alice")
    assert app.return_code == 1


async def test_item4_quit_answer_is_stored_with_the_run(tmp_path):
    with Store.open(tmp_path / "home") as store:
        path = flow_file(tmp_path)
        app, _ = history_app(path, store, start=True)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(app)
            await until(lambda: state(screen, "ship") is S.AWAITING_APPROVAL)
            await pilot.press("q", "y")
            await until(lambda: app.return_code is not None)
        stored = store.load("r7k2m9x1")
        assert [(a.action, a.user, a.reason) for a in stored.actions] == [
            ("quit", "alice", "cancel the run")]
        assert stored.run.state == "cancelled"
        assert {t.step: t.state for t in stored.tasks}["ship"] == "cancelled"


async def test_item4_escape_goes_back_from_every_screen_and_q_quits_the_folder(tmp_path):
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "t.toml").write_text(TEMPLATED, encoding="utf-8")
    app, _ = make_app(tmp_path, TEMPLATED)
    app.path = folder
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: isinstance(app.screen, FolderScreen))
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, ParamsForm))
        await pilot.press("escape")  # the form: back to the folder, nothing started
        await until(lambda: isinstance(app.screen, FolderScreen))
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, ParamsForm))
        await pilot.press("ctrl+s")
        screen = await _at_gate(pilot, app, "prune")
        for key, kind in (("l", TimelineScreen), ("question_mark", None), ("a", GateModal),
                          ("D", TextPrompt)):
            await pilot.press(key)
            if kind is not None:
                assert isinstance(app.screen, kind), key
            assert app.screen is not screen, key
            await pilot.press("escape")
            await until(lambda: app.screen is screen)
        await pilot.press("escape")  # the live run: asks first
        assert isinstance(app.screen, QuitModal) and app.screen.verb == "go back"
        await pilot.press("y")
        await until(lambda: isinstance(app.screen, FolderScreen))
        assert state(screen, "prune") is S.CANCELLED
        await pilot.press("q")
        await until(lambda: app.return_code is not None)


# ---------------------------------------------------------------------- item 10


async def test_item10_params_form_focuses_the_first_field_and_keeps_typed_text(tmp_path):
    text = textwrap.dedent('''
        [workflow]
        name = "p"
        [params]
        ticket = { type = "string", required = true }
        count = { type = "int", default = 2 }
        [steps.a]
        run = "echo {{ params.ticket }} {{ params.count }}"
    ''')
    app, world = make_app(tmp_path, text, start=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: isinstance(app.screen, ParamsForm))
        await pilot.pause()
        form = app.screen
        assert form.focused is form.query_one("#param-ticket")
        error = form.query_one("#error-ticket")
        assert str(error.render()) == ""  # nothing typed yet: no error
        await pilot.press(*"INC-7")
        assert form.query_one("#param-ticket").value == "INC-7"
        assert str(error.render()) == ""
        await pilot.press(*["backspace"] * 5)
        assert str(error.render()) == "required"  # emptied by the operator
        await pilot.press(*"INC-8")
        assert str(error.render()) == ""  # at once, not after Tab
        await pilot.press("enter")
        screen = await run_screen(app)
        await until(lambda: state(screen, "a") is S.SUCCEEDED)
        assert world.starts("a")[0].script == "echo INC-8 2"


# ---------------------------------------------------------------------- item 12


async def test_item12_read_only_never_offers_start_or_resume_and_says_why(tmp_path):
    app, _ = make_app(tmp_path, TEMPLATED, read_only=True)
    seen = notices(app)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await pilot.pause()
        header = text_of(screen.query_one(RunHeader).render())
        assert "READ-ONLY" in header and "press g" not in header
        await select(pilot, screen, "prune")
        await pilot.press("g", "r")
        assert seen[-2:] == ["read-only: this console watches the run and changes nothing"] * 2


async def test_item1_read_only_renders_texts_without_resolving_secrets(tmp_path, monkeypatch):
    monkeypatch.delenv("BATON_TEST_TOKEN")  # --read-only resolves no secret
    app, _ = make_app(tmp_path, TEMPLATED, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await select(pilot, screen, "prune")
        await pilot.pause()
        assert screen.query_one(StepDetail)._description == (
            "Deletes logs of **2.5.1** (token ***).")


async def test_item12_history_in_read_only_says_why_r_does_nothing(tmp_path):
    with Store.open(tmp_path / "home") as store:
        path = flow_file(tmp_path)
        await record_run(store, path, "r0000bbb1", started=T0 - 600, stop_at="ship")
        store.mark_interrupted("r0000bbb1")
        app, _ = history_app(path, store, read_only=True)
        seen = notices(app)
        async with app.run_test(size=SIZE) as pilot:
            await run_screen(app)
            await pilot.press("h")
            history = app.screen
            assert isinstance(history, HistoryScreen)
            await until(lambda: len(history.runs) == 1)
            title = str(history.query_one("#history-title").render())
            assert "resume" not in title
            await pilot.press("r")
            assert app.screen is history
            assert seen[-1].startswith("read-only: this console resumes nothing")
            await pilot.press("enter")  # the past run, read-only; Esc goes back (item 4)
            await until(lambda: isinstance(app.screen, RunScreen) and app.screen.stored)
            await pilot.press("escape")
            await until(lambda: app.screen is history)


# ---------------------------------------------------------------------- item 14


async def test_item14_a_refused_action_says_why_and_opens_no_dialog(tmp_path):
    app, _ = make_app(tmp_path, start=True)  # the demo: flaky waits out its retry delay
    seen = notices(app)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await until(lambda: state(screen, "flaky") is S.RETRYING)
        await select(pilot, screen, "flaky")
        await pilot.press("S")
        assert app.screen is screen  # no reason dialog for an action that will not apply
        assert seen[-1] == "cannot mark succeeded 'flaky': it is retrying"
        await select(pilot, screen, "preflight")
        await until(lambda: state(screen, "preflight") is S.SUCCEEDED)
        await pilot.press("a")
        assert seen[-1] == "cannot approve 'preflight': it is succeeded"
        assert app.screen is screen


# ---------------------------------------------------------------------- item 15


async def test_item15_g_shows_every_param_then_runs_with_them_and_the_header_shows_them(
        tmp_path):
    app, _world = make_app(tmp_path, TEMPLATED, start=False)
    async with app.run_test(size=(160, 36)) as pilot:
        screen = await run_screen(app)
        await pilot.press("g")
        form = app.screen
        assert isinstance(form, ParamsForm)
        assert form.query_one("#param-release").value == "2.5.1"
        assert form.query_one("#param-keep_days").value == "7"
        assert form.focused is form.query_one("#param-release")
        await pilot.press(*["backspace"] * 5, *"3.0.0", "ctrl+s")
        await until(lambda: state(screen, "prune") is S.AWAITING_APPROVAL)
        assert screen.run.options.params == {"release": "3.0.0", "keep_days": 7}
        assert screen.run.tasks[("prune", "local")].reason == (
            "Delete logs older than 7 days for 3.0.0?")
        await pilot.pause()
        header = text_of(screen.query_one(RunHeader).render())
        assert "params: release=3.0.0  keep_days=7" in header


async def test_item15_folder_enter_shows_the_params_form_with_defaults(tmp_path):
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "t.toml").write_text(TEMPLATED, encoding="utf-8")
    app, world = make_app(tmp_path, TEMPLATED)
    app.path = folder
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: isinstance(app.screen, FolderScreen))
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, ParamsForm))
        assert world.records == []  # nothing ran before the operator looked
        form = app.screen
        assert {w.id for w in form.query(".param-field")} == {"param-release",
                                                               "param-keep_days"}
        await pilot.press("ctrl+s")
        screen = await run_screen(app)
        await until(lambda: state(screen, "probe") is S.SUCCEEDED)
