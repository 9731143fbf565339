"""Two runs of one report side by side (the funnel of this quarter next to last quarter's, of one department
next to another's): one table whose rows are the union of both runs' groups, each measure twice, run A's
then run B's, keyed `{measure}__a` and `{measure}__b` like a matrix's cells."""

from __future__ import annotations

from typing import Any

from objectplatform.metadata import Label

from .run import Column, ReportResult

SIDES = ("a", "b")


def side_by_side(a: ReportResult, b: ReportResult, names: tuple[Label, Label]) -> ReportResult:
    """`a` and `b` (the same report under two sets of filters) as one result; `names` label the two sides."""
    dims = [c.key for c in a.dimensions]
    shown = {c.key for c in a.dimensions}
    columns = list(a.dimensions)
    for m in (c for c in a.columns if c.key not in shown):
        for side, name in zip(SIDES, names, strict=True):
            columns.append(Column(f"{m.key}__{side}", Label(f"{name.zh} · {m.label.zh}", f"{name.en} · {m.label.en}"),
                                  m.type, m.path, m.measure, m.key, side))
    by_group: dict[tuple, dict[str, dict[str, Any]]] = {}
    for side, result in zip(SIDES, (a, b), strict=True):
        for row in result.rows:
            by_group.setdefault(tuple(row[d] for d in dims), {})[side] = row
    rows = []
    for group, found in by_group.items():
        row = dict(zip(dims, group, strict=True))
        for c in columns[len(dims):]:
            source = found.get(c.column_value)
            # a side without the group, or without the matrix column (a value only the other side has): empty
            row[c.key] = source[c.of] if source is not None and c.of in source else _empty(c)
        rows.append(row)
    totals = None
    if a.totals is not None and b.totals is not None:
        sides = dict(zip(SIDES, (a.totals, b.totals), strict=True))
        totals = {c.key: sides[c.column_value].get(c.of) for c in columns[len(dims):]}
    return ReportResult(a.name, a.label, columns, rows, totals, list(a.dimensions), columns[len(dims):], None,
                        value_labels={**b.value_labels, **a.value_labels})


def _empty(column: Column) -> Any:
    return 0 if column.measure in ("count", "count_distinct", "sum") else None
