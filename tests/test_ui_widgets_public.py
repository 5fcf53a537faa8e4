"""The dependency tree and the run screen's footer, now on Textual's public API only
(tests/test_textual_public_api.py): they still behave and draw as before.

- A collapsed fan-out expands and collapses by mouse (the toggle Textual's Tree draws), its
  host lines show the hosts' current states, also after they changed while it was
  collapsed, and each node's public ``label`` is what its line shows.
- The footer draws exactly what Textual's own Footer would draw for the same screen, for
  selections that enable and disable different keys and at a width where they do not fit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from console.engine.events import TaskState
from console.ui.widgets.dag_tree import EXPAND_UP_TO, DagTree
from tests.footer_helpers import footer_swapped_for_textuals
from tests.ui_helpers import SIZE, make_app, run_screen, select, settle, until

HOSTS = EXPAND_UP_TO + 8


def fan_out(hosts: int) -> str:
    lines = ['[workflow]', 'name = "fan"', 'concurrency = 50']
    for i in range(1, hosts + 1):
        lines += [f'[hosts.h{i:02d}]', 'groups = ["all_hosts"]']
    lines += ['[steps.roll]', 'on = "all_hosts"', 'run = "hold {{ host.name }}"']
    return "\n".join(lines) + "\n"


def lines(tree: DagTree) -> list[str]:
    return [tree.render_line(y).text.rstrip() for y in range(tree.last_line + 1)]


async def test_a_collapsed_fan_out_toggles_by_mouse_and_shows_current_host_states(
        tmp_path: Path) -> None:
    app, world = make_app(tmp_path, fan_out(HOSTS), start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        run = screen.run
        await until(lambda: all(t.state is TaskState.RUNNING for t in run.tasks.values()))
        tree = screen.query_one(DagTree)
        await until(lambda: tree.last_line == 0)  # the step alone: collapsed
        assert lines(tree)[0].startswith("▸")
        # the toggle: the first cell of the content (inside the border and padding)
        toggle = (tree.content_region.x - tree.region.x, tree.content_region.y - tree.region.y)
        await pilot.click(DagTree, offset=toggle)
        await pilot.pause()
        assert tree.last_line == HOSTS
        assert lines(tree)[0].startswith("▾")
        assert all("▶" in line for line in lines(tree)[1:]), lines(tree)
        await pilot.click(DagTree, offset=toggle)
        await pilot.pause()
        assert tree.last_line == 0
        for host in ("h01", "h02", "h03"):  # done while the step is collapsed
            world.release(host)
        await until(lambda: sum(t.state is TaskState.SUCCEEDED for t in run.tasks.values())
                    == 3)
        await pilot.pause(0.3)
        await pilot.click(DagTree, offset=toggle)
        await pilot.pause()
        shown = lines(tree)
        assert tree.last_line == HOSTS
        assert [line.split()[1:3] for line in shown[1:4]] == [
            ["✔", "h01"], ["✔", "h02"], ["✔", "h03"]], shown
        assert "▶" in shown[4] and "3/20 ✔" in shown[0], shown
        step = tree.root.children[0]
        # each node's public label is what its line shows (after the toggle prefix)
        assert str(step.label).split()[:2] == shown[0].split()[1:3]
        for node, line in zip(step.children, shown[1:], strict=True):
            assert str(node.label).split()[:2] == line.split()[1:3]
        for host in (f"h{i:02d}" for i in range(4, HOSTS + 1)):
            world.release(host)


SELECTIONS = (("migrate", None), ("drain", "web1"), ("flaky", None), ("preflight", None))
"""A failed step, a host awaiting approval, a retrying step, a succeeded one: each enables
and disables other keys."""


async def _screens(tmp_path: Path, size: tuple[int, int], *, textual: bool) -> list[str]:
    tmp_path.mkdir()
    app, _world = make_app(tmp_path, start=True)
    shots = []
    async with app.run_test(size=size) as pilot:
        screen = await run_screen(app)
        await settle(app, screen)
        if textual:
            await footer_swapped_for_textuals(pilot, screen)
        for step, host in SELECTIONS:
            await select(pilot, screen, step, host)
            for _ in range(3):
                await pilot.pause()
            shots.append(app.export_screenshot())
    return shots


@pytest.mark.parametrize("size", [SIZE, (80, 24)])
async def test_the_footer_draws_what_textuals_footer_draws(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]) -> None:
    monkeypatch.setenv("BATON_TEST_TOKEN", "s3cr3t-value")
    ours = await _screens(tmp_path / "ours", size, textual=False)
    theirs = await _screens(tmp_path / "textual", size, textual=True)
    assert len(set(ours)) > 1  # the selections differ on screen
    for (step, _host), mine, textuals in zip(SELECTIONS, ours, theirs, strict=True):
        assert mine == textuals, step


async def test_a_fan_out_has_its_hosts_the_moment_it_is_expanded(tmp_path: Path) -> None:
    """Space and Enter give the step its host lines before it shows expanded, not a
    message later (a frame in between would show the step open and empty)."""
    app, world = make_app(tmp_path, fan_out(HOSTS), start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        tree = screen.query_one(DagTree)
        await until(lambda: tree.last_line == 0)
        step = tree.root.children[0]
        tree.move_cursor(step)
        tree.action_toggle_node()  # space
        assert step.is_expanded and len(step.children) == HOSTS
        tree.action_toggle_node()
        await pilot.pause()
        assert not step.is_expanded
        for host in ("h01", "h02"):
            world.release(host)
        await until(lambda: sum(t.state is TaskState.SUCCEEDED
                                for t in screen.run.tasks.values()) == 2)
        await pilot.pause(0.3)
        tree.action_select_cursor()  # enter: selecting toggles (auto_expand)
        await pilot.pause()
        assert step.is_expanded
        assert [str(node.label).split()[:2] for node in step.children[:3]] == [
            ["✔", "h01"], ["✔", "h02"], ["▶", "h03"]]
        for host in (f"h{i:02d}" for i in range(3, HOSTS + 1)):
            world.release(host)


async def test_clicking_a_footer_key_presses_it(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from console.ui.widgets.key_footer import FooterEntry, KeyFooter

    monkeypatch.setenv("BATON_TEST_TOKEN", "s3cr3t-value")
    app, _world = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await settle(app, screen)
        await select(pilot, screen, "preflight")
        footer = screen.query_one(KeyFooter)
        entry = next(e for e in footer.query(FooterEntry) if e.spec.action == "help")
        assert not entry.spec.disabled
        await pilot.click(entry)
        await until(lambda: app.screen is not screen)


async def test_a_key_that_no_longer_applies_leaves_no_gap(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A removed key's widget is gone a message later: meanwhile it takes no room, so no
    frame shows a gap between the keys (seen in a tmux capture)."""
    from console.ui.widgets.key_footer import KeyFooter

    monkeypatch.setenv("BATON_TEST_TOKEN", "s3cr3t-value")
    app, _world = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await settle(app, screen)
        footer = screen.query_one(KeyFooter)
        planned = footer.planned()
        first = footer.entries[(planned[0].key, planned[0].action, planned[0].palette)]
        footer.show_keys(planned[1:])
        assert first not in footer.entries.values() and not first.display
        await pilot.pause()
        assert first not in footer.children


async def test_keys_changing_while_the_footer_is_removed_are_ignored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The screen's bindings may be refreshed while its footer is being removed (the screen
    closes): mounting then takes nothing, and ordering the keys raised WidgetError."""
    from console.ui.widgets.key_footer import KeyFooter, KeySpec

    monkeypatch.setenv("BATON_TEST_TOKEN", "s3cr3t-value")
    app, _world = make_app(tmp_path, start=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_screen(app)
        await settle(app, screen)
        footer = screen.query_one(KeyFooter)
        planned = footer.planned()
        removal = footer.remove()
        footer.show_keys([KeySpec("x", "x", "Extra", "extra", False, "", False), *planned])
        await removal
        await pilot.pause()
