"""Roles and data scopes on both databases: the shipped roles' matrix, and who sees which leads in a sales org."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from support import crm_metadata

from objectplatform.metadata import Label
from objectplatform.runtime.errors import Forbidden, Unauthenticated
from objectplatform.runtime.permissions import OPERATIONS, Matching, Within, access_for

# site roles: one with the scope no shipped role uses, one leaning on "*" and on the defaults
SITE_ROLES = """\
kind: roles
roles:
  regional:
    label: {zh: 区域查看, en: Regional viewer}
    permissions:
      lead: {read: true, scope: department}
  auditor:
    label: {zh: 审计, en: Auditor}
    permissions:
      "*": {read: true, scope: all, actions: [import]}
      lead: {read: true}
      campaign: {create: true, scope: all}
"""
SITE_ROLE_NAMES = ("regional", "auditor")


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    return crm_metadata(tmp_path_factory.mktemp("site"), {"object_defs/roles.yaml": SITE_ROLES})


def make_user(platform, username: str, roles: list[str], **more) -> str:
    values = {"username": username, "display_name": username, "roles": roles, **more}
    return platform.records.create("user", values, system=True)["id"]


# ------------------------------------------------------------------------------ the role matrix

OBJECTS = ["account", "campaign", "co_visit", "competitor_info", "contact", "customer_feedback", "department",
           "follow_up", "invoice", "lead", "lead_pool",
           "opportunity", "opportunity_task", "order_line", "payment", "payment_plan", "price_policy", "product",
           "refund", "return_line", "return_order", "sales_order", "sales_target", "stage_history", "user", "visit",
           "visit_route", "visit_route_stop"]

# read off objectplatform_crm/object_defs/roles.yaml by hand: operations as letters (c)reate (r)ead (e)dit (d)elete,
# then the data scope of reading (and "+@path": the records whose user at path is within that scope too, roles.yaml's
# {field, within}); an object a role leaves out (and has no "*" for) is "".
SALES = {
    "lead": "cre own", "account": "cre own", "contact": "cre own", "opportunity": "cre own",
    "sales_order": "cre own+@account.owner", "order_line": "cred own+@sales_order.account.owner",
    "payment": "cre own", "payment_plan": "cred own",
    "invoice": "cre own", "return_order": "cre own", "return_line": "cred own", "refund": "cre own",
    "visit": "cre own", "follow_up": "cre own", "lead_pool": "r all", "campaign": "r all",
    "product": "r all", "user": "r all", "department": "r all", "stage_history": "r own", "opportunity_task": "r own",
    "co_visit": "r own", "visit_route": "r own", "visit_route_stop": "r own", "sales_target": "r own",
    "customer_feedback": "cred own", "competitor_info": "cred own",
    "price_policy": "r all",
}
MATRIX = {
    "admin": {obj: "cred all" for obj in OBJECTS},
    "sales_manager": {obj: v.replace(" own", " subordinates") for obj, v in SALES.items()}
    | {"sales_target": "cred subordinates", "price_policy": "cred all"},
    "sales_rep": SALES,
    "marketing": {
        "campaign": "cre all", "lead": "cre all", "follow_up": "cr all", "lead_pool": "r all",
        "product": "r all", "user": "r all", "department": "r all",
        "account": "r all", "opportunity": "r all", "sales_order": "r all",  # what the campaigns brought
    },
    "finance": {
        "sales_order": "r all", "order_line": "r all", "payment": "cre all", "payment_plan": "r all",
        "invoice": "cre all", "return_order": "r all", "return_line": "r all", "refund": "cre all",
        "account": "r all", "contact": "r all", "product": "r all", "user": "r all", "department": "r all",
    },
    "shipper": {
        "sales_order": "r all", "order_line": "r all", "return_order": "r all", "return_line": "r all",
        "account": "r all", "contact": "r all", "product": "r all", "user": "r all", "department": "r all",
    },
    "order_admin": {
        "sales_order": "r all", "order_line": "r all", "payment": "r all", "payment_plan": "r all",
        "invoice": "r all", "return_order": "r all", "return_line": "r all", "refund": "r all",
        "account": "r all", "contact": "r all", "product": "r all", "user": "r all", "department": "r all",
        "price_policy": "cred all",
    },
    "warehouse": {
        "sales_order": "r all", "order_line": "r all", "return_order": "r all", "return_line": "r all",
        "account": "r all", "contact": "r all", "product": "r all", "user": "r all", "department": "r all",
    },
    # a scope "~path" is the records whose path holds the user's account (roles.yaml's {field, equals_user})
    "partner": {
        "account": "r ~id", "contact": "r ~account", "sales_order": "cre ~account",
        "order_line": "cred ~sales_order.account", "payment": "r ~sales_order.account",
        "payment_plan": "r ~sales_order.account", "invoice": "r ~sales_order.account", "product": "r all",
        "price_policy": "r ~account",
    },
}
ADMIN_ACTIONS = {"claim", "assign", "return", "move", "invalidate", "void", "reopen", "convert", "import",
                 "check_duplicates", "advance", "complete_task", "win", "lose", "submit", "withdraw",
                 "confirm_shipment", "confirm_receipt", "complete", "cancel", "amend", "confirm_payment",
                 "reject_payment", "resubmit",
                 "issue_invoice", "reject_invoice", "approve_return", "reject_return", "confirm_return_receipt",
                 "confirm_refund", "reject_refund", "check_in", "check_out", "reuse", "deactivate", "override_discount"}
ACTIONS = {
    "admin": {obj: ADMIN_ACTIONS for obj in OBJECTS},
    "sales_manager": {
        "lead": {"claim", "assign", "return", "move", "invalidate", "void", "reopen", "convert", "import",
                 "check_duplicates"},
        "opportunity": {"advance", "complete_task", "win", "lose", "invalidate", "withdraw"},
        "sales_order": {"submit", "withdraw", "complete", "cancel", "amend"},
        "order_line": {"override_discount"},
        "payment": {"resubmit"},
        "invoice": {"submit"},
        "return_order": {"submit", "cancel", "approve_return", "reject_return"},
        "visit": {"check_in", "check_out", "cancel"},
        "visit_route": {"reuse"},
    },
    "sales_rep": {
        "lead": {"claim", "return", "invalidate", "reopen", "convert", "check_duplicates"},
        "opportunity": {"advance", "complete_task", "win", "lose", "invalidate", "withdraw"},
        "sales_order": {"submit", "withdraw", "complete", "cancel", "amend"},
        "payment": {"resubmit"},
        "invoice": {"submit"},
        "return_order": {"submit", "cancel"},
        "visit": {"check_in", "check_out", "cancel"},
        "visit_route": {"reuse"},
    },
    "marketing": {"campaign": {"import"}, "lead": {"import", "assign", "move", "invalidate", "reopen",
                                                                 "check_duplicates"}},
    "finance": {"payment": {"confirm_payment", "reject_payment"}, "invoice": {"issue_invoice", "reject_invoice"},
                "refund": {"confirm_refund", "reject_refund"}},
    "shipper": {"sales_order": {"confirm_shipment", "confirm_receipt"}, "return_order": {"confirm_return_receipt"}},
    "order_admin": {"return_order": {"approve_return", "reject_return"}},
    "warehouse": {"sales_order": {"confirm_shipment", "confirm_receipt"}, "return_order": {"confirm_return_receipt"}},
    "partner": {"sales_order": {"submit", "withdraw"}},
}
LETTERS = {"create": "c", "read": "r", "edit": "e", "delete": "d"}


def test_the_shipped_roles_grant_exactly_what_roles_yaml_says(platform):
    assert list(platform.metadata.objects) == OBJECTS
    assert [r for r in platform.metadata.roles if r not in SITE_ROLE_NAMES] == list(MATRIX)
    every_action = set().union(*(a for per_role in ACTIONS.values() for a in per_role.values()))
    for role, expected in MATRIX.items():
        access = access_for(platform, make_user(platform, f"u_{role}", [role]))
        assert access.roles == {role}
        assert access.is_admin is (role == "admin")
        for obj in OBJECTS:
            letters, _, scope = expected.get(obj, "").partition(" ")
            for operation in OPERATIONS:
                assert access.can(obj, operation) is (LETTERS[operation] in letters), (role, obj, operation)
            first, *through = scope.split("+")
            wanted = {Matching(first[1:], "account") if first.startswith("~") else first}
            wanted |= {Within(path[1:], first) for path in through}
            assert access.grants[obj].scopes == (wanted if "r" in letters else set()), (role, obj)
            granted = ACTIONS[role].get(obj, set())
            for action in every_action:
                assert access.can_act(obj, action) is (action in granted), (role, obj, action)
        assert access.readable_objects() == [o for o in OBJECTS if "r" in expected.get(o, "")]


def test_an_object_named_replaces_the_star_entry_and_left_out_means_no_and_own(platform):
    access = access_for(platform, make_user(platform, "auditor", ["auditor"]))
    assert [op for op in OPERATIONS if access.can("account", op)] == ["read"]
    assert access.grants["account"].scopes == {"all"} and access.can_act("account", "import")
    assert access.grants["lead"].scopes == {"own"} and not access.can_act("lead", "import")
    assert [op for op in OPERATIONS if access.can("campaign", op)] == ["create"]
    assert access.grants["campaign"].scopes == set()  # a scope counts only with read
    assert str(access.scope("campaign", platform.schema["campaign"].table)) == "false"
    assert access.is_admin is False
    assert access.readable_objects() == [o for o in OBJECTS if o != "campaign"]


def test_require_names_the_refused_operation_and_action(platform):
    access = access_for(platform, make_user(platform, "rep", ["sales_rep"]))
    access.require("lead", "edit")
    access.require_action("lead", "claim")
    with pytest.raises(Forbidden) as e:
        access.require("lead", "delete")
    assert (e.value.status, e.value.message) == (403, "your roles do not allow you to delete leads")
    with pytest.raises(Forbidden) as e:
        access.require_action("lead", "assign", Label("分配", "Assign"))
    assert e.value.message == "your roles do not allow the action Assign on leads"
    assert access.can("no_such_object", "read") is False


def test_a_user_with_two_roles_gets_the_union(platform):
    both = make_user(platform, "both", ["sales_rep", "marketing"])
    access = access_for(platform, both)
    assert access.roles == {"sales_rep", "marketing"}
    assert [op for op in OPERATIONS if access.can("lead", op)] == ["create", "read", "edit"]
    assert [op for op in OPERATIONS if access.can("campaign", op)] == ["create", "read", "edit"]  # marketing
    assert [op for op in OPERATIONS if access.can("order_line", op)] == list(OPERATIONS)  # sales_rep
    assert access.grants["lead"].scopes == {"own", "all"}
    assert access.scope("lead", platform.schema["lead"].table) is None  # the widest scope wins
    assert access.grants["visit"].scopes == {"own"}  # only the rep role names visits
    assert {a for a in ("claim", "assign", "move", "convert", "import", "void") if access.can_act("lead", a)} == {
        "claim", "assign", "move", "convert", "import"}
    assert access.can_act("campaign", "import") and access.can_act("visit", "check_in")


def test_an_inactive_user_may_do_nothing(platform):
    gone = make_user(platform, "gone", ["admin"], active=False)
    access = access_for(platform, gone)
    assert access.roles == frozenset()
    assert access.is_admin is False
    assert access.readable_objects() == []
    assert not any(access.can(obj, op) for obj in OBJECTS for op in OPERATIONS)
    lead = platform.schema["lead"].table
    platform.records.create("lead", {"name": "留存线索", "phone": "13800000000"}, user=gone)
    assert platform.records.list("lead", where=access.scope("lead", lead)).items == []


def test_an_unknown_user_has_no_access(platform):
    for user_id in ("999", "abc", ""):
        with pytest.raises(Unauthenticated):
            access_for(platform, user_id)


# ------------------------------------------------------------------------------ data scopes in an org


@pytest.fixture
def org(platform):
    """销售部 (张) with 华北区 (李) and 华东区 (赵) under it, 市场部 (马) beside; each user owns one lead."""
    records = platform.records
    ids: dict[str, str] = {}

    def dept(name: str, **more) -> str:
        return records.create("department", {"name": name, **more}, system=True)["id"]

    def user(key: str, name: str, roles: list[str], **more) -> None:
        ids[key] = make_user(platform, key, roles, display_name=name, **more)

    user("admin", "管理员", ["admin"])
    user("zhang", "张", ["sales_manager"])
    user("ma", "马", ["marketing"])
    sales = dept("销售部", manager=ids["zhang"])
    market = dept("市场部", manager=ids["ma"])
    records.update("user", ids["zhang"], {"department": sales}, version=None, system=True)
    records.update("user", ids["ma"], {"department": market}, version=None, system=True)
    user("li", "李", ["sales_manager"], department=None, manager=ids["zhang"])
    user("zhao", "赵", ["sales_manager"], manager=ids["zhang"])
    north = dept("华北区", parent=sales, manager=ids["li"])
    east = dept("华东区", parent=sales, manager=ids["zhao"])
    records.update("user", ids["li"], {"department": north}, version=None, system=True)
    records.update("user", ids["zhao"], {"department": east}, version=None, system=True)
    user("wang", "王", ["sales_rep"], department=north, manager=ids["li"])
    user("liu", "刘", ["sales_rep"], department=north, manager=ids["li"])
    user("chen", "陈", ["sales_rep"], department=east, manager=ids["zhao"])
    user("sun", "孙", ["sales_rep"], department=east)  # below 赵 only through the department he manages
    user("zhou", "周", ["sales_rep"], department=market, manager=ids["li"])  # reports to 李 from 市场部
    user("wu", "吴", ["regional"], department=north, manager=ids["li"])
    user("zheng", "郑", ["regional"], department=sales)
    user("feng", "冯", ["regional"])  # no department
    user("qian", "钱", ["finance"])
    for key, user_id in ids.items():
        if key not in ("admin", "qian"):
            name = records.get("user", user_id)["display_name"]
            records.create("lead", {"name": f"线索-{name}", "phone": "13800000000"}, user=user_id)
    return ids


def visible_leads(platform, user_id: str) -> list[str]:
    access = access_for(platform, user_id)
    where = access.scope("lead", platform.schema["lead"].table)
    page = platform.records.list("lead", where=where, limit=500)
    return sorted(item["name"] for item in page.items)


def leads(*names: str) -> list[str]:
    return sorted(f"线索-{n}" for n in names)


EVERYONE = ("张", "马", "李", "赵", "王", "刘", "陈", "孙", "周", "吴", "郑", "冯")


@pytest.mark.parametrize(("who", "expected"), [
    ("wang", leads("王")),  # own
    ("chen", leads("陈")),
    ("li", leads("李", "王", "刘", "周", "吴")),  # subordinates: reports (周 too) and 华北区
    ("zhao", leads("赵", "陈", "孙")),  # 孙 has no manager but is in 华东区
    ("zhang", leads("张", "郑", "李", "赵", "王", "刘", "吴", "陈", "孙", "周")),  # the whole tree, and 李's 周
    ("wu", leads("李", "王", "刘", "吴")),  # department: 华北区
    ("zheng", leads("张", "郑", "李", "赵", "王", "刘", "吴", "陈", "孙")),  # department: 销售部 and below
    ("feng", leads("冯")),  # department scope without a department: own only
    ("ma", leads(*EVERYONE)),  # marketing: all
    ("admin", leads(*EVERYONE)),
    ("qian", []),  # finance may not read leads
])
def test_each_scope_shows_exactly_the_leads_it_should(platform, org, who, expected):
    assert visible_leads(platform, org[who]) == expected


def test_the_scope_is_one_condition_on_owner(platform, org):
    lead = platform.schema["lead"].table
    own = access_for(platform, org["wang"]).scope("lead", lead)
    assert own.compare(lead.c.owner == int(org["wang"]))
    subordinates = access_for(platform, org["zhao"]).scope("lead", lead)
    ids = sorted(int(org[k]) for k in ("zhao", "chen", "sun"))
    assert subordinates.compare(lead.c.owner.in_(ids))
    assert access_for(platform, org["ma"]).scope("lead", lead) is None
    assert str(access_for(platform, org["qian"]).scope("lead", lead)) == "false"


def test_a_list_filtered_to_an_owner_the_scope_reaches_needs_no_scope_condition(platform, org):
    lead = platform.schema["lead"].table
    zhao = access_for(platform, org["zhao"])
    assert zhao.scope("lead", lead, owner=org["chen"]) is None  # the filter owner = 陈 keeps the rows in scope
    assert zhao.scope("lead", lead, owner=org["wang"]).compare(  # 王 is not his: the scope stays
        lead.c.owner.in_(sorted(int(org[k]) for k in ("zhao", "chen", "sun"))))
    assert zhao.scope("lead", lead, owner="陈").compare(zhao.scope("lead", lead))  # not an id: the scope stays
    assert str(access_for(platform, org["qian"]).scope("lead", lead, owner=org["qian"])) == "false"
    statements = []

    def executed(conn, cursor, statement, *rest):
        if statement.startswith("SELECT") and "FROM lead " in statement:
            statements.append(statement.split("WHERE", 1)[1])

    sa.event.listen(platform.engine, "before_cursor_execute", executed)
    try:  # records.list derives the same from its filters: only 王's page carries zhao's scope (owner IN his people)
        for owner, names in ((org["chen"], ["线索-陈"]), (org["wang"], [])):
            statements.clear()
            for filters in ({"owner": owner}, {"owner__eq": owner}):
                page = platform.records.list("lead", filters=filters, scope=zhao, count=False)
                assert [item["name"] for item in page.items] == names, filters
            assert [" IN (" in where for where in statements] == [owner == org["wang"]] * 2
    finally:
        sa.event.remove(platform.engine, "before_cursor_execute", executed)


def test_scopes_apply_to_other_objects_and_reads_of_one_record(platform, org):
    records = platform.records
    account = records.create("account", {"name": "华北客户"}, user=org["wang"])["id"]
    table = platform.schema["account"].table
    for who, sees in (("wang", True), ("li", True), ("zhang", True), ("zhao", False), ("chen", False),
                      ("qian", True), ("ma", True)):  # marketing reads every account (what campaigns brought)
        access = access_for(platform, org[who])
        found = records.list("account", where=access.scope("account", table)).items
        assert [a["id"] for a in found] == ([account] if sees else []), who


def test_a_manager_who_reports_to_a_subordinate_does_not_loop(platform):
    records = platform.records
    a = make_user(platform, "a", ["sales_manager"])
    b = make_user(platform, "b", ["sales_manager"], manager=a)
    records.update("user", a, {"manager": b}, version=None, system=True)
    d1 = records.create("department", {"name": "甲", "manager": a}, system=True)["id"]
    records.create("department", {"name": "乙", "parent": d1, "manager": b}, system=True)
    for user_id in (a, b):
        records.create("lead", {"name": f"L{user_id}", "phone": "13800000000"}, user=user_id)
    assert visible_leads(platform, a) == sorted([f"L{a}", f"L{b}"])
    assert visible_leads(platform, b) == sorted([f"L{a}", f"L{b}"])


def test_access_reads_the_org_only_when_a_scope_needs_it(platform, org):
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    sa.event.listen(platform.engine, "before_cursor_execute", count)
    try:
        access_for(platform, org["wang"])
        own_reads = len(statements)
        statements.clear()
        access_for(platform, org["zhang"])
        tree_reads = len(statements)
    finally:
        sa.event.remove(platform.engine, "before_cursor_execute", count)
    # the user, the department chain and the lead pools (whose waiting leads members see); then also every
    # user's and department's links for the subordinates scope
    assert (own_reads, tree_reads) == (3, 5)
