"""Behaviors under other names, on SQLite and PostgreSQL: a `deal` names every field and status of the
sales_process behavior (and of its history and task objects) differently, `check` accepts it and reports a
renamed field that is missing at its file:line, and the actions run on the renamed fields; its follow_ups
move its own statuses. (The pool's `route_by`: tests/metadata_cases/behaviors_route_by, test_pool_rules.)"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from support import FixedClock
from test_api import PASSWORD

from objectplatform.metadata import default_layers, load_metadata
from objectplatform.runtime.actions import run_action
from objectplatform.runtime.behaviors.registry import check_behaviors
from objectplatform.runtime.config import ROOT
from objectplatform.runtime.errors import Conflict, ValidationFailed
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.plugins import registry_for
from objectplatform.runtime.value_labels import value_labels

T1 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
T2 = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
DEAL = """\
kind: object
name: deal
label: {zh: 交易, en: Deal}
title_field: title
behaviors:
  sales_process:
    history: deal_step
    tasks: deal_check
    parent_field: deal
    status_field: outcome
    open_status: active
    won_status: signed
    lost_status: dropped
    invalid_status: void
    fields: {sales_process: playbook, stage: phase, pending_stage: next_phase, probability: chance,
             closed_at: ended_at, lost_reason: drop_reason, lost_comment: drop_note, invalid_comment: void_note,
             expected_close_date: due_on}
    history_fields: {sales_process: playbook, stage: phase, entered_at: began, left_at: ended, left_to: went_to,
                     moved_by: mover, comment: note}
    task_fields: {sales_process: playbook, stage: phase, task: item, completed_at: done_at, completed_by: done_by}
  follow_ups: {follow_up_object: note, status_field: warmth, pending_status: cold, following_status: warm}
fields:
  title:      {type: text, label: {zh: 标题, en: Title}, required: true}
  playbook:   {type: text, label: {zh: 打法, en: Playbook}, max_length: 64}
  phase:      {type: text, label: {zh: 阶段, en: Phase}, max_length: 50, system: true}
  next_phase: {type: text, label: {zh: 待审批阶段, en: Next phase}, max_length: 50, system: true}
  chance:     {type: percent, label: {zh: 把握, en: Chance}}
  outcome:
    type: picklist
    label: {zh: 结果, en: Outcome}
    default: active
    options:
      - {value: active, label: {zh: 进行中, en: Active}}
      - {value: signed, label: {zh: 已签约, en: Signed}}
      - {value: dropped, label: {zh: 已放弃, en: Dropped}}
      - {value: void, label: {zh: 作废, en: Void}}
  ended_at:   {type: datetime, label: {zh: 结束时间, en: Ended at}, system: true}
  drop_reason:
    type: picklist
    label: {zh: 放弃原因, en: Drop reason}
    options:
      - {value: price, label: {zh: 价格, en: Price}}
  drop_note:  {type: long_text, label: {zh: 放弃说明, en: Drop note}}
  void_note:  {type: long_text, label: {zh: 作废说明, en: Void note}}
  due_on:     {type: date, label: {zh: 预计日期, en: Due on}}
  terms:      {type: text, label: {zh: 条款, en: Terms}}
  warmth:
    type: picklist
    label: {zh: 热度, en: Warmth}
    default: cold
    options:
      - {value: cold, label: {zh: 未跟进, en: Cold}}
      - {value: warm, label: {zh: 已跟进, en: Warm}}
---
kind: object
name: note
label: {zh: 跟进, en: Note}
fields:
  related_object: {type: text, label: {zh: 对象, en: Object}, max_length: 64}
  related_id:     {type: text, label: {zh: 记录, en: Record}, max_length: 20}
  followed_at:    {type: datetime, label: {zh: 跟进时间, en: Followed at}}
---
kind: roles
roles:
  closer:
    label: {zh: 签单员, en: Closer}
    permissions:
      "*": {create: true, read: true, edit: true, delete: true, scope: all,
            actions: [advance, complete_task, win, lose, invalidate]}
---
kind: object
name: deal_step
label: {zh: 交易阶段历史, en: Deal step}
title_field: phase
fields:
  deal:     {type: master_detail, to: deal, label: {zh: 交易, en: Deal}, required: true}
  playbook: {type: text, label: {zh: 打法, en: Playbook}, max_length: 64}
  phase:    {type: text, label: {zh: 阶段, en: Phase}, max_length: 50}
  began:    {type: datetime, label: {zh: 进入, en: Began}}
  ended:    {type: datetime, label: {zh: 离开, en: Ended}}
  went_to:  {type: text, label: {zh: 去向, en: Went to}, max_length: 50}
  mover:    {type: user, label: {zh: 操作人, en: Mover}}
  note:     {type: long_text, label: {zh: 说明, en: Note}}
---
kind: object
name: deal_check
label: {zh: 交易任务, en: Deal check}
title_field: item
fields:
  deal:     {type: master_detail, to: deal, label: {zh: 交易, en: Deal}, required: true}
  playbook: {type: text, label: {zh: 打法, en: Playbook}, max_length: 64}
  phase:    {type: text, label: {zh: 阶段, en: Phase}, max_length: 50}
  item:     {type: text, label: {zh: 任务, en: Item}, max_length: 64}
  done_at:  {type: datetime, label: {zh: 完成时间, en: Done at}}
  done_by:  {type: user, label: {zh: 完成人, en: Done by}}
"""
PLAYBOOK = """\
kind: sales_process
name: quick
label: {zh: 快速成交, en: Quick deal}
stages:
  - key: pitch
    label: {zh: 推介, en: Pitch}
    probability: 20
    tasks:
      - {key: demo, label: {zh: 演示, en: Demo}, required: true}
    required_fields: [terms]
  - key: sign
    label: {zh: 签约, en: Sign}
    probability: 70
"""


def layer(base, deal: str = DEAL):
    """One layer without the CRM (whose processes, naming no object, are the one staged object's) on the
    engine's base layer (users and departments): `deal` and its process."""
    files = {"object_defs/deal.yaml": deal, "flows/deal_playbook.yaml": PLAYBOOK}
    for name, text in files.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_text(text, encoding="utf-8")
    return load_metadata(default_layers(ROOT, (), None, [base]))


ENGINE_BEHAVIORS = registry_for(()).behaviors  # the engine's own, no app's


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    return layer(tmp_path_factory.mktemp("deal_site"))


def test_check_accepts_the_renamed_fields_and_statuses(metadata):
    assert check_behaviors(metadata, ENGINE_BEHAVIORS) == []


def test_a_missing_renamed_field_is_reported_where_the_configuration_names_it(tmp_path):
    broken = DEAL.replace("  drop_note:  {type: long_text", "  drop_text:  {type: long_text") \
                 .replace("went_to:  {type: text, label: {zh: 去向, en: Went to}, max_length: 50}",
                          "went_to:  {type: datetime, label: {zh: 去向, en: Went to}}")
    assert [str(p) for p in check_behaviors(layer(tmp_path, broken), ENGINE_BEHAVIORS)] == [
        f"{tmp_path / 'object_defs/deal.yaml'}:16:61: 'deal' has no field 'drop_note', which the sales_process "
        "behavior needs (did you mean 'drop_text'?) (at behaviors.sales_process.fields.lost_comment)",
        f"{tmp_path / 'object_defs/deal.yaml'}:18:96: field 'went_to' of 'deal_step' is a datetime; the "
        "sales_process behavior needs a text (at behaviors.sales_process.history_fields.left_to)",
    ]


def test_a_renamed_status_missing_from_the_picklist_is_reported_at_its_key(tmp_path):
    broken = DEAL.replace("won_status: signed", "won_status: closed_won")
    assert [str(p) for p in check_behaviors(layer(tmp_path, broken), ENGINE_BEHAVIORS)] == [
        f"{tmp_path / 'object_defs/deal.yaml'}:12:5: field 'outcome' of 'deal' has no option 'closed_won', which "
        "the sales_process behavior needs (at behaviors.sales_process.won_status)"]


def test_advance_complete_and_win_write_the_renamed_fields(platform):
    platform.clock = clock = FixedClock(T1)
    records = platform.records
    admin = records.create("user", {"username": "admin", "display_name": "admin", "password": PASSWORD,
                                    "roles": ["closer"]}, system=True)["id"]

    def act(action: str, record_id: str, params: dict | None = None) -> dict:
        return run_action(platform, access_for(platform, admin), "deal", action, record_id, params or {})

    deal = records.create("deal", {"title": "年度框架协议"}, user=admin)
    assert (deal["playbook"], deal["phase"], deal["chance"], deal["outcome"]) == ("quick", "pitch", Decimal(20),
                                                                                  "active")
    with pytest.raises(ValidationFailed) as missing:
        act("advance", deal["id"])
    assert sorted(missing.value.fields) == ["tasks", "terms"]
    done = act("complete_task", deal["id"], {"task": "demo"})
    assert (done["task"]["stage"], done["task"]["task"], done["task"]["completed_by"]) == ("pitch", "demo", admin)
    records.update("deal", deal["id"], {"terms": "一年"}, version=done["record"]["version"], user=admin)
    clock.at = T2
    moved = act("advance", deal["id"])
    assert (moved["stage"], moved["record"]["phase"], moved["record"]["chance"]) == ("sign", "sign", Decimal(70))
    won = act("win", deal["id"])["record"]
    assert (won["outcome"], won["chance"], won["ended_at"], won["next_phase"]) == ("signed", Decimal(100), T2, None)
    assert [(r["phase"], r["began"], r["ended"], r["went_to"], r["mover"]) for r in
            sorted(won["deal_step"], key=lambda r: r["began"])] == [
        ("pitch", T1, T2, "sign", admin), ("sign", T2, T2, "signed", admin)]
    assert [(r["playbook"], r["phase"], r["item"]) for r in won["deal_check"]] == [("quick", "pitch", "demo")]
    with pytest.raises(Conflict, match="Deal .* is Signed: it cannot be lost"):
        act("lose", deal["id"], {"reason": "price", "comment": "太贵"})
    step = platform.metadata.objects["deal_step"]
    assert value_labels(platform.metadata, step, "went_to")["signed"].en == "Signed"
    assert value_labels(platform.metadata, step, "phase")["pitch"].en == "Pitch"


def test_lose_writes_the_renamed_reason_and_comment(platform):
    platform.clock = FixedClock(T1)
    records = platform.records
    admin = records.create("user", {"username": "admin", "display_name": "admin", "password": PASSWORD,
                                    "roles": ["closer"]}, system=True)["id"]
    deal = records.create("deal", {"title": "试点项目"}, user=admin)
    lost = run_action(platform, access_for(platform, admin), "deal", "lose", deal["id"],
                      {"reason": "price", "comment": "预算不足"})["record"]
    assert (lost["outcome"], lost["drop_reason"], lost["drop_note"], lost["chance"], lost["ended_at"]) == (
        "dropped", "price", "预算不足", Decimal(0), T1)
    assert [(r["phase"], r["went_to"], r["note"]) for r in lost["deal_step"]] == [("pitch", "dropped", "预算不足")]


def test_a_follow_up_moves_the_statuses_its_configuration_names(platform):
    platform.clock = FixedClock(T1)
    records = platform.records
    closer = records.create("user", {"username": "closer", "display_name": "closer", "password": PASSWORD,
                                     "roles": ["closer"]}, system=True)["id"]
    deal = records.create("deal", {"title": "续约"}, user=closer)
    assert deal["warmth"] == "cold"
    records.create("note", {"related_object": "deal", "related_id": deal["id"]}, user=closer)
    assert records.get("deal", deal["id"])["warmth"] == "warm"
