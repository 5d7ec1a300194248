"""The package stays readable: module sizes, function complexity, no reach into privates."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from radon.complexity import cc_visit

PACKAGE = Path(__file__).resolve().parent.parent / "akool_async"
MODULES = sorted(PACKAGE.rglob("*.py"))

#: No module longer than this many lines (STYLE habit 14).
MAX_MODULE_LINES = 600
#: The SDK outside the simulator stays within this many lines in all. A guard against
#: growth, not the goal: issue #14 asks for 9,000, which the SDK (about 16,000 with the
#: Postgres store, the report and tracing) does not meet yet.
MAX_SDK_LINES = 16_500
#: No function more complex than this (radon's cyclomatic complexity).
MAX_COMPLEXITY = 15
#: namedtuple's public API is spelt with a leading underscore to avoid field clashes.
NAMEDTUPLE_API = frozenset({"_replace", "_asdict", "_fields", "_make"})


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def _own_names(tree: ast.AST) -> set[str]:
    """Names a module defines itself: its functions, classes, attributes, slots, variables."""
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
        ):
            own.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
        elif isinstance(node, ast.arg):
            own.add(node.arg)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.isidentifier()  # names listed in __slots__
        ):
            own.add(node.value)
    return own


#: namedtuple's public API: underscored only so they cannot clash with field names.
NAMEDTUPLE_API = frozenset({"_replace", "_asdict", "_fields", "_field_defaults", "_make"})


def private_reaches(source: str) -> list[tuple[int, str]]:
    """(line, what) for each private name a module takes from another module's object.

    ``obj._name`` counts unless ``obj`` is ``self``/``cls`` or the module itself defines
    ``_name`` (an object of its own class); ``from .x import _name`` always counts, while
    importing a private *module* (``from . import _errors``) does not.
    """
    tree = ast.parse(source)
    own = _own_names(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            name = node.attr
            if not name.startswith("_") or name.startswith("__") or name in NAMEDTUPLE_API:
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if name not in own:
                found.append((node.lineno, f".{name}"))
        elif isinstance(node, ast.ImportFrom) and node.module not in (None, "__future__"):
            found.extend(
                (node.lineno, f"from {node.module} import {alias.name}")
                for alias in node.names
                if alias.name.startswith("_") and not alias.name.startswith("__")
            )
    return found


def test_private_reach_detector_flags_what_it_should() -> None:
    """The detector flags another object's private attribute and a private import only."""
    source = (
        "from ._models import _secret\n"
        "from . import _errors\n"
        "class A:\n"
        "    def __init__(self):\n"
        "        self._mine = 1\n"
        "    def same(self, other):\n"
        "        return other._mine\n"
        "def reach(client):\n"
        "    return client._transport\n"
        "def renew(row):\n"
        "    return row._replace(lease=1)\n"
    )
    assert private_reaches(source) == [(1, "from _models import _secret"), (9, "._transport")]


@pytest.mark.parametrize("module", MODULES, ids=_relative)
def test_no_module_reads_another_modules_privates(module: Path) -> None:
    """A module talks to another through names without a leading underscore."""
    assert private_reaches(module.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("module", MODULES, ids=_relative)
def test_modules_stay_short(module: Path) -> None:
    """Every module can be read in one sitting."""
    lines = len(module.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_relative(module)} has {lines} lines"


@pytest.mark.parametrize("module", MODULES, ids=_relative)
def test_functions_stay_simple(module: Path) -> None:
    """No function needs more than a handful of branches (radon cyclomatic complexity)."""
    blocks = cc_visit(module.read_text(encoding="utf-8"))
    complex_ = [
        f"{block.fullname} ({block.complexity})"
        for block in blocks
        if block.complexity > MAX_COMPLEXITY
    ]
    assert complex_ == []


def test_sdk_size_budget() -> None:
    """The SDK outside the simulator stays within its line budget."""
    total = sum(
        len(path.read_text(encoding="utf-8").splitlines())
        for path in MODULES
        if "testing" not in path.relative_to(PACKAGE).parts
    )
    assert total <= MAX_SDK_LINES
