"""What each package may import, as its ``__init__`` docstring says (issue 12, habits):
checked on the import graph of tests/test_import_hygiene.py (TYPE_CHECKING imports count)."""

from __future__ import annotations

from tests.test_import_hygiene import import_graph


def _imports_of(package: str) -> dict[str, set[str]]:
    graph = import_graph(types=True)
    return {m: targets for m, targets in graph.items()
            if m == package or m.startswith(package + ".")}


def test_the_model_imports_nothing_of_baton_but_itself() -> None:
    outside = {(m, t) for m, targets in _imports_of("console.model").items() for t in targets
               if not t.startswith("console.model")}
    assert not outside


def test_the_store_never_imports_the_front_ends_or_the_executors() -> None:
    forbidden = ("console.ui", "console.executors", "console.cli", "console.headless",
                 "console.printers", "console.launch", "textual")
    outside = {(m, t) for m, targets in _imports_of("console.store").items() for t in targets
               if t.startswith(forbidden)}
    assert not outside


def test_the_printers_write_events_and_read_nothing_else() -> None:
    allowed = ("console.printers", "console.engine.events", "console.engine.task",
               "console.model.durations", "console.sanitize")
    outside = {(m, t) for m, targets in _imports_of("console.printers").items()
               for t in targets if not t.startswith(allowed)}
    assert not outside
