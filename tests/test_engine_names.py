"""Guard: the engine names no CRM object. Every object, field and status name of the CRM reaches the engine
through the CRM's YAML (behavior configurations, flows), so a string constant naming a CRM object in code
under objectplatform/ (docstrings aside, comments never being constants) is a leak; so is a CRM object named
by a field of the engine's base layer (objectplatform/base/), which defines the platform's own objects only."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from objectplatform.runtime.config import ROOT

ENGINE = ROOT / "objectplatform"
BASE = ENGINE / "base" / "object_defs"  # the engine's base layer: the platform's own objects
CRM = ROOT / "objectplatform_crm" / "object_defs"
# Files another change is moving into the CRM's own package (objectplatform_crm/): remove each one here
# when that lands.
PENDING = frozenset({"objectplatform/runtime/imports.py", "objectplatform/web/pages_convert.py"})


def documents(folder: Path) -> list[dict]:
    texts = [path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.yaml"))]
    return [doc for text in texts for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc]


def objects_defined(folder: Path) -> set[str]:
    return {doc["name"] for doc in documents(folder) if doc.get("kind") == "object"}


def crm_objects() -> set[str]:
    return objects_defined(CRM)




def docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring constants of a module and of its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def named_objects(path: Path, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of each string constant of the module at `path` that is one of `names`, docstrings aside."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = docstrings(tree)
    return sorted((node.lineno, node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
                  and id(node) not in skip)


def test_the_crm_objects_are_the_crm_s_object_definitions():
    assert sorted(crm_objects()) == [
        "account", "campaign", "co_visit", "competitor_info", "contact", "customer_feedback", "follow_up", "invoice",
        "lead", "lead_pool", "opportunity", "opportunity_task", "order_line", "payment", "payment_plan", "price_policy",
        "product", "refund", "return_line", "return_order", "sales_order", "sales_target", "stage_history", "visit",
        "visit_route", "visit_route_stop"]


def test_engine_code_names_no_crm_object():
    names = crm_objects()
    found = [f"{path.relative_to(ROOT)}:{line}: {name!r}" for path in sorted(ENGINE.rglob("*.py"))
             if path.relative_to(ROOT).as_posix() not in PENDING for line, name in named_objects(path, names)]
    assert found == []


def test_the_engine_s_base_layer_defines_the_platform_s_own_objects_and_names_no_crm_object():
    assert objects_defined(BASE) == {"user", "department"}
    assert objects_defined(CRM) & {"user", "department"} == set()
    fields = [field for doc in documents(BASE) for field in doc["fields"].values()]
    assert {field.get("to", field["type"]) for field in fields} & crm_objects() == set()


def test_the_guard_finds_a_name_outside_docstrings(tmp_path):
    module = tmp_path / "leak.py"
    module.write_text('"""The lead pool."""\n\n\ndef pool():\n    """lead_pool"""\n    return "lead_pool"\n',
                      encoding="utf-8")
    assert named_objects(module, {"lead_pool"}) == [(6, "lead_pool")]
