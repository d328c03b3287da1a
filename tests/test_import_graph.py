"""The package's modules form no import cycle: each one can be read, and changed, on its own.

Imports inside functions count too: a cycle hidden in a function (``cli`` importing ``workbook``
which imports ``cli``) still makes two modules that cannot be understood one without the other.
Only imports under ``if TYPE_CHECKING:`` are left out: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "jhtutorial"


def modules(package: Path) -> dict[str, Path]:
    """Every module of the package by its dotted name (a folder's ``__init__`` by the folder's)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = [package.name, *path.relative_to(package).with_suffix("").parts]
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:``."""
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    return hidden


def imports_of(name: str, known: dict[str, Path]) -> set[str]:
    """The package's modules that module ``name`` imports, anywhere in it (functions included)."""
    path = known[name]
    tree = ast.parse(path.read_text(), str(path))
    hidden = _type_checking_only(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                target = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                # `from . import manifests` imports a module; `from .connect import connect` a name of one
                if f"{target}.{alias.name}" in known:
                    found.add(f"{target}.{alias.name}")
                elif target in known:
                    found.add(target)
    found.discard(name)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    state: dict[str, str] = {}  # "open": on the current path; "done": explored, no cycle through it
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for following in sorted(graph.get(node, ())):
            if state.get(following) == "open":
                return path[path.index(following):] + [following]
            if following not in state:
                cycle = visit(following)
                if cycle:
                    return cycle
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def import_cycle(package: Path) -> list[str] | None:
    known = modules(package)
    return find_cycle({name: imports_of(name, known) for name in known})


def test_a_cycle_hidden_in_functions_is_found(tmp_path: Path) -> None:
    # the shape cli.py and workbook.py once had: each imported the other inside a function
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cli.py").write_text("def run():\n    from . import workbook\n")
    (package / "workbook.py").write_text("def lab():\n    from .cli import resolve_namespace\n")
    (package / "sub" / "__init__.py").write_text("from ..cli import run\n")
    assert import_cycle(package) == ["pkg.cli", "pkg.workbook", "pkg.cli"]
    (package / "workbook.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                         "    from .cli import resolve_namespace\n")
    assert import_cycle(package) is None  # type-checking-only imports never run
    (package / "cli.py").write_text("from .sub import run\n")  # through a sub-package's __init__
    assert import_cycle(package) == ["pkg.cli", "pkg.sub", "pkg.cli"]


def test_the_graph_reads_every_kind_of_import_of_the_package() -> None:
    known = modules(PACKAGE)
    assert {"jhtutorial.cli", "jhtutorial.workbook", "jhtutorial.notebook", "jhtutorial.localcluster.cluster"} <= set(known)
    assert "jhtutorial.connect" in imports_of("jhtutorial.cli", known)  # inside a function
    assert "jhtutorial.manifests" in imports_of("jhtutorial.steps", known)  # `from . import manifests`
    assert "jhtutorial.errors" in imports_of("jhtutorial.localcluster.cluster", known)  # `from ..errors import`


def test_no_module_of_the_package_takes_part_in_an_import_cycle() -> None:
    cycle = import_cycle(PACKAGE)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
