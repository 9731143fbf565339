"""Reports through the REST API on both databases: the list, a run as JSON, CSV bytes, the SVG chart and errors."""

from __future__ import annotations

import json
import re

import pytest
from report_company import build_company

from objectplatform.metadata import Chart, Label
from objectplatform.runtime.reports import charts
from objectplatform.runtime.reports.run import Column, ReportResult
from objectplatform.web import create_app

PASSWORD = "correct-horse-7"


@pytest.fixture
def client(platform, seeded):
    seeded(build_company, PASSWORD)
    return create_app(platform).test_client()


def bearer(client, username: str) -> dict:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


def test_the_list_names_the_shipped_reports(client):
    response = client.get("/api/v1/reports", headers=bearer(client, "李一"))
    assert response.status_code == 200
    items = {item["name"]: item for item in response.get_json()["items"]}
    assert sorted(items) == [
        "campaign_leads_to_opportunities", "campaign_leads_to_orders", "campaign_return", "customer_transactions",
        "employee_performance", "leads_by_owner_status", "leads_by_status", "my_target_this_month",
        "order_payment_status", "orders_by_month", "outstanding_by_account", "payments_by_month",
        "payments_by_quarter", "sales_funnel", "target_achievement_department",
        "target_achievement_department_quarter", "target_achievement_employee",
        "target_achievement_employee_quarter", "visit_coverage", "visit_coverage_region", "visit_effect",
        "visit_plan_completion", "visit_plan_completion_department", "visit_validity"]
    assert items["campaign_leads_to_orders"]["measures"] == ["leads", "accounts", "orders", "order_amount",
                                                             "paid_amount"]
    assert items["leads_by_owner_status"]["label"] == {"zh": "按员工统计线索转换情况",
                                                       "en": "Leads by owner and status"}


def test_run_as_json_within_the_callers_scope(client):
    response = client.post("/api/v1/reports/leads_by_owner_status/run", headers=bearer(client, "王经理"),
                           json={"filters": {"status__in": ["pending", "converted"]}})
    assert response.status_code == 200
    assert json.loads(response.data) == {
        "columns": [{"key": "owner", "label": {"zh": "负责人", "en": "Owner"}, "type": "text"},
                    {"key": "status", "label": {"zh": "线索状态", "en": "Status"}, "type": "picklist"},
                    {"key": "leads", "label": {"zh": "线索数", "en": "Leads"}, "type": "integer"}],
        "rows": [{"owner": "张二", "status": "pending", "leads": 1},
                 {"owner": "张二", "status": "converted", "leads": 1},
                 {"owner": "李一", "status": "pending", "leads": 1},
                 {"owner": "李一", "status": "converted", "leads": 2}],
        "totals": {"leads": 5},
    }
    orders = client.post("/api/v1/reports/campaign_leads_to_orders/run", headers=bearer(client, "王经理"))
    assert orders.get_json()["totals"] == {"leads": 5, "accounts": 2, "orders": 4, "order_amount": 6500,
                                           "paid_amount": 600}


def test_errors_have_the_api_shape(client):
    headers = bearer(client, "李一")
    unknown = client.post("/api/v1/reports/leads_by_owner_status/run", headers=headers,
                          json={"filters": {"colour": "red"}})
    assert unknown.status_code == 422
    assert unknown.get_json() == {"error": {"code": "validation_failed",
                                            "message": "colour: unknown field 'colour' of lead",
                                            "reason": "request.bad_parameters",
                                            "params": {"problems": "colour: unknown field 'colour' of lead"},
                                            "fields": {"colour": ["unknown field 'colour' of lead"]}}}
    missing = client.post("/api/v1/reports/no_such_report/run", headers=headers)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/reports").status_code == 401
    scene = client.post("/api/v1/reports/leads_by_owner_status/run", headers=headers, json={"scene": "everyone"})
    assert scene.status_code == 400 and scene.get_json()["error"]["fields"] == {"scene": ["unknown scene 'everyone'"]}


def test_csv_export_opens_in_excel_with_chinese_text(client):
    response = client.get("/api/v1/reports/campaign_leads_to_orders/export.csv?labels=zh",
                          headers=bearer(client, "王经理"))
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.data.decode("utf-8") == (
        "\ufeff市场活动,线索数,转换客户数,订单数,订单金额,已回款金额\r\n"
        "春季展会,3,1,3,6000.00,600.00\r\n"
        "线上推广,1,1,1,500.00,0.00\r\n"
        "(空),1,0,0,0.00,0.00\r\n"
        "合计,5,2,4,6500.00,600.00\r\n")
    english = client.get("/api/v1/reports/leads_by_owner_status/export.csv?labels=en&status=converted",
                         headers=bearer(client, "王经理"))
    assert english.data.decode("utf-8") == (
        "\ufeffOwner,Status,Leads\r\n张二,Converted,1\r\n李一,Converted,2\r\nTotal,,3\r\n")


def test_chart_is_svg_drawn_on_the_server(client):
    response = client.get("/api/v1/reports/leads_by_owner_status/chart.svg?lang=en", headers=bearer(client, "王经理"))
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    svg = response.data.decode()
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"') and "<script" not in svg
    assert "<title>Leads by owner and status</title>" in svg
    assert "<title>李一 · Converted: 2</title>" in svg
    # the value axis: from 0 in equal round steps up to the highest bar (3 leads of one owner and status)
    ticks = [float(t) for t in re.findall(r'<text x="64.0" y="[\d.]+" text-anchor="end">([\d.,]+)</text>', svg)]
    assert ticks == [0, 1, 2, 3], ticks


def _by_two(chart: Chart, *measures: tuple[str, str]) -> ReportResult:
    """Visits by owner and grade: two owners, three grades (张三 has no C), the given measures' values per row."""
    dims = [Column("owner", Label("负责人", "Owner"), "text"), Column("grade", Label("客户级别", "Grade"), "text")]
    cols = [Column(key, Label(key, key), "integer", measure=function) for key, function in measures]
    values = {("张三", "A"): 4, ("张三", "B"): 2, ("李四", "A"): 1, ("李四", "B"): 3, ("李四", "C"): 6}
    rows = [{"owner": o, "grade": g, **{key: v * (i + 1) for i, (key, _) in enumerate(measures)}}
            for (o, g), v in values.items()]
    return ReportResult("visits", Label("拜访", "Visits"), [*dims, *cols], rows, None, dims, cols, chart)


def test_a_two_dimension_chart_shows_each_category_once_and_the_other_dimension_as_series():
    svg = charts.draw(_by_two(Chart("bar", ("visits",), "owner"), ("visits", "count")))
    labels = re.findall(r'<text x="[\d.]+" y="[\d.]+" text-anchor="middle">(.*?)</text>', svg)
    assert labels == ["张三", "李四"]  # once each, not once per grade
    assert re.findall(r'<text x="[\d.]+" y="[\d.]+" text-anchor="start">(.*?)</text>', svg) == ["A", "B", "C"]
    assert re.findall(r"<rect [^>]*><title>([^<]*)</title></rect>", svg) == [
        "张三 · A: 4", "李四 · A: 1", "张三 · B: 2", "李四 · B: 3", "张三 · C: 0", "李四 · C: 6"]


def test_a_second_dimension_of_many_values_draws_the_seven_largest_and_the_others_added_up():
    """Orders by owner and customer, ten customers: eight series (one a colour), the seven largest customers in
    their order and 其他 holding the three smallest' sum per owner."""
    dims = [Column("owner", Label("负责人", "Owner"), "text"), Column("account", Label("客户", "Account"), "text")]
    cols = [Column("amount", Label("金额", "Amount"), "number", measure="sum")]
    rows = [{"owner": owner, "account": f"客户{n}", "amount": n * 10 + (1 if owner == "张三" else 2)}
            for n in range(1, 11) for owner in ("张三", "李四")]
    result = ReportResult("orders", Label("订单", "Orders"), [*dims, *cols], rows, None, dims, cols,
                          Chart("stacked_bar", ("amount",), "owner"))
    svg = charts.draw(result, "zh")
    assert re.findall(r'text-anchor="start">(.*?)</text>', svg) == [
        "客户4", "客户5", "客户6", "客户7", "客户8", "客户9", "客户10", "其他"]
    assert re.findall(r"<title>((?:张三|李四) · 其他: [\d,]+)</title>", svg) == ["张三 · 其他: 63", "李四 · 其他: 66"]


def test_the_pages_draw_a_chart_wide_and_compact_with_larger_words_and_clipped_legends():
    result = _by_two(Chart("bar", ("visits",), "grade"), ("visits", "count"))
    result.rows[0]["owner"] = "张三丰和他的七个徒弟"
    svg = charts.figure(result, "zh")
    assert re.findall(r'<svg [^>]*viewBox="0 0 (\d+) (\d+)"[^>]*class="([\w-]+)"[^>]*font-size="(\d+)"', svg) == [
        ("720", "380", "chart-wide", "12"), ("420", "340", "chart-compact", "16")]
    legends = re.findall(r'text-anchor="start">(.*?)</text>', svg)
    # the compact legend has 87 units for a name: 4 characters and …
    assert legends == ["张三丰和他的七个徒弟", "张三", "李四", "张三丰和…", "张三", "李四"]


def test_category_names_wider_than_their_column_are_all_slanted_and_cut_to_the_room_below_the_plot():
    def names(categories: list[str]) -> list[tuple[str, str]]:
        svg = charts.CHARTS["bar"](charts.WIDE, categories, [("订单金额", [1.0] * len(categories))], "zh")
        return re.findall(r'<text [^>]*text-anchor="(middle|end)"(?: transform="(rotate)[^"]*")?>([^<\d]+)</text>', svg)

    assert names(["甲公司", "乙公司"]) == [("middle", "", "甲公司"), ("middle", "", "乙公司")]
    # four columns of 122 units: the 14-character name does not fit, so all four slant; it is cut to the 118
    # units below the plot (8 characters and …), the 9-character one is whole
    assert names(["春季展会", "华东区电话营销外呼", "杭州制造业数字化沙龙系列活动", "官网推广"]) == [
        ("end", "rotate", "春季展会"), ("end", "rotate", "华东区电话营销外呼"), ("end", "rotate", "杭州制造业数字化…"),
        ("end", "rotate", "官网推广")]


def test_a_compact_funnel_writes_each_stage_whole_over_its_bar_and_a_wide_one_beside_it():
    stages = ["Confirm interest", "Project initiation", "Proposal", "Negotiation", "Closing"]
    deals = [("Deals", [9.0, 5.0, 8.0, 0.0, 0.0])]
    compact = charts.CHARTS["funnel"](charts.COMPACT, stages, deals, "en")
    # a phone: "stage · count" centred on the box's whole width, the bar (as wide as the count) under it
    assert re.findall(r'<text x="([\d.]+)" y="([\d.]+)" text-anchor="middle">(.*?)<tspan[^>]*>(.*?)</tspan></text>',
                      compact) == [("210.0", "32.0", "Confirm interest", " · 9"),
                                   ("210.0", "92.8", "Project initiation", " · 5"),
                                   ("210.0", "153.6", "Proposal", " · 8"), ("210.0", "214.4", "Negotiation", " · 0"),
                                   ("210.0", "275.2", "Closing", " · 0")]
    assert re.findall(r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)"', compact)[:3] == [
        ("8.0", "36.8", "404.0"), ("97.8", "97.6", "224.4"), ("30.4", "158.4", "359.1")]
    # an empty stage: a faint dashed bar 8% of the box wide (32.3 of 404 units), not a hairline
    assert re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)" height="[\d.]+" ([^>]*)><title>([^<]*)',
                      compact)[3:] == [
        ("193.8", "32.3", 'fill="#f1f5f9" stroke="#94a3b8" stroke-dasharray="4 3"', "Negotiation: 0"),
        ("193.8", "32.3", 'fill="#f1f5f9" stroke="#94a3b8" stroke-dasharray="4 3"', "Closing: 0")]
    wide = charts.CHARTS["funnel"](charts.WIDE, stages, deals, "en")
    assert re.findall(r'text-anchor="start"[^>]*>([^<]*)</text>', wide)[:4] == [
        "Confirm interest", "9", "Project initiation", "5"]
    assert re.findall(r'text-anchor="start"[^>]*>([^<]*)</text>', wide)[6:] == ["Negotiation", "0", "Closing", "0"]
    assert re.findall(r'width="([\d.]+)" height="[\d.]+" fill="#f1f5f9"', wide) == ["39.2", "39.2"]  # of 490
    # a stage far smaller than the largest is drawn as wide as an empty one, in its colour
    assert re.findall(r'width="([\d.]+)" height="[\d.]+" fill="([^"]+)"',
                      charts.CHARTS["funnel"](charts.WIDE, ["A", "B"], [("x", [1000.0, 1.0])], "en")) == [
        ("490.0", "#3b82f6"), ("39.2", "#f59e0b")]
    # a name longer than the box is cut with "…", keeping room for its count
    long = charts.CHARTS["funnel"](charts.COMPACT, ["杭州制造业数字化沙龙系列活动报名转化阶段一二三"],
                                   [("x", [1234.0])], "zh")
    assert re.findall(r'middle">(.*?)<tspan[^>]*>(.*?)</tspan>', long) == [
        ("杭州制造业数字化沙龙系列活动报名转化阶…", " · 1,234")]


def test_the_value_axis_leaves_room_for_its_longest_label():
    """A phone's chart (16 units a character) of figures up to 950,000: the axis, up to 1,000,000, moves right to
    97 units so that "1,000,000" (9 characters, 86.4 units) ends at 91 and starts inside the picture, not cut to
    "00,000" as at the frame's own 52."""
    svg = charts.CHARTS["bar"](charts.COMPACT, ["吴强", "周敏"], [("目标", [800000.0, 950000.0])], "zh")
    ticks = re.findall(r'<text x="([\d.]+)" y="[\d.]+" text-anchor="end">([\d,]+)</text>', svg)
    assert ticks[-1] == ("91.0", "1,000,000")
    assert float(ticks[-1][0]) - 9 * 16 * 0.6 > 0
    assert re.findall(r'<line x1="(\d+)"', svg)[0] == "97"
    assert re.findall(r'<rect x="([\d.]+)"', svg)[:2] == ["107.2", "208.7"]  # the bars in the narrower plot


def test_several_counts_by_two_dimensions_add_up_per_category():
    svg = charts.draw(_by_two(Chart("bar", ("visits", "accounts"), "owner"), ("visits", "count"),
                              ("accounts", "sum")))
    assert re.findall(r"<rect [^>]*><title>([^<]*)</title></rect>", svg) == [
        "张三 · visits: 6", "李四 · visits: 10", "张三 · accounts: 12", "李四 · accounts: 20"]


def test_a_heat_map_shades_each_cell_by_its_value():
    svg = charts.draw(_by_two(Chart("heatmap", ("visits",), "owner"), ("visits", "count")))
    cells = re.findall(r'<rect [^>]*fill="(#[0-9a-f]{6})"[^>]*><title>(.*?)</title></rect>', svg)
    assert [title for _, title in cells] == ["A · 张三: 4", "A · 李四: 1", "B · 张三: 2", "B · 李四: 3", "C · 李四: 6"]
    shades = dict((title, fill) for fill, title in cells)
    assert shades["C · 李四: 6"] == "#1d4ed8" and shades["A · 李四: 1"] == "#ccdaf8"  # the largest the darkest
    assert svg.count('fill="#f8fafc" stroke="#e2e8f0"/>') == 1  # 张三 has no C: a blank cell, not a 0
    assert re.findall(r'text-anchor="end">(.*?)</text>', svg) == ["A", "B", "C"]  # the rows: the grades


@pytest.mark.parametrize(("highest", "ticks"), [
    (19, [0, 5, 10, 15, 20]), (7, [0, 2, 4, 6, 8]), (9.09, [0, 2.5, 5, 7.5, 10]), (0.3, [0, 0.1, 0.2, 0.3]),
    (123456, [0, 50000, 100000, 150000]), (0, [0, 0.25, 0.5, 0.75, 1])])
def test_a_charts_value_axis_counts_in_round_steps(highest, ticks):
    step = charts.nice_step(highest)
    assert [round(step * i, 9) for i in range(len(ticks))] == ticks


@pytest.mark.parametrize(("highest", "ticks"), [
    (3, [0, 1, 2, 3]), (1, [0, 1]), (9, [0, 5, 10]), (19, [0, 5, 10, 15, 20])])
def test_a_count_charts_axis_counts_in_whole_steps(highest, ticks):
    step = charts.nice_step(highest, whole=True)
    assert [round(step * i, 9) for i in range(len(ticks))] == ticks


# ------------------------------------------------------------------------------------ the pages


def sign_in(client, username: str) -> None:
    client.get("/login")
    with client.session_transaction() as session:
        csrf = session["csrf_token"]
    client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf})


def test_report_page_shows_filters_table_totals_chart_and_export(client):
    sign_in(client, "王经理")
    listing = client.get("/reports").get_data(as_text=True)
    assert ('data-report="campaign_leads_to_orders"><span class="chart-kind" title="柱状图"><svg class="chart-icon"'
            in listing)
    assert '<span class="title">按市场活动统计线索转化过程(含订单)</span></a>' in listing
    assert '<li class="page page-reports"><a href="/reports" aria-current="page">报表</a></li>' in listing
    page = client.get("/reports/campaign_leads_to_orders?created_at=this_year").get_data(as_text=True)
    assert '<option value="this_year" selected>今年</option>' in page
    assert "<td>春季展会</td><td class=\"num\">3</td><td class=\"num\">1</td><td class=\"num\">3</td>" \
           "<td class=\"num\">6,000.00</td><td class=\"num\">600.00</td>" in page
    assert '<tr class="totals"><td>合计</td><td class="num">5</td><td class="num">2</td><td class="num">4</td>' \
           '<td class="num">6,500.00</td><td class="num">600.00</td></tr>' in page
    assert '<figure class="report-chart"><svg xmlns="http://www.w3.org/2000/svg"' in page
    assert 'href="/reports/campaign_leads_to_orders/export.csv?created_at=this_year"' in page
    csv = client.get("/reports/campaign_leads_to_orders/export.csv?created_at=this_year")
    assert csv.data.decode("utf-8").splitlines()[-1] == "合计,5,2,4,6500.00,600.00"
    bad = client.get("/reports/leads_by_owner_status?created_at__from=2026-13-01").get_data(as_text=True)
    assert "“2026-13-01”不是日期（YYYY-MM-DD）" in bad  # said in the page's language


def test_funnel_page_offers_the_processes_and_shows_stage_labels(client):
    sign_in(client, "王经理")
    page = client.get("/reports/sales_funnel?period=this_year").get_data(as_text=True)
    assert '<option value="standard_sales" >标准销售流程</option>' in page
    assert '<label for="filter-period">统计周期</label>' in page
    # O1 and O2 of the company entered the first stage of the standard process when they were created
    assert '<td>确认客户意向</td><td class="num">2</td><td class="num">150,000.00</td><td class="num">10.00</td>' \
           '<td class="num">15,000.00</td><td class="num">2</td>' in page
