"""What a report reads of a record is what the list shows: the records service's field masks, in SQL.

Every column a report reads (a dimension, a filter, a measured value, a lookup followed, a title shown) goes
through the caller's mask of its object (records/masking.py): a field their role hides reads as NULL, a field
a behavior hides on some records (a lead's pool hidden fields while it waits) as `CASE WHEN <those records>
THEN <masked> ELSE column END`. So a dimension groups the hidden values under "(none)" (or a masked phone's
group), a filter compares the masked value and cannot find a record by what is hidden, a measure adds up or
counts the masked values. The report keeps working for everyone and counts every record the caller may see;
it only never shows them more than the list does.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from ..permissions import Access
from ..records.masking import field_mask
from .compile import Mask, unmasked


def report_mask(platform, access: Access | None) -> Mask:
    """The report compiler's mask for `access` (no mask for no caller); each object's made once."""
    if access is None:
        return unmasked

    def mask(obj: str, table: sa.FromClause, field: str, column: ColumnElement) -> ColumnElement:
        if field not in platform.metadata.objects[obj].fields:  # id, owner and the other system fields
            return column
        return field_mask(platform, access, obj).column(table, field, column)

    return mask
