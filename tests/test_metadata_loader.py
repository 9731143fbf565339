"""The metadata loader: broken cases report exact problems; valid layers give exact definitions.

Each folder under `metadata_cases/` is a repository root in miniature (object_defs/, flows/,
report_templates/, industry_templates/NAME/, site/) with `expected.txt` holding the exact problem
lines, paths relative to the case folder; an empty `expected.txt` means the case loads cleanly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

import pytest
from jsonschema import Draft202012Validator
from support import shipped_crm

import objectplatform.metadata
from objectplatform.metadata import (
    BASE_LAYER,
    Chart,
    FieldDef,
    FlowTrigger,
    Label,
    LayoutSection,
    ListView,
    Metadata,
    MetadataError,
    Option,
    ReportDimension,
    ReportMeasure,
    RollupSpec,
    Source,
    ValidationRule,
    default_layers,
    load_metadata,
    plain,
)
from objectplatform.metadata._schema import KINDS
from objectplatform.metadata.expressions import parse

CASES = Path(__file__).parent / "metadata_cases"


def load_case(name: str, monkeypatch: pytest.MonkeyPatch) -> Metadata:
    """Load a case as the CLI would: the engine's base layer, the case's own folders as an app's, every industry
    template it holds, then its site folder."""
    monkeypatch.chdir(CASES / name)
    templates = sorted(p.name for p in Path("industry_templates").glob("*") if p.is_dir())
    return load_metadata(default_layers(".", templates, "site" if Path("site").is_dir() else None, ["."]))


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


def test_flows_and_reports_are_typed_with_their_expressions_parsed(metadata):
    rule = metadata.flows["remind_stale_leads"]
    assert (rule.kind, rule.object, rule.source) == ("rule", "lead", Source("flows/lead_rules.yaml", 1, 1))
    assert (rule.label, rule.schedule, rule.event) == (
        Label("线索跟进提醒", "Stale lead reminder"), "daily at 09:00", None)
    # parsed once: the text parses to this very Expression again
    assert rule.condition is parse("status == 'pending' and days_since(created_at) > 3 and campaign.budget > 0")
    assert rule.condition.names == frozenset({"status", "created_at", "campaign.budget"})
    assert plain(rule.actions) == [
        {"notify": {"field": "owner"}, "message": {"zh": "请跟进线索", "en": "Follow up this lead"}},
        {"todo": {"role": "sales_manager", "title": {"zh": "检查线索"}}}]
    assert list(rule.effects) == ["actions"]
    report = metadata.reports["leads_by_campaign"]
    assert (report.kind, report.label) == ("report", Label("按市场活动统计线索", "Leads by campaign"))
    assert report.dimensions == (ReportDimension("campaign", "campaign.name", None, Label("市场活动", "Campaign")),
                                 ReportDimension("month", "created_at", "month"))
    assert report.measures == (ReportMeasure("leads", "count"), ReportMeasure("budget", "sum", "campaign.budget"),
                               ReportMeasure("owners", "count_distinct", "owner.department.name"))
    assert plain(report.filters) == {"status__in": ["pending", "following"]}
    assert (report.engine, report.columns, report.runtime_filters, report.scene, report.sort, report.limit,
            report.totals, report.chart) == ("grouping", None, (), "all", ("-leads",), None, True,
                                             Chart("bar", ("leads",), "campaign"))
    assert plain(report.document)["sort"] == ["-leads"]  # the document as written, for exports


def test_flow_and_report_definitions_are_immutable(metadata):
    rule, report = metadata.flows["remind_stale_leads"], metadata.reports["leads_by_campaign"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.condition = None
    with pytest.raises(TypeError):
        rule.actions[0]["notify"]["field"] = "created_by"
    with pytest.raises(TypeError):
        report.filters["status__in"] = ["converted"]


def test_the_shipped_approval_flow_and_sales_process_are_typed():
    crm = shipped_crm()
    flow = crm.flows["sales_order_approval"]
    assert (flow.kind, flow.object, flow.trigger, flow.condition) == (
        "approval_flow", "sales_order", FlowTrigger("action", "submit"), None)
    assert [(s.name, s.label, plain(s.approvers), s.mode, s.condition and s.condition.text, s.remind_after_hours)
            for s in flow.steps] == [
        ("order_admin", Label("订单管理员审批", "Order administrator"), [{"role": "order_admin"}], "any", None, 24),
        ("finance", Label("财务确认", "Finance"), [{"role": "finance"}], "any", None, 24),
        ("warehouse", Label("仓库确认", "Warehouse"), [{"role": "warehouse"}], "any", None, 24)]
    assert {part: plain(effects) for part, effects in flow.effects.items()} == {
        "on_submit": [{"set": {"status": "submitted"}}], "on_withdraw": [{"set": {"status": "draft"}}],
        "on_approve": [{"set": {"status": "approved"}},
                       {"todo": {"role": "shipper", "action": "confirm_shipment",
                                 "title": {"zh": "确认发货 {order_no}", "en": "Confirm shipment {order_no}"}}}],
        "on_reject": [{"set": {"status": "rejected"}},
                      {"notify": {"submitter": True},
                       "message": {"zh": "订单 {order_no} 被驳回", "en": "Order {order_no} was rejected"}}]}
    process = crm.flows["east_branch"]
    assert (process.kind, process.object, process.departments, process.avg_cycle_days,
            process.close_reminder_days) == ("sales_process", "opportunity", ("华东区",), 60, 5)
    assert [(s.key, s.probability, [(t.key, t.required) for t in s.tasks], s.required_fields, s.approval)
            for s in process.stages] == [
        ("intent", Decimal("10"), [("first_call", True)], ("contact",), None),
        ("demo", Decimal("40"), [("product_demo", True), ("site_visit", False)], ("budget",), None),
        ("negotiation", Decimal("70"), [("send_quote", True)], ("expected_close_date",), None),
        ("closing", Decimal("90"), [("sign_contract", True)], (), None)]
    assert (process.first.key, process.after("demo").key, process.last.key, process.stage("demo").label) == (
        "intent", "negotiation", "closing", Label("产品演示", "Product demo"))
    assert plain(crm.flows["standard_sales"].stage("negotiation").approval) == {"manager_of": "owner"}


def test_one_label_helper_fills_a_missing_language_from_the_other():
    assert Label.of({"zh": "线索", "en": "Lead"}) == Label("线索", "Lead")
    assert Label.of({"zh": "线索"}) == Label("线索", "线索")
    assert Label.of({"en": "Lead"}) == Label("Lead", "Lead")
    assert Label.of(None) == Label("", "")
    assert Label.of({"zh": "线索"}).get("en") == "线索"


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
    assert default_layers(".", ["pharma", "fmcg"], "site", ["crm", "helpdesk"]) == [
        BASE_LAYER,
        Path("crm"),
        Path("helpdesk"),
        Path("industry_templates/pharma"),
        Path("industry_templates/fmcg"),
        Path("site"),
    ]


def test_the_engine_s_base_layer_alone_holds_the_platform_s_own_objects(tmp_path):
    metadata = load_metadata(default_layers(tmp_path, ()))
    assert (sorted(metadata.objects), metadata.layers) == (["department", "user"], (str(BASE_LAYER),))
    assert metadata.objects["user"].fields["department"].to == "department"
    assert metadata.objects["department"].fields["manager"].to == "user"


def test_an_app_redefining_a_platform_object_is_told_to_extend_it(monkeypatch, tmp_path):
    (tmp_path / "app" / "object_defs").mkdir(parents=True)
    (tmp_path / "app" / "object_defs" / "people.yaml").write_text(
        "kind: object\nname: user\nlabel: {zh: 用户, en: User}\nfields:\n"
        "  username: {type: text, label: {zh: 用户名, en: Username}}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MetadataError) as caught:
        load_metadata(default_layers(".", (), None, ["app"]))
    shipped = BASE_LAYER / "object_defs" / "user.yaml"
    assert [str(p) for p in caught.value.problems] == [
        f"app/object_defs/people.yaml:2:1: object 'user' is already defined at {shipped}:2:1; "
        "use kind: object_extension (at name)"]


def test_objects_are_listed_by_name_whichever_layer_defines_them(monkeypatch, tmp_path):
    (tmp_path / "app" / "object_defs").mkdir(parents=True)
    (tmp_path / "app" / "object_defs" / "objects.yaml").write_text("".join(
        f"---\nkind: object\nname: {name}\nlabel: {{zh: {name}, en: {name}}}\nfields:\n"
        f"  code: {{type: text, label: {{zh: 编号, en: Code}}}}\n" for name in ("zone", "account")), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert list(load_metadata(default_layers(".", (), None, ["app"])).objects) == ["account", "department", "user",
                                                                                 "zone"]


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
    assert names == sorted([*KINDS, "common", "industry_template"])  # the last: an edition's manifest
    for path in schemas.glob("*.json"):
        Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))


def test_a_parsed_file_is_kept_for_the_next_process_and_parsed_again_once_edited(monkeypatch, tmp_path):
    """A valid text's parse is kept in OBJECTPLATFORM_METADATA_CACHE under its text's hash; a process reading the same
    text takes it from there with the same positions (a problem's line and column); an edited text, an unreadable
    entry and a broken file are parsed from the text; `off` keeps nothing."""
    from objectplatform.metadata import _yaml

    cache = tmp_path / "cache"
    monkeypatch.setenv("OBJECTPLATFORM_METADATA_CACHE", str(cache))
    text = f"kind: object\nname: kept_{tmp_path.name}\nlabel: {{zh: 保留, en: Kept}}\nfields:\n  title: text\n"

    def load(content: str):  # as a new process would: this process's own kept parses skipped
        parsed, error = _yaml._parse.__wrapped__(content)
        doc = _yaml.Document("kept.yaml", 0, parsed[0][0], parsed[0][1], content.splitlines()) if parsed else None
        return doc, error

    first, _ = load(text)
    assert [entry.name for entry in cache.iterdir()] == [
        f"{hashlib.sha256((_yaml.CACHE_KEY + text).encode()).hexdigest()}.pickle"]
    entry = next(cache.iterdir())
    again, _ = load(text)
    assert again.data == first.data == {"kind": "object", "name": f"kept_{tmp_path.name}",
                                        "label": {"zh": "保留", "en": "Kept"}, "fields": {"title": "text"}}
    assert again.node is not first.node  # unpickled from the entry, not the same objects
    assert (again.problem(("fields", "title"), "x").line, again.problem(("fields", "title"), "x").col) == (5, 3)
    assert again.source(("label",)) == first.source(("label",)) == Source("kept.yaml", 3, 1)

    load(text.replace("title", "subject"))
    assert len(list(cache.iterdir())) == 2

    entry.write_bytes(b"not a pickle")
    assert load(text)[0].data == first.data
    assert entry.read_bytes() != b"not a pickle" and load(text)[0].data == first.data  # written again whole

    broken = "kind: object\nname: [unclosed\n"
    assert load(broken)[1].line == 3
    assert len(list(cache.iterdir())) == 2  # a broken file's problems are found again from its text

    monkeypatch.setenv("OBJECTPLATFORM_METADATA_CACHE", "off")
    load(text.replace("title", "heading"))
    assert len(list(cache.iterdir())) == 2
