"""The global search: the records of every object declaring `search:` whose terms (storage/search.py) start with
what was typed, within the caller's data scope and field masks, grouped by object. Record hooks keep the terms in
step with every write: create, update, create_many (imports), restore and delete.

(How it works: docs/engine.md, "objectplatform/runtime/search.py".)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import ObjectDef

from .errors import BadRequest, Message
from .records import hooks
from .storage import search as terms
from .storage.engine import reading

DEFAULT_LIMIT = 10
MAX_LIMIT = 50
ROWS_PER_RECORD = 2  # the term rows read at a time per record wanted (a name matches by its pinyin and initials)


def search_query(args: Mapping[str, str]) -> tuple[str, int]:
    """(q, limit per object) from a search's query parameters; 400 for a bad limit."""
    limit = str(args.get("limit", DEFAULT_LIMIT))
    if not limit.isascii() or not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        bad = Message("search.bad_limit", "limit must be a whole number from 1 to {max}", max=MAX_LIMIT)
        raise BadRequest(bad, {"limit": [bad]})
    return args.get("q", ""), int(limit)


def search(platform, access, q: str, limit: int = DEFAULT_LIMIT) -> list[dict]:
    """[{object, items: [{id, title, field, values}]}]: per searched object the caller may read, in metadata order,
    its first `limit` records with a term starting with `q` (normalised as terms are), closest term first; `field`
    is the field that matched, `values` the record's other searched fields that have a value, as the caller may
    see them. Objects without a match are left out; an empty `q` finds nothing.

    One statement reads every object's first rows (a UNION ALL of one range per object); an object whose rows held
    fewer than `limit` records (a record matched by several of its terms comes once) reads on after its last row."""
    prefix = terms.normal(q)
    if not prefix or platform.schema.search is None:
        return []
    searched = [obj for obj in platform.metadata.objects.values() if obj.search and access.can(obj.name, "read")]
    if not searched:
        return []
    width = max(len(_shown(obj)) for obj in searched)
    statements = {obj.name: _statement(platform, access, obj, prefix, width) for obj in searched}
    batch = ROWS_PER_RECORD * limit
    t = platform.schema.search
    key = sa.tuple_(t.c.term, t.c.record_id, t.c.field)
    found = []
    with reading(platform.engine) as conn:
        rows = conn.execute(sa.union_all(*(sa.select(stmt.limit(batch).subquery()) for stmt in statements.values())))
        by_object: dict[str, list] = {}
        for row in rows:
            by_object.setdefault(row.object, []).append(row)
        for obj in searched:
            page = sorted(by_object.get(obj.name, []), key=lambda row: (row.term, row.record_id, row.field))
            items: dict[int, dict] = {}
            while _collect(obj, page, items, limit) and len(page) == batch:
                after = key > (page[-1].term, page[-1].record_id, page[-1].field)
                page = conn.execute(statements[obj.name].where(after).limit(batch)).all()
            if items:
                found.append({"object": obj.name, "items": list(items.values())})
    return found


def _shown(obj: ObjectDef) -> list[str]:
    """The searched fields a found record shows beside its title."""
    return [name for name in obj.search if name != obj.title_field]


def _statement(platform, access, obj: ObjectDef, prefix: str, width: int) -> sa.Select:
    """One object's term rows starting with `prefix`, in the side table's key order: a range of its (object, term)
    key joined to the object's rows the caller may read, a term of a field hidden from them left out. Columns: object,
    term, record_id, field, title, then `width` values (the shown fields', then nulls), all text so that the
    objects' statements make one UNION ALL."""
    t, ot = platform.schema.search, platform.schema[obj.name]
    table, mask = ot.table, platform.records.mask(obj.name, access)
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # every text starting with `prefix` sorts below it
    conditions = [t.c.object == obj.name, t.c.term >= prefix, t.c.term < upper]
    if (where := access.scope(obj.name, table)) is not None:
        conditions.append(where)
    if mask.hidden:
        conditions.append(t.c.field.not_in(sorted(mask.hidden)))
    conditions.extend(sa.not_(sa.and_(h.condition(table), t.c.field.in_(sorted(h.fields))))
                      for h in mask.hidings if h.fields.intersection(obj.search))
    shown = [mask.column(table, name, ot.column(name)) for name in _shown(obj)]
    values = [*shown, *[sa.null()] * (width - len(shown))]
    return (sa.select(t.c.object, t.c.term, t.c.record_id, t.c.field,
                      sa.cast(_title_column(obj, ot, mask), sa.Text).label("title"),
                      *(sa.cast(value, sa.Text).label(f"value{i}") for i, value in enumerate(values)))
            .select_from(t.join(table, table.c.id == t.c.record_id))
            .where(*conditions).order_by(t.c.term, t.c.record_id, t.c.field))


def _collect(obj: ObjectDef, rows: list, items: dict[int, dict], limit: int) -> bool:
    """Add the records of `rows` not in `items` yet, up to `limit`; whether more are wanted."""
    shown = _shown(obj)
    for row in rows:
        if len(items) == limit:
            break
        if row.record_id not in items:
            values = {name: value for name, value in zip(shown, row[5:], strict=False) if value not in (None, "")}
            items[row.record_id] = {"id": str(row.record_id), "title": _title(row.title, row.record_id),
                                    "field": row.field, "values": values}
    return len(items) < limit


def _title_column(obj: ObjectDef, ot, mask) -> sa.ColumnElement:
    name = obj.title_field
    if name not in obj.fields or len(ot.columns.get(name, ())) != 1 or obj.fields[name].is_reference:
        return sa.null()
    return mask.column(ot.table, name, ot.column(name))


def _title(value: Any, record_id: int) -> str:
    return f"#{record_id}" if value in (None, "") else str(value)


def _searched(obj: ObjectDef) -> bool:
    return bool(obj.search)


def _created(ctx: hooks.HookContext, records: list[Mapping[str, Any]]) -> None:
    obj = ctx.records.metadata.objects[ctx.object]
    terms.insert(ctx.conn, ctx.records.schema.search, terms.term_rows(obj, records))


def _deleted(ctx: hooks.HookContext, record: Mapping[str, Any]) -> None:
    obj = ctx.records.metadata.objects[ctx.object]
    terms.delete(ctx.conn, ctx.records.schema.search, terms.term_rows(obj, [record]))


def _updated(ctx: hooks.HookContext) -> None:
    """A change of a searched field: the terms the record lost removed, those it gained added."""
    obj = ctx.records.metadata.objects[ctx.object]
    if any(ctx.before.get(name) != ctx.after.get(name) for name in obj.search):
        before = set(terms.term_rows(obj, [{**ctx.before, "id": ctx.after["id"]}]))
        after = terms.term_rows(obj, [ctx.after])
        terms.delete(ctx.conn, ctx.records.schema.search, before.difference(after))
        terms.insert(ctx.conn, ctx.records.schema.search, [row for row in after if row not in before])


def register(registry) -> None:
    """Keep the search terms of every object declaring `search:` in step with its records."""
    registry.hook("after_create", lambda ctx: _created(ctx, [ctx.after]), applies=_searched)
    registry.hook("after_restore", lambda ctx: _created(ctx, [ctx.after]), applies=_searched)
    registry.hook("after_create_many", lambda ctx: _created(ctx, ctx.batch), applies=_searched)
    registry.hook("after_update", _updated, applies=_searched,
                  needed=lambda metadata, obj, values: any(name in values for name in obj.search))
    registry.hook("after_delete", lambda ctx: _deleted(ctx, ctx.before), applies=_searched)
