"""Every field type round-trips through a real database (SQLite and PostgreSQL): written through the
records service as the API sends values, read back by get and list in its exact record form, and
changed again; the password is stored hashed and never read back."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from test_validation import SPECIMEN, write_layer

from objectplatform.metadata import load_metadata
from objectplatform.runtime.passwords import verify_password


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    return load_metadata([write_layer(tmp_path_factory.mktemp("layer"), SPECIMEN)])


def test_every_field_type_round_trips(platform):
    records = platform.records
    keeper = records.create("user", {"username": "wang"}, system=True)["id"]
    team = records.create("department", {"name": "销售部"}, system=True)["id"]
    seen = datetime.now(UTC).replace(microsecond=0)
    given = {
        "title": "样本一", "notes": "多行\n文本", "email": "a@example.com", "phone": "+86 10 8888 0000",
        "website": "https://example.com/x?y=1", "count": "3", "weight": "12.345", "price": "99.99", "share": "12.5",
        "active": False, "due": "2030-01-31", "seen_at": seen.astimezone().isoformat(), "colour": "green",
        "tags": ["a", "b"], "keeper": keeper, "team": team, "watchers": [keeper], "teams": [team],
        "place": {"lat": 39.9042, "lng": 116.4074},
        "file": {"filename": "报价.pdf", "content_base64": base64.b64encode(b"%PDF-1").decode(),
                 "content_type": "application/pdf"},
        "secret": "s3cret-pass", "checked_at": seen.isoformat(),
        "specimen_line": [{"amount": "10.50"}, {"amount": "0.25"}],
    }
    created = records.create("specimen", given, user=keeper, system=True)
    stored_file = created["file"]
    expected = {
        "title": "样本一", "notes": "多行\n文本", "email": "a@example.com", "phone": "+86 10 8888 0000",
        "website": "https://example.com/x?y=1", "count": 3, "weight": Decimal("12.345"), "price": Decimal("99.99"),
        "share": Decimal("12.50"), "active": False, "due": date(2030, 1, 31), "seen_at": seen, "colour": "green",
        "tags": ["a", "b"], "parent": None, "keeper": keeper, "team": team, "watchers": [keeper], "teams": [team],
        "code": "S-0001", "line_total": Decimal("10.75"), "place": {"lat": 39.9042, "lng": 116.4074},
        "file": {"name": "报价.pdf", "path": stored_file["path"], "size": 6, "content_type": "application/pdf"},
        "checked_at": seen, "double": 6,
    }
    got = records.get("specimen", created["id"])
    assert {k: got[k] for k in expected} == expected
    assert "secret" not in got
    assert [line["amount"] for line in got["specimen_line"]] == [Decimal("10.50"), Decimal("0.25")]
    assert (platform.settings.attachments_path / stored_file["path"]).read_bytes() == b"%PDF-1"
    listed = records.list("specimen").items[0]
    assert {k: listed[k] for k in expected} == expected

    table = platform.schema["specimen"].table
    with platform.engine.connect() as conn:
        hashed = conn.execute(sa.select(table.c.secret)).scalar_one()
    assert hashed != "s3cret-pass" and verify_password("s3cret-pass", hashed)

    parent = records.create("specimen", {"title": "上级", "checked_at": seen.isoformat()}, system=True)["id"]
    changed = records.update("specimen", created["id"], {
        "count": 4, "weight": "0.001", "active": True, "due": None, "tags": [], "parent": parent,
        "place": "31.2304,121.4737", "watchers": [], "specimen_line": [{"amount": "1"}]}, version=1)
    assert {k: changed[k] for k in ("count", "double", "weight", "active", "due", "tags", "parent", "place",
                                    "watchers", "line_total", "version")} == {
        "count": 4, "double": 8, "weight": Decimal("0.001"), "active": True, "due": None, "tags": [],
        "parent": parent, "place": {"lat": 31.2304, "lng": 121.4737}, "watchers": [], "line_total": Decimal("1.00"),
        "version": 2}
    assert records.get("specimen", created["id"]) == changed
