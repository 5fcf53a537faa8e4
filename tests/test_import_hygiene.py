"""Import hygiene of ``console/``: no import cycles (issue 12: "No module imports a module
that imports it back").

The graph is read from the source with :mod:`ast` (nothing is imported). An edge A -> B is
any ``import`` in A that runs at some point, where it sits:

* module level, class bodies, ``try``/``if`` blocks: they run when A is imported;
* inside functions ("lazy" imports): they count too. A lazy import only defers a cycle to
  the first call; the two modules still cannot be understood, tested or moved apart, and a
  lazy import back is the usual way a real cycle hides;
* ``if TYPE_CHECKING:`` blocks do NOT count here: they never run, they only name types for
  the checker (``from __future__ import annotations`` keeps the annotations unevaluated).
  No runtime cycle is allowed at all.

A second, stricter graph counts the ``TYPE_CHECKING`` imports too: a module that needs
another's private fields or concrete class only "for the checker" is still coupled both ways
(the mixins of ``Run`` and ``BatonApp``). Those
type-level cycles are listed in ``KNOWN_TYPE_CYCLES``; a cycle there may shrink but no new
one may appear and none may grow.

``from pkg import name`` is an edge to ``pkg.name`` when that is a module of ours, else to
``pkg`` (its ``__init__``). Parent packages that Python initialises on the way (``console``,
``console.engine`` for ``console.engine.run``) are not edges: an ``__init__`` that re-exports
its own submodules would otherwise close a loop with each of them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import parsed

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "console"

# Type-level cycles (through ``if TYPE_CHECKING:`` imports) still present, each the modules
# of one strongly connected component. A current cycle must lie inside one of these; remove
# an entry once it is gone. Only ever shrink this list.
KNOWN_TYPE_CYCLES: tuple[frozenset[str], ...] = ()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(node: ast.AST, types: bool = False) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under ``node`` that can run (with ``types``: also those in
    ``if TYPE_CHECKING:`` blocks)."""
    for child in ast.iter_child_nodes(node):
        if not types and isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:  # the else branch does run
                yield from _imports_in(other)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _imports(child, types)


def _imports_in(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    yield from _imports(node)


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph(types: bool = False) -> dict[str, set[str]]:
    modules = all_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = parsed(path)
        for node in _imports(tree, types):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                source = _resolve(name, path, node)
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    targets.append(sub if sub in modules else source)
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(graph: dict[str, set[str]], component: tuple[str, ...]) -> str:
    inside = set(component)
    edges = [f"    {a} -> {b}" for a in component for b in sorted(graph[a] & inside)]
    return "\n".join([" <-> ".join(component), *edges])


def test_no_import_cycles_in_console() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles (see tests/test_import_hygiene.py):\n" + "\n".join(
        describe(graph, c) for c in found)


def test_no_new_type_level_cycles() -> None:
    graph = import_graph(types=True)
    new = [c for c in cycles(graph) if not any(set(c) <= known for known in KNOWN_TYPE_CYCLES)]
    assert not new, ("new or grown import cycle through TYPE_CHECKING imports (see "
                     "tests/test_import_hygiene.py):\n" + "\n".join(describe(graph, c)
                                                                  for c in new))


def test_known_type_level_cycles_are_still_there() -> None:
    """A fixed cycle leaves the allow-list with its fix, so the list only shrinks."""
    found = cycles(import_graph(types=True))
    gone = [sorted(known) for known in KNOWN_TYPE_CYCLES
            if not any(set(c) <= known for c in found)]
    assert not gone, f"fixed, remove from KNOWN_TYPE_CYCLES: {gone}"


def test_the_checker_sees_cycles() -> None:
    """The graph builder itself: a lazy import back is a cycle, a TYPE_CHECKING one is not."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [("a", "b", "c")]
    source = ("from typing import TYPE_CHECKING\nfrom console.model import workflow\n"
              "if TYPE_CHECKING:\n    from console.engine import run\n"
              "def f():\n    from console.store.logs import StoreError\n")
    tree = ast.parse(source)
    names = sorted(n.module or "" for n in _imports(tree) if isinstance(n, ast.ImportFrom))
    assert names == ["console.model", "console.store.logs", "typing"]
    typed = sorted(n.module or "" for n in _imports(tree, types=True)
                   if isinstance(n, ast.ImportFrom))
    assert typed == ["console.engine", "console.model", "console.store.logs", "typing"]


if __name__ == "__main__":  # list the cycles: python3 tests/test_import_hygiene.py [--types]
    import sys

    g = import_graph(types="--types" in sys.argv)
    for c in cycles(g):
        print(describe(g, c), end="\n\n")
