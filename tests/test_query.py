"""The list query: every filter operator, q search, sort, keyset pages and bad parameters, on both databases."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import CRM_LAYERS

from objectplatform.metadata import default_layers, load_metadata
from objectplatform.runtime.errors import BadRequest
from objectplatform.runtime.records.query import list_page
from objectplatform.runtime.storage.convert import to_row
from objectplatform.runtime.storage.engine import create_engine
from objectplatform.runtime.storage.tables import Schema

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
EXTENSION = """\
kind: object_extension
object: opportunity
fields:
  amount_k: {type: formula, expression: "amount / 1000", result_type: number, label: {zh: 金额（千元）, en: Amount (k)}}
  overdue_days: {type: formula, expression: "days_since(expected_close_date)", result_type: integer,
                 label: {zh: 逾期天数, en: Days overdue}}
"""
# name, company, status, campaign, owner, last_followed_at (hours after T0), created_at (hours after T0)
LEADS = [
    ("张三", "华为技术有限公司", "pending", "1", "7", None, 0),
    ("李四", "Huawei Cloud", "following", "2", "7", 5, 1),
    ("王五", "阿里巴巴", "following", None, "8", 3, 2),
    ("Alice", "ACME 50%_off", "converted", "1", None, 3, 3),
    ("bob", "Acme50Xoff", "pending", None, "8", None, 4),
    ("Carol", None, "invalid", "2", "7", 10, 4),
]
# name, price, active
PRODUCTS = [("手机", "4999.00", True), ("平板", "2999.50", False), ("耳机", None, True), ("Watch", "1999.99", None)]
# username, roles, active
USERS = [("li", ["admin", "sales_rep"], True), ("wang", ["sales_rep"], True), ("zhao", [], False),
         ("chen", None, None)]
# name, employees
ACCOUNTS = [("华为", 200000), ("小店", 3), ("无名", None)]


def opportunities() -> list[dict]:
    """23 deals with repeated and missing amounts and close dates, so every sort has ties and NULLs."""
    return [
        {
            "name": f"商机{i % 6}",
            "amount": [None, Decimal("100.00"), Decimal("250.50"), Decimal("100.00"), Decimal("1000.00")][i % 5],
            "status": ["open", "won", "lost"][i % 3],
            "expected_close_date": None if i % 4 == 0 else date(2024, 5, 1 + (i // 2) % 3),
            "account": str(1 + i % 2),
        }
        for i in range(23)
    ]


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    (site / "object_defs").mkdir()
    (site / "object_defs" / "opportunity_ext.yaml").write_text(EXTENSION, encoding="utf-8")
    return Schema(load_metadata(default_layers(ROOT, [], site, CRM_LAYERS)))


def insert(conn, ot, records: list[dict], hours: list[int] | None = None) -> None:
    """Insert records in order (ids 1, 2, ...), created `hours[i]` hours after T0 (default: i)."""
    rows = []
    for i, record in enumerate(records):
        at = (T0 + timedelta(hours=hours[i] if hours else i)).replace(tzinfo=None)
        rows.append(to_row(ot, record) | {"created_at": at, "updated_at": at})
    conn.execute(ot.table.insert(), rows)


@pytest.fixture(scope="module")
def rows(module_database_url, schema):
    """A database of each backend holding the rows below, made once for the module."""
    engine = create_engine(module_database_url)
    schema.sa_metadata.create_all(engine)
    with engine.begin() as connection:
        insert(connection, schema["campaign"], [{"name": "春季展会"}, {"name": "线上推广"}])  # campaigns 1 and 2
        insert(connection, schema["lead"], [
            {"name": n, "company": c, "status": s, "campaign": cp, "owner": o,
             "last_followed_at": None if f is None else T0 + timedelta(hours=f)}
            for n, c, s, cp, o, f, _ in LEADS
        ], [h for *_, h in LEADS])
        insert(connection, schema["product"], [
            {"name": n, "price": None if p is None else Decimal(p), "active": a} for n, p, a in PRODUCTS
        ])
        insert(connection, schema["user"], [
            {"username": u, "display_name": u.title(), "roles": r, "active": a} for u, r, a in USERS
        ])
        insert(connection, schema["account"], [{"name": n, "employees": e} for n, e in ACCOUNTS])
        insert(connection, schema["opportunity"], opportunities())
        for summary in (s for summaries in schema.summaries.values() for s in summaries):  # written past the
            summary.fill(connection, schema[summary.object].table)  # records service: the summaries filled again
    yield engine
    engine.dispose()


@pytest.fixture
def conn(rows):
    """A transaction on the module's rows, rolled back after the test."""
    with rows.connect() as connection:
        connection.begin()
        yield connection


def ids(conn, schema, obj, **kwargs) -> list[str]:
    items, next_cursor, total, _ = list_page(conn, schema, obj, limit=500, **kwargs)
    assert next_cursor is None and total == len(items)
    return [item["id"] for item in items]


@pytest.mark.parametrize(
    "filters, expected",
    [
        ({}, ["6", "5", "4", "3", "2", "1"]),  # -created_at, then -id between the two leads of hour 4
        ({"status": "pending"}, ["5", "1"]),
        ({"status__ne": "pending"}, ["6", "4", "3", "2"]),
        ({"status__in": "following,invalid"}, ["6", "3", "2"]),
        ({"status__isnull": "true"}, []),
        ({"name": "bob"}, ["5"]),
        ({"name": "Bob"}, []),
        ({"name__gt": "Carol"}, ["5", "3", "2", "1"]),  # code-point order: upper < lower < CJK
        ({"name__lte": "Carol"}, ["6", "4"]),
        ({"name__gte": "李"}, ["3", "2"]),  # 张 U+5F20 < 李 U+674E < 王 U+738B
        ({"name__lt": "bob"}, ["6", "4"]),
        ({"company__contains": "huawei"}, ["2"]),
        ({"company__contains": "华为"}, ["1"]),
        ({"company__contains": "50%_"}, ["4"]),  # % and _ are literal, so Acme50Xoff is not found
        ({"company__contains": "acme"}, ["5", "4"]),
        ({"company__isnull": "true"}, ["6"]),
        ({"company__isnull": "false"}, ["5", "4", "3", "2", "1"]),
        ({"campaign": "1"}, ["4", "1"]),
        ({"campaign__in": "1,2"}, ["6", "4", "2", "1"]),
        ({"campaign__ne": "1"}, ["6", "5", "3", "2"]),
        ({"campaign__isnull": "true"}, ["5", "3"]),
        ({"owner": "7"}, ["6", "2", "1"]),
        ({"owner__in": "8"}, ["5", "3"]),
        ({"owner__isnull": "1"}, ["4"]),
        ({"id__in": "2,4,99"}, ["4", "2"]),
        ({"id__gte": "5"}, ["6", "5"]),
        ({"version": "1"}, ["6", "5", "4", "3", "2", "1"]),
        ({"last_followed_at__gte": "2024-03-01T11:00:00Z"}, ["6", "4", "3", "2"]),
        ({"last_followed_at__gt": "2024-03-01T11:00:00+00:00"}, ["6", "2"]),
        ({"last_followed_at__lte": "2024-03-01T19:00:00+08:00"}, ["4", "3"]),
        ({"last_followed_at__lt": "2024-03-01T11:00:00"}, []),  # no offset: UTC
        ({"last_followed_at": "2024-03-01T13:00:00Z"}, ["2"]),
        ({"last_followed_at__isnull": "TRUE"}, ["5", "1"]),
        ({"created_at__lt": "2024-03-01T10:00:00"}, ["2", "1"]),
        ({"created_at__gte": "2024-03-01"}, ["6", "5", "4", "3", "2", "1"]),
        ({"status": "following", "owner": "8"}, ["3"]),
    ],
)
def test_lead_filters(conn, schema, filters, expected):
    assert ids(conn, schema, "lead", filters=filters) == expected


@pytest.mark.parametrize(
    "obj, filters, expected",
    [
        # products sort by name: Watch, 平板 (E5 B9), 手机 (E6 89), 耳机 (E8 80)
        ("product", {}, ["4", "2", "1", "3"]),
        ("product", {"price": "2999.5"}, ["2"]),
        ("product", {"price__gte": "2999.50"}, ["2", "1"]),
        ("product", {"price__gt": "2999.5"}, ["1"]),
        ("product", {"price__lt": "3000"}, ["4", "2"]),
        ("product", {"price__lte": "1999.99"}, ["4"]),
        ("product", {"price__in": "4999,1999.99"}, ["4", "1"]),
        ("product", {"price__ne": "4999"}, ["4", "2", "3"]),
        ("product", {"price__isnull": "true"}, ["3"]),
        ("product", {"active": "true"}, ["1", "3"]),
        ("product", {"active": "false"}, ["2"]),
        ("product", {"active__ne": "true"}, ["4", "2"]),
        ("product", {"active__in": "0,1"}, ["2", "1", "3"]),
        ("product", {"active__isnull": "true"}, ["4"]),
        ("account", {"employees__gte": "3"}, ["2", "1"]),
        ("account", {"employees": "200000"}, ["1"]),
        ("account", {"employees__lt": "-1"}, []),
        ("account", {"employees__isnull": "true"}, ["3"]),
        # users sort by username: chen, li, wang, zhao
        ("user", {"roles__contains": "sales_rep"}, ["1", "2"]),
        ("user", {"roles__contains": "admin"}, ["1"]),
        ("user", {"roles__contains": "sales"}, []),  # a whole value, not a substring
        ("user", {"roles__isnull": "true"}, ["4"]),
        # opportunities by id
        ("opportunity", {"expected_close_date": "2024-05-02", "amount": "100"}, ["4", "22"]),
        ("opportunity", {"expected_close_date__gte": "2024-05-03", "status": "lost"}, ["6", "12", "18"]),
        ("opportunity", {"expected_close_date__lt": "2024-05-02", "status": "won"}, ["2", "8", "14", "20"]),
        ("opportunity", {"expected_close_date__isnull": "true", "amount__gt": "0"}, ["5", "9", "13", "17"]),
        ("opportunity", {"amount_k__gte": "0.25"}, ["3", "5", "8", "10", "13", "15", "18", "20", "23"]),
        ("opportunity", {"amount_k": "1"}, ["5", "10", "15", "20"]),
        ("opportunity", {"amount_k__isnull": "true"}, ["1", "6", "11", "16", "21"]),
    ],
)
def test_filters_by_field_type(conn, schema, obj, filters, expected):
    assert ids(conn, schema, obj, filters=filters, sort="id" if obj == "opportunity" else None) == expected


def test_formulas_computed_on_read(conn, schema):
    items, _, _, _ = list_page(conn, schema, "opportunity", filters={"id__in": "1,10"}, sort="id",
                            now=datetime(2024, 5, 11, 12, tzinfo=UTC))
    assert [(i["id"], i["amount_k"], i["overdue_days"]) for i in items] == [
        ("1", None, None), ("10", Decimal("1"), 9)
    ]


@pytest.mark.parametrize(
    "q, expected",
    [
        ("华为", ["1"]),
        ("HUAWEI", ["2"]),
        ("acme", ["5", "4"]),
        ("50%", ["4"]),
        ("a", ["6", "5", "4", "2"]),  # name or company
        ("  王五 ", ["3"]),
        ("", ["6", "5", "4", "3", "2", "1"]),
    ],
)
def test_q_searches_the_searchable_fields(conn, schema, q, expected):
    assert ids(conn, schema, "lead", q=q) == expected


def python_order(records: list[dict], keys: list[tuple[str, bool]], dialect: str) -> list[str]:
    """Record ids sorted as the database sorts them: NULL smallest on SQLite, largest on PostgreSQL."""
    null_is_largest = dialect == "postgresql"
    ordered = list(records)
    for name, descending in reversed(keys):
        present = sorted((r for r in ordered if r[name] is not None), key=lambda r: r[name], reverse=descending)
        missing = [r for r in ordered if r[name] is None]
        ordered = present + missing if null_is_largest != descending else missing + present
    return [r["id"] for r in ordered]


def walk(conn, schema, obj, limit, **kwargs) -> tuple[list[str], list[int]]:
    """Every page by cursor: the ids in order and each page's size."""
    seen, sizes, cursor = [], [], None
    while True:
        items, cursor, total, _ = list_page(conn, schema, obj, limit=limit, cursor=cursor, **kwargs)
        seen += [i["id"] for i in items]
        sizes.append(len(items))
        if cursor is None:
            return seen, sizes


@pytest.mark.parametrize(
    "sort, keys",
    [
        (None, [("expected_close_date", False), ("id", False)]),  # the list view's sort; NULLs in it
        ("-expected_close_date", [("expected_close_date", True), ("id", True)]),
        ("-amount,name", [("amount", True), ("name", False), ("id", False)]),
        ("name,-expected_close_date", [("name", False), ("expected_close_date", True), ("id", True)]),
        ("status,-expected_close_date,amount", [("status", False), ("expected_close_date", True),
                                                ("amount", False), ("id", False)]),
        ("-amount,-expected_close_date", [("amount", True), ("expected_close_date", True), ("id", True)]),
        ("-id", [("id", True)]),
        ("name,-id", [("name", False), ("id", True)]),  # an explicit id direction is kept
        ("-amount,id", [("amount", True), ("id", False)]),
        ("created_at", [("created_at", False), ("id", False)]),
    ],
)
@pytest.mark.parametrize("limit", [1, 4, 7])
def test_cursor_walks_every_row_once_in_order(conn, schema, sort, keys, limit):
    dialect = conn.dialect.name
    everything, _, total, _ = list_page(conn, schema, "opportunity", sort=sort, limit=500)
    records = [{**r, "id": int(r["id"])} for r in everything]
    expected = [str(i) for i in python_order(records, keys, dialect)]
    assert [r["id"] for r in everything] == expected and total == 23
    seen, sizes = walk(conn, schema, "opportunity", limit, sort=sort)
    assert seen == expected
    assert sizes == [limit] * (23 // limit) + ([23 % limit] if 23 % limit else [])


def test_nulls_sort_where_each_database_puts_them(conn, schema):
    first = ids(conn, schema, "opportunity", sort="expected_close_date")[:2]
    assert first == (["1", "5"] if conn.dialect.name == "sqlite" else ["2", "7"])


def test_whole_numbers_beyond_a_32_bit_column_filter_it(conn, schema):
    """`version` is a 32-bit column: PostgreSQL once refused a wider filter value (a 500 under fuzzing)."""
    everything = ids(conn, schema, "opportunity", sort="id")
    assert len(everything) == 23
    assert ids(conn, schema, "opportunity", sort="id", filters={"version__gt": "-8832749158583166"}) == everything
    assert ids(conn, schema, "opportunity", sort="id", filters={"version__gte": "2147483648"}) == []
    assert ids(conn, schema, "opportunity", sort="id", filters={"version__ne": "9223372036854775807"}) == everything
    assert ids(conn, schema, "opportunity", sort="id", filters={"version__in": "-9223372036854775807,2147483648"}) == []


def test_a_field_named_again_in_sort_adds_nothing(conn, schema):
    """Its first mention decides (the OpenAPI document cannot forbid a repeat, so the server takes it)."""
    assert ids(conn, schema, "opportunity", sort="-amount,amount,name,-amount") == ids(
        conn, schema, "opportunity", sort="-amount,name")
    assert walk(conn, schema, "opportunity", 5, sort="-amount,amount")[0] == ids(conn, schema, "opportunity",
                                                                                  sort="-amount")


def test_cursor_with_filters_and_search(conn, schema):
    filters = {"status__in": "open,won", "amount__gte": "100"}
    everything = ids(conn, schema, "opportunity", filters=filters, q="商机", sort="-amount")
    assert len(everything) == 13
    assert walk(conn, schema, "opportunity", 5, filters=filters, q="商机", sort="-amount")[0] == everything


def test_total_counts_all_pages_and_can_be_skipped(conn, schema):
    items, cursor, total, _ = list_page(conn, schema, "opportunity", filters={"status": "open"}, limit=3)
    assert (len(items), total) == (3, 8)
    items, _, total, _ = list_page(conn, schema, "opportunity", filters={"status": "open"}, limit=3, cursor=cursor,
                                count=False)
    assert (len(items), total) == (3, None)


def test_total_beyond_the_exact_limit_is_an_estimate(conn, schema):
    """8 open opportunities of 23: counted up to the limit; beyond it PostgreSQL's planner estimate (after
    ANALYZE its statistics cover every row, so it estimates 8 and 23 exactly), SQLite's limit + 1."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ANALYZE opportunity"))
    open_ = {"status": "open"}
    assert list_page(conn, schema, "opportunity", filters=open_, limit=3, exact_up_to=8)[2:] == (8, True)
    assert list_page(conn, schema, "opportunity", filters=open_, limit=3, exact_up_to=None)[2:] == (8, True)
    estimated = (8, 23) if conn.dialect.name == "postgresql" else (6, 6)
    assert list_page(conn, schema, "opportunity", filters=open_, limit=3, exact_up_to=5)[2:] == (estimated[0], False)
    assert list_page(conn, schema, "opportunity", limit=3, exact_up_to=5)[2:] == (estimated[1], False)


def test_lead_total_is_read_from_the_summary(conn, schema):
    """A total whose conditions read only keys of a summary table (leads by owner, pool and status: the data scope's
    owner and pool, a status filter) adds up the summary's groups instead of counting leads, to the same total,
    beyond the exact limit too; a condition on any other field counts the leads."""
    table = schema["lead"].table
    scope = sa.or_(table.c.owner == 7, sa.and_(table.c.owner.is_(None), table.c.pool.in_([1])))
    statements = []
    sa.event.listen(conn, "before_cursor_execute", lambda _conn, _cursor, statement, *_: statements.append(statement))
    assert list_page(conn, schema, "lead", filters={"status__in": "pending,following"}, where=scope)[2:] == (2, True)
    assert "FROM _op_summary_lead__owner__pool__status" in statements[-1]
    assert list_page(conn, schema, "lead", filters={"status__ne": "pending"}, where=scope)[2:] == (2, True)
    assert "FROM _op_summary_lead__owner__pool__status" in statements[-1]
    assert list_page(conn, schema, "lead", filters={"company__contains": "acme"}, where=scope)[2:] == (0, True)
    assert "FROM lead" in statements[-1] and "_op_summary" not in statements[-1]
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ANALYZE lead"))
    assert list_page(conn, schema, "lead", limit=1, exact_up_to=2)[2:] == ((6 if conn.dialect.name == "postgresql"
                                                                             else 3), False)
    assert list_page(conn, schema, "lead", limit=1, exact_up_to=None)[2:] == (6, True)


def test_where_clause_is_anded(conn, schema):
    table = schema["lead"].table
    assert ids(conn, schema, "lead", filters={"status": "following"}, where=table.c.owner == 8) == ["3"]


def test_limit_bounds(conn, schema):
    assert len(list_page(conn, schema, "opportunity", limit=1)[0]) == 1
    assert len(list_page(conn, schema, "opportunity", limit="500")[0]) == 23
    assert len(list_page(conn, schema, "opportunity")[0]) == 23
    for bad in (0, 501, -1, "abc", "1.5", True):
        with pytest.raises(BadRequest) as e:
            list_page(conn, schema, "opportunity", limit=bad)
        assert e.value.message == "limit: must be a whole number from 1 to 500"
        assert e.value.fields == {"limit": ["must be a whole number from 1 to 500"]}


@pytest.mark.parametrize(
    "obj, kwargs, param, message",
    [
        ("lead", {"filters": {"nope": "1"}}, "nope", "unknown field 'nope'"),
        ("lead", {"filters": {"nope__gt": "1"}}, "nope__gt", "unknown field 'nope'"),
        ("user", {"filters": {"password": "x"}}, "password", "unknown field 'password'"),
        ("opportunity", {"filters": {"amount__between": "1"}}, "amount__between",
         "unknown operator 'between' (use one of ne, in, gt, gte, lt, lte, contains, isnull)"),
        ("opportunity", {"filters": {"amount__contains": "1"}}, "amount__contains",
         "operator 'contains' does not apply to currency field 'amount'"),
        ("user", {"filters": {"roles": "admin"}}, "roles",
         "operator 'eq' does not apply to multi_picklist field 'roles'"),
        ("lead", {"filters": {"campaign__contains": "1"}}, "campaign__contains",
         "operator 'contains' does not apply to lookup field 'campaign'"),
        ("opportunity", {"filters": {"amount__gte": "abc"}}, "amount__gte", "'abc' is not a number"),
        ("opportunity", {"filters": {"amount": "NaN"}}, "amount", "'NaN' is not a number"),
        ("opportunity", {"filters": {"expected_close_date": "2024-13-01"}}, "expected_close_date",
         "'2024-13-01' is not a date (YYYY-MM-DD)"),
        ("lead", {"filters": {"created_at__gt": "yesterday"}}, "created_at__gt",
         "'yesterday' is not a date-time (ISO 8601)"),
        ("lead", {"filters": {"campaign": "x1"}}, "campaign", "'x1' is not a record id"),
        ("lead", {"filters": {"id__in": "1,-2"}}, "id__in", "'-2' is not a record id"),
        ("lead", {"filters": {"id": "99999999999999999999"}}, "id", "'99999999999999999999' is not a record id"),
        ("account", {"filters": {"employees": "1.5"}}, "employees", "'1.5' is not a whole number"),
        ("product", {"filters": {"active": "yes"}}, "active", "'yes' is not true or false"),
        ("lead", {"filters": {"status__isnull": "maybe"}}, "status__isnull", "'maybe' is not true or false"),
        ("opportunity", {"filters": {"overdue_days__gt": "3"}}, "overdue_days__gt",
         "formula field 'overdue_days' cannot be computed by the database (days_since() is only supported in "
         "database filters compared with a whole number, e.g. days_since(x) >= 30)"),
        ("lead", {"sort": "nope"}, "sort", "unknown field 'nope'"),
        ("user", {"sort": "roles"}, "sort", "cannot sort on multi_picklist field 'roles'"),
        ("opportunity", {"sort": "name,-amount_k"}, "sort",
         "cannot sort on formula field 'amount_k': it is computed on read (not stored)"),
        ("lead", {"cursor": "not a cursor"}, "cursor", "is not a cursor from this list"),
        ("campaign", {"q": "x"}, None, None),
    ],
)
def test_bad_parameters(conn, schema, obj, kwargs, param, message):
    if param is None:  # campaign has a searchable name: not an error
        assert list_page(conn, schema, obj, **kwargs)[2] == 0
        return
    with pytest.raises(BadRequest) as e:
        list_page(conn, schema, obj, **kwargs)
    assert (e.value.message, e.value.fields, e.value.status) == (f"{param}: {message}", {param: [message]}, 400)


def test_every_bad_parameter_is_reported_at_once(conn, schema):
    with pytest.raises(BadRequest) as e:
        list_page(conn, schema, "lead", filters={"nope": "1", "status__isnull": "x"}, sort="zz", limit=0)
    assert e.value.fields == {"limit": ["must be a whole number from 1 to 500"], "sort": ["unknown field 'zz'"],
                              "nope": ["unknown field 'nope'"], "status__isnull": ["'x' is not true or false"]}
    assert e.value.message == ("limit: must be a whole number from 1 to 500; sort: unknown field 'zz'; "
                               "nope: unknown field 'nope'; status__isnull: 'x' is not true or false")


@pytest.mark.parametrize(
    "changed",
    [{"sort": "-expected_close_date"}, {"filters": {"status": "won"}}, {"q": "商机1"}],
)
def test_cursor_of_another_query_is_refused(conn, schema, changed):
    query = {"sort": "expected_close_date", "filters": {"status": "open"}, "q": "商机"}
    _, cursor, _, _ = list_page(conn, schema, "opportunity", limit=2, **query)
    message = "does not match this query (its sort, filters or search changed)"
    with pytest.raises(BadRequest) as e:
        list_page(conn, schema, "opportunity", limit=2, cursor=cursor, **(query | changed))
    assert (e.value.message, e.value.fields) == (f"cursor: {message}", {"cursor": [message]})


def test_forged_cursor_is_a_bad_request(conn, schema):
    _, cursor, _, _ = list_page(conn, schema, "lead", limit=2)
    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert data["k"] == [{"t": "2024-03-01T12:00:00"}, 5]
    data["k"] = ["yesterday", 4]
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode()
    with pytest.raises(BadRequest) as e:
        list_page(conn, schema, "lead", limit=2, cursor=forged)
    assert e.value.fields == {"cursor": ["is not a cursor from this list"]}


def explain(conn, run) -> str:
    """The plan of the first statement `run` executes (the page query), as the database prints it."""
    statements = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        statements.append((statement, parameters))

    sa.event.listen(conn, "before_cursor_execute", capture)
    try:
        run()
    finally:
        sa.event.remove(conn, "before_cursor_execute", capture)
    statement, parameters = statements[0]
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
        return "\n".join(row[-1] for row in rows)
    return "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).all())


def test_lead_list_page_is_one_index_range_scan(conn, schema):
    ot = schema["lead"]
    insert(conn, ot, [{"name": f"L{i}", "status": ["pending", "following", "converted"][i % 3]} for i in range(3000)])
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"ANALYZE {ot.table.name}")
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    _, cursor, _, _ = list_page(conn, schema, "lead", filters={"status": "following"}, limit=20)
    first = explain(conn, lambda: list_page(conn, schema, "lead", filters={"status": "following"}, limit=20,
                                            count=False))
    deep = explain(conn, lambda: list_page(conn, schema, "lead", filters={"status": "following"}, limit=20,
                                           cursor=cursor, count=False))
    index = "ix_lead__status__created_at_desc__id_desc"
    if conn.dialect.name == "sqlite":
        assert first == f"SEARCH lead USING INDEX {index} (status=?)"
        assert deep == f"SEARCH lead USING INDEX {index} (status=? AND created_at<?)"
    else:
        assert first.splitlines()[1].strip().startswith(f"->  Index Scan using {index} on lead")
        assert "Sort" not in first and "Sort" not in deep
        assert deep.splitlines()[1].strip().startswith(f"->  Index Scan using {index} on lead")
        assert "Index Cond: (((status)::text = 'following'::text) AND (ROW(created_at, id) < ROW(" in deep


def test_search_needs_a_text_field(conn, schema):
    """order_line's title is a lookup (an id column): `q` has nothing to search there."""
    with pytest.raises(BadRequest) as e:
        list_page(conn, schema, "order_line", q="x")
    assert e.value.fields == {"q": ["Order line has no searchable fields"]}


def test_nul_characters_are_a_bad_request(conn, schema):
    with pytest.raises(BadRequest) as e:
        list_page(conn, schema, "opportunity", filters={"name__contains": "a\x00b"}, q="c\x00")
    assert e.value.fields == {"name__contains": ["must not contain NUL characters"],
                              "q": ["must not contain NUL characters"]}
