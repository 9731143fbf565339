"""The FMCG edition (快消版, industry_templates/fmcg/) on the template test kit, SQLite and PostgreSQL: enabled with one
command on a fresh database and on one holding data, a store visit's actions (巡店拍照, 产品盘点, 陈列检查, 活动上报)
filled as a rep and required at check-out, the stock alert, visits by store grade, the order suggestion, its reports'
figures worked out by hand, its demo company, and an engine that names it nowhere."""

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from test_cli import db as db  # noqa: F401  (fixtures)
from test_cli import env as env  # noqa: F401
from test_cli import migrated as migrated  # noqa: F401
from test_cli import open_test_platform, run

from objectplatform.runtime import Settings, open_platform, rules
from objectplatform.runtime.behaviors import frequency
from objectplatform.runtime.errors import ValidationFailed
from objectplatform.runtime.workqueue import work_queue
from objectplatform.testing import edition_backend, edition_site  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
HERE = {"lat": 39.9112, "lng": 116.3742}
PHOTO = {"filename": "货架.png", "content_base64": "iVBORw0KGgo=", "content_type": "image/png"}
ALERT = "stock_below_safety_alert"


# --- enabling it ------------------------------------------------------------------------------------------------


def test_it_enables_with_one_command_on_a_fresh_database(db, capsys):  # noqa: F811
    code, out, err = run(capsys, "templates", "enable", "fmcg")
    assert (code, err) == (0, "")
    assert "+ table distributor" in out and "+ table stock_count_line" in out
    assert out.endswith("applied; enabled fmcg 1.0.0 (快消版 · FMCG edition) in the database\n"
                        "restart the web and worker processes of the site: they read the enabled templates when they "
                        "start\n")
    assert run(capsys, "check")[1].startswith("ok: 34 objects, 27 picklists, 9 roles, 13 flows, 29 reports (layers: "
                                              "base, app crm, template fmcg)")


def test_it_enables_with_one_command_on_a_database_holding_data(migrated, capsys):  # noqa: F811
    platform = open_test_platform()
    store = platform.records.create("account", {"name": "物美超市（西单店）", "grade": "a"})
    water = platform.records.create("product", {"name": "矿泉水 550ml", "code": "W550", "price": "2"})
    platform.close()
    code, out, err = run(capsys, "templates", "enable", "fmcg")
    assert (code, err) == (0, "")
    assert "+ column account.store_grade VARCHAR(100)" in out and "+ column product.barcode VARCHAR(13)" in out
    assert "applied; enabled fmcg 1.0.0 (快消版 · FMCG edition) in the database" in out
    platform = open_platform(Settings.from_env())  # the database's enabled editions loaded, as a server would
    try:
        kept = platform.records.get("account", store["id"])
        assert (kept["name"], kept["grade"], kept["store_grade"]) == ("物美超市（西单店）", "a", None)
        platform.records.update("account", store["id"], {"store_grade": "a", "store_channel": "modern_trade",
                                                          "shelf_count": 12}, version=kept["version"])
        platform.records.update("product", water["id"], {"sku": "QQ-W550", "barcode": "6901234500011",
                                                         "case_size": 24}, version=1)
        assert platform.records.get("account", store["id"])["store_channel"] == "modern_trade"
        assert platform.records.get("product", water["id"])["case_size"] == 24
    finally:
        platform.close()


# --- a store visit's actions ------------------------------------------------------------------------------------


@pytest.fixture
def shop(edition_site):  # noqa: F811
    """A site with the edition: 销售部 > 华北大区 with its manager and a rep, three SKUs, three stores (one per
    channel) and two of the rep's visits checked in this morning (the site's clock), at 物美 and at 7-Eleven."""
    site = edition_site(["fmcg"])
    records = site.platform.records
    sales = records.create("department", {"name": "销售部"})["id"]
    north = records.create("department", {"name": "华北大区", "parent": sales})["id"]
    boss = site.user("boss", "sales_manager", department=north)
    site.user("rep", "sales_rep", department=north, manager=boss)
    rep = site.access("rep").user_id
    sku = {}
    for key, name, case, safety, target in (("water", "矿泉水 550ml", 24, 48, 96), ("tea", "柠檬茶 500ml", 15, 30, 60),
                                             ("juice", "橙汁 450ml", 15, 20, 45)):
        sku[key] = site.create("product", name=name, price="3", sku=key.upper(), case_size=case,
                               safety_stock=safety, target_stock=target)["id"]
    stores = {}
    for key, name, channel, grade in (("wumart", "物美超市（西单店）", "modern_trade", "a"),
                                      ("seven", "7-Eleven（金融街店）", "convenience", "b"),
                                      ("grocery", "李家便民食杂店", "traditional", "c")):
        stores[key] = site.create("account", name=name, store_channel=channel, store_grade=grade, region="north",
                                  owner=rep)["id"]
    now = site.platform.clock.now()
    visits = {}
    for key in ("wumart", "seven"):
        visit = records.create("visit", {"subject": "例行巡店", "account": stores[key], "planned_at": now,
                                         "summary": "补货两箱", "owner": rep}, user=rep)
        records.update("visit", visit["id"], {"status": "checked_in", "check_in_at": now}, version=visit["version"],
                       system=True)
        visits[key] = visit["id"]
    site.ids = {"sku": sku, "stores": stores, "visits": visits, "rep": rep, "boss": boss}
    return site


def count(site, visit: str, *lines: tuple[str, int, int]) -> dict:
    """The rep's stock count at `visit`: (SKU key, on shelf, in store room) per line."""
    return site.create("stock_count", as_user="rep", visit=visit, stock_count_line=[
        {"product": site.ids["sku"][key], "on_shelf": shelf, "store_room": room} for key, shelf, room in lines])


def fill_both_visits(site) -> None:
    """Both visits' actions, the figures the reports below are worked out from."""
    wumart, seven = site.ids["visits"]["wumart"], site.ids["visits"]["seven"]
    for visit in (wumart, seven):
        site.create("shelf_photo", as_user="rep", visit=visit, position="main_shelf", photo=PHOTO)
    count(site, wumart, ("water", 20, 10), ("tea", 0, 12), ("juice", 25, 25))
    count(site, seven, ("water", 50, 10), ("tea", 10, 5))
    site.create("display_check", as_user="rep", visit=wumart, standard="ka_standard", facings=12, score=85,
                photo=PHOTO)
    site.create("display_check", as_user="rep", visit=seven, standard="cvs_standard", facings=4, score=70,
                photo=PHOTO)
    site.create("promotion_report", as_user="rep", visit=wumart, promotion_type="display", materials_in_place=True,
                photo=PHOTO, cost="1500", sales_amount="6000")
    site.create("promotion_report", as_user="rep", visit=seven, promotion_type="price_off", materials_in_place=False,
                photo=PHOTO, cost="500", sales_amount="1000")


def test_a_count_takes_the_store_and_the_sku_s_stock_levels_and_suggests_whole_cases(shop):
    counted = count(shop, shop.ids["visits"]["wumart"], ("water", 20, 10), ("tea", 0, 12), ("juice", 25, 25))
    assert counted["account"] == shop.ids["stores"]["wumart"]
    assert counted["sku_count"] == 3 and counted["below_safety_count"] == 2
    # water: 30 on hand < 48, (96 - 30) / 24 = 2.75 -> 3 cases; tea: 12 < 30, empty shelf, 48 / 15 = 3.2 -> 4;
    # juice: 50 >= 20 and above its target 45 -> none
    assert [(line["on_hand"], line["out_of_stock"], line["below_safety"], line["suggested_cases"])
            for line in counted["stock_count_line"]] == [
        (30, False, True, 3), (12, True, True, 4), (50, False, False, 0)]
    exact = count(shop, shop.ids["visits"]["seven"], ("tea", 10, 5))  # 45 / 15 = 3 cases exactly
    assert exact["stock_count_line"][0]["suggested_cases"] == 3


def test_check_out_needs_the_shelf_photos_and_the_stock_count(shop):
    visit = shop.ids["visits"]["wumart"]
    with pytest.raises(ValidationFailed) as refused:
        shop.act("visit", "check_out", visit, "rep", **HERE)
    assert {name: [str(m) for m in messages] for name, messages in refused.value.fields.items()} == {
        "shelf_photo": ["Shelf photo is required before Check out"],
        "stock_count": ["Stock count is required before Check out"]}
    with pytest.raises(ValidationFailed) as refused:  # the photo is required on the action itself
        shop.create("shelf_photo", as_user="rep", visit=visit, position="main_shelf")
    assert list(refused.value.fields) == ["photo"]
    shop.create("shelf_photo", as_user="rep", visit=visit, position="main_shelf", photo=PHOTO)
    count(shop, visit, ("water", 20, 10))
    shop.act("visit", "check_out", visit, "rep", **HERE)
    assert shop.get("visit", visit)["status"] == "completed"


def test_the_stock_alert_tells_the_rep_and_their_manager_once_per_line_below_safety_stock(shop):
    fill_both_visits(shop)
    at = shop.platform.clock.now() + timedelta(minutes=15)
    (summary,) = rules.run_rules(shop.platform, at, [ALERT])
    assert (summary["matched"], summary["notified"]) == (3, 6)  # 物美's water and tea, 7-Eleven's tea; rep and boss
    items, _ = work_queue(shop.platform).notifications_for(shop.ids["rep"])
    assert sorted((n.title_zh, n.title_en) for n in items) == [
        ("门店库存预警：「7-Eleven（金融街店）」的「柠檬茶 500ml」库存 15，低于安全库存 30，建议订货 3 箱",
         "Stock alert: 柠檬茶 500ml at 7-Eleven（金融街店） counted at 15, below the safety stock of 30; suggested "
         "order 3 cases"),
        ("门店库存预警：「物美超市（西单店）」的「柠檬茶 500ml」库存 12，低于安全库存 30，建议订货 4 箱",
         "Stock alert: 柠檬茶 500ml at 物美超市（西单店） counted at 12, below the safety stock of 30; suggested "
         "order 4 cases"),
        ("门店库存预警：「物美超市（西单店）」的「矿泉水 550ml」库存 30，低于安全库存 48，建议订货 3 箱",
         "Stock alert: 矿泉水 550ml at 物美超市（西单店） counted at 30, below the safety stock of 48; suggested "
         "order 3 cases")]
    assert len(work_queue(shop.platform).notifications_for(shop.ids["boss"])[0]) == 3
    (again,) = rules.run_rules(shop.platform, at + timedelta(minutes=15), [ALERT])
    assert (again["matched"], again["notified"]) == (3, 0)  # still below, but told once
    assert len(work_queue(shop.platform).notifications_for(shop.ids["rep"])[0]) == 3


def test_stores_are_visited_as_often_as_their_grade_requires(shop):
    items = frequency.compliance(shop.platform, shop.access("boss"), "account", shop.platform.clock.now().date())
    assert sorted((i["title"], i["visited"], i["required"]) for i in items["items"]) == [
        ("7-Eleven（金融街店）", 1, 2), ("李家便民食杂店", 0, 1), ("物美超市（西单店）", 1, 4)]


# --- reports --------------------------------------------------------------------------------------------------


def test_the_reports_give_the_figures_worked_out_by_hand(shop):
    fill_both_visits(shop)
    today = shop.platform.clock.now().astimezone(shop.platform.settings.zone).date().isoformat()
    # 门店库存: per store and SKU as counted; on hand = shelf + store room; cases up to the target stock
    assert [(r["store"], r["product"], r["counted_on"], r["on_shelf"], r["store_room"], r["on_hand"],
             r["suggested_cases"]) for r in shop.report("fmcg_stock_on_hand")] == [
        ("7-Eleven（金融街店）", "柠檬茶 500ml", today, 10, 5, 15, 3),  # (60 - 15) / 15 = 3
        ("7-Eleven（金融街店）", "矿泉水 550ml", today, 50, 10, 60, 2),  # (96 - 60) / 24 = 1.5 -> 2
        ("物美超市（西单店）", "柠檬茶 500ml", today, 0, 12, 12, 4),
        ("物美超市（西单店）", "橙汁 450ml", today, 25, 25, 50, 0),
        ("物美超市（西单店）", "矿泉水 550ml", today, 20, 10, 30, 3)]
    # 缺货率: 物美 1 of 3 SKUs empty on the shelf = 33.33 %, 2 below safety stock; 7-Eleven none empty, 1 below
    assert [(r["store"], r["lines"], r["out_of_stock"], r["below_safety"], r["out_of_stock_rate"])
            for r in shop.report("fmcg_out_of_stock_rate")] == [
        ("物美超市（西单店）", 3, 1, 2, Decimal("33.33")), ("7-Eleven（金融街店）", 2, 0, 1, 0)]
    # 陈列达标率: scores 85 and 70, average 77.5, one of two at 80 or more
    assert [(r["region"], r["rep"], r["checks"], r["avg_score"], r["compliant"], r["compliance_rate"])
            for r in shop.report("fmcg_display_compliance")] == [("north", "rep", 2, 77.5, 1, 50)]
    # 投入产出比: 6000 / 1500 = 4, 1000 / 500 = 2; the 7-Eleven's materials were not in place
    assert [(r["store"], r["reports"], r["materials_in_place"], r["cost"], r["sales_amount"], r["roi"])
            for r in shop.report("fmcg_promotion_roi")] == [
        ("物美超市（西单店）", 1, 1, 1500, 6000, 4), ("7-Eleven（金融街店）", 1, 0, 500, 1000, 2)]
    # 渠道拜访覆盖率: the KA and convenience stores were checked in to this month, the grocery was not
    assert [(r["channel"], r["stores"], r["visited"], r["visits"], r["coverage"])
            for r in shop.report("fmcg_visit_coverage")] == [
        ("modern_trade", 1, 1, 1, 100), ("convenience", 1, 1, 1, 100), ("traditional", 1, 0, 0, 0)]
    # a rep of another region reads none of it (their data scope)
    shop.user("east", "sales_rep")
    assert shop.report("fmcg_promotion_roi", as_user="east") == []


# --- its demo company, and an engine that does not name it ---------------------------------------------------


def test_its_demo_company_loads_with_one_command(db, capsys):  # noqa: F811
    code, out, err = run(capsys, "demo", "--template", "fmcg", "--no-serve")
    assert (code, err) == (0, "")
    assert out.startswith("enabled fmcg 1.0.0 (快消版 · FMCG edition) in the database\n")
    for line in ("  门店 account: 12", "  经销商 distributor: 3", "  产品 product: 8", "  拜访 visit: 32",
                 "  巡店拍照 shelf_photo: 28", "  产品盘点 stock_count: 27", "  盘点明细 stock_count_line: 187",
                 "  陈列检查 display_check: 24", "  活动上报 promotion_report: 7", "  竞品信息 competitor_info: 7"):
        assert line in out.splitlines()
    assert "  sunwei       demo1234   孙伟" in out
    platform = open_platform(Settings.from_env())
    try:
        visit = platform.records.list("visit", filters={"status": "checked_in"}).items
        assert [(v["subject"], v["check_in_at"].astimezone(platform.settings.zone).date().isoformat())
                for v in visit] == [("物美超市（西单店）例行巡店", "2026-12-07")]
    finally:
        platform.close()


def test_no_file_of_the_engine_names_the_edition():
    named = [path.relative_to(ROOT).as_posix() for path in sorted((ROOT / "objectplatform").rglob("*"))
             if path.is_file() and path.suffix != ".pyc" and b"fmcg" in path.read_bytes().lower()]
    assert named == []
