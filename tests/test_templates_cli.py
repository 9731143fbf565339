"""Industry templates: manifests held to their requirements, `objectplatform templates list/enable/disable/new`
recording the choice in the database (SQLite and PostgreSQL), upgrades under a site layer, and the template test kit
(objectplatform.testing)."""

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_cli import db as db  # noqa: F401  (fixtures)
from test_cli import env as env  # noqa: F401
from test_cli import run

from objectplatform.metadata import MetadataError, template_order
from objectplatform.runtime import Settings, open_platform
from objectplatform.testing import open_site

ROOT = Path(__file__).resolve().parents[1]
RESTART = "restart the web and worker processes of the site: they read the enabled templates when they start"

MANIFEST = """\
kind: industry_template
name: shelf
label: {{zh: 货架版, en: Shelf edition}}
version: "{version}"
description: {{zh: 门店货架检查, en: Shelf checks in stores}}
requires:
  objectplatform: ">=0.1"
  apps: [crm]
"""
SHELF_CHECK = """\
kind: object
name: shelf_check
label: {zh: 货架检查, en: Shelf check}
title_field: store
fields:
  store: {type: text, label: {zh: 门店, en: Store}, required: true, max_length: 100}
  grade: {type: picklist, picklist: shelf_grade, label: {zh: 等级, en: Grade}}
  facings: {type: integer, label: {zh: 排面数, en: Facings}}
  status: {type: picklist, picklist: shelf_check_status, label: {zh: 状态, en: Status}, default: open}
lifecycle:
  field: status
  initial: open
  states: {open: {}, done: {}}
  transitions:
    complete: {label: {zh: 完成, en: Complete}, from: [open], to: done, roles: [admin]}
---
kind: picklist
name: shelf_grade
label: {zh: 货架等级, en: Shelf grade}
options:
  - {value: a, label: {zh: A级, en: Grade A}}
  - {value: b, label: {zh: B级, en: Grade B}}
---
kind: picklist
name: shelf_check_status
label: {zh: 检查状态, en: Check status}
options:
  - {value: open, label: {zh: 进行中, en: Open}}
  - {value: done, label: {zh: 已完成, en: Done}}
---
kind: object_extension
object: account
fields:
  shelf_note: {type: text, label: {zh: 货架备注, en: Shelf note}}
"""
FACINGS_REPORT = """\
kind: report
name: facings_by_grade
label: {zh: 各等级排面数, en: Facings by grade}
object: shelf_check
dimensions: [{key: grade, field: grade}]
measures:
  - {key: checks, function: count}
  - {key: facings, function: sum, field: facings}
"""
V2_FIELD = "  planogram: {type: text, label: {zh: 陈列图, en: Planogram}, max_length: 200}\n"
SITE_FIELD = """\
kind: object_extension
object: shelf_check
fields:
  region_code: {type: text, label: {zh: 区域编码, en: Region code}}
"""


def edition(folder: Path, name: str = "shelf", version: str = "1.0.0", manifest: str | None = None,
            v2: bool = False) -> Path:
    """The edition `name` in `folder`: the shelf edition (at `version`, its 1.1.0 adding a field) or a manifest."""
    path = folder / name
    (path / "object_defs").mkdir(parents=True, exist_ok=True)
    (path / "template.yaml").write_text(manifest or MANIFEST.format(version=version), encoding="utf-8")
    if manifest is None:
        objects = SHELF_CHECK.replace("  status:", V2_FIELD + "  status:", 1) if v2 else SHELF_CHECK
        (path / "object_defs" / "shelf.yaml").write_text(objects, encoding="utf-8")
        (path / "report_templates").mkdir(exist_ok=True)
        (path / "report_templates" / "shelf.yaml").write_text(FACINGS_REPORT, encoding="utf-8")
    return path


@pytest.fixture
def editions(env, tmp_path):  # noqa: F811
    folder = tmp_path / "editions"
    folder.mkdir()
    env.setenv("OBJECTPLATFORM_TEMPLATES_PATH", str(folder))
    env.chdir(tmp_path)
    return folder


# --- manifests ------------------------------------------------------------------------------------


def test_check_refuses_an_edition_whose_requirements_are_not_met_at_file_and_line(env, editions, capsys):  # noqa: F811
    edition(editions, "base_pack", manifest="kind: industry_template\nname: base_pack\nlabel: {en: Base pack}\n"
                                            "version: \"1.0\"\n")
    edition(editions, "shelf", manifest=(
        "kind: industry_template\nname: shelf\nlabel: {en: Shelf}\nversion: \"2.0.0\"\n"
        "requires:\n  objectplatform: \">=9.0\"\n  apps: [crm, helpdesk]\n"
        "depends: [base_pack, pricing]\nconflicts: [retail]\n"))
    edition(editions, "retail", manifest="kind: industry_template\nname: retail\nlabel: {en: Retail}\n"
                                         "version: \"1.0.0\"\n")
    env.setenv("OBJECTPLATFORM_TEMPLATES", "shelf,retail")
    code, out, err = run(capsys, "check")
    assert (code, out, err) == (1, "", (
        "editions/shelf/template.yaml:6:3: industry template 'shelf' requires objectplatform >=9.0; this is "
        f"{version('objectplatform')} (at requires.objectplatform)\n"
        "editions/shelf/template.yaml:7:15: industry template 'shelf' builds on the app 'helpdesk', which is not "
        "enabled (OBJECTPLATFORM_APPS: crm) (at requires.apps[1])\n"
        "editions/shelf/template.yaml:8:11: industry template 'shelf' depends on 'base_pack', which is not enabled: "
        "`objectplatform templates enable base_pack` first (at depends[0])\n"
        "editions/shelf/template.yaml:8:22: unknown industry template 'pricing' (at depends[1])\n"
        "editions/shelf/template.yaml:9:13: industry template 'shelf' conflicts with 'retail', which is enabled: a "
        "site runs one of them (at conflicts[0])\n"
        "5 problems in the metadata\n"))


def test_a_manifest_s_own_mistakes_are_reported_at_file_and_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    edition(tmp_path, "shelf", manifest="kind: industry_template\nname: shelves\nlabel: {en: Shelf}\nversion: 1.0\n"
                                        "depend: [retail]\n")
    edition(tmp_path, "retail", manifest="kind: industry_template\nname: retail\nlabel: {en: Retail}\n"
                                         "version: \"1.0.0\"\ndepends: [retail]\n")
    (tmp_path / "bare").mkdir()
    with pytest.raises(MetadataError) as caught:
        template_order(tmp_path, ["shelf", "bare", "retial"], "0.1.0", ["crm"])
    assert [str(p) for p in caught.value.problems] == [
        "shelf/template.yaml:4:1: a version is text: quote it, e.g. version: \"1.0.0\" (at version)",
        "shelf/template.yaml:5:1: unknown key 'depend' (did you mean 'depends'?) (at depend)",
        "bare/template.yaml: industry template 'bare' has no manifest template.yaml (`objectplatform templates new` "
        "writes one)",
        "retial: unknown industry template 'retial' (did you mean 'retail'?)",
    ]
    with pytest.raises(MetadataError) as caught:
        template_order(tmp_path, ["retail"], "0.1.0", ["crm"])
    assert [str(p) for p in caught.value.problems] == [
        "retail/template.yaml:5:11: industry templates depend on each other: retail -> retail (at depends[0])"]


def test_editions_load_after_those_they_depend_on(tmp_path):
    edition(tmp_path, "a", manifest="kind: industry_template\nname: a\nlabel: {en: A}\nversion: \"1\"\n"
                                    "depends: [b]\n")
    edition(tmp_path, "b", manifest="kind: industry_template\nname: b\nlabel: {en: B}\nversion: \"1\"\n")
    assert template_order(tmp_path, ["a", "b"], "0.1.0", []) == ["b", "a"]


# --- list, enable, disable ------------------------------------------------------------------------


def test_enable_migrates_and_records_the_edition_and_disable_keeps_its_data(editions, db, capsys):  # noqa: F811
    edition(editions)
    assert run(capsys, "templates", "list") == (0, (
        f"industry templates in {editions}:\n"
        "shelf 1.0.0  货架版 · Shelf edition  [not enabled]\n"
        "  Shelf checks in stores\n"
        "  adds 1 object, 5 fields, 1 report, 0 flows\n"
        "  requires objectplatform >=0.1, app crm\n"), "")
    assert run(capsys, "migrate")[0] == 0
    code, out, err = run(capsys, "templates", "enable", "shelf")
    lines = out.splitlines()
    assert (code, err) == (0, "")
    assert "+ table shelf_check (11 columns)" in lines and "+ column account.shelf_note VARCHAR(255)" in lines
    assert lines[-3:] == ["* record 5 field definitions",
                          "applied; enabled shelf 1.0.0 (货架版 · Shelf edition) in the database",
                          RESTART]
    assert run(capsys, "templates", "enable", "shelf") == (
        0, "shelf is already enabled in the database: nothing to do\n", "")
    assert run(capsys, "check")[1].endswith("(layers: base, app crm, template shelf)\n")
    assert run(capsys, "migrate", "--dry-run") == (0, "nothing to do\n", "")

    platform = open_platform(Settings.from_env())  # as a web or worker process starts: no OBJECTPLATFORM_TEMPLATES
    try:
        assert platform.settings.templates == ("shelf",)
        check = platform.records.create("shelf_check", {"store": "王府井店", "grade": "a", "facings": 12})
        platform.records.create("account", {"name": "华联超市", "shelf_note": "端架"})
    finally:
        platform.close()
    assert "[enabled (database)]" in run(capsys, "templates", "list")[1]

    code, out, err = run(capsys, "templates", "disable", "shelf")
    assert (code, err) == (0, "")
    assert out.splitlines()[-6:] == [
        "applied; disabled shelf 1.0.0 (货架版 · Shelf edition) in the database",
        RESTART,
        "its data stays in the database, nothing is dropped:",
        "  tables kept: shelf_check (1 row)",
        "  columns kept: account.shelf_note",
        "  they leave the API, forms, imports and reports; `objectplatform templates enable shelf` brings them back "
        "with their data"]
    assert "= column account.shelf_note kept (field removed from metadata)" in out.splitlines()
    assert run(capsys, "templates", "disable", "shelf") == (1, "", "error: shelf is not enabled in the database\n")
    assert run(capsys, "--lang", "zh", "templates", "disable", "shelf") == (1, "", "error: 数据库中未启用 shelf\n")
    platform = open_platform(Settings.from_env())
    try:
        assert platform.settings.templates == () and "shelf_check" not in platform.metadata.objects
        with platform.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT store, facings FROM shelf_check")).all() == [("王府井店", 12)]
    finally:
        platform.close()

    assert run(capsys, "templates", "enable", "shelf")[0] == 0  # back, with its data
    platform = open_platform(Settings.from_env())
    try:
        assert platform.records.get("shelf_check", check["id"])["facings"] == 12
        assert platform.records.list("account", filters={"name": "华联超市"}).items[0]["shelf_note"] == "端架"
    finally:
        platform.close()


def test_a_site_layer_on_an_edition_survives_its_upgrade_and_keeps_it_from_being_disabled(env, editions, db,  # noqa: F811
                                                                                        capsys, tmp_path):
    edition(editions)
    assert run(capsys, "migrate")[0] == 0
    assert run(capsys, "templates", "enable", "shelf")[0] == 0
    site = tmp_path / "site" / "object_defs"
    site.mkdir(parents=True)
    (site / "shelf_site.yaml").write_text(SITE_FIELD, encoding="utf-8")
    env.setenv("OBJECTPLATFORM_CUSTOM_METADATA", str(tmp_path / "site"))
    assert run(capsys, "migrate")[1].splitlines()[0] == "+ column shelf_check.region_code VARCHAR(255)"
    platform = open_platform(Settings.from_env())
    try:
        check = platform.records.create("shelf_check", {"store": "国贸店", "facings": 8, "region_code": "HB-01"})
    finally:
        platform.close()

    edition(editions, version="1.1.0", v2=True)  # the edition's next release adds a field
    assert "[enabled (database), 1.0.0 migrated: run `objectplatform migrate`]" in run(capsys, "templates", "list")[1]
    code, out, err = run(capsys, "migrate")
    assert (code, out, err) == (0, "+ column shelf_check.planogram VARCHAR(200)\n* record 1 field definition\n"
                                   "applied\nindustry template shelf: 1.0.0 -> 1.1.0\n", "")
    platform = open_platform(Settings.from_env())
    try:
        updated = platform.records.update("shelf_check", check["id"], {"planogram": "P-7"}, version=check["version"])
        assert (updated["store"], updated["region_code"], updated["planogram"]) == ("国贸店", "HB-01", "P-7")
    finally:
        platform.close()
    assert "shelf 1.1.0  货架版 · Shelf edition  [enabled (database)]" in run(capsys, "templates", "list")[1]

    code, out, err = run(capsys, "templates", "disable", "shelf")  # the site's layer still extends its object
    assert (code, out) == (1, "")
    assert err.splitlines() == ["site/object_defs/shelf_site.yaml:2:1: unknown object 'shelf_check' (at object)",
                                "1 problem in the metadata"]
    assert "[enabled (database)]" in run(capsys, "templates", "list")[1]


def test_an_edition_named_by_the_setting_is_disabled_there(env, editions, db, capsys):  # noqa: F811
    edition(editions)
    env.setenv("OBJECTPLATFORM_TEMPLATES", "shelf")
    assert run(capsys, "templates", "disable", "shelf") == (
        1, "", "error: shelf is enabled by OBJECTPLATFORM_TEMPLATES: take it out of that setting\n")


# --- templates new, the test kit ------------------------------------------------------------------


def test_a_new_edition_s_skeleton_checks_and_passes_its_own_test(env, editions, capsys):  # noqa: F811
    code, out, err = run(capsys, "templates", "new", "pharma", "--label-zh", "医药版", "--label-en", "Pharma edition")
    assert (code, err) == (0, "")
    assert out.splitlines()[:7] == [f"created {editions / 'pharma'}:", "  template.yaml", "  object_defs/user.yaml",
                                    "  flows/README.md", "  report_templates/README.md", "  tests/conftest.py",
                                    "  tests/test_pharma.py"]
    assert run(capsys, "templates", "new", "pharma") == (
        1, "", f"error: {editions / 'pharma'} already exists: choose another name\n")
    assert run(capsys, "templates", "new", "Pharma") == (
        1, "", "error: Pharma is not a template name: use lowercase letters, digits and _, starting with a letter\n")
    env.setenv("OBJECTPLATFORM_TEMPLATES", "pharma")
    assert run(capsys, "check")[1].endswith("(layers: base, app crm, template pharma)\n")
    test_env = {k: v for k, v in os.environ.items() if k != "OBJECTPLATFORM_TEST_DATABASE_URL"}  # SQLite: fast
    test_env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(editions / "pharma")],
                          capture_output=True, text=True, env=test_env, cwd=editions)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_the_kit_opens_base_apps_edition_and_site_layer_and_asserts_on_actions_and_reports(backend, tmp_path):
    edition(tmp_path / "editions")
    with open_site(tmp_path, ["shelf"], {"object_defs/shelf_site.yaml": SITE_FIELD}, backend=backend,
                   templates_path=tmp_path / "editions") as site:
        assert {"shelf_check", "lead", "user"} <= set(site.metadata.objects)
        assert site.metadata.objects["shelf_check"].fields["region_code"].label.zh == "区域编码"
        site.user("boss", "admin")
        site.user("rep", "sales_rep")
        first = site.create("shelf_check", store="王府井店", grade="a", facings=12, region_code="HB-01")
        site.create("shelf_check", store="国贸店", grade="a", facings=8)
        site.create("shelf_check", store="西单店", grade="b", facings=5)
        assert site.actions("shelf_check", first["id"], "boss") == ["complete"]
        site.act("shelf_check", "complete", first["id"], "boss")
        assert site.get("shelf_check", first["id"])["status"] == "done"
        assert site.actions("shelf_check", first["id"], "boss") == []
        assert site.report("facings_by_grade") == [{"grade": "a", "checks": 2, "facings": 20},
                                                   {"grade": "b", "checks": 1, "facings": 5}]


# --- the implementer's guide: the administrator's example -------------------------------------------

GUIDE = (ROOT / "docs" / "implementers.md").read_text(encoding="utf-8")


def guide_block(after: str) -> str:
    """The text of the first fenced block of docs/implementers.md after the words `after`."""
    start = GUIDE.index("\n", GUIDE.index("```", GUIDE.index(after))) + 1
    return GUIDE[start:GUIDE.index("```", start)]


def test_the_guide_s_site_layer_applies_with_one_command_and_shows_in_imports_and_reports(env, db, capsys,  # noqa: F811
                                                                                          tmp_path, backend):
    site = tmp_path / "crm-site"
    (site / "object_defs").mkdir(parents=True)
    (site / "report_templates").mkdir()
    (site / "object_defs" / "lead_site.yaml").write_text(guide_block("object_defs/lead_site.yaml`:"))
    (site / "report_templates" / "leads_by_budget.yaml").write_text(guide_block("leads_by_budget.yaml`:"))
    assert run(capsys, "migrate")[0] == 0
    env.setenv("OBJECTPLATFORM_CUSTOM_METADATA", str(site))
    shown = [line.removeprefix("#   ") for line in guide_block("one command applies it").splitlines()[1:]]
    assert run(capsys, "migrate") == (0, "\n".join(shown) + "\n", "")

    (tmp_path / "pools.csv").write_text(guide_block("`pools.csv`"), encoding="utf-8")
    assert run(capsys, "import", "lead_pool", str(tmp_path / "pools.csv"))[:2] == (0, "imported 2, failed 0\n")
    (tmp_path / "leads.csv").write_text(
        "姓名,电话,线索来源,行业,区域,预算范围,决策人\n"
        "王总,13800000001,老客户转介绍,金融,,100万以上,王总\n"
        "李经理,13800000002,行业协会,,华北,10万-100万,\n"
        "赵主任,13800000003,行业协会,,华北,10万-100万,赵主任\n"
        "钱工,13800000004,行业协会,,华南,超预算,\n", encoding="utf-8")
    assert run(capsys, "import", "lead", str(tmp_path / "leads.csv"))[:2] == (
        1, "imported 3, failed 1\nrow 5: budget_range: '超预算' is not one of: under_100k, 100k_1m, over_1m\n")
    platform = open_platform(Settings.from_env())
    try:
        pools = {p["id"]: p["name"] for p in platform.records.list("lead_pool").items}
        leads = {lead["name"]: (pools.get(lead["pool"]), lead["source"], lead["budget_range"], lead["decision_maker"])
                 for lead in platform.records.list("lead").items}
        assert leads == {"王总": ("金融行业线索池", "customer_referral", "over_1m", "王总"),
                         "李经理": ("华北区线索池", "association", "100k_1m", None),
                         "赵主任": ("华北区线索池", "association", "100k_1m", "赵主任")}
        lead = platform.metadata.objects["lead"]
        assert "budget_range" in lead.list_view.columns and "decision_maker" in lead.layout[1].fields
    finally:
        platform.close()
    (tmp_path / "kit").mkdir()
    with open_site(tmp_path / "kit", site=site, backend=backend) as kit:  # the report, through the kit
        kit.create("lead", name="甲", mobile="13900000001", source="association", budget_range="over_1m")
        kit.create("lead", name="乙", mobile="13900000002", source="association", budget_range="over_1m")
        kit.create("lead", name="丙", mobile="13900000003", source="customer_referral", budget_range="under_100k")
        assert kit.report("leads_by_source_and_budget") == [
            {"source": "customer_referral", "budget": "under_100k", "leads": 1},
            {"source": "association", "budget": "over_1m", "leads": 2}]
