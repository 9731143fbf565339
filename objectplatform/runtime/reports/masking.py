"""A lead pool's hidden fields (字段隐藏) in reports: the pool behavior's masker (behaviors/pool.py) in SQL.

While a record waits in a pool (pool set, no owner), the pool's `hidden_fields` are masked for everyone but
full admins and the pool's admins: the list, the record, the CSV show a phone as `138****5678` and any other
hidden value as empty. A report reads the same records, so it reads the same masked values: every column of
such a field becomes `CASE WHEN owner IS NULL AND pool IN (the pools hiding it from the caller) THEN
<masked> ELSE column END`, wherever the report reads it: a dimension (the waiting records fall in the
"(none)" group, or a masked phone's group), a filter (it compares the masked value, so a filter cannot find
a waiting record by what is hidden), a measure (a count of distinct hidden values counts the masked ones),
a lookup followed and a title shown. The report keeps working for everyone and counts every record the
caller may see; it only never shows them more than the list does.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from ..behaviors import pool
from ..permissions import Access
from .compile import Mask, column_name, unmasked

MASK = "****"
PHONE_KEPT = 7  # a phone longer than this keeps its first 3 and last 4 characters (pool.mask_value)


def report_mask(platform, access: Access | None) -> Mask:
    """The mask of every pooled object's hidden fields for `access` (no mask for admins or no caller);
    reads each pool object's pools once."""
    hiding: dict[str, pool.Masker] = {}
    for name, obj in platform.metadata.objects.items():
        if "pool" in obj.behaviors and access is not None:
            masker = pool.masker(platform, access, name)
            if masker.hiding:
                hiding[name] = masker
    if not hiding:
        return unmasked
    schema = platform.schema

    def mask(obj: str, table: sa.FromClause, field: str, column: ColumnElement) -> ColumnElement:
        masker = hiding.get(obj)
        if masker is None:
            return column
        pools = sorted(int(pool_id) for pool_id, names in masker.hiding.items() if any(n == field for n, _ in names))
        if not pools:
            return column
        waiting = sa.and_(table.c.owner.is_(None),
                          table.c[column_name(schema, obj, masker.pool_field)].in_(pools))
        kind = masker.obj_def.fields[field].type
        return sa.case((waiting, _masked(kind, column)), else_=column)

    return mask


def _masked(kind: str, column: ColumnElement) -> ColumnElement:
    """pool.mask_value in SQL: a phone keeps its first 3 and last 4 characters, anything else is NULL."""
    if kind != "phone":
        return sa.null()
    length = sa.func.length(column)
    kept = sa.func.substr(column, 1, 3).concat(MASK).concat(sa.func.substr(column, length - 3))
    return sa.case((column.is_(None), sa.null()), (length > PHONE_KEPT, kept), else_=sa.literal(MASK))
