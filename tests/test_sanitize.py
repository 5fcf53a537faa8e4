"""Issue 11 item 12 and issue 10 item 13: step bytes and workflow-supplied text reach a
terminal only through console.sanitize (headless, runs, show, --markdown, the log pane);
`check` refuses step ids and names that could carry escape sequences. Item 18: the summary
and the reload line say each thing once."""

from __future__ import annotations

import os
import pty
import select
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from console.engine.events import ReloadEvent, TaskState
from console.model.loader import WorkflowError, load_text
from console.printers import format_reload, format_summary
from console.sanitize import sanitize, sgr_style, styled_spans
from console.workflow_watch import check_file
from tests.conftest import REPO, baton, baton_env, write_workflow
from tests.ui_helpers import make_app, run_screen, until
from tests.ui_helpers import select as select_step

OSC52 = "\x1b]52;c;cm0gLXJmIH4K\x07"
TITLE = "\x1b]0;pwned\x1b\\"
LINK = "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"
CLEAR = "\x1b[2J\x1b[H"
CURSOR = "\x1b[1A\x1b[2K\x1b[10;20H"
DCS = "\x1bPq#0;2;0;0;0\x1b\\"
RED = "\x1b[31m"
RESET = "\x1b[0m"
HOSTILE = (f"a{OSC52}b{TITLE}c{LINK}d{CLEAR}e{CURSOR}f{DCS}g{RED}red{RESET}h\x07i\x1bj"
           f"\x00k\x08l\x7fm\x9b2Jn\x1b(Bo\x1b7p\x1b")  # ESC j is a 2-byte escape; a lone ESC


# --- the sanitiser --------------------------------------------------------------------


def test_sanitize_drops_every_sequence_but_sgr() -> None:
    assert sanitize(HOSTILE) == "abcclickdefgredhiklmnop"
    assert sanitize(HOSTILE, keep_sgr=True) == f"abcclickdefg{RED}red{RESET}hiklmnop"


def test_sanitize_keeps_tabs_newlines_and_plain_text_untouched() -> None:
    text = "col1\tcol2\nnext line ✓ ünïcode"
    assert sanitize(text) is text


@pytest.mark.parametrize(("line", "shown"), [
    ("10%\r50%\r100%", "100%"),
    ("downloading… 3/3\r\n", "downloading… 3/3\n"),
    ("a\r\r", "a"),
    ("first\nsecond\rSECOND\nthird", "first\nSECOND\nthird"),
])
def test_carriage_return_keeps_the_last_segment(line: str, shown: str) -> None:
    assert sanitize(line) == shown


def test_unterminated_osc_is_dropped_to_the_end_of_its_line() -> None:
    assert sanitize("a\x1b]52;c;AAAA\nb") == "a\nb"


def test_styled_spans_for_the_log_pane() -> None:
    spans = styled_spans(f"a\tb{RED}c\td{RESET}e\x1b[1;32mf{OSC52}\rz{RED}w")
    assert spans == [("z", ""), ("w", "31")]
    spans = styled_spans(f"a\tb\x1b[1;31mc\td{RESET}e\x1b[32m\x1b[1mf{CLEAR}")
    assert spans == [("a       b", ""), ("c      d", "1;31"), ("e", ""), ("f", "32;1")]
    assert "".join(text for text, _ in spans) == "a       bc      def"
    style = sgr_style("1;31")
    assert style.bold and style.color is not None and style.color.number == 1


# --- headless ------------------------------------------------------------------------

PRINTER = f"{sys.executable} -c 'import sys; sys.stdout.write(sys.argv[1])'"


def _hostile_workflow(tmp_path: Path) -> Path:
    payload = HOSTILE.replace("\x00", "")  # no NUL in an argv
    script = tmp_path / "noisy.py"
    script.write_text(f"import sys\nsys.stdout.write({payload!r} + '\\n')\n"
                      f"sys.stderr.write({payload!r} + '\\n')\n"
                      "sys.stdout.write('1/3\\r2/3\\r3/3 done\\n')\n")
    return write_workflow(tmp_path, f"""
        [workflow]
        name = "noisy"
        [steps.noisy]
        run = "{sys.executable} {script}"
    """)


def test_headless_to_a_pipe_has_no_escape_at_all(tmp_path: Path) -> None:
    path = _hostile_workflow(tmp_path)
    result = baton("run", path, "--headless")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "noisy | abcclickdefgredhiklmnop" in result.stdout
    assert "noisy | 3/3 done" in result.stdout


def test_headless_on_a_terminal_keeps_only_sgr(tmp_path: Path) -> None:
    path = _hostile_workflow(tmp_path)
    env = baton_env()
    env.pop("NO_COLOR", None)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "run", str(path),
                             "--headless"], stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    os.close(slave)
    data = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        data += chunk
    os.close(master)
    assert proc.wait(timeout=30) == 0
    out = data.decode("utf-8", "replace")
    assert f"{RED}red{RESET}" in out  # the step's colour survives on a terminal
    for bad in ("\x1b]", "\x1bP", "\x1b[2J", "\x1b[H", "\x1b[1A", "\x1b[10;20H", "\x07",
                "\x1b(", "\x1b7", "\x9b"):
        assert bad not in out, repr(bad)
    assert "3/3 done" in out and "1/3" not in out


# --- runs, show, --markdown ---------------------------------------------------------------


def test_history_commands_print_no_escape(tmp_path: Path, baton_home: Path) -> None:
    path = write_workflow(tmp_path, """
        [workflow]
        name = "hist"
        [params]
        p = "x"
        [steps.a]
        run = "echo {{ params[params.p] }}"
    """)
    evil = f"k{TITLE}{OSC52}"
    result = baton("run", path, "--headless", "--param", f"p={evil}")
    assert result.returncode == 1
    assert "\x1b" not in result.stdout + result.stderr
    db = sqlite3.connect(baton_home / "history.sqlite")  # a name an older baton let in
    db.execute("UPDATE runs SET workflow = ?", (f"hist{CLEAR}{OSC52}",))
    db.commit()
    db.close()
    run_id = baton("runs", "--json").stdout.split('"id": "')[1].split('"')[0]
    for args in (("runs",), ("show", run_id), ("show", run_id, "--markdown")):
        out = baton(*args)
        assert out.returncode == 0, out.stderr
        assert "\x1b" not in out.stdout and "\x07" not in out.stdout, args
    assert "kpwned" not in baton("show", run_id).stdout  # the title text went with its OSC


# --- check: ids and names ---------------------------------------------------------------

HEAD = '[workflow]\nname = "w"\n'


@pytest.mark.parametrize(("snippet", "message", "line"), [
    ('[steps."bad id"]\nrun = "true"\n', "step id \"bad id\" may only hold letters", 3),
    ('[steps."x\\u001b[2J"]\nrun = "true"\n', 'step id "x\\u001b[2J" may only hold', 3),
    ('[steps.""]\nrun = "true"\n', 'step id "" may only hold', 3),
    ('[steps."a.b"]\nrun = "true"\n', 'step id "a.b" may only hold', 3),
    ('[steps.a]\nname = "x\\u001b]0;t\\u0007"\nrun = "true"\n',
     'steps.a.name: may not hold control characters, got "x\\u001b]0;t\\u0007"', 4),
    ('[steps.a]\nname = "bell\\u0007"\n', "may not hold control characters", 4),
    ('[steps.a]\nname = "rtl\\u202eevil"\n', "may not hold control characters", 4),
    ('[steps.a]\nname = ""\n', "steps.a.name: must not be empty", 4),
])
def test_check_refuses_bad_ids_and_names(snippet: str, message: str, line: int) -> None:
    with pytest.raises(WorkflowError) as info:
        load_text(HEAD + snippet, "wf.toml")
    (problem,) = info.value.problems
    assert message in problem.message
    assert (problem.file, problem.line) == ("wf.toml", line)
    assert "\x1b" not in str(problem) and "\x07" not in str(problem)


def test_check_refuses_a_workflow_name_with_escapes(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, '[workflow]\nname = "w\\u001b]0;x\\u0007"\n')
    result = baton("check", path)
    assert result.returncode == 1
    assert f"{path}:2:1: workflow.name: may not hold control characters" in result.stdout
    assert "\x1b" not in result.stdout + result.stderr


def test_good_ids_and_names_pass() -> None:
    load_text(HEAD + '[steps.Deploy_web-2]\nname = "Déploiement ✓ web 2"\nrun = "true"\n')


# --- the console's log pane -----------------------------------------------------------------

COLOUR_FLOW = r'''
[workflow]
name = "colours"
[steps.paint]
run = "echo a\tb\u001b[31mred\u001b[0m\u001b]52;c;Zm9v\u0007\u001b[2J tail\necho done"
'''


async def test_log_pane_keeps_colours_as_styles_and_drops_the_rest(tmp_path: Path) -> None:
    from console.ui.widgets.log_view import LogView

    app, _ = make_app(tmp_path, COLOUR_FLOW, name="colours.toml", start=True)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await run_screen(app)
        await until(lambda: screen.run.tasks[("paint", "local")].state
                    is TaskState.SUCCEEDED)
        await select_step(pilot, screen, "paint")
        view = screen.query_one(LogView)
        await until(lambda: view.line_count >= 2)
        await pilot.pause()
        rows = []
        for y in range(view.line_count):
            strip = view.render_line(y)
            rows.append([(seg.text, seg.style) for seg in strip])
        texts = ["".join(t for t, _ in row).rstrip() for row in rows]
        assert "a       bred tail" in texts
        assert "done" in texts
        assert not any("\x1b" in t or "52;c" in t for t in texts)
        row = rows[texts.index("a       bred tail")]
        red = [style for text, style in row if text == "red"]
        assert red and red[0] is not None and red[0].color is not None
        assert red[0].color.number == 1


def test_log_pane_line_text_as_a_terminal_shows_it() -> None:
    from console.ui.widgets.log_view import clean

    assert clean("10%\r50%\rdone") == "done"  # not "10%50%done"
    assert clean("du\t4.0K\tdir") == "du      4.0K    dir"  # 8-column stops
    assert clean(f"x{OSC52}{TITLE}{CLEAR}y") == "xy"


# --- item 18: said once ---------------------------------------------------------------------


class _Task:
    def __init__(self, exit_code: int | None, reason: str | None) -> None:
        self.step, self.host, self.state = "a", "local", TaskState.FAILED
        self.attempt, self.exit_code, self.reason, self.duration = 1, exit_code, reason, 0.5


@pytest.mark.parametrize(("exit_code", "reason", "result"), [
    (1, "exit 1", "exit 1"),
    (5, "exit 5 (ignored: continue_on_error)", "exit 5 (ignored: continue_on_error)"),
    (None, "timed out after 2s", "timed out after 2s"),
    (3, "killed by the operator", "exit 3, killed by the operator"),
])
def test_summary_says_the_exit_once(exit_code: int | None, reason: str, result: str) -> None:
    summary = format_summary([_Task(exit_code, reason)], "failed", 1.0)
    row = summary.splitlines()[1]
    assert row.endswith(result), row
    assert row.count("exit") == result.count("exit")


def test_failed_run_summary_through_the_command(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, '[workflow]\nname = "f"\n[steps.a]\nrun = "exit 1"\n')
    result = baton("run", path, "--headless")
    assert result.returncode == 1
    assert "exit 1, exit 1" not in result.stdout
    assert "exit 1 (exit 1)" not in result.stdout


def test_deleted_file_reload_says_it_keeps_the_definition_once(tmp_path: Path) -> None:
    error = check_file(tmp_path / "gone.toml")
    line = format_reload(ReloadEvent([], [], [], None, error, 0.0))
    assert line.count("keeps") == 1, line
    assert "file deleted" in line


# --- the console's other texts: commands, prompts, names, reasons -------------------------

ESCAPING_FLOW = r'''
[workflow]
name = "esc"
[params]
p = "x\u001b]0;pwned\u0007\u001b[2J"
[steps.gate]
name = "Gate {{ params.p }}"
confirm = "Go {{ params.p }}?"
run = 'echo "{{ params.p }}"'
[steps.broken]
run = "echo {{ params[params.p] }}"
'''


async def test_console_shows_escapes_in_commands_prompts_and_reasons(tmp_path: Path) -> None:
    from console.ui.commands import command_lines

    app, _ = make_app(tmp_path, ESCAPING_FLOW, name="esc.toml", start=True)
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await run_screen(app)
        run = screen.run
        await until(lambda: run.tasks[("broken", "local")].state is TaskState.FAILED
                    and run.tasks[("gate", "local")].state is TaskState.AWAITING_APPROVAL)
        assert "\x1b" not in run.step_name("gate") and "\\x1b]0;pwned" in run.step_name("gate")
        lines = command_lines(run.command_groups("gate", ["local"]))
        assert all("\x1b" not in line.plain for line in lines)
        assert any("\\x1b[2J" in line.plain for line in lines)
        for step in ("broken", "gate"):
            await select_step(pilot, screen, step)
            await pilot.pause()
            shot = app.export_screenshot()
            assert "\x1b" not in shot and "\x07" not in shot, step
        assert "\\x1b" in shot


def test_check_refuses_host_and_group_names_with_control_characters() -> None:
    text = (HEAD + '[hosts."web\\u001b]0;x\\u0007"]\naddress = "10.0.0.1"\n'
            '[hosts.ok]\ngroups = ["g\\u0007"]\n')
    with pytest.raises(WorkflowError) as info:
        load_text(text, "wf.toml")
    lines = [str(p) for p in info.value.problems]
    assert lines == [
        'wf.toml:3:1: host or group name "web\\u001b]0;x\\u0007" may not hold control '
        'characters',
        'wf.toml:5:1: host or group name "g\\u0007" may not hold control characters',
    ]
