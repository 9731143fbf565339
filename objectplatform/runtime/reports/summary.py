"""A run of a report declaring `summary:` served from a summary table (storage/summaries.py) instead of its object's
records, when the result is the same: every dimension and filter is a key of the summary, every measure a count or
a sum it keeps, the caller sees each of those fields, and the caller's data scope is a condition on its keys (the
owner, a pool). Otherwise (a run-time filter on another field, a scope through a team or a lookup) the run reads the
records as any report does."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from objectplatform.metadata import Report

from ..permissions import Access
from ..storage.summaries import COUNT, Summary
from .compile import Compiler, Dimension, Measure
from .paths import FieldPath


class NotServed(Exception):
    """The run needs something the summary does not hold."""


class SummaryJoins:
    """What a report's conditions read (`compile.Joins`' face) over a summary: its keys, as columns."""

    def __init__(self, view: sa.Subquery, summary: Summary):
        self.root = self.from_ = view
        self.summary = summary

    def column(self, path: FieldPath) -> ColumnElement:
        if path.hops or path.field not in self.summary.keys:
            raise NotServed(path.text)
        return self.root.c[path.field]


@dataclass
class SummaryCompiler:
    """`Compiler.statement` over a summary: the groups' counts and sums added up per dimension (a group counting
    no record left out), presented as the compiler presents a report."""

    compiler: Compiler
    summary: Summary
    where: Callable
    scope: Callable[[str, sa.FromClause], ColumnElement[bool] | None]

    def conditions(self) -> list[ColumnElement[bool]]:
        """The run's filters, scene and data scope on the summary's keys; NotServed when one reads another field."""
        view = self.summary.view
        conditions = self.where(SummaryJoins(view, self.summary))
        try:
            scope = self.scope(self.summary.object, view)
        except (KeyError, AttributeError) as e:  # the scope reads a column the summary lacks (a team, a lookup)
            raise NotServed(str(e)) from None
        return [*conditions, *([scope] if scope is not None else [])]

    def statement(self, dimensions: Sequence[Dimension], measures: Sequence[Measure],
                  sort: Sequence[tuple[str, bool]] = (), limit: int | None = None) -> sa.Select:
        view = self.summary.view
        joins = SummaryJoins(view, self.summary)
        groups = [joins.column(d.path).label(f"d{i}") for i, d in enumerate(dimensions)]
        values = [(sa.cast(sa.func.sum(view.c[COUNT]), sa.BigInteger()) if m.function == "count"
                   else sa.func.sum(view.c[self.summary.sum_column(m.path.field)])).label(f"m{i}")
                  for i, m in enumerate(measures)]
        stmt = sa.select(*groups, *values).select_from(view).where(*self.conditions())
        if groups:
            stmt = stmt.group_by(*groups).having(sa.func.sum(view.c[COUNT]) > 0)
        return self.compiler.present(stmt.subquery("g"), dimensions, measures, sort, limit)


def summary_compiler(platform, report: Report, compiler: Compiler, access: Access | None,
                     dimensions: Sequence[Dimension], measures: Sequence[Measure]) -> SummaryCompiler | None:
    """The compiler reading a summary that serves this run of `report`, or None to read the records."""
    if report.summary is None:
        return None
    fields = {d.path.field for d in dimensions if not d.path.hops}
    if any(d.bucket or d.path.hops for d in dimensions) or any(
            m.matched or m.filters or m.function not in ("count", "sum")
            or (m.path is not None and (m.path.hops or m.function == "count")) for m in measures):
        return None
    sums = {m.path.field for m in measures if m.function == "sum"}
    for summary in platform.schema.summaries.get(report.object, ()):
        hidden = access is not None and any(access.field_level(report.object, f) == "hidden"
                                            for f in (*summary.keys, *sums))  # the live run would mask them
        if fields <= set(summary.keys) and sums <= set(summary.sums) and not hidden:
            served = SummaryCompiler(compiler, summary, compiler.where, compiler.scope)
            try:
                served.conditions()
            except NotServed:
                continue
            return served
    return None
