"""Auto-recycle (自动回收): held records go back to their pool by the pool's own settings, set-based.

(How it works: docs/engine.md, "objectplatform/runtime/behaviors/recycle.py".)"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from objectplatform.metadata import Label

from ..records import history_sql
from ..storage import convert
from ..workqueue import TEXT, fill, title_sql, work_queue
from .pool import POOL, last_followed_field

WARNING = Label("线索「{name}」将在 {days} 天后收回到线索池「{pool}」，请尽快跟进",
                "Lead {name} goes back to the pool {pool} in {days} days: follow it up soon")
RECYCLED = Label("线索「{name}」已收回到线索池「{pool}」：{reason}",
                 "Lead {name} went back to the pool {pool}: {reason}")


def recycle(platform, conn: sa.Connection, obj: str, *, reason: str, now: datetime,
            where: sa.ColumnElement[bool] | None = None) -> dict:
    """Recycle and warn as each pool of `obj` says, as of `now`, within `where`; {"recycled", "warned"}."""
    definition = platform.metadata.objects[obj]
    config = POOL.config_of(definition)
    pool_field = config.pool_field
    followed = last_followed_field(definition)
    ot, pot = platform.schema[obj], platform.schema[config.pool_object]
    table, col = ot.table, ot.column
    n_col, m_col, k_col = (pot.column(n) for n in (
        "recycle_unfollowed_days", "recycle_unconverted_days", "recycle_warning_days"))
    pools = conn.execute(sa.select(pot.table.c.id, pot.column(pot.object.title_field), n_col, m_col, k_col)
                         .where(sa.or_(n_col > 0, m_col > 0)).order_by(pot.table.c.id)).all()
    totals = {"recycled": 0, "warned": 0}
    for pool_id, pool_name, n, m, k in pools:
        assigned, status, returned = (col(n) for n in (config.assigned_at_field, config.status_field,
                                                       config.return_reason_field))
        held = sa.and_(col(pool_field) == pool_id, col("owner").is_not(None), status.in_(config.open),
                       assigned.is_not(None), *([where] if where is not None else []))
        unfollowed = (sa.or_(col(followed).is_(None), col(followed) < assigned) if followed else None)

        rules = []
        if n and unfollowed is not None:
            rules.append((n, unfollowed))
        if m:
            rules.append((m, None))
        due = sa.or_(*[sa.and_(assigned <= convert.to_db("datetime", now - timedelta(days=d)),
                               *([c] if c is not None else [])) for d, c in rules])
        values = {"name": None, "pool": pool_name or "", "days": k, "reason": reason}
        if k:
            soon = [sa.and_(assigned <= convert.to_db("datetime", now - timedelta(days=d - k)),
                            *([c] if c is not None else [])) for d, c in rules if k < d]
            if soon:
                totals["warned"] += _notify(platform, conn, obj, sa.and_(held, sa.or_(*soon), sa.not_(due)),
                                            WARNING, values, "recycle_warning", now, assigned)
        candidates = sa.and_(held, due)
        locked = sa.select(table.c.id).where(candidates).with_for_update().subquery()
        if not conn.execute(sa.select(sa.func.count()).select_from(locked)).scalar_one():
            continue
        _notify(platform, conn, obj, candidates, RECYCLED, values, "recycled", now, assigned)
        parents = rollup_parents(platform, conn, obj, candidates)
        changes = {"owner": (col("owner"), "user", None),
                   config.status_field: (status, "picklist", config.unassigned_status),
                   config.assigned_at_field: (assigned, "datetime", None),
                   config.return_reason_field: (returned, "text", reason)}
        history_sql.write_set(conn, platform.schema.history, obj, table, candidates, changes, "recycle", None, now)
        platform.records.rollups.summaries.changing(conn, obj, candidates, {  # the rows are locked above
            "owner": None, config.status_field: config.unassigned_status, config.assigned_at_field: None,
            config.return_reason_field: reason})
        stamp = convert.to_db("datetime", now)
        totals["recycled"] += conn.execute(sa.update(table).where(candidates).values({
            col("owner"): None, status: config.unassigned_status, assigned: None, returned: reason,
            col("updated_at"): stamp, col("updated_by"): None, table.c.version: table.c.version + 1,
        })).rowcount
        for group, ids in parents:
            platform.records.rollups.refresh(conn, group, ids, now)
    return totals


def _notify(platform, conn: sa.Connection, obj: str, where: sa.ColumnElement[bool], label: Label,
            values: dict, kind: str, now: datetime, assigned: sa.Column) -> int:
    """Notify each selected record's owner, once per assignment (the key holds its `assigned` time)."""
    ot = platform.schema[obj]
    table, col = ot.table, ot.column
    constants = {k: str(v) for k, v in values.items() if v is not None}
    zh, en = (title_sql(platform, obj, fill(text, constants), lang)
              for text, lang in ((label.zh, "zh"), (label.en, "en")))
    key = (sa.literal(f"{kind}:{obj}:", TEXT) + sa.cast(table.c.id, TEXT) + sa.literal(":", TEXT)
           + sa.cast(assigned, TEXT))
    rows = sa.select(col("owner").label("user_id"), zh.label("title_zh"), en.label("title_en"),
                     sa.literal(obj, TEXT).label("object"), table.c.id.label("record_id"), key.label("dedupe_key"),
                     sa.literal(convert.to_db("datetime", now), sa.DateTime()).label("created_at")).where(where)
    return work_queue(platform).notify_from(conn, rows)


def rollup_parents(platform, conn: sa.Connection, obj: str, where: sa.ColumnElement[bool]) -> list:
    """The rollup groups fed by `obj` and the parent ids the selected records feed (read before the UPDATE)."""
    ot = platform.schema[obj]
    found = []
    for group in platform.records.rollups.by_child.get(obj, ()):
        via = ot.column(group.via)
        ids = sorted(conn.execute(sa.select(via).where(where, via.is_not(None)).distinct()).scalars())
        if ids:
            found.append((group, ids))
    return found
