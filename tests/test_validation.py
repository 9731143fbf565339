"""Record validation: every field type converts to its exact record form, every error has its exact message."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from marshmallow import ValidationError, fields
from support import CRM_LAYERS

from objectplatform.metadata import default_layers, load_metadata
from objectplatform.metadata.fieldtypes import FIELD_TYPES
from objectplatform.runtime import passwords
from objectplatform.runtime.errors import ValidationFailed
from objectplatform.runtime.fieldtypes.text import Text
from objectplatform.runtime.passwords import hash_password, verify_password
from objectplatform.runtime.validation import RecordValidator, build_validators

ROOT = Path(__file__).resolve().parent.parent

SPECIMEN = """\
kind: picklist
name: colour
label: {zh: 颜色, en: Colour}
options:
  - {value: red, label: {zh: 红, en: Red}}
  - {value: green, label: {zh: 绿, en: Green}}
  - {value: blue, label: {zh: 蓝, en: Blue}, active: false}
---
kind: object
name: specimen
label: {zh: 样本, en: Specimen}
title_field: title
fields:
  title:       {type: text, label: {zh: 标题, en: Title}, required: true, max_length: 10}
  notes:       {type: long_text, label: {zh: 备注, en: Notes}}
  email:       {type: email, label: {zh: 邮箱, en: Email}}
  phone:       {type: phone, label: {zh: 电话, en: Phone}}
  website:     {type: url, label: {zh: 网站, en: Website}}
  count:       {type: integer, label: {zh: 数量, en: Count}, min: 1, max: 10}
  weight:      {type: number, label: {zh: 重量, en: Weight}, precision: 6, scale: 3, min: 0}
  price:       {type: currency, label: {zh: 价格, en: Price}}
  share:       {type: percent, label: {zh: 占比, en: Share}}
  active:      {type: boolean, label: {zh: 启用, en: Active}, default: true}
  due:         {type: date, label: {zh: 到期日, en: Due}}
  seen_at:     {type: datetime, label: {zh: 见到时间, en: Seen at}}
  colour:      {type: picklist, picklist: colour, label: {zh: 颜色, en: Colour}, default: red}
  tags:        {type: multi_picklist, label: {zh: 标签, en: Tags},
                options: [{value: a, label: {zh: 甲, en: A}}, {value: b, label: {zh: 乙, en: B}}]}
  parent:      {type: lookup, to: specimen, label: {zh: 上级, en: Parent}}
  keeper:      {type: user, label: {zh: 保管人, en: Keeper}}
  team:        {type: department, label: {zh: 部门, en: Team}}
  watchers:    {type: multi_user, label: {zh: 关注人, en: Watchers}}
  teams:       {type: multi_department, label: {zh: 部门们, en: Teams}}
  code:        {type: auto_number, pattern: "S-{0000}", label: {zh: 编号, en: Code}}
  double:      {type: formula, expression: "count * 2", result_type: integer, label: {zh: 双倍, en: Double}}
  line_total:  {type: rollup, function: sum, child: specimen_line, field: amount, label: {zh: 合计, en: Total}}
  place:       {type: geolocation, label: {zh: 位置, en: Place}}
  file:        {type: attachment, label: {zh: 文件, en: File}}
  secret:      {type: password, label: {zh: 密码, en: Secret}}
  checked_at:  {type: datetime, label: {zh: 检查时间, en: Checked at}, read_only: true, required: true}
validation_rules:
  - name: seen_after_due
    condition: "seen_at and due and seen_at > due"
    field: seen_at
    message: {zh: 见到时间晚于到期日, en: Seen after the due date}
  - name: dear_and_inactive
    condition: "price > 100 and not active"
    message: {zh: 贵的必须启用, en: An expensive specimen must be active}
  - name: stale
    condition: "days_since(seen_at) > 30"
    field: seen_at
    message: {zh: 太久没见, en: Not seen for over 30 days}
---
kind: object
name: specimen_line
label: {zh: 样本行, en: Specimen line}
fields:
  specimen: {type: master_detail, to: specimen, label: {zh: 样本, en: Specimen}, required: true}
  amount:   {type: currency, label: {zh: 金额, en: Amount}}
---
kind: object
name: user
label: {zh: 用户, en: User}
fields:
  username: {type: text, label: {zh: 用户名, en: Username}, required: true}
---
kind: object
name: department
label: {zh: 部门, en: Department}
fields:
  name: {type: text, label: {zh: 名称, en: Name}, required: true}
"""

STORED_FILE = {"name": "报价单.pdf", "path": "files/2024/05/ab12.pdf", "size": 2048, "content_type": "application/pdf"}
UPLOAD = {
    "filename": "photo.jpg",
    "content_base64": base64.b64encode(b"\xff\xd8jpeg").decode(),
    "content_type": "image/jpeg",
}


def write_layer(folder: Path, text: str) -> Path:
    (folder / "object_defs").mkdir(parents=True)
    (folder / "object_defs" / "specimen.yaml").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def specimen(tmp_path_factory) -> RecordValidator:
    metadata = load_metadata([write_layer(tmp_path_factory.mktemp("layer"), SPECIMEN)])
    return build_validators(metadata)["specimen"]


@pytest.fixture(scope="module")
def crm() -> dict[str, RecordValidator]:
    return build_validators(load_metadata(default_layers(ROOT, [], None, CRM_LAYERS)))


def errors_of(validator: RecordValidator, data: dict, **options) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as caught:
        validator.load(data, **options)
    return caught.value.fields


# ------------------------------------------------------------------------------- conversions


@pytest.mark.parametrize(
    ("field", "given", "expected"),
    [
        ("title", "  张三 ", "张三"),
        ("notes", "第一行\n第二行", "第一行\n第二行"),
        ("email", " zhang@example.com ", "zhang@example.com"),
        ("phone", "13800138000", "13800138000"),
        ("phone", "+86 (10) 1234-5678", "+86 (10) 1234-5678"),
        ("website", "https://example.com/about?x=1", "https://example.com/about?x=1"),
        ("website", "http://intranet:8080/", "http://intranet:8080/"),
        ("count", 7, 7),
        ("count", "7", 7),
        ("count", 7.0, 7),
        ("count", Decimal("3"), 3),
        ("weight", "1.2345", Decimal("1.235")),
        ("weight", 0.1, Decimal("0.100")),
        ("weight", 2, Decimal("2.000")),
        ("weight", "999.9994", Decimal("999.999")),
        ("price", "1234.565", Decimal("1234.57")),
        ("price", -0.005, Decimal("-0.01")),
        ("price", Decimal("10"), Decimal("10.00")),
        ("share", "12.5", Decimal("12.50")),
        ("share", 100, Decimal("100.00")),
        ("active", True, True),
        ("active", False, False),
        ("active", "true", True),
        ("active", "FALSE", False),
        ("active", "Yes", True),
        ("active", "no", False),
        ("active", "1", True),
        ("active", 0, False),
        ("due", "2024-02-29", date(2024, 2, 29)),
        ("due", date(2024, 5, 1), date(2024, 5, 1)),
        ("seen_at", "2024-05-01T09:30:00+08:00", datetime(2024, 5, 1, 1, 30, tzinfo=UTC)),
        ("seen_at", "2024-05-01T09:30:00Z", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        ("seen_at", "2024-05-01 09:30:15.250000", datetime(2024, 5, 1, 9, 30, 15, 250000, tzinfo=UTC)),
        ("seen_at", datetime(2024, 5, 1, 9, 30), datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        ("colour", "green", "green"),
        ("tags", ["b", "a", "b"], ["b", "a"]),
        ("tags", "a, b", ["a", "b"]),
        ("tags", [], []),
        ("parent", 12, "12"),
        ("parent", "12", "12"),
        ("keeper", "5", "5"),
        ("team", 3, "3"),
        ("owner", "7", "7"),
        ("watchers", [1, "2", 2], ["1", "2"]),
        ("watchers", "1, 2", ["1", "2"]),
        ("teams", ["9"], ["9"]),
        ("place", {"lat": 39.9, "lng": 116.4}, {"lat": 39.9, "lng": 116.4}),
        ("place", {"lat": "31.23", "lng": Decimal("121.47")}, {"lat": 31.23, "lng": 121.47}),
        ("place", "39.9, 116.4", {"lat": 39.9, "lng": 116.4}),
        ("file", STORED_FILE, STORED_FILE),
        ("file", UPLOAD, UPLOAD),
        ("count", "", None),
        ("due", "", None),
        ("notes", "   ", None),
        ("tags", None, None),
    ],
)
def test_every_field_type_converts_to_its_record_form(specimen, field, given, expected):
    value = specimen.load({field: given}, partial=True)[field]
    assert repr(value) == repr(expected)


def test_the_password_is_returned_hashed_and_never_stripped(specimen):
    hashed = specimen.load({"secret": " 密码 with spaces "}, partial=True)["secret"]
    assert hashed.startswith(f"scrypt${passwords.N}$8$1$")
    assert verify_password(" 密码 with spaces ", hashed)
    assert not verify_password("密码 with spaces", hashed)


# ------------------------------------------------------------------------------------ errors

FILE_SHAPE = (
    "must be a stored file {name, path, size, content_type} or an upload {filename, content_base64, content_type}"
)


@pytest.mark.parametrize(
    ("field", "given", "messages"),
    [
        ("title", "x" * 11, ["must be at most 10 characters"]),
        ("title", 5, ["must be text"]),
        ("title", "a\x00b", ["must not contain NUL characters"]),
        ("email", "zhang@", ["not a valid email address"]),
        ("phone", "1234", ["not a valid phone number"]),
        ("phone", "138-0013-800a", ["not a valid phone number"]),
        ("phone", "1" * 21, ["not a valid phone number"]),
        ("website", "ftp://example.com", ["not a valid URL (use http:// or https://)"]),
        ("website", "example.com", ["not a valid URL (use http:// or https://)"]),
        ("count", "1.5", ["must be a whole number"]),
        ("count", 1.5, ["must be a whole number"]),
        ("count", True, ["must be a whole number"]),
        ("count", 0, ["must be between 1 and 10"]),
        ("count", "11", ["must be between 1 and 10"]),
        ("count", 10**18, ["must have at most 18 digits"]),
        ("weight", "abc", ["must be a number"]),
        ("weight", "NaN", ["must be a number"]),
        ("weight", "Infinity", ["must be a number"]),
        ("weight", [1], ["must be a number"]),
        ("weight", False, ["must be a number"]),
        ("weight", "-0.5", ["must be at least 0"]),
        ("weight", "1000", ["must have at most 3 digits before the decimal point"]),
        ("weight", "999.9996", ["must have at most 3 digits before the decimal point"]),
        ("share", "100.01", ["must be between 0 and 100"]),
        ("share", -1, ["must be between 0 and 100"]),
        ("active", "maybe", ["must be true or false"]),
        ("active", 2, ["must be true or false"]),
        ("due", "2024-02-30", ["not a valid date (use YYYY-MM-DD)"]),
        ("due", "01/05/2024", ["not a valid date (use YYYY-MM-DD)"]),
        ("due", datetime(2024, 5, 1, 9, 30), ["not a valid date (use YYYY-MM-DD)"]),
        ("seen_at", "yesterday", ["not a valid date and time (use ISO 8601, e.g. 2024-05-01T09:30:00+08:00)"]),
        ("seen_at", 1714550400, ["not a valid date and time (use ISO 8601, e.g. 2024-05-01T09:30:00+08:00)"]),
        ("colour", "blue", ["'blue' is not one of: red, green"]),
        ("colour", "purple", ["'purple' is not one of: red, green"]),
        ("tags", ["a", "x", "y"], ["'x' is not one of: a, b", "'y' is not one of: a, b"]),
        ("tags", 5, ["must be a list of values"]),
        ("parent", "abc", ["must be a record id (a positive whole number)"]),
        ("parent", 0, ["must be a record id (a positive whole number)"]),
        ("parent", -3, ["must be a record id (a positive whole number)"]),
        ("parent", True, ["must be a record id (a positive whole number)"]),
        ("owner", "admin", ["must be a record id (a positive whole number)"]),
        ("watchers", ["1", "x", "-2"], ["'x' is not a record id", "'-2' is not a record id"]),
        ("teams", 7, ["must be a list of record ids"]),
        (
            "place",
            {"lat": 91, "lng": -181},
            ["latitude must be between -90 and 90", "longitude must be between -180 and 180"],
        ),
        ("place", "north", ['must be {"lat": ..., "lng": ...} or "lat,lng"']),
        ("place", {"lat": 39.9}, ['must be {"lat": ..., "lng": ...} or "lat,lng"']),
        ("place", {"lat": "nan", "lng": 1}, ['must be {"lat": ..., "lng": ...} or "lat,lng"']),
        ("file", {"name": "a.pdf"}, [FILE_SHAPE]),
        ("file", {**STORED_FILE, "size": "2048"}, [FILE_SHAPE]),
        ("file", {**UPLOAD, "extra": 1}, [FILE_SHAPE]),
        ("file", {**STORED_FILE, "path": "../../etc/passwd"}, ["path must be a relative path inside the file store"]),
        ("file", {**STORED_FILE, "path": "/etc/passwd"}, ["path must be a relative path inside the file store"]),
        ("file", {**UPLOAD, "content_base64": "not base64!"}, ["content_base64 is not valid base64"]),
        ("file", {**UPLOAD, "content_base64": "5Lit5paH中文"}, ["content_base64 is not valid base64"]),
        ("secret", "short", ["must be between 8 and 1024 characters"]),
    ],
)
def test_each_invalid_value_gets_its_message(specimen, field, given, messages):
    assert errors_of(specimen, {field: given}, partial=True) == {field: messages}


def test_an_upload_over_20_mb_is_refused(specimen):
    content = base64.b64encode(bytes(20 * 1024 * 1024 + 1)).decode()
    assert errors_of(specimen, {"file": {"filename": "big.bin", "content_base64": content}}, partial=True) == {
        "file": ["must be at most 20 MB"]
    }
    exactly = base64.b64encode(bytes(20 * 1024 * 1024)).decode()
    assert specimen.load({"file": {"filename": "ok.bin", "content_base64": exactly}}, partial=True) == {
        "file": {"filename": "ok.bin", "content_base64": exactly}
    }


def test_every_error_is_reported_at_once(specimen):
    with pytest.raises(ValidationFailed) as caught:
        specimen.load(
            {
                "titel": "x",
                "zzz": 1,
                "code": "S-0001",
                "double": 2,
                "line_total": 5,
                "id": "1",
                "created_at": "2024-05-01T00:00:00Z",
                "version": 3,
                "checked_at": "2024-05-01T00:00:00Z",
                "count": "many",
                "colour": "blue",
                "active": None,
            }
        )
    assert caught.value.fields == {
        "titel": ["unknown field (did you mean 'title'?)"],
        "zzz": ["unknown field"],
        "code": ["is computed and cannot be set"],
        "double": ["is computed and cannot be set"],
        "line_total": ["is computed and cannot be set"],
        "id": ["is set by the system"],
        "created_at": ["is set by the system"],
        "version": ["is set by the system"],
        "checked_at": ["is read-only"],
        "count": ["must be a whole number"],
        "colour": ["'blue' is not one of: red, green"],
        "title": ["is required"],
    }
    assert caught.value.message == "12 field errors"
    assert caught.value.as_dict()["error"]["code"] == "validation_failed"


# ---------------------------------------------------------------------- required and defaults


def test_a_create_gets_the_defaults_of_missing_fields(specimen):
    assert specimen.load({"title": "样本"}) == {"title": "样本", "active": True, "colour": "red"}
    assert specimen.load({"title": "样本", "active": "no", "colour": None}) == {
        "title": "样本",
        "active": False,
        "colour": None,
    }


def test_a_required_field_must_be_given_and_not_empty(specimen):
    assert errors_of(specimen, {}) == {"title": ["is required"]}
    assert errors_of(specimen, {"title": None}) == {"title": ["is required"]}
    assert errors_of(specimen, {"title": " "}) == {"title": ["is required"]}


def test_a_read_only_required_field_is_required_only_when_the_system_writes(specimen):
    assert errors_of(specimen, {"title": "x"}, system=True) == {"checked_at": ["is required"]}
    assert specimen.load({"title": "x", "checked_at": "2024-05-01T08:00:00+08:00"}, system=True) == {
        "title": "x",
        "checked_at": datetime(2024, 5, 1, tzinfo=UTC),
        "active": True,
        "colour": "red",
    }


def test_a_partial_update_touches_only_the_given_fields(specimen):
    assert specimen.load({"count": "3"}, partial=True) == {"count": 3}
    assert specimen.load({}, partial=True) == {}
    assert errors_of(specimen, {"title": "", "count": 4}, partial=True) == {"title": ["is required"]}


def test_a_required_multi_value_field_may_not_be_emptied(tmp_path):
    text = SPECIMEN.replace("label: {zh: 标签, en: Tags},", "label: {zh: 标签, en: Tags}, required: true,")
    validator = build_validators(load_metadata([write_layer(tmp_path, text)]))["specimen"]
    assert errors_of(validator, {"tags": []}, partial=True) == {"tags": ["is required"]}
    assert errors_of(validator, {"tags": " , "}, partial=True) == {"tags": ["is required"]}
    assert validator.load({"tags": "b"}, partial=True) == {"tags": ["b"]}


def test_defaults_are_fresh_copies(tmp_path):
    text = SPECIMEN.replace("label: {zh: 标签, en: Tags},", "label: {zh: 标签, en: Tags}, default: [a],")
    validator = build_validators(load_metadata([write_layer(tmp_path, text)]))["specimen"]
    first = validator.load({"title": "x"})
    first["tags"].append("b")
    assert validator.load({"title": "y"})["tags"] == ["a"]


def test_a_default_its_field_refuses_is_a_definition_error(tmp_path):
    text = SPECIMEN.replace("default: red", "default: blue")
    metadata = load_metadata([write_layer(tmp_path, text)])
    with pytest.raises(ValueError, match=r"^specimen.colour: default 'blue': 'blue' is not one of: red, green$"):
        build_validators(metadata)


# ------------------------------------------------------------------------ the shipped CRM


def test_a_lead_row_converts_as_the_api_and_imports_send_it(crm):
    row = {
        "name": " 张三 ",
        "company": "北京星辰科技有限公司",
        "mobile": "13800138000",
        "email": "",
        "source": "referral",
        "campaign": 12,
        "owner": "3",
        "description": "展会上交换名片",
    }
    assert crm["lead"].load(row) == {
        "name": "张三",
        "company": "北京星辰科技有限公司",
        "mobile": "13800138000",
        "email": None,
        "source": "referral",
        "campaign": "12",
        "owner": "3",
        "description": "展会上交换名片",
        "status": "pending",
    }


def test_an_order_line_needs_its_order_product_quantity_and_price(crm):
    assert errors_of(crm["order_line"], {}) == {
        name: ["is required"] for name in ("sales_order", "product", "quantity", "unit_price")
    }
    line = crm["order_line"].load({"sales_order": "1", "product": "2", "quantity": "3", "unit_price": "9.9"})
    assert line == {
        "sales_order": "1",
        "product": "2",
        "quantity": Decimal("3.00"),
        "unit_price": Decimal("9.90"),
        "discount": Decimal("0.00"),
    }


def test_the_lead_rule_needs_a_phone_a_mobile_or_an_email(crm):
    lead = crm["lead"]
    message = {"phone": ["Give a phone number, a mobile number or an email"]}
    assert lead.rule_errors({"name": "张三"}) == message
    assert lead.rule_errors({"name": "张三", "phone": None, "mobile": "", "email": None}) == message
    assert lead.rule_errors({"name": "张三", "mobile": "13800138000"}) == {}
    assert lead.rule_errors({"name": "张三", "email": "zhang@example.com"}) == {}


def test_rules_evaluate_record_form_values(specimen):
    now = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
    record = specimen.load(
        {
            "title": "x",
            "due": "2024-05-01",
            "seen_at": "2024-05-02T09:00:00+08:00",
            "price": "100.01",
            "active": "false",
        }
    )
    assert specimen.rule_errors(record, now) == {
        "seen_at": ["Seen after the due date"],
        "__all__": ["An expensive specimen must be active"],
    }
    record = specimen.load(
        {
            "title": "x",
            "due": "2024-05-01",
            "seen_at": "2024-05-01T23:00:00+08:00",
            "price": "100.00",
            "active": "false",
        }
    )
    assert specimen.rule_errors(record, now) == {}
    assert specimen.rule_errors(record, datetime(2024, 6, 1, tzinfo=UTC)) == {"seen_at": ["Not seen for over 30 days"]}
    assert specimen.rule_errors(record, datetime(2024, 6, 1)) == {"seen_at": ["Not seen for over 30 days"]}
    assert specimen.rule_errors(record) == {"seen_at": ["Not seen for over 30 days"]}


def test_every_shipped_object_gets_a_validator_with_its_writable_fields(crm):
    assert set(crm) == set(load_metadata(default_layers(ROOT, [], None, CRM_LAYERS)).objects)
    assert set(crm["lead"].fields) >= {"owner", "name", "status", "converted_at"}
    assert "password" in crm["user"].fields
    assert crm["lead"].schema.__class__.__name__ == "lead_record"


# ------------------------------------------------------------------------------ extension


def test_an_industry_type_registers_its_validator_like_the_built_ins(tmp_path, monkeypatch):
    class Sku(fields.String):
        def _deserialize(self, value, attr, data, **kwargs):
            value = super()._deserialize(value, attr, data, **kwargs).upper()
            if not value.startswith("SKU-"):
                raise ValidationError("must start with SKU-")
            return value

    class SkuType(Text):
        def validator(self, f, md):
            return Sku()

    monkeypatch.setitem(FIELD_TYPES, "sku", SkuType("sku", "text"))
    text = SPECIMEN.replace("  notes:", "  sku:         {type: sku, label: {zh: 货号, en: SKU}}\n  notes:")
    validator = build_validators(load_metadata([write_layer(tmp_path, text)]))["specimen"]
    assert validator.load({"sku": " sku-001 "}, partial=True) == {"sku": "SKU-001"}
    assert errors_of(validator, {"sku": "001"}, partial=True) == {"sku": ["must start with SKU-"]}


# ------------------------------------------------------------------------------ passwords


def test_password_hashes_are_salted_and_verify():
    first, second = hash_password("s3cret-口令"), hash_password("s3cret-口令")
    assert first != second
    scheme, n, r, p, salt, digest = first.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(passwords.N), "8", "1")
    assert len(base64.b64decode(salt)) == 16
    assert verify_password("s3cret-口令", first) and verify_password("s3cret-口令", second)
    assert not verify_password("s3cret", first)


def test_the_work_factor_is_16384_unless_configured():
    assert passwords.cost_from({}) == 16384
    assert passwords.cost_from({"OBJECTPLATFORM_PASSWORD_COST": "65536"}) == 65536
    for wrong in ("1000", "512", "abc", str(2**21)):
        with pytest.raises(ValueError) as e:
            passwords.cost_from({"OBJECTPLATFORM_PASSWORD_COST": wrong})
        assert str(e.value) == ("OBJECTPLATFORM_PASSWORD_COST must be a power of two from 1024 to 1048576, "
                                f"not {wrong!r}")
    salt = b"0123456789abcdef"  # a hash made at another factor keeps verifying
    digest = hashlib.scrypt(b"x", salt=salt, n=16384, r=8, p=1, maxmem=256 * 16384 * 8, dklen=32)
    stored = "$".join(["scrypt", "16384", "8", "1", *(base64.b64encode(b).decode() for b in (salt, digest))])
    assert verify_password("x", stored) and not verify_password("y", stored)


@pytest.mark.parametrize(
    "hashed",
    [
        "",
        "plain",
        "scrypt$16384$8$1$!!$!!",
        "bcrypt$16384$8$1$AA==$AA==",
        "scrypt$3$8$1$AA==$AA==",
        "scrypt$16384$8$1$AA==",
    ],
)
def test_a_malformed_hash_never_verifies(hashed):
    assert not verify_password("anything", hashed)
