"""CSV exports of any object's list, on SQLite and PostgreSQL: through the API and from the list page,
with the list's filters, search and sort, within the caller's scope, streamed page by page."""

from __future__ import annotations

import html
import re
from datetime import datetime
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from test_api import PASSWORD, lead
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import metadata as metadata  # noqa: F401
from test_api import people as people  # noqa: F401
from test_pages import login


def export(api, path: str, as_: str):
    """The export response of `path` (under /api/v1/objects/) for one of the people."""
    response = api.client.get(f"/api/v1/objects/{path}", headers={"Authorization": f"Bearer {api.token(as_)}"})
    assert response.status_code == 200, response.data
    return response


def csv_bytes(*lines: str) -> bytes:
    return ("\ufeff" + "".join(f"{line}\r\n" for line in lines)).encode("utf-8")


def test_api_export_exact_bytes_filtered_and_sorted(api):
    alice = lead(api, "rep1", name="Alice", company='Acme, "Inc"', source="expo")["id"]
    zhang = lead(api, "rep1", name="张三", company="星辰科技", source="expo")["id"]
    lead(api, "rep1", name="Bob", company="Other", source="website")
    days = {datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d")}
    response = export(api, "lead/records/export.csv?fields=name,company,source&source=expo&sort=name", "rep1")
    days.add(datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d"))
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] in {f'attachment; filename="lead-{day}.csv"' for day in days}
    assert response.data == csv_bytes("id,name,company,source", f'{alice},Alice,"Acme, ""Inc""",expo',
                                      f"{zhang},张三,星辰科技,expo")
    descending = export(api, "lead/records/export.csv?fields=name&source=expo&sort=-name", "rep1")
    assert descending.data == csv_bytes("id,name", f"{zhang},张三", f"{alice},Alice")


def test_text_a_spreadsheet_would_run_is_made_inert(api):
    ids = [lead(api, "rep1", name=name, company=company, phone="+86 138 0000 0000")["id"]
           for name, company in (("A", "=HYPERLINK(\"http://x\")"), ("B", "@SUM(1)"), ("C", "-cmd|calc"), ("D", "-5"))]
    response = export(api, "lead/records/export.csv?fields=name,company,phone&sort=name", "rep1")
    assert response.data == csv_bytes(
        "id,name,company,phone",
        f"{ids[0]},A,\"'=HYPERLINK(\"\"http://x\"\")\",+86 138 0000 0000",
        f"{ids[1]},B,'@SUM(1),+86 138 0000 0000",
        f"{ids[2]},C,'-cmd|calc,+86 138 0000 0000",
        f"{ids[3]},D,-5,+86 138 0000 0000",
    )


def test_default_columns_are_the_list_views_with_api_values(api, people):
    status, spring = api.post("/objects/campaign/records", "admin", {
        "name": "春季展会", "type": "expo", "start_date": "2026-03-01", "budget": "1200.50", "cost": "980"})
    assert status == 201, spring
    lead(api, "admin", name="甲", campaign=spring["id"])
    response = export(api, "campaign/records/export.csv", "admin")
    assert response.data == csv_bytes(
        "id,name,type,status,start_date,end_date,budget,cost,lead_count,converted_lead_count,owner",
        f"{spring['id']},春季展会,expo,planned,2026-03-01,,1200.50,980.00,1,0,{people['admin']}")
    users = export(api, "user/records/export.csv?fields=username,roles,active&username=admin", "admin")
    assert users.data == csv_bytes("id,username,roles,active", f"{people['admin']},admin,admin,true")


def test_multi_values_are_joined_by_semicolons(api, platform, people):
    platform.records.update("user", people["boss"], {"roles": ["sales_manager", "sales_rep"]}, version=None,
                            system=True)
    response = export(api, "user/records/export.csv?fields=roles&username=boss", "admin")
    assert response.data == csv_bytes("id,roles", f"{people['boss']},sales_manager;sales_rep")


def test_rep_exports_only_their_own_leads(api):
    mine = [lead(api, "rep1", name=f"Mine {i}")["id"] for i in range(2)]
    lead(api, "rep2", name="Theirs")
    response = export(api, "lead/records/export.csv?fields=name&sort=name", "rep1")
    assert response.data == csv_bytes("id,name", f"{mine[0]},Mine 0", f"{mine[1]},Mine 1")
    assert export(api, "lead/records/export.csv?fields=name", "admin").data.count(b"\r\n") == 4


def test_export_walks_every_page(api, platform, people):
    result = platform.records.create_many(
        "lead", [{"name": f"Lead {i:04d}", "mobile": f"138{i:08d}", "owner": people["rep1"]} for i in range(1203)],
        user=people["rep1"])
    assert len(result.created) == 1203
    lines = export(api, "lead/records/export.csv?fields=name&sort=name", "rep1").data.decode("utf-8").split("\r\n")
    assert lines[-1] == "" and len(lines[:-1]) == 1204
    assert lines[0] == "\ufeffid,name"
    assert [line.split(",")[1] for line in lines[1:-1]] == [f"Lead {i:04d}" for i in range(1203)]
    assert len({line.split(",")[0] for line in lines[1:-1]}) == 1203


def test_labels_head_the_columns_in_one_language(api):
    lead(api, "rep1", name="甲")
    zh = export(api, "lead/records/export.csv?fields=name,source,owner&labels=zh", "rep1")
    assert zh.data.decode("utf-8").split("\r\n")[0] == "\ufeff编号,姓名,线索来源,负责人"
    en = export(api, "lead/records/export.csv?fields=name,source,owner&labels=en", "rep1")
    assert en.data.decode("utf-8").split("\r\n")[0] == "\ufeffID,Name,Source,Owner"


def test_bad_parameters_are_400_before_streaming(api):
    def bad(query: str, as_: str = "rep1"):
        return api.get(f"/objects/lead/records/export.csv?{query}", as_)

    assert bad("fields=name,nothing,nor_this") == (400, {"error": {
        "code": "bad_request", "message": "fields: unknown field(s): nothing, nor_this",
        "fields": {"fields": ["unknown field(s): nothing, nor_this"]}}})
    assert api.get("/objects/user/records/export.csv?fields=username,password", "admin")[1]["error"]["fields"] == {
        "fields": ["unknown field(s): password"]}
    assert bad("fields=,")[1]["error"]["fields"] == {"fields": ["name at least one field"]}
    assert bad("labels=fr") == (400, {"error": {"code": "bad_request", "message": "labels: must be one of zh, en",
                                                "fields": {"labels": ["must be one of zh, en"]}}})
    assert bad("sort=nothing")[0] == 400
    assert bad("nothing=1")[0] == 400
    assert bad("created_at__gte=yesterday")[0] == 400
    assert bad("limit=10")[0] == 400
    assert bad("q=a&q=b")[0] == 400


def test_forbidden_unknown_and_unauthenticated(api):
    assert api.get("/objects/lead/records/export.csv", "finance") == (403, {"error": {
        "code": "forbidden", "message": "your roles do not allow you to read leads"}})
    assert api.get("/objects/nothing/records/export.csv", "admin") == (404, {"error": {
        "code": "not_found", "message": "unknown object nothing"}})
    assert api.call("GET", "/objects/lead/records/export.csv")[0] == 401


def test_openapi_document_describes_the_export(api):
    status, doc = api.get("/openapi.json", "rep1")
    assert status == 200
    operation = doc["paths"]["/objects/lead/records/export.csv"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["filters", "q", "sort", "fields", "labels"]
    assert operation["responses"]["200"]["content"] == {"text/csv": {"schema": {"type": "string"}}}
    assert sorted(operation["responses"]) == ["200", "400", "401", "403", "414"]


# ------------------------------------------------------------------------------------ pages


def test_list_page_link_exports_what_the_page_shows(app, api, people):
    client = app.test_client()
    status, spring = api.post("/objects/campaign/records", "admin", {"name": "春季展会"})
    assert status == 201
    acme = lead(api, "rep1", name="Acme Bob", source="expo", campaign=spring["id"])["id"]
    lead(api, "rep1", name="Acme Alice", source="website")
    lead(api, "rep1", name="Zeta", source="expo")
    lead(api, "rep2", name="Acme Theirs", source="expo")
    login(client, "rep1", PASSWORD)

    page = client.get("/o/lead?q=acme&source=expo&sort=name").text
    href = html.unescape(re.search(r'<a class="export" href="([^"]+)" download>导出 CSV</a>', page).group(1))
    url = urlsplit(href)
    assert url.path == "/o/lead/export.csv"
    assert parse_qs(url.query) == {"q": ["acme"], "source": ["expo"], "sort": ["name"], "labels": ["zh"]}

    response = client.get(href)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    lines = response.data.decode("utf-8").split("\r\n")
    assert lines[0] == ("\ufeff编号,姓名,公司名称,手机,线索来源,市场活动,线索状态,线索池,意向程度,最后跟进时间,"
                        "负责人,创建时间")
    assert len(lines) == 3 and lines[2] == ""
    cells = lines[1].split(",")
    assert cells[:8] == [acme, "Acme Bob", "", "", "展会", "春季展会", "待处理", ""]  # what the page shows
    assert cells[10] == "王伟"

    english = client.get("/lang/en?next=/o/lead")
    assert english.status_code == 302
    page = client.get("/o/lead?status=pending").text
    href = html.unescape(re.search(r'<a class="export" href="([^"]+)" download>Export CSV</a>', page).group(1))
    assert parse_qs(urlsplit(href).query) == {"status": ["pending"], "labels": ["en"]}
    assert client.get(href).data.decode("utf-8").startswith("\ufeffID,Name,Company,")


def test_page_export_is_scoped_and_checked(app, api):
    client = app.test_client()
    lead(api, "rep2", name="Theirs")
    login(client, "rep1", PASSWORD)
    assert client.get("/o/lead/export.csv?fields=name").data == csv_bytes("id,name")
    assert client.get("/o/lead/export.csv?fields=nothing").status_code == 400
    assert client.get("/o/nothing/export.csv").status_code == 404
    login(client, "finance", PASSWORD)
    assert client.get("/o/lead/export.csv").status_code == 403
    assert app.test_client().get("/o/lead/export.csv").status_code == 302  # sign in first
