"""Guard: the import graph of the engine and the CRM has no cycle and no upward import, and no module reaches
into another module's `_private` names. Every import statement counts, a function's own included."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from objectplatform.runtime.config import ROOT

PACKAGES = ("objectplatform", "objectplatform_crm")
# (importer prefix, imported prefix, why not); a prefix matches the module itself and everything under it
FORBIDDEN = (
    ("objectplatform.metadata", "objectplatform.runtime", "metadata is pure: it knows no runtime"),
    ("objectplatform.metadata", "objectplatform.web", "metadata is pure: it knows no web face"),
    ("objectplatform.metadata", "sqlalchemy", "metadata is pure: no database"),
    ("objectplatform.metadata", "flask", "metadata is pure: no Flask"),
    ("objectplatform.runtime", "objectplatform.web", "runtime never imports the web face"),
    ("objectplatform.runtime", "flask", "runtime never imports Flask"),
    ("objectplatform", "objectplatform_crm", "the engine knows nothing of the CRM app"),
)


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of PACKAGES by dotted name (a package by its __init__.py)."""
    found = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, modules) -> Iterator[tuple[str, str]]:
    """(what the statement imports, as a module or as a name of a module; the module that is) for each name."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name, alias.name
        return
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module
    for alias in node.names:
        candidate = f"{source}.{alias.name}"
        yield (candidate, candidate) if candidate in modules else (candidate, source)


def owning_module(name: str, modules) -> str | None:
    """The module of PACKAGES that `name` is or lies in (None outside them)."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in modules else None


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


class Graph:
    """The imports of every module of PACKAGES, with what each statement reaches for."""

    def __init__(self, modules: dict[str, Path]):
        self.modules = modules
        self.edges: dict[str, set[str]] = {m: set() for m in modules}
        self.external: dict[str, set[str]] = {m: set() for m in modules}
        self.reaches: list[str] = []  # "module:line imports other._name" / "module:line reads other._name"
        for module, path in modules.items():
            self._read(module, path)

    def _read(self, module: str, path: Path) -> None:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        module_names: dict[str, str] = {}  # a local name bound to one of our modules -> that module
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for alias, (full, source) in zip(node.names, imported(module, is_package, node, self.modules),
                                             strict=True):
                target = owning_module(source, self.modules)
                if target is None:
                    self.external[module].add(full)
                    continue
                if target != module:
                    self.edges[module].add(target)
                if isinstance(node, ast.ImportFrom) and private(alias.name) and target != module:
                    self.reaches.append(f"{module}:{node.lineno} imports {target}.{alias.name}")
                if full in self.modules and (alias.asname or isinstance(node, ast.ImportFrom)):
                    module_names[alias.asname or alias.name] = full
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and private(node.attr)
                    and module_names.get(node.value.id, module) != module):
                self.reaches.append(f"{module}:{node.lineno} reads {module_names[node.value.id]}.{node.attr}")

    def cycle(self) -> list[str] | None:
        """One import cycle as [a, b, ..., a], or None."""
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        path: list[str] = []

        def visit(module: str) -> list[str] | None:
            state[module] = 1
            path.append(module)
            for target in sorted(self.edges[module]):
                if state.get(target) == 1:
                    return [*path[path.index(target):], target]
                if target not in state and (found := visit(target)):
                    return found
            path.pop()
            state[module] = 2
            return None

        for module in sorted(self.modules):
            if module not in state and (found := visit(module)):
                return found
        return None

    def upward(self) -> list[str]:
        """Every import FORBIDDEN names, as "importer imports imported (why not)"."""
        return sorted(
            f"{module} imports {target} ({why})"
            for module in self.modules
            for target in self.edges[module] | self.external[module]
            for importer, imported_prefix, why in FORBIDDEN
            if under(module, importer) and under(target, imported_prefix)
        )


def graph_of(files: dict[str, str], tmp_path: Path) -> Graph:
    """The graph of a made-up tree of modules ({"objectplatform/x.py": source})."""
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return Graph(module_files(tmp_path))


@pytest.fixture(scope="module")
def graph() -> Graph:
    """The graph of the project's own modules, read once for the three guards (reading every module costs seconds)."""
    return Graph(module_files())


def test_the_import_graph_has_no_cycle(graph):
    cycle = graph.cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_imports_upward(graph):
    assert graph.upward() == []


def test_no_module_reaches_into_another_modules_private_names(graph):
    assert graph.reaches == []


def test_the_guard_finds_a_cycle_through_a_function_level_import(tmp_path):
    graph = graph_of({
        "objectplatform/__init__.py": "",
        "objectplatform/runtime/__init__.py": "",
        "objectplatform/runtime/records.py": "def run():\n    from .actions import register\n",
        "objectplatform/runtime/actions.py": "from . import records\n",
        "objectplatform_crm/__init__.py": "",
    }, tmp_path)
    assert graph.cycle() == ["objectplatform.runtime.actions", "objectplatform.runtime.records",
                             "objectplatform.runtime.actions"]


def test_the_guard_finds_upward_imports_and_private_reaches(tmp_path):
    graph = graph_of({
        "objectplatform/__init__.py": "",
        "objectplatform/metadata/__init__.py": "import sqlalchemy\nfrom objectplatform.runtime import jobs\n",
        "objectplatform/runtime/__init__.py": "",
        "objectplatform/runtime/jobs.py": "from flask import g\nfrom objectplatform_crm import demo\n\n_QUEUE = 1\n",
        "objectplatform/web/__init__.py": "from ..runtime import jobs\nfrom ..runtime.jobs import _QUEUE\n"
                                         "print(jobs._QUEUE)\n",
        "objectplatform_crm/__init__.py": "",
        "objectplatform_crm/demo.py": "",
    }, tmp_path)
    assert graph.upward() == [
        "objectplatform.metadata imports objectplatform.runtime.jobs (metadata is pure: it knows no runtime)",
        "objectplatform.metadata imports sqlalchemy (metadata is pure: no database)",
        "objectplatform.runtime.jobs imports flask.g (runtime never imports Flask)",
        "objectplatform.runtime.jobs imports objectplatform_crm.demo (the engine knows nothing of the CRM app)",
    ]
    assert graph.cycle() is None
    assert graph.reaches == ["objectplatform.web:2 imports objectplatform.runtime.jobs._QUEUE",
                             "objectplatform.web:3 reads objectplatform.runtime.jobs._QUEUE"]
