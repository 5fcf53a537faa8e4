"""Baton's console uses Textual's public API only (ARCHITECTURE: no private Textual APIs).

pyproject allows textual>=1.0,<9: a private name (``textual._context``, a ``TreeNode``'s
``_label``, a ``FooterKey``'s ``_disabled``) may change or vanish in any release without
notice. So no module in ``console/`` may

- import a private Textual module (``textual._x``, ``textual.widgets._x``) or a private
  name from a Textual module;
- read or write a private attribute of a Textual object (``node._label``,
  ``child._pruning``), or reach a Textual base class's private members from a subclass
  (``self._bindings_ready``, ``super()._toggle_node(...)``, overriding
  ``_on_mouse_scroll_up``).

The private names are collected from Textual's own source, so the check follows the
installed version.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import textual

from tests.helpers import parsed

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = ROOT / "console"
TEXTUAL = Path(textual.__file__).resolve().parent
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}
"""Public despite the underscore (collections.namedtuple's API)."""


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_module(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "textual" and any(_private(part) for part in parts[1:])


def _modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(CONSOLE.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        yield name, path, parsed(path)


def _uses_textual(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
                a.name.split(".")[0] == "textual" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "textual":
            return True
    return False


def _class_members(node: ast.ClassDef) -> set[str]:
    """Names a class defines: in its body, and as ``self.X`` anywhere in its methods."""
    names: set[str] = set()
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(item.name)
        elif isinstance(item, ast.Assign):
            names.update(t.id for t in item.targets if isinstance(t, ast.Name))
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            names.add(item.target.id)
    for sub in ast.walk(node):
        if (isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name)
                and sub.value.id == "self"):
            names.add(sub.attr)
    return names


@cache
def _textual_classes(path: Path) -> dict[str, set[str]]:
    """Private members of each class in one Textual source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name: {n for n in _class_members(node) if _private(n)}
            for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}


@cache
def textual_private_names() -> frozenset[str]:
    """Every private member of every class in Textual's source."""
    names: set[str] = set()
    for path in TEXTUAL.rglob("*.py"):
        for members in _textual_classes(path).values():
            names |= members
    return frozenset(names - NAMEDTUPLE_API)


def _textual_base_privates(cls: type) -> set[str]:
    """Private members a class inherits from its Textual bases."""
    names: set[str] = set()
    for base in cls.__mro__[1:]:
        if base.__module__.split(".")[0] != "textual":
            continue
        names |= {n for n in vars(base) if _private(n)}
        source = inspect.getsourcefile(base)
        if source is not None:
            names |= _textual_classes(Path(source)).get(base.__name__, set())
    return names - NAMEDTUPLE_API


def _own(node: ast.expr) -> bool:
    """``self`` or ``super()``: the object's own members."""
    return (isinstance(node, ast.Name) and node.id in ("self", "cls")) or (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        and node.func.id == "super")


def private_imports(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names
                      if _private_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = ", ".join(a.name for a in node.names)
            if _private_module(node.module):
                found.append(f"line {node.lineno}: from {node.module} import {names}")
            elif node.module.split(".")[0] == "textual":
                found += [f"line {node.lineno}: from {node.module} import {a.name}"
                          for a in node.names if _private(a.name)]
    return found


def foreign_private_attributes(tree: ast.Module) -> list[str]:
    """``x._name`` on an object other than self, where ``_name`` is private in Textual
    (``os._exit`` and the like, on a module that is not Textual's, are not)."""
    names = textual_private_names()
    modules = {a.asname or a.name.split(".")[0] for node in ast.walk(tree)
               if isinstance(node, ast.Import) for a in node.names
               if a.name.split(".")[0] != "textual"}
    return [f"line {node.lineno}: .{node.attr}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr in names
            and not _own(node.value)
            and not (isinstance(node.value, ast.Name) and node.value.id in modules)]


def inherited_private_members(classes: dict[str, object], tree: ast.Module) -> list[str]:
    """``self._name`` / ``super()._name`` / ``def _name`` in a subclass of a Textual class,
    where a Textual base defines ``_name`` (``classes``: the module's namespace)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        cls = classes.get(node.name)
        if not isinstance(cls, type):
            continue
        inherited = _textual_base_privates(cls)
        if not inherited:
            continue
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Assign,
                                 ast.AnnAssign)):
                targets = ([item.name] if not isinstance(item, (ast.Assign, ast.AnnAssign))
                           else [t.id for t in ([item.target] if isinstance(item, ast.AnnAssign)
                                                else item.targets)
                                 if isinstance(t, ast.Name)])
                found += [f"line {item.lineno}: {node.name} defines {t}"
                          for t in targets if t in inherited]
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and _own(sub.value) and sub.attr in inherited:
                found.append(f"line {sub.lineno}: {node.name} uses .{sub.attr}")
    return found


def _report(problems: dict[str, list[str]]) -> str:
    return "private Textual API used:\n" + "\n".join(
        f"  {path} {problem}" for path, found in problems.items() for problem in found)


def test_console_imports_no_private_textual_module() -> None:
    problems = {str(path.relative_to(ROOT)): found for _, path, tree in _modules()
                if (found := private_imports(tree))}
    assert not problems, _report(problems)


def test_console_touches_no_private_attribute_of_a_textual_object() -> None:
    problems = {str(path.relative_to(ROOT)): found for _, path, tree in _modules()
                if _uses_textual(tree) and (found := foreign_private_attributes(tree))}
    assert not problems, _report(problems)


def test_console_subclasses_use_no_private_member_of_their_textual_bases() -> None:
    problems = {str(path.relative_to(ROOT)): found for module, path, tree in _modules()
                if _uses_textual(tree) and (found := inherited_private_members(
                    vars(importlib.import_module(module)), tree))}
    assert not problems, _report(problems)


# ------------------------------------------------------------------ the check itself


def test_the_check_finds_what_it_is_for() -> None:
    """The three checks flag each kind of private use (so a clean run means something)."""
    source = '''
from textual._context import active_message_pump
from textual.widgets._footer import FooterKey
from textual.widgets import Tree, _tree
from textual.widgets import Footer
import textual._compositor

class Relabelled(Tree):
    def _toggle_node(self, node):
        super()._toggle_node(node)
        node._label = node.label
        node._updates += 1

class Keys(Footer):
    def bindings_changed(self, screen):
        if self._bindings_ready and not self.children[0]._disabled:
            pass
'''
    tree = ast.parse(source)
    assert len(private_imports(tree)) == 4
    assert {p.split(": ")[1] for p in foreign_private_attributes(tree)} == {
        "._label", "._updates", "._disabled"}
    from textual.widgets import Footer, Tree

    found = inherited_private_members(
        {"Relabelled": type("Relabelled", (Tree,), {}), "Keys": type("Keys", (Footer,), {})},
        tree)
    assert any("defines _toggle_node" in p for p in found), found
    assert any("uses ._toggle_node" in p for p in found), found
    assert any("uses ._bindings_ready" in p for p in found), found


def test_public_names_and_own_members_pass() -> None:
    source = '''
from textual.widgets import Tree
from textual.binding import ActiveBinding

class Mine(Tree):
    def relabel(self, node, active):
        node.set_label("x")
        node.refresh()
        self._steps = {}
        return active._replace(enabled=False)
'''
    tree = ast.parse(source)
    assert private_imports(tree) == []
    assert foreign_private_attributes(tree) == []
