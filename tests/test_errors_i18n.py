"""Structured errors and the gettext catalogues: every runtime error carries a reason and params, the API answers
them beside its English message, the pages and the CLI say them from the zh/en catalogues, and the catalogues hold
every key and reason the code uses (in both languages, as `pybabel extract` finds them)."""

from __future__ import annotations

import ast
import functools
import pickle
import re
import string
from collections import defaultdict
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from support import shipped_crm
from test_api import ERROR_RESPONSES, PASSWORD, lead
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import metadata as metadata  # noqa: F401
from test_api import people as people  # noqa: F401
from test_cli import env as env  # noqa: F401
from test_cli import migrated as migrated  # noqa: F401
from test_cli import run
from test_pages import login, token

from objectplatform.metadata import Label, ObjectDef
from objectplatform.runtime import lifecycles
from objectplatform.runtime.actions import run_action
from objectplatform.runtime.approvals import approvals
from objectplatform.runtime.behaviors import anomalies, calendar, route
from objectplatform.runtime.errors import (
    Conflict,
    Message,
    NotFound,
    RuntimeFailure,
    ValidationFailed,
    coded_params,
    message_from_json,
    message_json,
    no_record,
    said_label,
)
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.sales_processes import process
from objectplatform.runtime.workqueue import work_queue
from objectplatform.translations import CATALOGUES, LANGUAGES, catalogue, message_text

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "objectplatform"
FAILURES = frozenset({"RuntimeFailure", "BadRequest", "Unauthenticated", "Forbidden", "NotFound", "Conflict",
                      "Locked", "ValidationFailed", "ValidationError", "InvalidFilter"})
MESSAGE_MAKERS = frozenset({"Message", "no_record"})
MARSHMALLOW_VALIDATORS = frozenset({"Length", "Email", "URL", "Range", "OneOf"})
REASON = re.compile(r"[a-z_]+(\.[a-z_0-9]+)+")


# ------------------------------------------------------------------------------------ the guard


def _english(node: ast.AST) -> list[ast.AST]:
    """The English text in a failure's argument that is not a Message: literals and f-strings, in lists and
    dicts too (a field's messages)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in MESSAGE_MAKERS:
        return []
    if isinstance(node, ast.JoinedStr) or isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node]
    if isinstance(node, ast.BinOp):
        return [node] if _english(node.left) or _english(node.right) else []
    if isinstance(node, ast.Dict):
        children = [value for value in node.values if value is not None]
    elif isinstance(node, ast.List | ast.Tuple | ast.Set):
        children = node.elts
    elif isinstance(node, ast.IfExp):
        children = [node.body, node.orelse]
    elif isinstance(node, ast.ListComp):
        children = [node.elt]
    elif isinstance(node, ast.DictComp):
        children = [node.value]
    else:
        children = []
    return [found for child in children for found in _english(child)]


def _call_name(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _without_reason(tree: ast.AST) -> list[int]:
    """Lines that raise, or add to a field's messages, English text without a reason."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _call_name(node)
            appends = (name in ("append", "extend") and isinstance(node.func.value, ast.Call)
                       and _call_name(node.func.value) == "setdefault")
            if name in FAILURES or appends:
                lines += [found.lineno for arg in [*node.args, *(k.value for k in node.keywords)]
                          for found in _english(arg)]
            if name in MARSHMALLOW_VALIDATORS:
                lines += [node.lineno for k in node.keywords if k.arg == "error" and _english(k.value)]
        elif isinstance(node, ast.Assign):
            targets = [getattr(t, "id", getattr(t, "attr", None)) for t in node.targets]
            if isinstance(node.value, ast.Dict) and {"default_error_messages", "error_messages"} & set(targets):
                lines += [found.lineno for found in _english(node.value)]
            if isinstance(node.value, ast.List) and any(isinstance(t, ast.Subscript) for t in node.targets):
                lines += [found.lineno for found in _english(node.value)]
    return sorted(set(lines))


def sites_without_reason() -> dict[str, int]:
    """Per module of the engine, how many places still raise English prose without a reason and params."""
    found = {}
    for path in sorted(ENGINE.rglob("*.py")):
        if lines := _without_reason(ast.parse(path.read_text(encoding="utf-8"))):
            found[str(path.relative_to(ROOT))] = len(lines)
    return found


def test_the_guard_finds_english_without_a_reason():
    tree = ast.parse('raise Conflict(f"{x} is taken")\n'
                     'raise ValidationFailed({"a": ["required"]})\n'
                     'errors.setdefault("b", []).append(f"no {c}")\n'
                     'raise NotFound(Message("record.not_found", "no {object} with id {id}", object=o, id=i))\n'
                     'raise ValidationFailed({"d": [no_record(o, i)]})\n'
                     'default_error_messages = {"invalid": "must be text"}\n')
    assert _without_reason(tree) == [1, 2, 3, 6]


def test_every_error_the_engine_raises_has_a_reason():
    assert sites_without_reason() == {}


# ------------------------------------------------------------------------------------ Message


def test_a_message_is_its_english_text_with_a_reason_and_params():
    m = Message("pool.daily_limit", "you claimed {claimed} leads today, its daily_claim_limit is {limit}",
                claimed=3, limit=3)
    assert m == "you claimed 3 leads today, its daily_claim_limit is 3"
    assert (m.reason, m.params) == ("pool.daily_limit", {"claimed": 3, "limit": 3})
    assert pickle.loads(pickle.dumps(m)).params == {"claimed": 3, "limit": 3}
    assert ["is required"] == [Message("value.required", "is required")]


def test_a_message_short_of_params_is_a_template_that_format_fills():
    template = Message("value.not_an_option", "'{input}' is not one of: {allowed}")
    assert template == "'{input}' is not one of: {allowed}"
    filled = template.format(input="tv", allowed="web, expo", unused=1)
    assert (filled, filled.reason, filled.params) == (
        "'tv' is not one of: web, expo", "value.not_an_option", {"input": "tv", "allowed": "web, expo"})


def test_a_failure_carries_the_reason_and_params_of_its_message():
    failure = Conflict(Message("todo.done", "to-do {id} is already done", id="7"))
    assert (str(failure), failure.reason, failure.params) == ("to-do 7 is already done", "todo.done", {"id": "7"})
    assert failure.as_dict() == {"error": {"code": "conflict", "message": "to-do 7 is already done",
                                           "reason": "todo.done", "params": {"id": "7"}}}
    invalid = ValidationFailed({"name": [Message("value.required", "is required")]})
    assert invalid.as_dict() == {"error": {"code": "validation_failed", "message": "1 field error",
                                           "reason": "validation.failed",
                                           "params": {"count": 1, "errors": "field error"},
                                           "fields": {"name": ["is required"]}}}


def test_messages_are_said_in_each_language_with_nested_messages_and_an_english_fallback():
    stale = Message("record.stale_version", "{object} {id} was changed by {by} at {at}; reload it "
                    "(your version {version}, current {current})", object="lead", id="4",
                    by=Message("record.the_system", "the system"), at="2026-11-27T02:00:00", version=1, current=2)
    assert message_text(stale, "zh") == ("lead 4 已被 系统 于 2026-11-27T02:00:00 修改，请重新加载（您的版本 1，"
                                         "当前版本 2）")
    assert message_text(stale, "en") == str(stale)
    missing = NotFound(no_record(shipped_crm().objects["sales_order"], "9")).message
    assert (missing, message_text(missing, "zh"), coded_params(missing)) == (
        "no sales order with id 9", "找不到编号为 9 的销售订单", {"object": "sales_order", "id": "9"})
    assert message_text("plain English", "zh") == "plain English"
    assert message_text(Message("nobody.knows", "said in {lang}", lang="English"), "zh") == "said in English"


def test_a_label_from_the_metadata_is_said_in_each_language_and_survives_json():
    held = Message("pool.max_held", "you hold {held} {records} from {pool_object} {pool}, its max_held_per_member is "
                   "{cap}: return or convert one first", held=2, records=said_label("工单", "tickets"),
                   pool_object="ticket_queue", pool="一线支持", cap=2)
    assert held == ("you hold 2 tickets from ticket_queue 一线支持, its max_held_per_member is 2: return or convert "
                    "one first")
    assert message_text(held, "zh") == "您已持有“一线支持”的 2 条工单，达到每人上限 2 条，请先退回或转换"
    again = message_from_json(message_json(held))
    assert (again, message_text(again, "zh")) == (held, message_text(held, "zh"))


# ------------------------------------------------------------------------------------ catalogues


@functools.cache  # read by two tests; extracting from every file costs seconds
def _extracted() -> dict[str, list[str]]:
    """Every key and reason `pybabel extract -F babel.cfg` finds, with the extractor's comments."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found: dict[str, list[str]] = defaultdict(list)
    for _file, _line, key, comments, _context in extract_from_dir(str(ROOT), method_map, options_map):
        found[key] += comments
    return found


def _names(sentence: str) -> set[str]:
    return {re.split(r"[.\[!:]", name)[0] for _, name, _, _ in string.Formatter().parse(sentence) if name}


@functools.cache  # read by two tests
def _reason_sites() -> dict[str, list[tuple[str, set[str]]]]:
    """Per reason, each `Message(reason, english, **params)` in the engine: its English and its params' names."""
    sites: dict[str, list[tuple[str, set[str]]]] = defaultdict(list)
    for path in ENGINE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Message"
                    and all(isinstance(arg, ast.Constant) for arg in node.args[:2])):
                reason, english = node.args[0].value, node.args[1].value
                sites[reason].append((english, {k.arg for k in node.keywords}))
    return sites


def test_the_catalogues_hold_every_key_and_reason_in_both_languages():
    used = set(_extracted())
    assert len(used) > 450
    for lang in LANGUAGES:
        with (CATALOGUES / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
            entries = {m.id: m for m in read_po(po) if m.id}
        assert sorted(k for k, m in entries.items() if not m.string.strip() or m.fuzzy) == [], lang
        assert sorted(used - set(entries)) == [], lang
        assert sorted(set(entries) - used) == [], lang  # `pybabel update` would make these obsolete


def test_the_template_is_what_pybabel_extract_finds_now():
    with (CATALOGUES / "messages.pot").open("rb") as pot:
        assert {m.id for m in read_po(pot) if m.id} == set(_extracted())


def test_each_reason_has_one_english_sentence_and_its_sentences_use_only_its_params():
    for reason, sites in _reason_sites().items():
        assert REASON.fullmatch(reason), reason
        assert len({english for english, _ in sites}) == 1, (reason, sites)
        given = set.intersection(*(names for _, names in sites)) | _names(sites[0][0])  # a template: format fills
        for lang in LANGUAGES:
            assert _names(catalogue(lang)[reason]) <= given, (lang, reason)


def test_english_pages_say_what_the_api_says():
    """So a reason never takes an interface string's key either."""
    for reason, sites in _reason_sites().items():
        assert catalogue("en")[reason] == sites[0][0], reason


# ------------------------------------------------------------------------------------ the API


def full(answer: tuple[int, dict]) -> tuple[int, dict]:
    """An error answer as the API sent it (the test client's answer leaves reasons out; it records them)."""
    status, body = ERROR_RESPONSES[-1][2:]
    assert status == answer[0], body
    return status, body


def error(status: int, code: str, message: str, reason: str, params: dict, fields: dict | None = None):
    body = {"code": code, "message": message, "reason": reason, "params": params}
    return status, {"error": body | ({"fields": fields} if fields else {})}


def test_the_api_answers_reason_and_params_beside_the_english_message(api, people, platform):
    record = lead(api, "rep1")
    path = f"/objects/lead/records/{record['id']}"
    assert full(api.get("/objects/lead/records/999999", "rep1")) == error(
        404, "not_found", "no lead with id 999999", "record.not_found", {"object": "lead", "id": "999999"})
    assert full(api.post("/objects/lead/records", "finance", {"name": "x"})) == error(
        403, "forbidden", "your roles do not allow you to create leads", "permission.operation",
        {"operation": "create", "object": "lead"})
    assert full(api.post("/objects/lead/records", "rep1", {"phone": "13800000000"})) == error(
        422, "validation_failed", "1 field error", "validation.failed", {"count": 1, "errors": "field error"},
        {"name": ["is required"]})
    assert api.patch(path, "rep1", {"version": 1, "company": "A"})[0] == 200
    status, body = full(api.patch(path, "rep1", {"version": 1, "company": "B"}))
    at = body["error"]["params"]["at"]
    assert (status, body) == error(
        409, "conflict", f"Lead {record['id']} was changed by 王伟 at {at}; reload it (your version 1, "
        "current 2)", "record.stale_version",
        {"object": "lead", "id": record["id"], "by": people["rep1"], "at": at, "version": 1, "current": 2})


def test_the_pool_daily_limit_is_reason_pool_daily_limit(api, people, platform):
    pool = platform.records.create("lead_pool", {"name": "华北区线索池", "members": [people["rep1"]],
                                                 "daily_claim_limit": 1}, system=True)["id"]
    ids = [lead(api, "admin", name=f"L{i}", pool=pool)["id"] for i in range(2)]
    assert api.post(f"/objects/lead/records/{ids[0]}/actions/claim", "rep1", {})[0] == 200
    assert full(api.post(f"/objects/lead/records/{ids[1]}/actions/claim", "rep1", {})) == error(
        409, "conflict", "you claimed 1 leads from lead pool 华北区线索池 today, its daily_claim_limit is 1",
        "pool.daily_limit", {"claimed": 1, "records": "leads", "pool_object": "lead_pool", "pool": "华北区线索池",
                             "limit": 1})


def test_locked_fields_and_refused_transitions_carry_their_reasons(api, people, platform):
    account = platform.records.create("account", {"name": "星辰科技"}, user=people["rep1"])["id"]
    status, order = api.post("/objects/sales_order/records", "rep1", {"account": account})
    assert status == 201, order
    path = f"/objects/sales_order/records/{order['id']}"
    assert full(api.post(f"{path}/actions/confirm_shipment", "rep1", {})) == error(
        403, "forbidden", "your roles do not allow Confirm shipment on sales orders (allowed: Shipper)",
        "transition.role", {"transition": "confirm_shipment", "object": "sales_order", "roles": "shipper"})
    assert full(api.post(f"{path}/actions/withdraw", "rep1", {})) == error(
        409, "conflict", f"Sales order {order['id']} is Draft: Withdraw applies only to sales orders in state "
        "Submitted", "transition.wrong_state",
        {"object": "sales_order", "id": order["id"], "state": "draft", "transition": "withdraw",
         "records": "sales_order", "sources": "submitted"})  # labels in the message, codes in its params
    platform.records.update("sales_order", order["id"], {"status": "cancelled"}, version=None, system=True)
    assert full(api.patch(path, "rep1", {"version": 2, "order_discount": 5})) == error(
        409, "locked", f"Sales order {order['id']} is Cancelled: Order discount cannot be changed in this state",
        "lifecycle.locked", {"object": "sales_order", "id": order["id"], "state": "cancelled",
                             "fields": "order_discount"},
        {"order_discount": ["locked while the sales order is Cancelled"]})


# ------------------------------------------------------------------------------------ pages and CLI


@pytest.fixture
def client(app):
    return app.test_client()


def test_pages_say_errors_in_the_visitors_language(client, people):
    login(client, "rep1", PASSWORD)
    page = client.get("/admin/metadata")
    assert page.status_code == 403 and "元数据浏览仅限管理员" in page.text
    form = client.post("/o/lead/new", data={"name": "", "phone": "13800000000", "csrf_token": token(client)})
    assert form.status_code == 422 and "必填" in form.text and "is required" not in form.text
    client.get("/lang/en?next=/")
    page = client.get("/admin/metadata")
    assert page.status_code == 403 and "the metadata browser is for administrators" in page.text
    form = client.post("/o/lead/new", data={"name": "", "phone": "13800000000", "csrf_token": token(client)})
    assert "is required" in form.text and "必填" not in form.text


def test_the_pool_board_says_why_a_claim_failed_in_chinese(client, api, people, platform):
    pool = platform.records.create("lead_pool", {"name": "华北区线索池", "members": [people["rep1"]],
                                                 "daily_claim_limit": 1}, system=True)["id"]
    ids = [lead(api, "admin", name=f"L{i}", pool=pool)["id"] for i in range(2)]
    login(client, "rep1", PASSWORD)
    client.post("/pools/act", data={"do": "claim", "ids": ids, "next": "/pools", "csrf_token": token(client)})
    board = client.get(f"/pools?pool={pool}").text
    assert "您今天已从“华北区线索池”领取 1 条销售线索，达到每日上限 1 条" in board


def test_a_report_filter_error_has_its_reason_and_the_report_page_says_it_in_the_visitors_language(client, api,
                                                                                                    people):
    reversed_range = {"created_at": {"from": "2026-03-01", "to": "2026-01-01"}}
    assert full(api.post("/reports/leads_by_owner_status/run", "rep1", {"filters": reversed_range})) == error(
        422, "validation_failed", "created_at: the range ends before it starts", "request.bad_parameters",
        {"problems": "created_at: the range ends before it starts"},
        {"created_at": ["the range ends before it starts"]})
    login(client, "rep1", PASSWORD)
    page = "/reports/leads_by_owner_status?created_at__from=2026-03-01&created_at__to=2026-01-01"
    assert '<p class="error">结束日期早于开始日期</p>' in client.get(page).text
    client.get("/lang/en?next=/")
    assert '<p class="error">the range ends before it starts</p>' in client.get(page).text


def test_the_cli_says_errors_in_the_language_asked_for(migrated, capsys):
    assert run(capsys, "create-user", "zhang", "--password", "secret-123-abc")[0] == 0
    again = ("create-user", "zhang", "--password", "secret-123-abc")
    assert run(capsys, *again) == (1, "", "error: 1 field error\n  username: already used by another user\n")
    assert run(capsys, "--lang", "zh", *again) == (1, "", "error: 1 处字段错误\n  username: 已被其他用户使用\n")


# ------------------------------------------------------------------------------------ labels, never codes


def said(failure) -> dict[str, tuple]:
    """A refusal as each face says it: {lang: (message, {field: [messages]})}."""
    return {lang: (message_text(failure.message, lang),
                   {name: [message_text(m, lang) for m in ms] for name, ms in failure.fields.items()})
            for lang in LANGUAGES}


def refused(run) -> RuntimeFailure:
    with pytest.raises(RuntimeFailure) as e:
        run()
    return e.value


def codes_in(message) -> set[str]:
    """The codes a message names by their labels (the API's params give them), in its params' messages too."""
    if not isinstance(message, Message):
        return set()
    if message.reason == "name.label":
        return {message.params["name"]}
    return set().union(*(codes_in(value) for value in message.params.values()))


def test_the_shipped_crm_refuses_by_labels_in_both_languages(platform, people):
    """Each refusal that named a code before (transitions run by approvals, the pool or the sales process, the
    operation and object of a permission, stages and processes, a transition's condition) says labels only."""
    records, rep = platform.records, people["rep1"]
    account = records.create("account", {"name": "星辰科技"}, user=rep)["id"]
    order = records.create("sales_order", {"account": account}, user=rep)
    opportunity = records.create("opportunity", {"name": "零售项目", "account": account, "amount": "500000"}, user=rep)
    stage = process(platform.metadata, opportunity["sales_process"], "opportunity").stage(opportunity["stage"])
    rep_access, finance = access_for(platform, rep), access_for(platform, people["finance"])
    cases = [
        (refused(lambda: records.update("sales_order", order["id"], {"status": "approved"}, version=1, user=rep)), {
            "en": ("1 field error", {"status": ["set only by the transitions Submit for approval, Withdraw, Confirm "
                                                "shipment, Confirm receipt, Complete, Cancel, Amend"]}),
            "zh": ("1 处字段错误", {"status": [
                "只能由操作 提交审批、撤回审批、确认发货、确认收货、完成订单、取消订单、变更订单 设置"]})}),
        (refused(lambda: records.create("opportunity", {"name": "x", "account": account, "amount": "1",
                                                        "status": "won"}, user=rep)), {
            "en": ("1 field error", {"status": ["a new opportunity starts as Open; Won is reached by Win"]}),
            "zh": ("1 处字段错误", {"status": ["新建的商机只能从 进行中 开始；“赢单”需通过 赢单 到达"]})}),
        (refused(lambda: records.update("lead", lead_of(platform, people), {"status": "following"}, version=1,
                                        user=rep)), {
            "en": ("1 field error", {"status": ["set only by the transitions Claim, Assign, Return to pool, Follow up, "
                                                "Convert, Mark invalid, Void, Reopen"]}),
            "zh": ("1 处字段错误", {"status": [
                "只能由操作 领取、分配、退回线索池、跟进、转换、标记无效、作废、重新打开 设置"]})}),
        (refused(lambda: finance.require("lead", "create")), {
            "en": ("your roles do not allow you to create leads", {}), "zh": ("您的角色无权新建销售线索", {})}),
        (refused(lambda: run_action(platform, rep_access, "lead", "assign", [lead_of(platform, people)],
                                    {"owner": rep})), {
            "en": ("your roles do not allow the action Assign on leads", {}),
            "zh": ("您的角色无权对销售线索执行操作“分配”", {})}),
        (refused(lambda: run_action(platform, rep_access, "opportunity", "win", opportunity["id"], {})), {
            "en": (f"Opportunity {opportunity['id']} is in stage {stage.label.en}: it can be won only from the last "
                   "stage Closing", {}),
            "zh": (f"当前处于阶段“{stage.label.zh}”：只能在最后阶段“赢单”赢单", {})}),
        (refused(lambda: run_action(platform, rep_access, "opportunity", "advance", opportunity["id"], {})), {
            "en": ("stage Confirm interest is not finished: 2 missing",
                   {"tasks": ["Call about the needs is not done"],
                    "contact": ["is required to leave stage Confirm interest"]}),
            "zh": ("阶段“确认客户意向”尚未完成：缺少 2 项",
                   {"tasks": ["任务“电话沟通需求”尚未完成"], "contact": ["离开阶段“确认客户意向”前必须填写"]})}),
        (refused(lambda: lifecycles.refuse(rep_access, with_condition(platform.metadata, "sales_order", "cancel",
                                                                      "order_discount > 5 and not delivery_date"),
                                           "cancel", order, platform.local_now())), {
            "en": (f"Cancel does not apply to sales order {order['id']}: its condition on Delivery date, Order "
                   "discount does not hold", {}),
            "zh": (f"“取消订单”不适用于销售订单 {order['id']}：交货日期、整单折扣率不满足其条件", {})}),
        (refused(lambda: lifecycles.refuse(rep_access, with_condition(
            platform.metadata, "sales_order", "cancel", "delivery_date != null",
            Label("订单须有交货日期", "the order needs a delivery date")), "cancel", order, platform.local_now())), {
            "en": (f"Cancel does not apply to sales order {order['id']}: the order needs a delivery date", {}),
            "zh": (f"“取消订单”不适用于销售订单 {order['id']}：订单须有交货日期", {})}),
    ]
    for failure, expected in cases:
        assert said(failure) == expected
        codes = set().union(*map(codes_in, [failure.message, *(m for ms in failure.fields.values() for m in ms)]))
        assert codes and not {code for code in codes if code in str(said(failure)["zh"])}, codes
        assert not {code for code in codes if "_" in code and code in str(said(failure)["en"])}, codes


def test_missing_records_and_behaviors_name_objects_and_approvals_by_label_in_both_languages(platform, people):
    """A record that is not there (a line of another order among them), a duplicate, a unique value taken, an object
    without a calendar, day route or check-in, and a pending approval name objects and the approval's title by
    label: the code stays in the params only."""
    records, rep = platform.records, people["rep1"]
    rep_access = access_for(platform, rep)
    account = records.create("account", {"name": "星辰科技"}, user=rep)["id"]
    product = records.create("product", {"name": "笔记本电脑", "price": "100"}, system=True)["id"]
    lines = [{"product": product, "quantity": 2, "unit_price": "100"}]
    order = records.create("sales_order", {"account": account, "order_line": lines}, user=rep)
    other = records.create("sales_order", {"account": account, "order_line": lines}, user=rep)
    line = other["order_line"][0]["id"]
    lead = records.create("lead", {"name": "张伟", "mobile": "13800138000"}, user=rep)["id"]
    records.create("user", {"username": "oadmin", "display_name": "周订单", "password": PASSWORD,
                            "roles": ["order_admin"]}, system=True)  # the flow's first approver
    approval = run_action(platform, rep_access, "sales_order", "submit", order["id"], {})["approval"]
    cases = [
        (refused(lambda: records.get("sales_order", "999999")), {
            "en": ("no sales order with id 999999", {}), "zh": ("找不到编号为 999999 的销售订单", {})}),
        (refused(lambda: records.update("sales_order", order["id"], {"order_line": [{"id": line}]}, version=None,
                                        system=True)), {
            "en": ("1 field error", {"order_line[0].id": [f"no order line with id {line} in this sales order"]}),
            "zh": ("1 处字段错误", {"order_line[0].id": [f"该销售订单中没有编号为 {line} 的订单产品"]})}),
        (refused(lambda: records.create("lead", {"name": "李雷", "phone": "010-88886666", "pool": "999999"},
                                        user=rep)), {
            "en": ("1 field error", {"pool": ["no lead pool with id 999999"]}),
            "zh": ("1 处字段错误", {"pool": ["找不到编号为 999999 的线索池"]})}),
        (refused(lambda: records.create("lead", {"name": "李雷", "mobile": "13800138000"}, user=people["rep2"])), {
            "en": ("1 field error", {"mobile": [f"duplicate of lead {lead} (王伟's): same mobile"]}),
            "zh": ("1 处字段错误", {"mobile": [f"与销售线索 {lead} 重复（手机号相同）"]})}),
        (refused(lambda: records.create("user", {"username": "rep1", "display_name": "x", "password": PASSWORD},
                                        system=True)), {
            "en": ("1 field error", {"username": ["already used by another user"]}),
            "zh": ("1 处字段错误", {"username": ["已被其他用户使用"]})}),
        (refused(lambda: work_queue(platform).done(rep_access, "999999")), {
            "en": ("no to-do with id 999999", {}), "zh": ("找不到编号为 999999 的待办", {})}),
        (refused(lambda: approvals(platform).get(rep_access, "999999")), {
            "en": ("no approval with id 999999", {}), "zh": ("找不到编号为 999999 的审批", {})}),
        (refused(lambda: calendar.calendar_object(platform.metadata, "account")), {
            "en": ("Account has no calendar", {}), "zh": ("客户没有日历", {})}),
        (refused(lambda: route.routed_object(platform.metadata, "account")), {
            "en": ("Account has no day route", {}), "zh": ("客户没有拜访路线", {})}),
        (refused(lambda: anomalies.mileage(platform, rep_access, "account", date(2026, 12, 1), date(2026, 12, 1))), {
            "en": ("Account has no check-in", {}), "zh": ("客户没有签到设置", {})}),
        (refused(lambda: approvals(platform).submit(rep_access, "sales_order", order["id"])), {
            "en": (f"Sales order {order['id']} is already waiting for approval {approval['id']} (Order approval "
                   f"{order['order_no']})", {}),
            "zh": (f"已在审批中（订单审批 {order['order_no']}），不能重复提交", {})}),
    ]
    for failure, expected in cases:
        assert said(failure) == expected
        messages = [failure.message, *(m for ms in failure.fields.values() for m in ms)]
        codes = set().union(*map(codes_in, messages))
        texts = {lang: " ".join(message_text(m, lang) for m in messages) for lang in LANGUAGES}
        assert not {code for code in codes if code in texts["zh"]}, codes
        assert not {code for code in codes if "_" in code and code in texts["en"]}, codes
    assert [coded_params(f.message) for f in (cases[0][0], cases[7][0])] == [
        {"object": "sales_order", "id": "999999"}, {"object": "account"}]


def lead_of(platform, people) -> str:
    """A lead of rep1's, pending follow-up."""
    return platform.records.create("lead", {"name": "客户", "phone": "13800000000"}, user=people["rep1"])["id"]


def with_condition(metadata, obj: str, name: str, condition: str, message: Label | None = None) -> ObjectDef:
    """`obj` with its transition `name` held to `condition`, saying `message` when it refuses (no transition of
    the shipped CRM has a condition)."""
    definition = metadata.objects[obj]
    transitions = {**definition.lifecycle.transitions,
                   name: replace(definition.lifecycle.transitions[name], condition=condition, message=message)}
    return replace(definition, lifecycle=replace(definition.lifecycle, transitions=transitions))
