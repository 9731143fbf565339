"""Record teams (相关团队) on both databases: an opportunity's sales team (`team: edit`) and a visit's co-visitors
(`team: read`) let their users read (and, for the sales team, edit) the record through the API, a list search, a
report and the CSV export; the `_op_team` side table follows creates, imports, changes and deletes, is read
through its index, and is filled by `migrate` for a field that becomes a team."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from support import CRM_LAYERS, crm_metadata, migrated_platform
from test_api import PASSWORD, SITE_LAYER, Api
from test_api import app as app  # noqa: F401  (fixtures)
from test_api import people as people  # noqa: F401
from test_pages import login

from objectplatform.metadata import MetadataError, default_layers, load_metadata
from objectplatform.runtime.config import ROOT
from objectplatform.runtime.permissions import access_for

OPPORTUNITY_REPORT = """\
kind: report
name: opportunities_by_owner
label: {zh: 按负责人统计商机, en: Opportunities by owner}
object: opportunity
dimensions: [{key: owner, field: owner, label: {zh: 负责人, en: Owner}}]
measures:
  - {key: opportunities, function: count}
  - {key: amount, function: sum, field: amount}
"""


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    return crm_metadata(tmp_path_factory.mktemp("site"), {
        "flows/standard.yaml": SITE_LAYER, "report_templates/opportunities_by_owner.yaml": OPPORTUNITY_REPORT})


@pytest.fixture
def api(app, people) -> Api:  # noqa: F811
    return Api(app.test_client())


@pytest.fixture
def deal(api) -> dict:
    """rep1's opportunity 华东区域CRM项目 (100,000) for their account 星辰科技, no team yet."""
    status, account = api.post("/objects/account/records", "rep1", {"name": "星辰科技"})
    assert status == 201, account
    status, body = api.post("/objects/opportunity/records", "rep1", {
        "name": "华东区域CRM项目", "account": account["id"], "amount": 100000})
    assert status == 201, body
    return body


def members(platform, obj: str, record_id: str) -> list[tuple[str, str]]:
    team = platform.schema.teams
    rows = sa.select(team.c.field, team.c.user_id).where(team.c.object == obj, team.c.record_id == int(record_id))
    with platform.engine.connect() as conn:
        return [(field, str(user)) for field, user in conn.execute(rows.order_by(team.c.field, team.c.user_id))]


def csv_export(api: Api, query: str, as_: str) -> str:
    response = api.client.get(f"/api/v1/objects/opportunity/records/export.csv?{query}",
                              headers={"Authorization": f"Bearer {api.token(as_)}"})
    assert response.status_code == 200, response.data
    return response.data.decode("utf-8")


def test_a_sales_team_member_reads_and_edits_the_opportunity_until_removed(api, platform, people, deal):
    path, rep2 = f"/objects/opportunity/records/{deal['id']}", people["rep2"]
    assert api.get(path, "rep2")[0] == 404
    assert api.get("/objects/opportunity/records", "rep2")[1]["total"] == 0

    status, body = api.patch(path, "rep1", {"team": [rep2], "version": 1})
    assert (status, body["team"], body["version"]) == (200, [rep2], 2)
    assert members(platform, "opportunity", deal["id"]) == [("team", rep2)]

    status, body = api.get(path, "rep2")
    assert (status, body["name"], body["owner"]) == (200, "华东区域CRM项目", people["rep1"])
    status, page = api.get("/objects/opportunity/records?q=CRM", "rep2")
    assert (status, [r["id"] for r in page["items"]], page["total"]) == (200, [deal["id"]], 1)
    status, report = api.post("/reports/opportunities_by_owner/run", "rep2", {})
    assert (status, report["rows"]) == (200, [{"owner": "王伟", "opportunities": 1, "amount": 100000}])
    assert csv_export(api, "fields=name,amount", "rep2") == (
        f"\ufeffid,name,amount\r\n{deal['id']},华东区域CRM项目,100000.00\r\n")
    status, body = api.patch(path, "rep2", {"next_step": "约技术交流", "version": 2})  # the team may edit
    assert (status, body["next_step"], body["updated_by"]) == (200, "约技术交流", rep2)

    status, body = api.patch(path, "rep1", {"team": [], "version": 3})
    assert (status, body["team"]) == (200, [])
    assert members(platform, "opportunity", deal["id"]) == []
    assert api.get(path, "rep2")[0] == 404
    assert api.post("/reports/opportunities_by_owner/run", "rep2", {})[1]["rows"] == []
    assert csv_export(api, "fields=name,amount", "rep2") == "\ufeffid,name,amount\r\n"

    status, history = api.get(f"{path}/history", "rep1")
    assert [(e["field"], e["old"], e["new"], e["added"], e["removed"]) for e in history["items"]
            if e["field"] == "team"] == [("team", None, [rep2], [rep2], []), ("team", [rep2], [], [], [rep2])]
    assert [e["user"] for e in history["items"] if e["field"] == "team"] == [people["rep1"]] * 2


def test_a_co_visitor_reads_the_visit_but_may_not_change_it(api, app, platform, people):
    status, account = api.post("/objects/account/records", "rep1", {"name": "优选零售"})
    status, visit = api.post("/objects/visit/records", "rep1", {
        "subject": "季度回访", "account": account["id"], "planned_at": "2026-03-02T09:00:00+08:00",
        "co_visitors": [people["rep2"]]})
    assert status == 201, visit
    assert members(platform, "visit", visit["id"]) == [("co_visitors", people["rep2"])]
    path = f"/objects/visit/records/{visit['id']}"
    status, body = api.get(path, "rep2")
    assert (status, body["subject"], body["co_visitors"]) == (200, "季度回访", [people["rep2"]])
    assert [r["id"] for r in api.get("/objects/visit/records", "rep2")[1]["items"]] == [visit["id"]]
    message = f"Visit {visit['id']} is read-only to you: its team lets you read it, not edit it"
    assert api.patch(path, "rep2", {"summary": "顺利", "version": 1}) == (
        403, {"error": {"code": "forbidden", "message": message}})
    assert api.get(path, "finance")[0] == 403  # a team opens a record, not an object the role may not read
    client = app.test_client()  # the record page offers neither edit nor delete to a co-visitor
    login(client, "rep2", PASSWORD)
    page = client.get(f"/o/visit/{visit['id']}").get_data(as_text=True)
    assert "季度回访" in page and f"/o/visit/{visit['id']}/edit" not in page
    client = app.test_client()
    login(client, "rep1", PASSWORD)
    assert f"/o/visit/{visit['id']}/edit" in client.get(f"/o/visit/{visit['id']}").get_data(as_text=True)
    other = api.post("/objects/visit/records", "rep1", {
        "subject": "首次拜访", "account": account["id"], "planned_at": "2026-03-03T09:00:00+08:00"})[1]
    assert api.patch(f"/objects/visit/records/{other['id']}", "rep2", {"summary": "x", "version": 1})[0] == 404


def test_the_team_table_follows_imports_and_deletes(platform, people):
    records = platform.records
    account = records.create("account", {"name": "星辰科技"}, user=people["rep1"])["id"]
    rows = [{"name": f"项目{n}", "account": account, "amount": 1000, "team": team}
            for n, team in enumerate([[people["rep2"]], [], [people["rep2"], people["boss"]]])]
    created = records.create_many("opportunity", rows, user=people["rep1"]).created
    assert [members(platform, "opportunity", i) for i in created] == [
        [("team", people["rep2"])], [], [("team", people["boss"]), ("team", people["rep2"])]]
    rep2 = access_for(platform, people["rep2"])
    table = platform.schema["opportunity"].table
    assert [r["id"] for r in records.list("opportunity", where=rep2.scope("opportunity", table), sort="name").items] \
        == [created[0], created[2]]
    records.delete("opportunity", created[2], user=people["rep1"])
    assert members(platform, "opportunity", created[2]) == []
    assert [r["id"] for r in records.list("opportunity", where=rep2.scope("opportunity", table)).items] == [created[0]]


def test_the_scope_finds_a_members_records_through_the_side_tables_index(platform, people, backend):
    table = platform.schema["opportunity"].table
    condition = access_for(platform, people["rep2"]).scope("opportunity", table)
    sql = str(sa.select(table.c.id).where(condition).compile(platform.engine, compile_kwargs={"literal_binds": True}))
    assert "_op_team" in sql and "LIKE" not in sql.upper()
    if backend == "sqlite":
        with platform.engine.connect() as conn:
            plan = " ".join(row[-1] for row in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}")))
        assert "USING COVERING INDEX ix__op_team__member (user_id=? AND object=? AND field=?)" in plan


SQUAD = """\
kind: object
name: squad
label: {{zh: 小组, en: Squad}}
title_field: name
fields:
  name: {{type: text, label: {{zh: 名称, en: Name}}}}
  members: {{type: multi_user, label: {{zh: 成员, en: Members}}{team}}}
"""


def test_migrate_fills_the_team_of_a_field_that_becomes_one(database_url, tmp_path):
    def layer(name: str, team: str) -> object:
        site = tmp_path / name
        (site / "object_defs").mkdir(parents=True)
        (site / "object_defs" / "squad.yaml").write_text(SQUAD.format(team=team), encoding="utf-8")
        return load_metadata(default_layers(ROOT, (), site, CRM_LAYERS))

    url = database_url
    with migrated_platform(url, tmp_path / "one", layer("before", "")) as platform:
        records = platform.records
        users = [records.create("user", {"username": u, "display_name": u}, system=True)["id"] for u in "abc"]
        squads = [records.create("squad", {"name": n, "members": m})["id"]
                  for n, m in (("红队", users[:2]), ("蓝队", [users[2]]), ("空队", []))]
    with migrated_platform(url, tmp_path / "two", layer("after", ", team: read")) as platform:
        with platform.engine.connect() as conn:
            plans = conn.execute(sa.text("SELECT plan FROM _op_migration ORDER BY id")).scalars().all()
        assert "~ fill the team members of squad.members from 3 rows" in plans[-1].splitlines()
        assert [members(platform, "squad", s) for s in squads] == [
            [("members", users[0]), ("members", users[1])], [("members", users[2])], []]


@pytest.mark.parametrize(("field", "message"), [
    ("{type: text, team: read, label: {en: Helpers}}",
     "option 'team' does not apply to type 'text' (at fields.helpers.team)"),
    ("{type: multi_user, team: write, label: {en: Helpers}}",
     "'write' is not one of ['read', 'edit'] (at fields.helpers.team)"),
])
def test_check_refuses_a_team_on_another_type_or_of_another_level(tmp_path, field, message):
    squad = f"kind: object\nname: squad\nlabel: {{en: Squad}}\nfields:\n  helpers: {field}\n"
    with pytest.raises(MetadataError) as caught:
        crm_metadata(tmp_path, {"object_defs/squad.yaml": squad})
    assert str(caught.value).endswith(message)
