"""A rep's day of visits on a phone (390 px) in headless Chromium, the browser's location not granted (the typed
coordinates are the fallback): plan three accounts for the day from the account list, optimise the day's route
from home and save it, check in at the first stop, fill its required 客户反馈, write the summary and check out;
each step as the rep sees it (status labels, distances, duration), with a screenshot of each at both widths under
build/screenshots/.

The day (the site's clock on 8 December 2026, 08:00 in China): 王伟's home at 39.90 N 116.30 E and three
accounts 0.01° of longitude apart due east of it (853.0 m a step at that latitude: 1.11 km by road, 1.3 × the
great circle, 2 minutes at 30 km/h); the check-in typed 0.0008° north of the first account, 89 m from it."""

from __future__ import annotations

from datetime import UTC, datetime

from support import FixedClock
from test_ui import click_and_wait, login

HOME = {"lat": 39.90, "lng": 116.30}
SHOPS = (("东方商场", 116.31), ("西单百货", 116.32), ("王府井店", 116.33))
HERE = ("39.9008", "116.31")
PHONE = {"width": 390, "height": 844}


def test_a_reps_day_plan_route_check_in_action_check_out(browser, site, screenshot):
    from playwright.sync_api import expect

    records = site.platform.records
    wang = site.users["wang"]
    clock = site.platform.clock = FixedClock(datetime(2026, 12, 8, 0, 0, tzinfo=UTC))  # 08:00 in China
    records.update("user", wang, {"home_location": HOME}, version=None, system=True)
    for name, lng in reversed(SHOPS):  # the list shows the newest first: planned in scrambled order
        records.create("account", {"name": name, "location": {"lat": 39.90, "lng": lng}}, user=wang)
    context = browser.new_context(base_url=site.url, locale="zh-CN", timezone_id="Asia/Shanghai", viewport=PHONE)

    def shoot(name: str) -> None:
        screenshot(page, name)

    try:
        page = context.new_page()
        login(page, site, "wang")
        # 计划拜访: tick the three accounts, the day and time, plan
        page.goto("/o/account")
        page.check("th.select input.select-all")
        assert page.input_value("#plan-day") == "2026-12-09"  # tomorrow unless chosen
        page.fill("#plan-day", "2026-12-08")
        shoot("accounts")
        click_and_wait(page, page.locator(".plan-bar button[type=submit]"))
        assert "已计划 3 条拜访" in page.locator(".flash.success").inner_text()
        shoot("planned")
        # 今日路线: from home, the nearest first, each leg and the total
        page.goto("/o/visit/route")
        click_and_wait(page, page.locator('button[data-action="optimise"]'))
        stops = page.locator("ol.route-stops li")
        assert [s.locator("strong").inner_text() for s in stops.all()] == [name for name, _ in SHOPS]
        assert [s.locator(".leg").inner_text() for s in stops.all()] == ["1.11 公里 · 2 分钟"] * 3
        assert page.locator(".route-total").inner_text() == "共 3 站 · 3.33 公里 · 路上 6 分钟"
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        shoot("route")
        click_and_wait(page, page.locator('button[data-action="save_route"]'))
        assert page.locator("[data-saved]").inner_text().startswith("这是当天已保存的路线。")
        shoot("route-saved")
        # the first stop: check in where the browser cannot locate, typing the coordinates
        click_and_wait(page, stops.first.locator("a"))
        assert page.locator(".state-path [aria-current=step]").inner_text() == "计划中"
        check_in = page.locator('form[data-form="check_in"]')
        check_in.locator('button[data-action="check_in"]').click()
        # the browser answers the location request later: wait for the page to say so
        expect(check_in.locator("[data-locate-status]")).to_have_text("无法获取定位，请手动输入坐标后再提交。")
        expect(check_in.locator("details.manual")).to_have_attribute("open", "")
        check_in.locator('input[name="lat"]').fill(HERE[0])
        check_in.locator('input[name="lng"]').fill(HERE[1])
        shoot("check-in-typed")
        click_and_wait(page, check_in.locator('button[data-action="check_in"]'))
        assert page.locator(".state-path [aria-current=step]").inner_text() == "已签到"
        assert page.locator(".check-in-result").inner_text() == "距客户位置 89 米 · 有效"
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        shoot("checked-in")
        visit_url = page.url
        # 拜访动作: the required 客户反馈
        clock.advance(minutes=25)
        click_and_wait(page, page.locator('[data-fill="customer_feedback"]'))
        page.select_option("select[name=category]", "product")
        page.select_option("select[name=satisfaction]", "satisfied")
        page.fill("textarea[name=content]", "陈列位置需调整")
        shoot("action")
        click_and_wait(page, page.locator("form.record-form button[type=submit]"))
        assert page.locator("#checklist li[data-item=customer_feedback]").get_attribute("data-filled") == "1"
        # the summary, then check out (typed again)
        page.goto(visit_url.split("#")[0] + "/edit")
        page.fill("textarea[name=summary]", "新品陈列已确认")
        click_and_wait(page, page.locator("form.record-form button[type=submit]"))
        check_out = page.locator('form[data-form="check_out"]')
        check_out.locator("details.manual summary").click()
        check_out.locator('input[name="lat"]').fill(HERE[0])
        check_out.locator('input[name="lng"]').fill(HERE[1])
        click_and_wait(page, check_out.locator('button[data-action="check_out"]'))
        assert page.locator(".state-path [aria-current=step]").inner_text() == "已完成"
        assert page.locator(".check-in-result").inner_text() == "距客户位置 89 米 · 有效 · 拜访时长 25 分钟"
        shoot("checked-out")
    finally:
        context.close()
