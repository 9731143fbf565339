"""People read labels, never stored keys: an opportunity's sales process, stage and tasks and its status on the
record page (details, stage history, tasks, history tab), the list, the pages' CSV export, the to-do inbox and the
reports (table, CSV, chart, matrix headers), in Chinese and English, on SQLite and PostgreSQL. The API keeps the
keys (API.md: integrations depend on them)."""

from __future__ import annotations

import html
import re

import pytest
from test_pages import PASSWORD, login

from objectplatform.runtime.actions import run_action
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.reports import definition, run_report
from objectplatform.runtime.value_labels import value_labels
from objectplatform.runtime.workqueue import work_queue
from objectplatform.web import create_app

# objectplatform_crm/: flows/sales_processes.yaml, standard_sales; object_defs/picklists.yaml, opportunity_status
INTENT = {"zh": "确认客户意向", "en": "Confirm interest"}
STANDARD = {"zh": "标准销售流程", "en": "Standard sales process"}
FIRST_CALL = {"zh": "电话沟通需求", "en": "Call about the needs"}
OPEN = {"zh": "进行中", "en": "Open"}
LOST = {"zh": "输单", "en": "Lost"}
KEYS = ("standard_sales", "intent", "first_call", "send_brochure")


@pytest.fixture
def deal(platform) -> dict[str, str]:
    """销售部 (standard_sales) with 王经理 and his rep 李一, who owns 零售条线CRM项目 (in the first stage, its
    required task done) and 渠道项目 (lost from the first stage); their ids."""
    records = platform.records
    sales = records.create("department", {"name": "销售部"}, system=True)["id"]
    boss = records.create("user", {"username": "wang", "display_name": "王经理", "password": PASSWORD,
                                   "roles": ["sales_manager"], "department": sales}, system=True)["id"]
    rep = records.create("user", {"username": "li", "display_name": "李一", "password": PASSWORD,
                                  "roles": ["sales_rep"], "department": sales, "manager": boss}, system=True)["id"]
    account = records.create("account", {"name": "华信银行"}, user=rep)["id"]
    won = records.create("opportunity", {"name": "零售条线CRM项目", "account": account, "amount": "500000"}, user=rep)
    lost = records.create("opportunity", {"name": "渠道项目", "account": account, "amount": "200000"}, user=rep)
    access = access_for(platform, rep)
    run_action(platform, access, "opportunity", "complete_task", won["id"], {"task": "first_call"})
    run_action(platform, access, "opportunity", "lose", lost["id"], {"reason": "price", "comment": "预算砍了"})
    assert (won["sales_process"], won["stage"]) == ("standard_sales", "intent")
    return {"open": won["id"], "lost": lost["id"]}


def client_in(platform, username: str, lang: str):
    client = create_app(platform).test_client()
    assert login(client, username).status_code == 302
    if lang == "en":
        client.get("/lang/en")
    return client


def visible(page: str) -> str:
    """The page's text as people see it (no tags, no attribute values)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def cells(fragment: str) -> list[list[str]]:
    """The body rows of the tables in `fragment`, each as its cells' text."""
    body = "".join(re.findall(r"<tbody>(.*?)</tbody>", fragment, re.S))
    return [[" ".join(visible(c).split()) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def section(page: str, marker: str) -> str:
    """The <section> of the page that `marker` opens."""
    start = page.index(marker)
    return page[start:page.index("</section>", start)]


def csv_lines(response) -> list[str]:
    assert response.status_code == 200, response.data
    return response.data.decode("utf-8").removeprefix("\ufeff").split("\r\n")[:-1]


def test_one_helper_labels_processes_stages_tasks_and_options(platform):
    metadata = platform.metadata
    opportunity, history, tasks = (metadata.objects[n] for n in ("opportunity", "stage_history", "opportunity_task"))
    assert value_labels(metadata, opportunity, "sales_process")["standard_sales"].en == "Standard sales process"
    assert value_labels(metadata, opportunity, "stage")["intent"].zh == "确认客户意向"
    assert value_labels(metadata, opportunity, "pending_stage")["negotiation"].zh == "商务谈判"
    assert value_labels(metadata, opportunity, "status")["lost"].zh == "输单"
    assert value_labels(metadata, tasks, "task")["first_call"].en == "Call about the needs"
    assert value_labels(metadata, history, "left_to")["lost"].en == "Lost"  # a closing status
    assert value_labels(metadata, history, "left_to")["tender"].zh == "招投标"  # another process's stage
    assert value_labels(metadata, opportunity, "name") == {}
    assert value_labels(metadata, metadata.objects["lead"], "company") == {}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_record_page_shows_labels(platform, deal, lang):
    page = client_in(platform, "li", lang).get(f"/o/opportunity/{deal['open']}").get_data(as_text=True)
    progress = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", page))
    process, stage, status = {"zh": ("销售流程", "销售阶段", "商机状态"),
                              "en": ("Sales process", "Stage", "Status")}[lang]
    assert (progress[process], progress[stage], progress[status]) == (STANDARD[lang], INTENT[lang], OPEN[lang])
    tasks = cells(section(page, 'data-related="opportunity_task.opportunity"'))
    assert [row[:2] for row in tasks] == [[INTENT[lang], FIRST_CALL[lang]]]
    history = cells(section(page, '<section class="stages"'))  # the stage panel's history (no list of its own)
    assert [[row[0], row[3]] for row in history] == [[INTENT[lang], ""]]
    assert 'data-related="stage_history.' not in page
    text = visible(page)
    assert [key for key in KEYS if re.search(rf"\b{key}\b", text)] == []


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_history_tab_names_actions_and_values_by_label(platform, deal, lang):
    page = client_in(platform, "li", lang).get(f"/o/opportunity/{deal['lost']}?tab=history").get_data(as_text=True)
    rows = cells(section(page, '<section class="history">'))
    lose, status, stage = {"zh": ("输单", "商机状态", "销售阶段"), "en": ("Lose", "Status", "Stage")}[lang]
    assert [lose, status, OPEN[lang], LOST[lang]] in [row[2:] for row in rows]
    created = {"zh": "创建", "en": "Created"}[lang]
    assert [created, stage, "", INTENT[lang]] in [row[2:] for row in rows]
    done = client_in(platform, "li", lang).get(f"/o/opportunity/{deal['open']}?tab=history").get_data(as_text=True)
    assert {"zh": "完成任务", "en": "Complete a task"}[lang] in [row[2] for row in cells(done)]


def test_the_stage_history_list_labels_where_a_deal_went(platform, deal):
    page = client_in(platform, "li", "zh").get("/o/stage_history?sort=entered_at").get_data(as_text=True)
    assert sorted([row[0], row[3], row[5]] for row in cells(page)) == [
        ["确认客户意向", "", "标准销售流程"], ["确认客户意向", "输单", "标准销售流程"]]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_list_shows_labels_and_filters_by_them(platform, deal, lang):
    client = client_in(platform, "li", lang)
    page = client.get("/o/opportunity").get_data(as_text=True)
    shown = {row[1]: (row[4], row[7]) for row in cells(page)}  # name -> (stage, status)
    assert shown == {"零售条线CRM项目": (INTENT[lang], OPEN[lang]), "渠道项目": (INTENT[lang], LOST[lang])}
    stage = re.search(r'<select[^>]*name="stage"[^>]*>(.*?)</select>', page, re.S).group(1)
    assert re.search(rf'<option value="intent"\s*>{INTENT[lang]}</option>', stage)
    process = re.search(r'<select[^>]*name="sales_process"[^>]*>(.*?)</select>', page, re.S).group(1)
    assert re.search(rf'<option value="standard_sales"\s*>{STANDARD[lang]}</option>', process)
    chosen = client.get("/o/opportunity?stage=intent&status=lost").get_data(as_text=True)
    assert [row[1] for row in cells(chosen)] == ["渠道项目"]
    assert '<option value="intent" selected>' in chosen


def test_the_pages_csv_exports_labels_and_the_api_keeps_keys(platform, deal):
    fields = "fields=name,sales_process,stage,status,lost_reason&sort=-amount"
    zh = client_in(platform, "li", "zh")
    assert csv_lines(zh.get(f"/o/opportunity/export.csv?{fields}&labels=zh")) == [
        "编号,商机名称,销售流程,销售阶段,商机状态,输单原因",
        f"{deal['open']},零售条线CRM项目,标准销售流程,确认客户意向,进行中,",
        f"{deal['lost']},渠道项目,标准销售流程,确认客户意向,输单,价格"]
    assert csv_lines(zh.get(f"/o/opportunity/export.csv?{fields}&labels=en"))[1:] == [  # in the language asked for
        f"{deal['open']},零售条线CRM项目,Standard sales process,Confirm interest,Open,",
        f"{deal['lost']},渠道项目,Standard sales process,Confirm interest,Lost,Price"]
    tasks = csv_lines(zh.get("/o/opportunity_task/export.csv?fields=stage,task&labels=en"))
    assert [line.split(",", 1)[1] for line in tasks] == ["Stage,Task", "Confirm interest,Call about the needs"]
    history = csv_lines(zh.get("/o/stage_history/export.csv?fields=opportunity,stage,left_to,sales_process&labels=zh"))
    assert sorted(line.split(",", 1)[1] for line in history[1:]) == [
        "渠道项目,确认客户意向,输单,标准销售流程", "零售条线CRM项目,确认客户意向,,标准销售流程"]

    api = create_app(platform).test_client()
    token = api.post("/api/v1/auth/token", json={"username": "li", "password": PASSWORD}).get_json()["token"]
    response = api.get(f"/api/v1/objects/opportunity/records/export.csv?{fields}&labels=zh",
                       headers={"Authorization": f"Bearer {token}"})
    assert csv_lines(response)[1:] == [f"{deal['open']},零售条线CRM项目,standard_sales,intent,open,",
                                       f"{deal['lost']},渠道项目,standard_sales,intent,lost,price"]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_funnel_page_csv_and_chart_show_stage_labels(platform, deal, lang):
    result = run_report(platform, definition(platform.metadata, "sales_funnel"), access=None)
    assert [row["stage"] for row in result.rows] == ["intent", "initiation", "proposal", "negotiation", "closing"]
    client = client_in(platform, "wang", lang)
    page = client.get("/reports/sales_funnel").get_data(as_text=True)
    stages = {"zh": ["确认客户意向", "引导立项", "方案制作", "商务谈判", "赢单"],
              "en": ["Confirm interest", "Project initiation", "Proposal", "Negotiation", "Closing"]}[lang]
    table = cells(page)
    assert [row[:5] for row in table[:5]] == [
        [stages[0], "1", "500,000.00", "10.00", "50,000.00"], [stages[1], "0", "0.00", "40.00", "0.00"],
        [stages[2], "0", "0.00", "60.00", "0.00"], [stages[3], "0", "0.00", "80.00", "0.00"],
        [stages[4], "0", "0.00", "90.00", "0.00"]]
    assert f'"start">{stages[0]}</text>' in page  # the funnel chart's caption: the stage, its count below
    process = re.search(r'<select[^>]*name="sales_process"[^>]*>(.*?)</select>', page, re.S).group(1)
    assert f'<option value="standard_sales" selected>{STANDARD[lang]}</option>' in process  # the viewer's own
    lines = csv_lines(client.get("/reports/sales_funnel/export.csv"))
    assert [line.split(",")[:2] for line in lines[1:6]] == [[s, c] for s, c in zip(stages, "10000", strict=True)]


def test_a_report_grouped_by_stage_and_across_status_shows_labels(platform, deal):
    client = create_app(platform).test_client()
    token = client.post("/api/v1/auth/token", json={"username": "wang", "password": PASSWORD}).get_json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    made = client.post("/api/v1/reports", headers=auth, json={
        "name": "deals_by_stage", "label": {"zh": "各阶段商机", "en": "Deals by stage"}, "object": "opportunity",
        "dimensions": [{"key": "process", "field": "sales_process"}, {"key": "stage", "field": "stage"}],
        "columns": {"key": "status", "field": "status"},
        "measures": [{"key": "deals", "function": "count", "label": {"zh": "商机数", "en": "Deals"}}]})
    assert made.status_code == 201, made.get_json()
    run = client.post("/api/v1/reports/deals_by_stage/run", headers=auth, json={}).get_json()
    assert run["rows"] == [{"process": "standard_sales", "stage": "intent", "deals__open": 1, "deals__lost": 1,
                            "deals": 2}]  # keys, as the contract fixes them; the columns' labels are labels
    assert [c["label"]["zh"] for c in run["columns"]] == ["销售流程", "销售阶段", "进行中 · 商机数", "输单 · 商机数",
                                                         "合计 · 商机数"]
    response = client.get("/api/v1/reports/deals_by_stage/export.csv?labels=en", headers=auth)
    assert csv_lines(response) == ["Sales process,Stage,Open · Deals,Lost · Deals,Total · Deals",
                                   "Standard sales process,Confirm interest,1,1,2", "Total,,1,1,2"]
    pages = client_in(platform, "wang", "zh")
    assert cells(pages.get("/reports/deals_by_stage").get_data(as_text=True))[0] == [
        "标准销售流程", "确认客户意向", "1", "1", "2"]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_to_do_for_a_role_names_the_role_by_its_label(platform, deal, lang):
    with platform.engine.begin() as conn:
        work_queue(platform).add_todo(conn, role="sales_manager", kind="reminder", title="跟进渠道项目",
                                      object="opportunity", record_id=deal["lost"], key="labels-test")
    page = client_in(platform, "wang", lang).get("/todos").get_data(as_text=True)
    role = {"zh": "角色：销售经理", "en": "role: Sales manager"}[lang]
    assert f'<span class="tag">{role}</span>' in page and "sales_manager" not in visible(page)
