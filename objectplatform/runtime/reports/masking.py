"""What a report reads of a record is what the list shows: the records service's field masks, in SQL.

(How it works: docs/engine.md, "objectplatform/runtime/reports/masking.py".)"""

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
