"""The action names of the YAML held to the actions the engine registers (runtime/names.py).

A case folder under `metadata_cases/` holding `names.txt` loads cleanly (its `expected.txt` is empty)
and `check_names` reports exactly the lines of `names.txt`, paths relative to the case folder.
"""

from __future__ import annotations

import pytest
from support import crm_metadata, crm_registry, shipped_crm
from test_metadata_loader import CASES, load_case

from objectplatform.cli import main
from objectplatform.metadata import MetadataError
from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.config import ROOT
from objectplatform.runtime.names import check_names

INVOICE_APPROVAL = """\
kind: approval_flow
name: invoice_approval
label: {zh: 开票审批, en: Invoice approval}
object: invoice
trigger: {on: action, action: submit}
steps:
  - {name: finance, label: {zh: 财务, en: Finance}, approvers: [{role: finance}]}
"""
LEAD_CLAIM = """\
kind: object_extension
object: lead
lifecycle:
  transitions:
    claim: {label: {zh: 领取, en: Claim}, from: [unassigned], to: pending}
"""
CASHIER = """\
kind: roles
roles:
  cashier:
    label: {zh: 出纳, en: Cashier}
    permissions:
      payment: {read: true, scope: all, actions: [confrim_payment, import]}
"""


@pytest.mark.parametrize("case", sorted(p.parent.name for p in CASES.glob("*/names.txt")))
def test_case_reports_exactly_the_expected_names(case, monkeypatch):
    expected = (CASES / case / "names.txt").read_text(encoding="utf-8").splitlines()
    assert [str(p) for p in check_names(load_case(case, monkeypatch), crm_registry())] == expected


def test_the_shipped_crm_names_only_actions_the_engine_registers():
    assert check_names(shipped_crm(), crm_registry()) == []


def test_the_lifecycle_objects_have_exactly_these_actions():
    """What roles.yaml may grant on them: the transitions the engine runs, the approval engine's and the CRM's own
    (the order's copy)."""
    registry = crm_registry()
    registered = registry.actions_of(shipped_crm())
    assert {obj: sorted(registered[obj]) for obj in ("sales_order", "payment", "invoice", "visit", "opportunity")} == {
        "sales_order": ["amend", "cancel", "complete", "confirm_receipt", "confirm_shipment", "copy", "submit",
                        "withdraw"],
        "payment": ["confirm_payment", "reject_payment", "resubmit"],
        "invoice": ["issue_invoice", "reject_invoice", "submit"],
        "visit": ["cancel", "check_in", "check_out"],
        "opportunity": ["advance", "complete_task", "invalidate", "lose", "win", "withdraw"],
    }
    assert set(registry.permissions) == {"import"}
    assert registry.hook_movers == {"follow_ups"}  # lead's follow_up transition is its hook's edge, not an action


def test_a_site_flow_starting_with_a_transition_of_the_engine_names_both(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    metadata = crm_metadata(tmp_path / "site", {"flows/invoice_approval.yaml": INVOICE_APPROVAL})
    lines = (ROOT / "objectplatform_crm" / "object_defs" / "invoice.yaml").read_text(encoding="utf-8").splitlines()
    line = lines.index("    submit:") + 1
    assert [str(p) for p in check_names(metadata, crm_registry())] == [
        f"objectplatform_crm/object_defs/invoice.yaml:{line}:5: 'submit' of 'invoice' is both this transition and an "
        f"action of the approval flow 'invoice_approval' ({tmp_path}/site/flows/invoice_approval.yaml:1:1): rename the "
        "transition, or give it `by: approval` (at lifecycle.transitions.submit)"
    ]


def test_an_engine_transition_shadowing_a_behavior_action_names_the_function_registering_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    metadata = crm_metadata(tmp_path / "site", {"object_defs/lead_ext.yaml": LEAD_CLAIM})
    assert [str(p) for p in check_names(metadata, crm_registry())] == [
        "site/object_defs/lead_ext.yaml:5:5: 'claim' of 'lead' is both this transition and an action of "
        "objectplatform.runtime.behaviors.pool.pool_actions: rename the transition, or give it `by` the behavior "
        "that registers it (at lifecycle.transitions.claim)"
    ]


def test_a_platform_never_opens_on_a_phantom_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    metadata = crm_metadata(tmp_path / "site", {"object_defs/roles.yaml": CASHIER})
    with pytest.raises(MetadataError) as e:
        open_platform(Settings.from_env({}, database_url=f"sqlite:///{tmp_path}/never.db", instance_path=tmp_path),
                      metadata)
    assert [str(p) for p in e.value.problems] == [
        "site/object_defs/roles.yaml:6:51: unknown action 'confrim_payment' of 'payment' "
        "(did you mean 'confirm_payment'?) (at roles.cashier.permissions.payment.actions[0])"
    ]
    assert not (tmp_path / "never.db").exists()


def test_check_prints_a_phantom_grant_with_file_line_and_hint_and_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "site" / "object_defs").mkdir(parents=True)
    (tmp_path / "site" / "object_defs" / "roles.yaml").write_text(CASHIER, encoding="utf-8")
    monkeypatch.setenv("OBJECTPLATFORM_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("OBJECTPLATFORM_CUSTOM_METADATA", "site")
    for name in ("DATABASE_URL", "REDIS_URL", "TEMPLATES"):
        monkeypatch.delenv(f"OBJECTPLATFORM_{name}", raising=False)
    assert main(["check"]) == 1
    assert capsys.readouterr() == (
        "",
        "site/object_defs/roles.yaml:6:51: unknown action 'confrim_payment' of 'payment' "
        "(did you mean 'confirm_payment'?) (at roles.cashier.permissions.payment.actions[0])\n"
        "1 problem in the metadata\n",
    )


def test_check_passes_the_shipped_metadata(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("OBJECTPLATFORM_INSTANCE_PATH", str(tmp_path))
    for name in ("DATABASE_URL", "REDIS_URL", "TEMPLATES", "CUSTOM_METADATA"):
        monkeypatch.delenv(f"OBJECTPLATFORM_{name}", raising=False)
    assert main(["check"]) == 0
    assert capsys.readouterr() == (
        "ok: 28 objects, 24 picklists, 9 roles, 12 flows, 24 reports (layers: base, app crm)\n", "")
