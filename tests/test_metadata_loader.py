"""The metadata loader: broken cases report exact problems; valid layers give exact definitions.

Each folder under `metadata_cases/` is a repository root in miniature (object_defs/, flows/,
report_templates/, industry_templates/NAME/, site/) with `expected.txt` holding the exact problem
lines, paths relative to the case folder; an empty `expected.txt` means the case loads cleanly.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType

import pytest
from jsonschema import Draft202012Validator

import objectplatform.metadata
from objectplatform.metadata import (
    FieldDef,
    Label,
    LayoutSection,
    ListView,
    Metadata,
    MetadataError,
    Option,
    RollupSpec,
    Source,
    ValidationRule,
    default_layers,
    load_metadata,
)
from objectplatform.metadata._schema import KINDS

CASES = Path(__file__).parent / "metadata_cases"


def load_case(name: str, monkeypatch: pytest.MonkeyPatch) -> Metadata:
    """Load a case as the CLI would: base, every industry template it holds, then its site folder."""
    monkeypatch.chdir(CASES / name)
    templates = sorted(p.name for p in Path("industry_templates").glob("*") if p.is_dir())
    return load_metadata(default_layers(".", templates, "site" if Path("site").is_dir() else None))


@pytest.mark.parametrize("case", sorted(p.parent.name for p in CASES.glob("*/expected.txt")))
def test_case_reports_exactly_the_expected_problems(case, monkeypatch):
    expected = (CASES / case / "expected.txt").read_text(encoding="utf-8").splitlines()
    try:
        load_case(case, monkeypatch)
        found = []
    except MetadataError as e:
        found = [str(p) for p in e.problems]
        assert str(e) == "\n".join(found)
    assert found == expected


@pytest.fixture
def metadata(monkeypatch) -> Metadata:
    return load_case("valid_two_layers", monkeypatch)


def test_extension_adds_a_field_after_the_shipped_ones(metadata):
    lead = metadata.objects["lead"]
    assert list(lead.fields) == [
        "name",
        "company",
        "phone",
        "email",
        "source",
        "status",
        "campaign",
        "code",
        "budget",
        "big",
        "wechat",
    ]
    assert lead.fields["wechat"] == FieldDef(
        "wechat",
        "text",
        Label("微信号", "WeChat"),
        Source("site/object_defs/lead_ext.yaml", 4, 3),
        max_length=50,
    )
    assert lead.extended_by == ("site/object_defs/lead_ext.yaml",)


def test_extension_relabels_a_shipped_field_and_keeps_its_source(metadata):
    company = metadata.objects["lead"].fields["company"]
    assert company == FieldDef(
        "company",
        "text",
        Label("单位名称", "Organisation"),
        Source("object_defs/lead.yaml", 25, 3),
        required=True,
        max_length=255,
    )


def test_inline_options_take_extension_options_in_order(metadata):
    status = metadata.objects["lead"].fields["status"]
    assert status.default == "pending"
    assert status.options == (
        Option("following", Label("跟进中", "Following"), True, 5),
        Option("pending", Label("未处理", "Untouched"), False, 10),
        Option("dingtalk", Label("钉钉", "DingTalk"), True, 30),
    )


def test_picklist_of_the_same_name_in_a_later_layer_extends_it(metadata):
    expected = (
        Option("promotion", Label("促销", "Promotion"), True, 20),
        Option("referral", Label("老客户推荐", "Referral"), True, 25),
        Option("expo", Label("展会", "Expo"), True, 30, MappingProxyType({"probability": 30})),
    )
    assert metadata.picklists["lead_source"].options == expected
    assert metadata.picklists["lead_source"].source == Source("object_defs/lead.yaml", 1, 1)
    assert metadata.objects["lead"].fields["source"].options == expected


def test_extension_appends_rules_list_columns_and_layout_sections(metadata):
    lead = metadata.objects["lead"]
    assert lead.validation_rules == (
        ValidationRule(
            "phone_or_email",
            "not phone and not email",
            Label("电话和邮箱至少填写一项", "Give a phone number or an email"),
            Source("object_defs/lead.yaml", 41, 5),
            "phone",
        ),
        ValidationRule(
            "wechat_length",
            "len(wechat) > 40",
            Label("微信号太长", "WeChat id too long"),
            Source("site/object_defs/lead_ext.yaml", 11, 5),
            "wechat",
        ),
    )
    assert lead.list_view == ListView(
        ("name", "company", "source", "status", "owner", "wechat"), ("source", "status", "campaign", "wechat")
    )
    assert lead.layout == (
        LayoutSection("basic", Label("基本信息", "Basics"), ("name", "company", "phone", "wechat"), 2),
        LayoutSection("social", Label("社交", "Social"), ("wechat",), 1),
    )


def test_field_types_get_their_defaults_and_references(metadata):
    lead, user = metadata.objects["lead"], metadata.objects["user"]
    assert (lead.fields["budget"].precision, lead.fields["budget"].scale) == (18, 0)
    assert lead.fields["campaign"].to == "campaign"
    assert lead.fields["code"].pattern == "L-{YYYY}{MM}-{0000}"
    assert (lead.fields["big"].expression, lead.fields["big"].result_type) == ("budget > 100000", "boolean")
    assert user.fields["department"].to == "department"
    assert metadata.objects["department"].fields["manager"].to == "user"


def test_rollup_finds_its_only_lookup(metadata):
    assert metadata.objects["campaign"].fields["lead_count"].rollup == RollupSpec("count", "lead", "campaign")


def test_roles_form_the_built_in_roles_picklist(metadata):
    assert metadata.roles["sales_rep"].permissions["lead"]["actions"] == ["claim"]
    assert metadata.roles["sales_manager"].label == Label("销售经理", "销售经理")
    assert metadata.picklists["roles"].options == (
        Option("sales_rep", Label("销售代表", "Sales rep"), True, 10),
        Option("sales_manager", Label("销售经理", "销售经理"), True, 20),
    )
    assert metadata.objects["user"].fields["roles"].options == metadata.picklists["roles"].options


def test_flows_and_reports_keep_their_validated_data(metadata):
    rule = metadata.flows["remind_stale_leads"]
    assert (rule.kind, rule.object, rule.source) == ("rule", "lead", Source("flows/lead_rules.yaml", 1, 1))
    assert rule.data["trigger"] == {"schedule": "daily at 09:00"}
    report = metadata.reports["leads_by_campaign"]
    assert (report.kind, report.label) == ("report", Label("按市场活动统计线索", "Leads by campaign"))
    assert [m["key"] for m in report.data["measures"]] == ["leads", "budget", "owners"]


def test_metadata_is_immutable(metadata):
    with pytest.raises(TypeError):
        metadata.objects["lead"] = metadata.objects["user"]
    with pytest.raises(TypeError):
        metadata.objects["lead"].fields["name"] = metadata.objects["lead"].fields["company"]


def test_layers_come_in_order(monkeypatch, tmp_path):
    for name in ("fmcg", "pharma"):
        (tmp_path / "industry_templates" / name).mkdir(parents=True)
    (tmp_path / "site").mkdir()
    monkeypatch.chdir(tmp_path)
    assert default_layers(".", ["pharma", "fmcg"], "site") == [
        Path("."),
        Path("industry_templates/pharma"),
        Path("industry_templates/fmcg"),
        Path("site"),
    ]


def test_unknown_industry_template_is_reported_with_a_hint(monkeypatch, tmp_path):
    (tmp_path / "industry_templates" / "fmcg").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MetadataError) as caught:
        default_layers(tmp_path, ["fmgc"], None)
    assert (
        str(caught.value)
        == "industry_templates/fmgc: unknown industry template 'fmgc' (did you mean 'fmcg'?)"
    )
    assert caught.value.problems[0].hint == "fmcg"


def test_every_schema_is_a_valid_draft_2020_12_schema():
    schemas = Path(objectplatform.metadata.__file__).parent / "schemas"
    names = sorted(p.stem for p in schemas.glob("*.json"))
    assert names == sorted([*KINDS, "common"])
    for path in schemas.glob("*.json"):
        Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))
