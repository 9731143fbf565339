"""An import starts what a create would, on SQLite and PostgreSQL: approval flows with `on: create` (one
approval per imported record, with its approvers' to-dos) and automatic lifecycle transitions (`when`)."""

from __future__ import annotations

import pytest
from support import crm_metadata
from test_approvals import account as account  # noqa: F401  (fixtures)
from test_approvals import clock as clock  # noqa: F401
from test_approvals import order, steps, todos
from test_approvals import people as people  # noqa: F401
from test_approvals import product as product  # noqa: F401

from objectplatform.runtime import ValidationFailed
from objectplatform.runtime.approvals import approvals
from objectplatform.runtime.imports import prepare, read_bytes, run_import
from objectplatform.runtime.permissions import access_for

SITE = {
    "flows/payment_check.yaml": """\
kind: approval_flow
name: payment_check
label: {zh: 回款确认, en: Payment check}
object: payment
trigger: {on: create}
steps:
  - {name: department, label: {zh: 部门经理确认, en: Department manager}, approvers: [{department_manager: true}]}
""",
    "object_defs/invoice_free.yaml": """\
kind: object_extension
object: invoice
lifecycle:  # an invoice for nothing needs no one to submit it
  transitions:
    submit_free: {label: {zh: 零元自动提交, en: Submitted by itself when free}, from: [draft], to: submitted,
                  when: "amount == 0"}
""",
}


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    return crm_metadata(tmp_path_factory.mktemp("site"), SITE)


def approved_order(platform, user: str, account: str, product: str, price: str) -> str:
    """test_approvals' order, approved as its flow would (payments and invoices are made against it)."""
    so = order(platform, user, account, product, price)["id"]
    platform.records.update("sales_order", so, {"status": "approved"}, version=None, system=True)
    return so


def imported(platform, user: str, obj: str, csv: str) -> list[str]:
    """The ids an import of `csv` by `user` created (every row must go in), in file order."""
    prepared = prepare(platform.metadata.objects[obj], read_bytes(f"{obj}.csv", csv.encode()))
    table = platform.schema[obj].table
    before = platform.records.list(obj, where=table.c.id > 0, sort="-id", limit=1, count=False).items
    result = run_import(platform, prepared, user=user, caller=access_for(platform, user))
    assert result.errors == []
    last = int(before[0]["id"]) if before else 0
    created = platform.records.list(obj, where=table.c.id > last, sort="id", count=False).items
    assert len(created) == result.created
    return [record["id"] for record in created]


def test_imported_records_start_the_flows_a_create_starts(platform, people, account, product):
    so = approved_order(platform, people["rep"], account, product, "9000")
    single = platform.records.create("payment", {"sales_order": so, "amount": "100"}, user=people["rep"])
    ids = imported(platform, people["rep"], "payment", f"sales_order,amount\n{so},1000\n{so},2000\n{so},3000\n")
    assert len(ids) == 3
    pending = [approvals(platform).pending_for_record("payment", i) for i in [single["id"], *ids]]
    assert [(p["flow"], p["submitter"], steps(p)) for p in pending] == [
        ("payment_check", people["rep"], [("department", "pending", [("赵经理", None, None)])])
    ] * 4
    assert sorted((kind, int(approval)) for kind, _, approval, _ in todos(platform, people["boss"])) == [
        ("approval", int(p["id"])) for p in pending
    ]


def test_imported_records_take_the_automatic_transitions_a_create_takes(platform, people, account, product):
    so = approved_order(platform, people["rep"], account, product, "9000")
    single = platform.records.create(
        "invoice", {"sales_order": so, "amount": "0", "title": "华信银行"}, user=people["rep"]
    )
    ids = imported(
        platform,
        people["rep"],
        "invoice",
        f"sales_order,amount,title\n{so},0,华信银行\n{so},500,华信银行\n{so},0,华信银行\n",
    )
    assert [platform.records.get("invoice", i)["status"] for i in [single["id"], *ids]] == [
        "submitted",
        "submitted",
        "draft",
        "submitted",
    ]


def test_a_batch_whose_flow_cannot_start_is_refused_as_a_create_would_be(platform, people, product):
    """The loner has no department, so no department manager approves his payments."""
    account = platform.records.create("account", {"name": "独立客户"}, user=people["loner"])["id"]
    so = approved_order(platform, people["loner"], account, product, "9000")
    with pytest.raises(ValidationFailed) as single:
        platform.records.create("payment", {"sales_order": so, "amount": "100"}, user=people["loner"])
    with pytest.raises(ValidationFailed) as batch:
        imported(platform, people["loner"], "payment", f"sales_order,amount\n{so},1000\n{so},2000\n")
    assert (batch.value.message, batch.value.fields) == (single.value.message, single.value.fields)
    assert platform.records.list("payment", limit=1).total == 0
