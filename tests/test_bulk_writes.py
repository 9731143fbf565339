"""The set-based paths of create_many and imports on SQLite and PostgreSQL: a batch validated column by column
gives what validating each row alone gives; rows written by COPY / the driver's executemany read back as a single
create writes them; a unique value taken between the check and the write is the field error the check gives."""

from __future__ import annotations

import base64
from datetime import datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from objectplatform.runtime.errors import ValidationFailed
from objectplatform.runtime.records.bulk import insert_columns

BATCH = [
    {"name": " 王伟 ", "company": "华东机械", "mobile": "13800000001", "source": "expo", "status": "pending"},
    {"name": "李娜", "source": "nope", "phone": "010-12340001"},  # not an option
    {"company": "没有姓名", "phone": "010-56780001"},  # required name missing
    {"name": "张敏", "email": "", "source": "", "industry": "finance", "phone": "021-55550001"},  # empty cells
    {"name": "赵磊", "phone": "020-10000001", "last_followed_at": "2026-01-01T00:00:00Z"},  # read-only field
    {"name": "钱勇", "phone": "020-10000002", "colour": "red"},  # no such field
    {"name": "孙丽", "phone": "020-10000003", "owner": "abc"},  # not a record id
    {"name": "周杰", "company": "华东机械", "source": "expo", "email": "zj@example.com"},
]


def test_a_batch_validated_column_by_column_is_each_row_validated_alone(records):
    validator = records.validators["lead"]
    many = validator.load_many(BATCH)
    alone = []
    for row in BATCH:
        try:
            alone.append(validator.load(row))
        except ValidationFailed:
            alone.append(None)
    assert many == alone
    assert [values is not None for values in many] == [True, False, False, True, False, False, False, True]
    assert many[0] == {"name": "王伟", "company": "华东机械", "mobile": "13800000001", "source": "expo",
                       "status": "pending"}
    assert many[3] == {"name": "张敏", "email": None, "source": None, "industry": "finance", "phone": "021-55550001",
                       "status": "pending"}
    system = validator.load_many(BATCH, system=True)  # the system may set a read-only field
    assert system[4] == validator.load(BATCH[4], system=True)
    assert system[4]["last_followed_at"] is not None


def test_create_many_reports_the_row_errors_a_single_create_reports(records):
    result = records.create_many("lead", BATCH)
    assert [(e.index, sorted(e.fields)) for e in result.errors] == [
        (1, ["source"]), (2, ["name"]), (4, ["last_followed_at"]), (5, ["colour"]), (6, ["owner"])]
    for error in result.errors:
        with pytest.raises(ValidationFailed) as alone:
            records.create("lead", BATCH[error.index])
        assert {k: [str(m) for m in v] for k, v in alone.value.fields.items() if k in error.fields} == {
            k: [str(m) for m in v] for k, v in error.fields.items()}
    assert [records.get("lead", i)["name"] for i in result.created] == ["王伟", "张敏", "周杰"]


def test_rows_written_in_bulk_read_back_as_a_single_create_writes_them(platform, records):
    image = {"filename": "a.png", "content_base64": base64.b64encode(b"\x89PNG").decode(), "content_type": "image/png"}
    values = {"name": "工业泵", "category": "hardware", "price": "1234.50", "active": "false", "unit": "台",
              "image": image}
    one = records.create("product", {**values, "code": "P-1"}, user=None)
    result = records.create_many("product", [{**values, "code": "P-2"}, {"name": "阀门", "code": "P-3",
                                                                         "price": "0.05"}])
    assert not result.errors
    two, three = (records.get("product", i) for i in result.created)
    ignored = {"id", "code", "created_at", "updated_at", "image"}
    assert {k: v for k, v in two.items() if k not in ignored} == {k: v for k, v in one.items() if k not in ignored}
    assert (two["price"], two["active"], two["image"]["name"], two["image"]["size"]) == (
        Decimal("1234.50"), False, "a.png", 4)
    assert (platform.settings.attachments_path / two["image"]["path"]).read_bytes() == b"\x89PNG"
    assert (three["price"], three["active"], three["category"]) == (Decimal("0.05"), True, None)
    assert two["created_at"] == two["updated_at"] and two["created_at"].tzinfo is not None
    assert [e["change"] for e in records.history("product", two["id"])] == ["create"]


def test_a_unique_value_taken_before_the_write_is_the_field_error_of_the_check(platform, records):
    records.create("product", {"name": "工业泵", "code": "P-1", "price": "1"})
    ot = platform.schema["product"]
    row = {column.name: None for column in ot.table.columns if column.name != "id"}
    now = datetime(2026, 1, 1)
    row.update(name="阀门", code="P-1", price=Decimal("2"), active=True, version=1, created_at=now, updated_at=now)
    with pytest.raises(sa.exc.IntegrityError) as refused, platform.engine.begin() as conn:
        insert_columns(conn, ot.table, {name: [value] for name, value in row.items()}, 1)
    error = records._integrity(refused.value, ot)
    assert {k: [str(m) for m in v] for k, v in error.fields.items()} == {"code": ["already used by another product"]}
    with platform.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ot.table)).scalar_one() == 1
