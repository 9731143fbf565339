"""The app API (runtime/apps.py): the CRM found through its entry point, apps named as module:attribute, an
unknown name refused with a "did you mean", and the CRM's demo saying what to install when Faker is missing."""

from __future__ import annotations

import sys
import tomllib

import pytest

import objectplatform_crm
from objectplatform.cli import main
from objectplatform.metadata import MetadataError
from objectplatform.runtime.apps import app_layers, find_apps
from objectplatform.runtime.config import ROOT, Settings

CRM = ROOT / "objectplatform_crm"  # the CRM's metadata layer


def test_the_crm_is_the_default_app_found_through_its_entry_point():
    assert Settings.from_env({}).apps == ("crm",)
    assert Settings.from_env({"OBJECTPLATFORM_APPS": " crm , apps.helpdesk:app "}).apps == ("crm", "apps.helpdesk:app")
    crm, helpdesk = find_apps(["crm", "apps.helpdesk:app"])
    assert (crm, crm.layers, crm.pages) == (objectplatform_crm.app, (CRM,), None)
    assert crm.register is objectplatform_crm._register  # the order's copy action, the targets' owner
    assert app_layers([crm, helpdesk]) == [CRM, ROOT / "tests" / "apps" / "helpdesk"]


def test_unknown_apps_are_problems_with_a_hint():
    with pytest.raises(MetadataError) as caught:
        find_apps(["crn", "apps.helpdesk:nothing", "no_such_module:app"])
    assert [str(p) for p in caught.value.problems] == [
        "OBJECTPLATFORM_APPS: unknown app 'crn' (installed: crm) (did you mean 'crm'?)",
        "OBJECTPLATFORM_APPS: unknown app 'apps.helpdesk:nothing' (installed: crm)",
        "OBJECTPLATFORM_APPS: unknown app 'no_such_module:app' (installed: crm)",
    ]


def test_the_demo_without_faker_says_what_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("OBJECTPLATFORM_DATABASE_URL", f"sqlite:///{tmp_path / 'demo.db'}")
    monkeypatch.setitem(sys.modules, "faker", None)  # `import faker` fails as when it is not installed
    monkeypatch.delitem(sys.modules, "objectplatform_crm.demo", raising=False)
    monkeypatch.delattr(objectplatform_crm, "demo", raising=False)
    assert main(["demo", "--no-serve"]) == 1
    assert capsys.readouterr() == ("", "error: the CRM demo needs Faker, which is not installed: "
                                       "pip install 'objectplatform[demo]' (or `make install`)\n")
    assert not (tmp_path / "demo.db").exists()  # refused before migrating


def test_the_crm_s_and_the_engine_s_base_layers_ship_as_package_data():
    """A non-editable install (a wheel) carries every file of the CRM's folders and of the engine's base layer."""
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]
    for package, folder in (("objectplatform_crm", CRM), ("objectplatform", ROOT / "objectplatform" / "base")):
        files = {p for p in folder.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")}
        shipped = {p for pattern in package_data[package] for p in (ROOT / package).glob(pattern)}
        assert files and files <= shipped, sorted(map(str, files - shipped))
