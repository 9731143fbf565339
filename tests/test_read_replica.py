"""OBJECTPLATFORM_READ_DATABASE_URL: reports, exports and dashboards read from a replica, everything else (and
every write) uses the primary. The replica is a second database of the same backend made from the same migrated
template and given the same writes (standing in for streaming replication); then one row is changed in it alone, so
a figure read from it is told apart from the primary's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from support import FixedClock

from objectplatform.runtime import Settings, dashboards, open_platform
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.reports.run import definition, run_report
from objectplatform.web import create_app

PASSWORD = "correct-horse-7"
T0 = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai


def make_site(platform) -> dict[str, str]:
    """A rep with three leads (two pending, one following) and a visit planned today, and an administrator."""
    records = platform.records
    ids = {name: records.create("user", {"username": name, "display_name": label, "password": PASSWORD,
                                         "roles": [role]}, system=True)["id"]
           for name, label, role in (("admin", "管理员", "admin"), ("rep", "王伟", "sales_rep"))}
    for name, mobile, status in (("甲", "13800138001", "pending"), ("乙", "13800138002", "pending"),
                                 ("丙", "13800138003", "following")):
        ids[name] = records.create("lead", {"name": name, "mobile": mobile, "status": status}, user=ids["rep"],
                                   system=True)["id"]
    shop = records.create("account", {"name": "星辰科技"}, user=ids["rep"])["id"]
    ids["visit"] = records.create("visit", {"subject": "季度回访", "account": shop,
                                            "planned_at": "2026-12-08T10:00:00+08:00"}, user=ids["rep"])["id"]
    return ids


@pytest.fixture
def replica_url(backend, metadata, templates, tmp_path):
    """A second database of the backend, migrated like the test's own."""
    folder = tmp_path / "replica"
    folder.mkdir()
    with templates.copy(backend, metadata, folder) as url:
        yield url


@pytest.fixture
def sites(migrated_database_url, replica_url, tmp_path, metadata):
    """(the primary's platform, reading reports, exports and dashboards from the replica; the replica's own
    platform, which replays the primary's writes), both holding the same records; then the replica's lead 乙 turns
    `following` and its visit's subject changes, in the replica only."""
    primary = open_platform(Settings.from_env({"OBJECTPLATFORM_READ_DATABASE_URL": replica_url},
                                              database_url=migrated_database_url, instance_path=tmp_path), metadata)
    replica = open_platform(Settings.from_env({}, database_url=replica_url, instance_path=tmp_path / "replica"),
                            metadata)
    try:
        for platform in (primary, replica):
            platform.clock = FixedClock(T0)
            ids = make_site(platform)
        lead, visit = replica.schema["lead"].table, replica.schema["visit"].table
        with replica.engine.begin() as conn:
            conn.execute(lead.update().where(lead.c.id == int(ids["乙"])).values(status="following"))
            conn.execute(visit.update().where(visit.c.id == int(ids["visit"])).values(subject="回访(副本)"))
            for summary in replica.schema.summaries.get("lead", ()):  # a replica replays the summary tables too
                summary.fill(conn, lead)
        yield primary, replica, ids
    finally:
        primary.close()
        replica.close()


def test_without_a_read_database_everything_reads_the_primary(platform):
    assert platform.settings.read_database_url is None and platform.read_engine is platform.engine


def test_reports_exports_and_dashboards_read_the_replica(sites):
    primary, _replica, ids = sites
    result = run_report(primary, definition(primary.metadata, "leads_by_status"), access=None)
    assert [(r["status"], r["leads"]) for r in result.rows] + [result.totals["leads"]] == [
        ("pending", 1), ("following", 2), 3]  # the primary holds 2 pending and 1 following

    client = create_app(primary).test_client()
    token = client.post("/api/v1/auth/token", json={"username": "admin", "password": PASSWORD}).get_json()["token"]
    export = client.get("/api/v1/objects/lead/records/export.csv?fields=name,status&sort=name",
                        headers={"Authorization": f"Bearer {token}"})
    assert export.get_data(as_text=True).splitlines()[1:] == [
        f"{ids['丙']},丙,following", f"{ids['乙']},乙,following", f"{ids['甲']},甲,pending"]

    rep = access_for(primary, ids["rep"])
    home = dashboards.home_of(primary.metadata, rep)
    kinds = {widget.type: widget for widget in home.widgets}
    chart = dashboards.run_widget(primary, home.widgets[-1], rep)
    assert (home.widgets[-1].report, [(r["status"], r["leads"]) for r in chart.rows]) == (
        "leads_by_status", [("pending", 1), ("following", 2)])
    today = dashboards.run_widget(primary, kinds["list"], rep)
    assert [v["subject"] for v in today.items] == ["回访(副本)"]

    # a record's own page, list and API read the primary
    assert primary.records.get("lead", ids["乙"])["status"] == "pending"
    assert [r["status"] for r in primary.records.list("lead", sort="name").items] == [
        "following", "pending", "pending"]


def test_writes_go_to_the_primary_only(sites):
    primary, replica, ids = sites
    created = primary.records.create("lead", {"name": "丁", "mobile": "13800138004"}, user=ids["rep"])
    primary.records.update("lead", ids["甲"], {"company": "星辰科技"}, version=1, user=ids["rep"])
    lead = primary.schema["lead"].table
    names = sa.select(lead.c.name, lead.c.company).order_by(lead.c.name)
    with primary.engine.connect() as conn:
        assert conn.execute(names).all() == [("丁", None), ("丙", None), ("乙", None), ("甲", "星辰科技")]
    with replica.engine.connect() as conn:
        assert conn.execute(names).all() == [("丙", None), ("乙", None), ("甲", None)]
    assert primary.records.get("lead", created["id"])["name"] == "丁"
