"""The hand-built company the report tests share (see tests/test_reports.py for what it holds)."""

from __future__ import annotations


def make_user(platform, username, roles, **more):
    values = {"username": username, "display_name": username, "roles": roles, **more}
    return platform.records.create("user", values, system=True)["id"]


def build_company(platform, password: str | None = None) -> dict[str, str]:
    """The company of tests/test_reports.py's docstring; users get `password` when given (for API tokens)."""
    r = platform.records
    secret = {"password": password} if password else {}
    boss = make_user(platform, "王经理", ["sales_manager"], **secret)
    li = make_user(platform, "李一", ["sales_rep"], manager=boss, **secret)
    zhang = make_user(platform, "张二", ["sales_rep"], manager=boss, **secret)
    zhao = make_user(platform, "赵三", ["sales_rep"], **secret)
    spring = r.create("campaign", {"name": "春季展会"}, system=True)["id"]
    online = r.create("campaign", {"name": "线上推广"}, system=True)["id"]
    jia = r.create("account", {"name": "甲公司", "owner": li}, system=True)["id"]
    yi = r.create("account", {"name": "乙公司", "owner": zhang}, system=True)["id"]
    o1 = r.create("opportunity", {"name": "O1", "account": jia, "amount": "100000", "owner": li}, system=True)["id"]
    o2 = r.create("opportunity", {"name": "O2", "account": yi, "amount": "50000", "owner": zhang}, system=True)["id"]
    product = r.create("product", {"name": "云服务", "price": "1"}, system=True)["id"]

    def order(account, owner, amount):
        line = {"product": product, "quantity": "1", "unit_price": amount}
        return r.create("sales_order", {"account": account, "owner": owner, "order_line": [line]}, system=True)["id"]

    first = order(jia, li, "1000")
    order(jia, li, "2000")
    order(jia, li, "3000")
    order(yi, zhang, "500")
    r.update("sales_order", first, {"status": "approved"}, version=None, system=True)  # payments need an approved order
    r.create("payment", {"sales_order": first, "amount": "600", "status": "confirmed", "owner": li}, system=True)
    r.create("payment", {"sales_order": first, "amount": "100", "status": "pending", "owner": li}, system=True)

    def lead(name, owner, campaign=None, account=None, opportunity=None, status="pending"):
        values = {"name": name, "mobile": f"1380000000{name[1]}", "owner": owner, "campaign": campaign,
                  "status": status, "converted_account": account, "converted_opportunity": opportunity}
        return r.create("lead", values, system=True)["id"]

    lead("L1", li, spring, jia, o1, "converted")
    lead("L2", li, spring, jia, o1, "converted")
    lead("L3", zhang, spring)
    lead("L4", zhang, online, yi, o2, "converted")
    lead("L7", zhao, online, jia, None, "converted")
    lead("L6", li)
    return {"boss": boss, "li": li, "zhang": zhang, "zhao": zhao}
