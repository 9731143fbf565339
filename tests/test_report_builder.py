"""Personal reports and the report builder on both databases: save, run, edit and delete through the API, each
user seeing only their own, definitions checked by the load checks (422 naming the bad part), the YAML export
loading as a shipped template, the builder page, and the lead pool's hidden fields masked inside reports.

The company is tests/report_company.py's (see tests/test_reports.py for what it holds): 李一 owns L1 and L2
(春季展会, both converted into 甲公司 and O1 of 100,000) and L6 (no campaign, pending).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from report_company import build_company, make_user
from support import CRM_LAYERS

from objectplatform.metadata import MetadataError, default_layers, load_metadata, plain
from objectplatform.runtime.config import ROOT
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.reports import definition, personal, run_report
from objectplatform.web import create_app

PASSWORD = "correct-horse-7"
MINE = {
    "name": "my_campaigns",
    "label": {"zh": "我的市场活动线索", "en": "My campaign leads"},
    "object": "lead",
    "dimensions": [{"key": "campaign", "field": "campaign.name"}],
    "measures": [{"key": "leads", "function": "count", "label": {"zh": "线索数", "en": "Leads"}},
                 {"key": "amount", "function": "sum", "field": "converted_opportunity.amount"}],
    "runtime_filters": [{"field": "created_at"}],
    "chart": {"type": "bar", "dimension": "campaign", "measures": ["leads"]},
}


@pytest.fixture
def company(seeded):
    return seeded(build_company, PASSWORD)


@pytest.fixture
def client(platform, company):
    return create_app(platform).test_client()


def bearer(client, username: str) -> dict:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


def names(client, headers) -> list[tuple[str, bool]]:
    return [(i["name"], i["personal"]) for i in client.get("/api/v1/reports", headers=headers).get_json()["items"]]


SHIPPED = [(name, False) for name in (
    "campaign_leads_to_opportunities", "campaign_leads_to_orders", "campaign_return", "customer_transactions",
    "employee_performance", "leads_by_owner_status", "leads_by_status", "my_target_this_month",
    "order_payment_status", "orders_by_month", "outstanding_by_account", "payments_by_month", "payments_by_quarter",
    "sales_funnel", "target_achievement_department", "target_achievement_department_quarter",
    "target_achievement_employee", "target_achievement_employee_quarter", "visit_coverage", "visit_coverage_region",
    "visit_effect", "visit_plan_completion", "visit_plan_completion_department", "visit_validity")]


# ------------------------------------------------------------------------------------------- the API


def test_save_run_edit_and_delete_a_personal_report(client):
    li = bearer(client, "李一")
    created = client.post("/api/v1/reports", headers=li, json=MINE)
    assert created.status_code == 201
    assert created.get_json()["definition"] == {"kind": "report", **MINE}
    assert created.get_json()["personal"] is True
    assert names(client, li) == [*SHIPPED, ("my_campaigns", True)]
    run = client.post("/api/v1/reports/my_campaigns/run", headers=li)
    assert run.status_code == 200
    assert run.get_json() == {
        "columns": [{"key": "campaign", "label": {"zh": "活动名称", "en": "Name"}, "type": "text"},
                    {"key": "leads", "label": {"zh": "线索数", "en": "Leads"}, "type": "integer"},
                    {"key": "amount", "label": {"zh": "商机金额", "en": "Amount"}, "type": "currency"}],
        # 李一's leads only: L1 and L2 of 春季展会 converted into O1 (counted once), L6 without a campaign
        "rows": [{"campaign": "春季展会", "leads": 2, "amount": 100000}, {"campaign": None, "leads": 1, "amount": 0}],
        "totals": {"leads": 3, "amount": 100000},
    }
    csv = client.get("/api/v1/reports/my_campaigns/export.csv?labels=zh", headers=li)
    assert csv.data.decode("utf-8") == (
        "\ufeff活动名称,线索数,商机金额\r\n春季展会,2,100000.00\r\n(空),1,0.00\r\n合计,3,100000.00\r\n")
    filtered = client.post("/api/v1/reports/my_campaigns/run", headers=li,
                           json={"filters": {"created_at": {"from": "2000-01-01", "to": "2000-12-31"}}})
    assert filtered.get_json()["totals"] == {"leads": 0, "amount": 0}

    changed = {**MINE, "label": {"zh": "按状态", "en": "By status"},
               "dimensions": [{"key": "status", "field": "status"}],
               "measures": [{"key": "leads", "function": "count"},
                            {"key": "accounts", "function": "count_distinct", "field": "converted_account"}],
               "chart": {"type": "pie", "measures": ["leads"]}}
    replaced = client.put("/api/v1/reports/my_campaigns", headers=li, json=changed)
    assert replaced.status_code == 200 and replaced.get_json()["label"] == {"zh": "按状态", "en": "By status"}
    assert client.get("/api/v1/reports/my_campaigns", headers=li).get_json()["definition"] == {"kind": "report",
                                                                                                **changed}
    run = client.post("/api/v1/reports/my_campaigns/run", headers=li).get_json()
    assert run["rows"] == [{"status": "pending", "leads": 1, "accounts": 0},
                           {"status": "converted", "leads": 2, "accounts": 1}]
    renamed = client.put("/api/v1/reports/my_campaigns", headers=li, json={**changed, "name": "by_status"})
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "by_status"
    assert names(client, li) == [*SHIPPED, ("by_status", True)]

    assert client.delete("/api/v1/reports/by_status", headers=li).status_code == 204
    assert names(client, li) == SHIPPED
    for response in (client.get("/api/v1/reports/by_status", headers=li),
                     client.post("/api/v1/reports/by_status/run", headers=li),
                     client.delete("/api/v1/reports/by_status", headers=li)):
        assert response.status_code == 404


def test_another_user_cannot_see_it(client):
    li, zhang = bearer(client, "李一"), bearer(client, "张二")
    assert client.post("/api/v1/reports", headers=li, json=MINE).status_code == 201
    assert names(client, zhang) == SHIPPED
    for response in (client.get("/api/v1/reports/my_campaigns", headers=zhang),
                     client.post("/api/v1/reports/my_campaigns/run", headers=zhang),
                     client.get("/api/v1/reports/my_campaigns/export.csv", headers=zhang),
                     client.get("/api/v1/reports/my_campaigns/export.yaml", headers=zhang),
                     client.put("/api/v1/reports/my_campaigns", headers=zhang, json=MINE),
                     client.delete("/api/v1/reports/my_campaigns", headers=zhang)):
        assert response.status_code == 404
        assert response.get_json() == {"error": {"code": "not_found", "message": "unknown report my_campaigns",
                                                 "reason": "report.unknown", "params": {"report": "my_campaigns"}}}
    # the name is free for 张二's own report, run within his own scope (L3 of 春季展会, L4 of 线上推广 into O2)
    assert client.post("/api/v1/reports", headers=zhang, json=MINE).status_code == 201
    rows = client.post("/api/v1/reports/my_campaigns/run", headers=zhang).get_json()["rows"]
    assert rows == [{"campaign": "春季展会", "leads": 1, "amount": 0},
                    {"campaign": "线上推广", "leads": 1, "amount": 50000}]
    # a shipped report is read by anyone who may, but changed only in report_templates/
    assert client.get("/api/v1/reports/leads_by_owner_status", headers=zhang).get_json()["definition"]["measures"] == [
        {"key": "leads", "function": "count", "label": {"zh": "线索数", "en": "Leads"}}]
    refused = client.delete("/api/v1/reports/leads_by_owner_status", headers=zhang)
    assert refused.status_code == 403 and refused.get_json()["error"]["message"] == (
        "leads_by_owner_status is a shipped report: it changes in report_templates/, not here")


def test_an_invalid_definition_is_a_422_naming_each_bad_part_and_saves_nothing(client):
    li = bearer(client, "李一")
    bad = {**MINE, "dimensions": [{"key": "campaign", "field": "campagn.name"}],
           "measures": [{"key": "leads", "function": "count"}, {"key": "names", "function": "sum", "field": "name"},
                        {"key": "where", "function": "count", "field": "location"}],
           "filters": {"created_at__gte": "yesterday"},
           "chart": {"type": "bar", "measures": ["leeds"]}}
    response = client.post("/api/v1/reports", headers=li, json=bad)
    assert response.status_code == 422
    assert response.get_json() == {"error": {
        "code": "validation_failed", "message": "4 problems in the report definition",
        "reason": "report.definition_problems", "params": {"count": 4},
        "fields": {"dimensions[0].field": ["unknown field 'campagn' of 'lead' (did you mean 'campaign'?)"],
                   "measures[1].function": ["cannot sum 'name': it is text"],
                   "measures[2].field": ["unknown field 'location' of 'lead'"],
                   "chart.measures[0]": ["unknown measure 'leeds' (did you mean 'leads'?)"]}}}
    # the storage checks come once the load checks pass
    stored = client.post("/api/v1/reports", headers=li, json={
        **MINE, "measures": [{"key": "leads", "function": "count"}, {"key": "n", "function": "count", "field": "pool"}],
        "filters": {"created_at__gte": "yesterday", "campaign__contains": "x"}})
    assert stored.status_code == 422
    assert stored.get_json()["error"]["fields"] == {
        "filters.created_at__gte": ["'yesterday' is not a date-time (ISO 8601)"],
        "filters.campaign__contains": ["operator 'contains' does not apply to a lookup field"]}
    missing = client.post("/api/v1/reports", headers=li, json={"name": "x", "object": "lead"})
    assert missing.get_json()["error"]["fields"] == {"label": ["'label' is a required property"],
                                                     "measures": ["'measures' is a required property"]}
    shipped = client.post("/api/v1/reports", headers=li, json={**MINE, "name": "sales_funnel"})
    assert shipped.get_json()["error"]["fields"] == {"name": ["a shipped report is named 'sales_funnel': choose "
                                                              "another name"]}
    assert client.post("/api/v1/reports", headers=li, json=MINE).status_code == 201
    twice = client.post("/api/v1/reports", headers=li, json=MINE)
    assert (twice.status_code, twice.get_json()["error"]["fields"]) == (
        422, {"name": ["you already have a report named 'my_campaigns'"]})
    assert client.post("/api/v1/reports", headers=li, json=[1]).status_code == 400
    assert names(client, li) == [*SHIPPED, ("my_campaigns", True)]  # only the valid one was saved


def test_the_yaml_export_loads_as_a_shipped_template(client, platform, company, tmp_path):
    li = bearer(client, "李一")
    client.post("/api/v1/reports", headers=li, json=MINE)
    refused = client.get("/api/v1/reports/my_campaigns/export.yaml", headers=li)
    assert (refused.status_code, refused.get_json()["error"]["message"]) == (
        403, "exporting a report as YAML is for administrators")
    make_user(platform, "管理员", ["admin"], password=PASSWORD)
    admin = bearer(client, "管理员")
    client.post("/api/v1/reports", headers=admin, json=MINE)
    response = client.get("/api/v1/reports/my_campaigns/export.yaml", headers=admin)
    assert response.status_code == 200 and response.mimetype == "application/yaml"
    assert response.headers["Content-Disposition"] == 'attachment; filename="my_campaigns.yaml"'
    text = response.data.decode("utf-8")
    day = datetime.now(UTC).astimezone().strftime("%Y")  # the note's date; its year is enough here
    assert text.startswith("# 我的市场活动线索 (My campaign leads): exported by 管理员 on " + day)
    assert text.split("\n", 1)[1] == (
        "kind: report\n"
        "name: my_campaigns\n"
        "label: {zh: 我的市场活动线索, en: My campaign leads}\n"
        "object: lead\n"
        "dimensions:\n"
        "  - {key: campaign, field: campaign.name}\n"
        "measures:\n"
        "  - {key: leads, function: count, label: {zh: 线索数, en: Leads}}\n"
        "  - {key: amount, function: sum, field: converted_opportunity.amount}\n"
        "runtime_filters:\n"
        "  - {field: created_at}\n"
        "chart: {type: bar, dimension: campaign, measures: [leads]}\n")
    site = tmp_path / "site"
    (site / "report_templates").mkdir(parents=True)
    (site / "report_templates" / "my_campaigns.yaml").write_text(text, encoding="utf-8")
    shipped = load_metadata(default_layers(ROOT, (), site, CRM_LAYERS))
    assert plain(shipped.reports["my_campaigns"].document) == {"kind": "report", **MINE}
    # the shipped copy gives the personal report's rows
    access = access_for(platform, company["li"])
    as_template = run_report(platform, definition(shipped, "my_campaigns"), access=access)
    mine = run_report(platform, personal.find(platform, access, "my_campaigns"), access=access)
    assert as_template.rows == mine.rows == [{"campaign": "春季展会", "leads": 2, "amount": Decimal("100000.00")},
                                             {"campaign": None, "leads": 1, "amount": Decimal("0")}]
    # and a broken copy fails to load as any template does, with file and line
    (site / "report_templates" / "my_campaigns.yaml").write_text(text.replace("function: sum", "function: total"),
                                                                 encoding="utf-8")
    with pytest.raises(MetadataError, match=r"my_campaigns.yaml:10:19: 'total' is not one of"):
        load_metadata(default_layers(ROOT, (), site, CRM_LAYERS))


# ----------------------------------------------------------------------------------------- the pages


def sign_in(client, username: str) -> str:
    client.get("/login")
    with client.session_transaction() as session:
        csrf = session["csrf_token"]
    client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf})
    with client.session_transaction() as session:
        return session["csrf_token"]  # the token of the signed-in session


BUILT = {"object": "lead", "name": "campaign_amounts", "label_zh": "活动金额", "label_en": "Campaign amounts",
         "d0_field": "campaign.name", "d0_bucket": "", "d0_key": "", "d1_field": "", "d1_bucket": "", "d1_key": "",
         "col_field": "", "col_bucket": "", "col_key": "",
         "m0_function": "count", "m0_field": "", "m0_key": "", "m0_label": "",
         "m1_function": "sum", "m1_field": "converted_opportunity.amount", "m1_key": "", "m1_label": "金额",
         "m2_function": "", "m2_field": "", "m2_key": "", "m2_label": "",
         "f0_field": "status", "f0_op": "in", "f0_value": ["pending", "converted"], "f1_field": "", "f1_op": "eq",
         "f1_value": "", "r0_field": "created_at", "r1_field": "",
         "description_zh": "各市场活动的线索与转化商机金额",
         "description_en": "Leads and converted amounts by campaign",
         "scene": "all", "s0_key": "count", "s0_dir": "desc", "s1_key": "", "s1_dir": "asc", "limit": "",
         "totals": "true",
         "chart_type": "bar", "chart_dimension": "", "chart_measures": ""}


def options(select: str) -> list[tuple[str, str, str]]:
    """A select's options as (value, " selected" or "", label)."""
    return re.findall(r'<option value="([^"]*)"( selected)?>(.*?)</option>', select)


def cells(page: str) -> list[list[str]]:
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(<td.*?)</tr>", page)]


def test_the_builder_runs_saves_edits_and_deletes(client, platform):
    csrf = sign_in(client, "李一")
    listing = client.get("/reports").get_data(as_text=True)
    assert '<a class="button primary" href="/reports/new">新建报表</a>' in listing
    assert "还没有保存的个人报表" in listing
    page = client.get("/reports/new?object=lead").get_data(as_text=True)
    assert '<option value="lead" selected>销售线索</option>' in page
    assert '<option value="campaign.name">市场活动 › 活动名称</option>' in page
    assert '<option value="follow_up(lead)">' not in page  # follow-ups point at records by object and id
    assert '<option value="sales_order(opportunity).total_amount">' not in page  # orders point at accounts
    ran = client.post("/reports/new", data={**BUILT, "csrf_token": csrf, "do": "run"}).get_data(as_text=True)
    assert cells(ran) == [["春季展会", "2", "100,000.00"], ["(空)", "1", "0.00"]]
    assert '<tr class="totals"><td>合计</td><td class="num">3</td><td class="num">100,000.00</td></tr>' in ran
    assert '<th scope="col" data-key="sum_converted_opportunity_amount" class="num">金额</th>' in ran
    assert '<figure class="report-chart"><svg' in ran
    # the form keeps what was built
    assert '<option value="converted_opportunity.amount" selected>转换的商机 › 商机金额</option>' in ran

    wrong = client.post("/reports/new", data={**BUILT, "csrf_token": csrf, "do": "run", "m1_field": "name"})
    page = wrong.get_data(as_text=True)
    row = re.search(r'<tr class="has-error">(.*?)</tr>', page, re.S).group(1)
    assert 'name="m1_function"' in row and "<li>cannot sum &#39;name&#39;: it is text</li>" in row
    assert "报表定义有 1 处问题" in page and "<table class=\"report\">" not in page
    assert "<li><strong>统计值 2</strong>: cannot sum &#39;name&#39;: it is text</li>" in page

    saved = client.post("/reports/new", data={**BUILT, "csrf_token": csrf, "do": "save"})
    assert saved.status_code == 302 and saved.location == "/reports/campaign_amounts"
    shown = client.get("/reports/campaign_amounts").get_data(as_text=True)
    assert cells(shown) == [["春季展会", "2", "100,000.00"], ["(空)", "1", "0.00"]]
    assert 'href="/reports/campaign_amounts/edit">编辑</a>' in shown
    listing = client.get("/reports").get_data(as_text=True)
    mine = re.search(r'<section class="report-folder" data-folder="mine".*?</section>', listing, re.S).group(0)
    assert '<span class="title">活动金额</span></a>' in mine
    assert '<p class="description">各市场活动的线索与转化商机金额</p>' in mine
    assert '<a class="edit" href="/reports/campaign_amounts/edit">编辑</a>' in mine

    edit = client.get("/reports/campaign_amounts/edit").get_data(as_text=True)
    assert '<option value="campaign.name" selected>市场活动 › 活动名称</option>' in edit
    assert '<option value="in" selected>等于其中之一（逗号分隔）</option>' in edit
    # the filter's values by label, several chosen for "one of", the codes posted
    value = re.search(r'<select name="f0_value"[^>]*>(.*?)</select>', edit, re.S)
    assert 'multiple' in value.group(0).split(">")[0]
    assert options(value.group(1)) == [("unassigned", "", "未分配"), ("pending", " selected", "待处理"),
                                       ("following", "", "跟进中"), ("converted", " selected", "已转换"),
                                       ("invalid", "", "无效"), ("voided", "", "作废")]
    # sort and chart settings by the columns' labels, keyed as the definition keys them
    columns = [("campaign_name", "", "市场活动 › 活动名称"), ("count", "", "计数"),
               ("sum_converted_opportunity_amount", "", "金额")]
    sort = re.search(r'<select id="b-sort-0" name="s0_key" data-columns="all">(.*?)</select>', edit, re.S).group(1)
    assert options(sort) == [("", "", "—"), *[(k, " selected" if k == "count" else "", v) for k, _, v in columns]]
    assert '<option value="desc" selected>降序</option>' in edit
    drawn = re.search(r'<select id="b-chart-dimension" [^>]*>(.*?)</select>', edit, re.S).group(1)
    assert options(drawn) == [("", "", "第一个维度"), columns[0]]
    measured = re.search(r'<select id="b-chart-measures" [^>]*multiple>(.*?)</select>', edit, re.S).group(1)
    assert options(measured) == [("count", " selected", "计数"), columns[2]]
    assert '<option value="created_at" selected>销售线索 › 创建时间</option>' in edit  # the run-time filter
    assert 'name="m1_key" value="sum_converted_opportunity_amount"' in edit
    client.post("/reports/campaign_amounts/edit", data={**BUILT, "csrf_token": csrf, "do": "save",
                                                        "f0_value": "pending"})
    assert cells(client.get("/reports/campaign_amounts").get_data(as_text=True)) == [["(空)", "1", "0.00"]]
    # exporting YAML (a report made a shipped template) is an administrator's: not offered to 李一, refused if asked
    assert 'value="yaml"' not in edit and "导出 YAML" not in shown
    refused = client.post("/reports/new", data={**BUILT, "csrf_token": csrf, "do": "yaml", "name": "draft"})
    assert refused.status_code == 403 and "只有管理员可以把报表导出为 YAML" in refused.get_data(as_text=True)
    make_user(platform, "管理员", ["admin"], password=PASSWORD)
    admin_csrf = sign_in(client, "管理员")
    assert 'value="yaml"' in client.get("/reports/new").get_data(as_text=True)
    yaml = client.post("/reports/new", data={**BUILT, "csrf_token": admin_csrf, "do": "yaml", "name": "draft"})
    assert yaml.mimetype == "application/yaml" and "name: draft\n" in yaml.get_data(as_text=True)
    assert "  status__in: pending,converted" not in yaml.get_data(as_text=True)
    assert "filters: {status__in: 'pending,converted'}\n" in yaml.get_data(as_text=True)

    csrf = sign_in(client, "李一")
    deleted = client.post("/reports/campaign_amounts/delete", data={"csrf_token": csrf})
    assert deleted.status_code == 302 and deleted.location == "/reports"
    assert client.get("/reports/campaign_amounts").status_code == 404
    sign_in(client, "张二")
    assert client.get("/reports/campaign_amounts/edit").status_code == 404


# ------------------------------------------------------------------------------------------- masking


@pytest.fixture
def waiting(platform, company):
    """A pool hiding the mobile and the address from its members 李一 and 张二 (王经理 its admin), and a lead
    waiting in it."""
    r = platform.records
    pool = r.create("lead_pool", {"name": "华东区线索池", "members": [company["li"], company["zhang"]],
                                  "admins": [company["boss"]], "hidden_fields": ["mobile", "address"]},
                    system=True)["id"]
    lead = r.create("lead", {"name": "L9", "mobile": "13912345678", "address": "秘密路1号", "pool": pool,
                             "campaign": None}, system=True)
    assert (lead["owner"], lead["pool"]) == (None, pool)
    return pool


BY_CONTACT = {"name": "by_contact", "label": {"zh": "按联系方式", "en": "By contact"}, "object": "lead",
              "dimensions": [{"key": "address", "field": "address"}, {"key": "mobile", "field": "mobile"}],
              "measures": [{"key": "leads", "function": "count"},
                           {"key": "addresses", "function": "count_distinct", "field": "address"}]}


def test_a_report_masks_a_pools_hidden_fields_as_the_list_does(platform, company, waiting):
    report = personal.unsaved(personal.check(platform, BY_CONTACT))

    def run(user, **kwargs):
        return run_report(platform, report, access=access_for(platform, company[user]), **kwargs)

    # 李一, a member: his own three leads (no address, mobiles 1380000000N) and the waiting one, masked
    member = run("li")
    assert [tuple(r.values()) for r in member.rows] == [
        (None, "13800000001", 1, 0), (None, "13800000002", 1, 0), (None, "13800000006", 1, 0),
        (None, "139****5678", 1, 0)]
    assert member.totals == {"leads": 4, "addresses": 0}
    # a filter cannot find the waiting lead by its hidden address
    assert run("li", filters={"address": "秘密路1号"}).totals == {"leads": 0, "addresses": 0}
    assert run("li", filters={"address__isnull": "false"}).totals == {"leads": 0, "addresses": 0}
    # 王经理 is the pool's admin: he sees it whole
    boss = run("boss", filters={"address": "秘密路1号"})
    assert [tuple(r.values()) for r in boss.rows] == [("秘密路1号", "13912345678", 1, 1)]
    # once claimed, its owner sees everything
    table = platform.schema["lead"].table
    with platform.engine.begin() as conn:  # as claiming leaves it
        conn.execute(table.update().where(table.c.name == "L9").values(owner=int(company["li"])))
    assert run("li", filters={"address": "秘密路1号"}).totals == {"leads": 1, "addresses": 1}



def test_a_report_a_metadata_change_broke_says_what_no_longer_resolves(client, platform):
    li = bearer(client, "李一")
    client.post("/api/v1/reports", headers=li, json=MINE)
    table = platform.schema.reports
    broken = {**MINE, "measures": [MINE["measures"][0], {"key": "amount", "function": "sum",
                                                         "field": "converted_opportunity.budget_amount"}]}
    with platform.engine.begin() as conn:  # as if a later layer had dropped the field it sums
        conn.execute(table.update().values(definition=json.dumps({"kind": "report", **broken})))
    run = client.post("/api/v1/reports/my_campaigns/run", headers=li)
    assert run.status_code == 422 and run.get_json()["error"]["fields"] == {
        "measures[1].field": ["unknown field 'budget_amount' of 'opportunity' (did you mean 'weighted_amount'?)"]}
    shown = client.get("/api/v1/reports/my_campaigns", headers=li)  # still readable, to be fixed
    assert shown.status_code == 200 and shown.get_json()["definition"]["measures"][1]["field"] == (
        "converted_opportunity.budget_amount")
    assert client.put("/api/v1/reports/my_campaigns", headers=li, json=MINE).status_code == 200
    assert client.post("/api/v1/reports/my_campaigns/run", headers=li).status_code == 200


def test_personal_reports_stored_as_json_in_their_table(platform, company):
    access = access_for(platform, company["li"])
    saved = personal.create(platform, access, MINE)
    table = platform.schema.reports
    with platform.engine.connect() as conn:
        row = conn.execute(table.select()).mappings().one()
    assert (str(row["owner"]), row["name"], json.loads(row["label"])) == (company["li"], "my_campaigns", MINE["label"])
    assert json.loads(row["definition"]) == {"kind": "report", **MINE}
    assert plain(saved.definition.document) == {"kind": "report", **MINE} and personal.is_personal(saved.definition)


# ------------------------------------------------------------------------------------------ the reports home


def folders(page: str) -> list[tuple[str, str, list[str]]]:
    """The reports page's folders: (key, label, the labels of its reports), in the page's order."""
    return [(key, label, re.findall(r'<span class="title">(.*?)</span>', body)) for key, label, body in re.findall(
        r'<section class="report-folder" data-folder="(\w+)".*?<h2 id="folder-\w+">(.*?) <span class="count">\d+'
        r'</span></h2>(.*?)</section>', page, re.S)]


def test_the_reports_home_lists_each_folder_in_order(client):
    sign_in(client, "李一")
    page = client.get("/reports").get_data(as_text=True)
    assert folders(page) == [
        ("leads", "线索", ["按员工统计线索转换情况", "按状态统计线索"]),
        ("opportunities", "商机", ["销售漏斗"]),
        ("visits", "拜访", ["拜访覆盖率", "区域拜访覆盖率", "拜访效果(30天内成交)", "拜访计划完成率(员工)",
                           "拜访计划完成率(部门)",
                           "有效拜访率"]),
        ("orders", "订单与回款", ["客户交易统计(本月)", "订单回款情况", "订单金额按月统计", "应收账款(按客户)",
                                  "回款统计(按月)", "回款统计(按季度)"]),
        ("performance", "业绩与目标", ["员工业绩统计", "本月目标完成情况", "销售目标完成情况(部门)",
                                       "销售目标完成情况(部门·季度)", "销售目标完成情况(员工)",
                                       "销售目标完成情况(员工·季度)"]),
        ("marketing", "营销", ["按市场活动统计线索转化过程(含商机)", "按市场活动统计线索转化过程(含订单)",
                               "市场活动投入产出比"]),
        ("mine", "我的报表", [])]
    assert "还没有保存的个人报表，点“新建报表”设计一个" in page
    # each report: its chart type as an icon (named in a tooltip), its label linking to it, its description
    assert ('<li data-search="按状态统计线索 leads by status 您可见的线索按状态统计：待处理、跟进中、已转换…… '
            'the leads you may see, counted by status.">\n      <a href="/reports/leads_by_status" '
            'data-report="leads_by_status"><span class="chart-kind" title="柱状图"><svg class="chart-icon"') in page
    assert '<p class="description">您可见的线索按状态统计：待处理、跟进中、已转换……</p>' in page
    assert re.search(r'data-report="sales_funnel"><span class="chart-kind" title="漏斗图">'
                     r'<svg [^>]*data-chart="funnel"', page)
    assert "data-filter-reports" in page and "<script" in page  # typing filters in place; the form asks the server

    client.get("/lang/en")
    page = client.get("/reports").get_data(as_text=True)
    assert [(key, label, len(names)) for key, label, names in folders(page)] == [
        ("leads", "Leads", 2), ("opportunities", "Opportunities", 1), ("visits", "Visits", 6),
        ("orders", "Orders and payments", 6), ("performance", "Performance and targets", 6),
        ("marketing", "Marketing", 3), ("mine", "My reports", 0)]
    assert folders(page)[2][2] == ["Visit coverage", "Visit coverage by region", "Visit effect (30 days)",
                                   "Visit plan completion by rep", "Visit plan completion by department",
                                   "Visit validity"]
    assert ('<p class="description">One sales process&#39;s open opportunities per stage: count, amount, probability '
            'and the weighted forecast; compare two periods.</p>') in page

    # the filter box without script: the server keeps the reports whose label or description holds the words
    found = client.get("/reports?q=回款").get_data(as_text=True)  # an English page finds Chinese words too
    assert folders(found) == [
        ("orders", "Orders and payments", ["Customer transactions this month", "Order payment status",
                                           "Payments by month", "Payments by quarter"]),
        ("performance", "Performance and targets", ["Employee performance", "This month&#39;s target",
                                                    "Target achievement by employee"]),
        ("marketing", "Marketing", ["Campaign leads to orders", "Campaign return"])]
    assert 'value="回款"' in found
    nothing = client.get("/reports?q=nothing-like-this").get_data(as_text=True)
    assert folders(nothing) == [] and "No report&#39;s name or description holds &#34;nothing-like-this&#34;" in nothing


def test_the_list_api_gives_each_report_its_folder_and_description(client):
    li = bearer(client, "李一")
    items = {i["name"]: i for i in client.get("/api/v1/reports", headers=li).get_json()["items"]}
    assert (items["visit_effect"]["folder"], items["visit_effect"]["description"]) == (
        "visits", {"zh": "签到后 30 天内同一客户成交的订单与赢单商机，每笔只计一次。",
                   "en": "Orders confirmed and opportunities won at the visited account within 30 days of a "
                         "check-in, each counted once."})
    assert all(item["folder"] and item["description"] for item in items.values())
    # a personal report may say a description; a folder it names must be declared (it is listed in My reports)
    created = client.post("/api/v1/reports", headers=li, json={**MINE, "description": {"zh": "我的", "en": "Mine"}})
    assert created.status_code == 201 and created.get_json()["description"] == {"zh": "我的", "en": "Mine"}
    wrong = client.post("/api/v1/reports", headers=li, json={**MINE, "name": "other", "folder": "lead"})
    assert wrong.status_code == 422 and wrong.get_json()["error"]["fields"] == {
        "folder": ["unknown report folder 'lead' (did you mean 'leads'?)"]}


def test_the_builder_offers_fields_by_label_and_operators_in_words(client):
    sign_in(client, "李一")
    page = client.get("/reports/new?object=lead").get_data(as_text=True)
    picker = re.search(r'<select name="d0_field".*?</select>', page, re.S).group(0)
    groups = re.findall(r'<optgroup label="(.*?)">', picker)
    assert groups[:3] == ["销售线索", "销售线索 › 市场活动", "销售线索 › 线索池"]
    assert '<option value="status">销售线索 › 线索状态</option>' in picker
    assert '<option value="owner.department">负责人 › 部门</option>' in picker
    assert '<option value="converted_opportunity.amount">转换的商机 › 商机金额</option>' in picker
    # every choice is said by its labels: no option shows a path
    assert re.findall(r'<option value="[^"]+">([^<]*[a-z_]+\.[a-z_]+[^<]*)</option>', page) == []
    assert 'list="report-paths"' not in page
    operators = re.search(r'<select name="f0_op".*?</select>', page, re.S).group(0)
    assert re.findall(r'<option value="(\w+)" ?[^>]*>(.*?)</option>', operators) == [
        ("eq", "等于"), ("ne", "不等于"), ("in", "等于其中之一（逗号分隔）"), ("gt", "大于"), ("gte", "大于等于"),
        ("lt", "小于"), ("lte", "小于等于"), ("contains", "包含"), ("empty", "为空"), ("not_empty", "不为空")]
    assert "__gte" not in page
    # a filter on a field with labelled values (a picklist, stage, state) or a reference offers them by label
    filter_picker = re.search(r'<select name="f0_field".*?</select>', page, re.S).group(0)
    assert '<option value="status" data-values="lead.status">销售线索 › 线索状态</option>' in filter_picker
    assert '<option value="owner" data-values="user">销售线索 › 负责人</option>' in filter_picker
    assert '<option value="converted_opportunity.stage" data-values="opportunity.stage">' in filter_picker
    assert "data-values" not in picker  # a dimension takes no value
    sets = dict(re.findall(r'<template data-value-set="([\w.]+)">(.*?)</template>', page))
    assert options(sets["lead.status"]) == [("unassigned", "", "未分配"), ("pending", "", "待处理"),
                                            ("following", "", "跟进中"), ("converted", "", "已转换"),
                                            ("invalid", "", "无效"), ("voided", "", "作废")]
    assert ("2", "", "李一") in options(sets["user"])  # the users the viewer may read, by name, stored by id
    assert [label for _, _, label in options(sets["user"])] == ["张二", "李一", "王经理", "赵三"]
    assert options(sets["opportunity.stage"])[:2] == [("intent", "", "确认客户意向"), ("initiation", "", "引导立项")]
    client.get("/lang/en")
    page = client.get("/reports/new?object=lead").get_data(as_text=True)
    assert '<option value="campaign.name">Campaign › Name</option>' in page
    sets = dict(re.findall(r'<template data-value-set="([\w.]+)">(.*?)</template>', page))
    assert options(sets["lead.status"])[:2] == [("unassigned", "", "Unassigned"), ("pending", "", "Pending")]
    assert re.search(r'<option value="gte" ?>at least</option>', page)


def test_the_preview_gives_the_numbers_of_the_saved_report(client):
    csrf = sign_in(client, "李一")
    built = {**BUILT, "csrf_token": csrf, "f1_field": "created_at", "f1_op": "empty", "f1_value": "",
             "f2_field": "converted_opportunity.amount", "f2_op": "gte", "f2_value": "0"}
    preview = client.post("/reports/new", data={**built, "do": "preview"})
    fragment = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "<html" not in fragment  # only what replaces the page's preview
    assert cells(fragment) == [["没有符合条件的数据"]]  # created_at is never empty
    built["f1_op"] = "not_empty"
    fragment = client.post("/reports/new", data={**built, "do": "preview"}).get_data(as_text=True)
    assert cells(fragment) == [["春季展会", "2", "100,000.00"]]
    assert '<tr class="totals"><td>合计</td><td class="num">2</td><td class="num">100,000.00</td></tr>' in fragment
    assert '<figure class="report-chart"><svg' in fragment

    assert client.post("/reports/new", data={**built, "do": "save"}).status_code == 302
    saved = client.get("/reports/campaign_amounts").get_data(as_text=True)
    assert cells(saved) == cells(fragment)
    run = client.post("/api/v1/reports/campaign_amounts/run", headers=bearer(client, "李一")).get_json()
    assert run["rows"] == [{"campaign_name": "春季展会", "count": 2, "sum_converted_opportunity_amount": 100000}]
    assert run["totals"] == {"count": 2, "sum_converted_opportunity_amount": 100000}
    shown = client.get("/api/v1/reports/campaign_amounts", headers=bearer(client, "李一"))
    definition_ = shown.get_json()["definition"]
    assert definition_["filters"] == {"status__in": "pending,converted", "created_at__isnull": False,
                                      "converted_opportunity.amount__gte": "0"}
    assert definition_["description"] == {"zh": "各市场活动的线索与转化商机金额",
                                          "en": "Leads and converted amounts by campaign"}

    # a problem is said in the preview by the part of the form it is in
    wrong = client.post("/reports/new", data={**built, "do": "preview", "d0_field": "campaign.nmae"})
    assert re.findall(r"<li><strong>(.*?)</strong>: (.*?)</li>", wrong.get_data(as_text=True)) == [
        ("分组（维度） 1", "unknown field &#39;nmae&#39; of &#39;campaign&#39; (did you mean &#39;name&#39;?)")]
