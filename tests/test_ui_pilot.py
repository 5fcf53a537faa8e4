"""Console keys drive the engine as SPEC section 3 says; keys that do not apply do nothing."""

from __future__ import annotations

import pytest

from console.engine.events import ActionEvent, RunState, TaskState
from console.ui.screens.help import HelpScreen
from console.ui.screens.modals import DangerousModal, GateModal, QuitModal, TextPrompt
from console.ui.screens.params_form import ParamsForm
from console.ui.screens.run_screen import RunScreen
from console.ui.screens.timeline_screen import TimelineScreen
from console.ui.widgets.log_pane import LogPane
from tests.ui_helpers import DEMO, SIZE, make_app, run_screen, select, settle, state, until

S = TaskState


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_TEST_TOKEN", "s3cr3t-value")


def actions(screen: RunScreen) -> list[tuple[str, str | None, str | None]]:
    return [(e.text.split(" ")[0], e.step, e.user) for e in screen.session.timeline
            if e.kind in ("action", "note")]


async def started(pilot, app):
    screen = await run_screen(app)
    await settle(app, screen)
    return screen


async def test_run_starts_and_reaches_gates(tmp_path):
    app, world = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        assert state(screen, "preflight") is S.SUCCEEDED
        assert state(screen, "migrate") is S.FAILED
        assert state(screen, "cleanup") is S.BLOCKED
        assert world.starts("drain") == []


async def test_gate_approval_shows_command_and_hosts_then_approves(tmp_path):
    app, _world = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await select(pilot, screen, "drain")
        await pilot.press("a")
        assert isinstance(app.screen, GateModal)
        assert app.screen.hosts == ["web1", "web2", "web3"]
        # item 2: every host's own command, not web1's as if it were all
        assert app.screen.commands == {"web1": "echo draining web1",
                                       "web2": "echo draining web2",
                                       "web3": "echo draining web3"}
        shown = "\n".join(str(w.render()) for w in app.screen.query(".dialog-command-label"))
        assert "command on web2:" in shown and "command on web3:" in shown
        assert app.screen.prompt == "Drain the web hosts?"
        await pilot.press("a")
        await until(lambda: state(screen, "drain", "web3") is S.SUCCEEDED)
        assert ("approve", "drain", "alice") in actions(screen)
        # the next gate is dangerous: the id must be typed
        await until(lambda: state(screen, "deploy", "web1") is S.AWAITING_APPROVAL)


async def test_gate_modal_deny_and_escape(tmp_path):
    app, _ = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await select(pilot, screen, "drain", "web2")
        await pilot.press("a", "escape")
        assert isinstance(app.screen, RunScreen)
        assert state(screen, "drain", "web2") is S.AWAITING_APPROVAL
        await pilot.press("a", "D")  # item 18: deny takes a reason
        assert isinstance(app.screen, TextPrompt)
        await pilot.press(*"bad window", "enter")
        await until(lambda: state(screen, "drain", "web2") is S.FAILED)
        assert screen.run.tasks[("drain", "web2")].reason == "denied by alice: bad window"
        assert state(screen, "drain", "web1") is S.AWAITING_APPROVAL


async def test_deny_key_asks_for_an_optional_reason(tmp_path):
    app, _ = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await select(pilot, screen, "drain")
        await pilot.press("D")
        assert isinstance(app.screen, TextPrompt)
        await pilot.press(*"not today", "enter")
        await until(lambda: state(screen, "drain", "web1") is S.FAILED)
        assert screen.run.tasks[("drain", "web1")].reason == "denied by alice: not today"


async def test_dangerous_step_requires_typing_its_id(tmp_path):
    app, _ = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        screen.run.approve("drain")
        await until(lambda: state(screen, "deploy", "web1") is S.AWAITING_APPROVAL)
        await select(pilot, screen, "deploy")
        await pilot.press("a")
        assert isinstance(app.screen, DangerousModal)
        await pilot.press(*"deplo", "enter")
        assert isinstance(app.screen, DangerousModal)  # wrong id: still asking
        assert state(screen, "deploy", "web1") is S.AWAITING_APPROVAL
        await pilot.press("y", "enter")
        await until(lambda: state(screen, "deploy", "web3") is S.SUCCEEDED)
        # the rendered command masks the secret
        attempt = screen.run.tasks[("deploy", "web1")].attempts[-1]
        assert attempt.command.startswith("echo deploy 2024.11.3 --token ***")
        assert state(screen, "deploy", "web2") is S.FAILED


async def test_done_marks_manual_step(tmp_path):
    app, _ = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        screen.run.approve("drain")
        await until(lambda: state(screen, "deploy", "web1") is S.AWAITING_APPROVAL)
        screen.run.approve("deploy")
        await until(lambda: state(screen, "verify") is S.AWAITING_OPERATOR)
        await select(pilot, screen, "verify")
        await pilot.press("d")
        await until(lambda: state(screen, "verify") is S.SUCCEEDED)
        assert ("done", "verify", "alice") in actions(screen)


async def test_retry_and_retry_downstream(tmp_path):
    app, world = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await select(pilot, screen, "migrate")
        await pilot.press("r")
        await until(lambda: len(world.starts("migrate")) == 2
                    and state(screen, "migrate") is S.FAILED)
        assert screen.run.tasks[("migrate", "local")].attempt == 2
        await select(pilot, screen, "preflight")
        await pilot.press("R")
        await until(lambda: len(world.starts("preflight")) == 2)
        assert [a for a, *_ in actions(screen)] == ["retry", "retry"]
        assert "retry_downstream" in [e.text.split(":")[0].replace(" ", "_")
                                      for e in screen.session.timeline if e.kind == "action"][1]


async def test_skip_with_reason_unblocks_dependents(tmp_path):
    app, _ = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await select(pilot, screen, "migrate")
        await pilot.press("s")
        assert isinstance(app.screen, TextPrompt)
        await pilot.press(*"known lock", "enter")
        await until(lambda: state(screen, "cleanup") is S.SUCCEEDED)
        assert state(screen, "migrate") is S.SKIPPED
        assert screen.run.tasks[("migrate", "local")].reason == "skipped by alice: known lock"


async def test_mark_succeeded_requires_a_reason(tmp_path):
    app, _ = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await select(pilot, screen, "migrate")
        await pilot.press("S", "enter")
        assert isinstance(app.screen, TextPrompt)  # empty reason refused
        assert state(screen, "migrate") is S.FAILED
        await pilot.press(*"fixed by hand", "enter")
        await until(lambda: state(screen, "cleanup") is S.SUCCEEDED)
        assert state(screen, "migrate") is S.SUCCEEDED


async def test_mark_failed(tmp_path):
    app, _ = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await select(pilot, screen, "preflight")
        await pilot.press("F", *"disk too full", "enter")
        await until(lambda: state(screen, "preflight") is S.FAILED)
        reason = screen.run.tasks[("preflight", "local")].reason
        assert reason == "marked failed by alice: disk too full"


async def test_cancel_running_task(tmp_path):
    app, world = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await select(pilot, screen, "notify")
        await pilot.press("c")  # item 18: asks first, with an optional reason
        assert isinstance(app.screen, TextPrompt)
        await pilot.press("escape")  # not cancelled
        await pilot.pause(0.05)
        assert state(screen, "notify") is S.RUNNING and world.terminated == []
        await pilot.press("c", *"stuck", "enter")
        await until(lambda: state(screen, "notify") is S.CANCELLED)
        assert world.terminated == ["notify"]
        assert screen.run.tasks[("notify", "local")].reason == "cancelled by alice: stuck"
        assert ("cancel", "notify", "alice") in actions(screen)
        assert any(e.text == "cancel notify: stuck" for e in screen.session.timeline)


async def test_pause_and_resume(tmp_path):
    app, _ = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await pilot.press("p")
        assert screen.run.state is RunState.PAUSED
        screen.run.approve("drain")
        await pilot.pause(0.05)
        assert state(screen, "drain", "web1") is S.PENDING  # nothing starts while paused
        await pilot.press("p")
        assert screen.run.state is RunState.RUNNING
        await until(lambda: state(screen, "drain", "web1") is S.SUCCEEDED)


async def test_breakpoint_and_step_mode(tmp_path):
    app, _ = make_app(tmp_path, start=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await select(pilot, screen, "migrate")
        await pilot.press("b")
        assert screen.run.breakpoints == {"migrate"}
        await pilot.press("t")
        assert screen.run.step_mode is True
        await pilot.press("t")
        assert screen.run.step_mode is False
        await pilot.press("g")  # the params form first (item 15), ctrl+s starts
        assert isinstance(app.screen, ParamsForm)
        await pilot.press("ctrl+s")
        await until(lambda: state(screen, "migrate") is S.AWAITING_APPROVAL)
        assert screen.run.tasks[("migrate", "local")].reason == "breakpoint"
        await pilot.press("b")
        assert screen.run.breakpoints == set()
        # removing the breakpoint releases the task it held: no approval needed any more
        await until(lambda: state(screen, "migrate") is S.FAILED)
        assert [a for a in screen.run.tasks[("migrate", "local")].attempts]


async def test_step_mode_off_in_the_console_releases_held_tasks(tmp_path):
    app, _ = make_app(tmp_path, start=True, step_mode=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await until(lambda: state(screen, "preflight") is S.AWAITING_APPROVAL
                    and state(screen, "migrate") is S.AWAITING_APPROVAL)
        await select(pilot, screen, "preflight")
        await pilot.press("t")
        assert screen.run.step_mode is False
        await until(lambda: state(screen, "preflight") is S.SUCCEEDED
                    and state(screen, "migrate") is S.FAILED)
        # a real gate still waits for its approval
        await until(lambda: state(screen, "drain", "web1") is S.AWAITING_APPROVAL)
        await pilot.pause(0.05)
        assert state(screen, "drain", "web1") is S.AWAITING_APPROVAL


async def test_note_is_recorded(tmp_path):
    app, _ = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await select(pilot, screen, "migrate")
        await pilot.press("n", *"paged the DBA", "enter")
        notes = [e for e in screen.session.timeline if e.kind == "note"]
        assert [(n.text, n.step, n.user) for n in notes] == [("paged the DBA", "migrate", "alice")]


@pytest.mark.parametrize(("step", "keys"), [
    ("preflight", "adrsSc"),   # succeeded: nothing to approve, do, retry, skip, cancel
    ("notify", "adrRSF"),      # running
    ("drain", "drRSF"),        # awaiting approval (approve/deny/skip/cancel apply)
])
async def test_keys_that_do_not_apply_do_nothing(tmp_path, step, keys):
    app, _world = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        seen: list[ActionEvent] = []
        screen.run.subscribe(lambda e: seen.append(e) if isinstance(e, ActionEvent) else None)
        before = {k: t.state for k, t in screen.run.tasks.items()}
        await select(pilot, screen, step)
        for key in keys:
            await pilot.press(key)
            assert isinstance(app.screen, RunScreen), key
        await pilot.pause(0.05)
        assert seen == []
        assert {k: t.state for k, t in screen.run.tasks.items()} == before


async def test_read_only_allows_no_action_and_never_starts(tmp_path):
    app, world = make_app(tmp_path, start=True, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        seen: list[ActionEvent] = []
        screen.run.subscribe(lambda e: seen.append(e) if isinstance(e, ActionEvent) else None)
        for step in ("drain", "migrate", "notify"):
            await select(pilot, screen, step)
            for key in "gpaDdrRsSFcbtn":
                await pilot.press(key)
                assert isinstance(app.screen, RunScreen), key
        await pilot.pause(0.05)
        assert seen == [] and world.records == [] and not screen.started
        assert screen.run.step_mode is False and not screen.run.breakpoints
        await pilot.press("l")  # watching is allowed
        assert isinstance(app.screen, TimelineScreen)


async def test_quit_while_tasks_run_asks_then_cancels(tmp_path):
    app, _world = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await pilot.press("q")
        assert isinstance(app.screen, QuitModal)
        assert sorted(app.screen.running) == ["flaky", "notify"]
        await pilot.press("n")
        assert isinstance(app.screen, RunScreen)
        await pilot.press("q", "y")
        await until(lambda: app.return_code is not None)
    assert state(screen, "notify") is S.CANCELLED and state(screen, "flaky") is S.CANCELLED
    assert screen.run.state in (RunState.FAILED, RunState.CANCELLED)
    assert app.return_code == 1


async def test_quit_before_start_exits_zero(tmp_path):
    app, world = make_app(tmp_path, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await run_screen(app)
        await pilot.press("q")
        await until(lambda: app.return_code is not None)
    assert app.return_code == 0 and world.records == []


async def test_log_pane_filter_follow_and_timestamps(tmp_path):
    app, _ = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await select(pilot, screen, "preflight")
        pane = screen.query_one(LogPane)
        assert [line.text for line in pane.view.shown_lines()] == [
            "checking disk", "warning: disk 81% full", "preflight ok"]
        assert [line.stream for line in pane.view.shown_lines()][1] == "stderr"
        await pilot.press("slash", *"disk", "enter")
        assert pane.view.filter_text == "disk" and pane.view.line_count == 2
        assert "filter 'disk'" in str(pane.border_title)
        await pilot.press("f")
        assert pane.view.follow is False
        await pilot.press("T")
        assert pane.view.show_time is True
        pane.open_filter()
        await pilot.press("escape")
        assert pane.view.filter_text == "" and pane.view.line_count == 3


async def test_timeline_and_help(tmp_path):
    app, _ = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await pilot.press("p", "p", "l")
        assert isinstance(app.screen, TimelineScreen)
        texts = [e.text for e in screen.session.timeline]
        assert "pause" in texts and "resume" in texts and "run running" in texts
        await pilot.press("escape", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = {key for key, *_ in app.screen.keys}
        assert {"p", "a", "D", "d", "r", "R", "s", "S", "F", "c", "b", "t", "n", "/", "f",
                "l", "?", "q"} <= keys


async def test_palette_offers_only_applicable_actions(tmp_path):
    app, _ = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await select(pilot, screen, "migrate")
        titles = {c.title for c in app.get_system_commands(screen)}
        assert {"Retry", "Skip", "Mark ok", "Note", "Pause/resume"} <= titles
        assert "Approve" not in titles and "Done" not in titles and "Cancel" not in titles


async def test_required_param_opens_form_with_inline_validation(tmp_path):
    text = '''
[workflow]
name = "p"
[params]
ticket = { type = "string", required = true }
count = { type = "int", default = 2 }
[steps.a]
run = "echo {{ params.ticket }} {{ params.count }}"
'''
    app, world = make_app(tmp_path, text, start=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: isinstance(app.screen, ParamsForm))
        await pilot.pause()
        form = app.screen
        assert form.query_one("#param-count").value == "2"
        form.query_one("#param-count").value = "two"
        await pilot.pause()
        assert "expected an int" in str(form.query_one("#error-count").render())
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, ParamsForm)
        form.query_one("#param-count").value = "5"
        form.query_one("#param-ticket").value = "INC-42"
        await pilot.press("ctrl+s")
        screen = await run_screen(app)
        await until(lambda: state(screen, "a") is S.SUCCEEDED)
        assert world.starts("a")[0].script == "echo INC-42 5"


async def test_invalid_workflow_exits_with_usage_code(tmp_path):
    app, _ = make_app(tmp_path, "[workflow]\nname = 3\n", start=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.return_code is not None)
        await pilot.pause()
    assert app.return_code == 2


async def test_folder_view_lists_broken_files_and_opens_one(tmp_path):
    from console.ui.app import BatonApp
    from console.ui.screens.folder import FolderScreen

    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "a-good.toml").write_text('[workflow]\nname = "Good one"\ndescription = "Does '
                                        'good things"\n[steps.x]\nrun = "echo hi"\n')
    (folder / "b-broken.toml").write_text('[workflow]\nname = "Broken"\n[steps.x]\n'
                                          'needs = ["nope"]\n')
    from tests.fakes import ScriptedWorld

    world = ScriptedWorld()
    app = BatonApp(folder, executor_for=world.factory(), config_file=tmp_path / "c.toml")
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: isinstance(app.screen, FolderScreen))
        entries = app.screen.entries
        assert [e.name for e in entries] == ["Good one", "b-broken"]
        assert entries[1].error == "line 4: steps.x.needs: unknown step 'nope'"
        await pilot.press("down", "enter")  # the broken one: stays
        assert isinstance(app.screen, FolderScreen)
        await pilot.press("up", "enter")
        screen = await run_screen(app)
        await until(lambda: state(screen, "x") is S.SUCCEEDED)


async def test_console_dry_run_executes_nothing_and_shows_what_would_run(tmp_path):
    app, world = make_app(tmp_path, start=True, dry_run=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await until(lambda: screen.run.settled)
        await pilot.pause()
        assert world.records == []
        tasks = screen.run.tasks
        assert tasks[("preflight", "local")].reason == "dry run: would run"
        assert tasks[("cache", "local")].state is S.SKIPPED  # when is false: not "would run"
        assert tasks[("cache", "local")].reason.startswith("when:")
        assert all(t.state is S.SKIPPED for t in tasks.values())
        assert any("would run: echo draining web1" in text
                   for _, text in screen.session.step_log("drain").chunks)


async def test_console_yes_approves_every_gate(tmp_path):
    text = DEMO.replace('run = "hold notify"', 'run = "echo notified"')
    app, _ = make_app(tmp_path, text, start=True, yes=True)
    async with app.run_test(size=SIZE):
        screen = await run_screen(app)
        await until(lambda: state(screen, "deploy", "web1") is S.SUCCEEDED
                    and state(screen, "verify") is S.SUCCEEDED, timeout=10)
        approvals = [e.text for e in screen.session.timeline if e.kind == "action"]
        assert any("approve" in text for text in approvals)
        assert state(screen, "drain", "web3") is S.SUCCEEDED


async def test_exclude_host_key_skips_what_the_host_has_left(tmp_path):
    app, _ = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await select(pilot, screen, "drain", "web2")
        await pilot.press("x")
        assert isinstance(app.screen, TextPrompt)
        await pilot.press(*"disk full", "enter")
        await until(lambda: state(screen, "drain", "web2") is S.SKIPPED)
        assert screen.run.tasks[("deploy", "web2")].state is S.SKIPPED
        assert screen.run.tasks[("deploy", "web2")].reason == "host excluded"
        assert state(screen, "drain", "web1") is S.AWAITING_APPROVAL
        assert ("exclude", None, "alice") in actions(screen)
        assert any(e.text == "exclude host web2: disk full" for e in screen.session.timeline)
        assert not screen.check_action("exclude_host", ())  # already excluded
        await select(pilot, screen, "preflight")  # a local step: no host to exclude
        assert not screen.check_action("exclude_host", ())


POLLING = """
[workflow]
name = "Poll"

[hosts.web1]
[hosts.lb1]

[steps.health]
on = "web1"
run = "exit 1"
poll = "30s"
within = "10m"
delegate = "lb1"
"""


async def test_a_polling_task_shows_its_progress_in_tree_and_detail(tmp_path):
    from console.ui.widgets.dag_tree import DagTree
    from console.ui.widgets.step_detail import StepDetail

    app, world = make_app(tmp_path, POLLING, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await until(lambda: world.records and world.records[0].end_seq is not None)
        await select(pilot, screen, "health", "web1")
        await pilot.pause()
        tree = screen.query_one(DagTree)
        label = tree.task_label(screen.run.tasks[("health", "web1")], palette_of(app), 0.0)
        assert "poll 1/20 · 10m00s" in label.plain
        facts = screen.query_one(StepDetail)._facts()
        text = " ".join(part.plain for part in facts.renderables if hasattr(part, "plain"))
        assert "reason: polling 1/20" in text
        assert "delegate: each host's command runs on lb1" in text
        assert "poll: every 30s until it exits 0, within 600s" in text
        assert world.records[0].executor == "lb1"
        screen.run.cancel("health", "web1")
        await until(lambda: state(screen, "health", "web1") is S.CANCELLED)


def palette_of(app):
    from console.ui.palette import palette

    return palette(app)


async def test_keys_remapped_by_their_documented_ids(tmp_path):
    (tmp_path / "config.toml").write_text('[keys]\n"baton.pause" = "z"\n'
                                          '"baton.step_mode" = "ctrl+t,y"\n', encoding="utf-8")
    app, _ = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await pilot.press("z")
        assert screen.run.state is RunState.PAUSED
        await pilot.press("y")
        assert screen.run.step_mode is True
        await pilot.press("ctrl+t")
        assert screen.run.step_mode is False
