"""What one caller may see and change of an object's fields: one `FieldMask` per (caller, object), made once
from their `Access` and applied by every read path of the records service (get, list, history) and by the
faces and reports that read records or columns.

(How it works: docs/engine.md, "objectplatform/runtime/records/masking.py".)"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from objectplatform.metadata import ObjectDef

from ..errors import Message, ValidationFailed
from . import hooks

MASK = "****"
PHONE_KEPT = 7  # a phone longer than this keeps its first 3 and last 4 characters
READ_ONLY = Message("permission.field_read_only", "your role may read this field but not change it")
NOT_SEEN = Message("permission.field_hidden", "your role may not see or change this field")
HIDDEN_HERE = Message("permission.field_hidden_on_record", "is hidden from you on this record and may not be changed")


@dataclass(frozen=True)
class Hiding:
    """Fields a behavior hides from one caller on the records `applies` accepts; `condition` is the same
    test in SQL on the object's table (or an alias of it)."""

    fields: frozenset[str]
    applies: Callable[[Mapping[str, Any]], bool]
    condition: Callable[[sa.FromClause], ColumnElement[bool]]


# (platform, access, object definition) -> the hidings of that object for that caller
HidingProvider = Callable[[Any, Any, ObjectDef], Iterable[Hiding]]


def masked_value(field_type: str, value: Any) -> Any:
    """A value hidden on a record as the caller reads it: a phone keeps 3 + 4 characters, the rest is null."""
    if value is None:
        return None
    if field_type == "phone":
        text = str(value)
        return f"{text[:3]}{MASK}{text[-4:]}" if len(text) > PHONE_KEPT else MASK
    return None


def masked_column(field_type: str, column: ColumnElement) -> ColumnElement:
    """`masked_value` in SQL."""
    if field_type != "phone":
        return sa.null()
    length = sa.func.length(column)
    kept = sa.func.substr(column, 1, 3).concat(MASK).concat(sa.func.substr(column, length - 3))
    return sa.case((column.is_(None), sa.null()), (length > PHONE_KEPT, kept), else_=sa.literal(MASK))


class FieldMask:
    """One caller's view of one object's fields: `hidden` and `read_only` by their roles, `hidings` by
    behaviors. Call it on a record to get the record as the caller may see it."""

    def __init__(self, obj: ObjectDef, levels: Mapping[str, str] | None = None, hidings: tuple[Hiding, ...] = ()):
        levels = levels or {}
        self.obj = obj
        self.hidden = frozenset(name for name, level in levels.items() if level == "hidden")
        self.read_only = frozenset(name for name, level in levels.items() if level == "read")
        self.hidings = hidings

    @property
    def restricts(self) -> bool:
        return bool(self.hidden or self.read_only or self.hidings)

    @property
    def hides(self) -> bool:
        """Whether reading a record through the mask may change it (else the mask gives every record back as is)."""
        return bool(self.hidden or self.hidings)

    def visible(self, name: str) -> bool:
        return name not in self.hidden

    def writable(self, name: str) -> bool:
        return name not in self.hidden and name not in self.read_only

    def __call__(self, record: dict) -> dict:
        """The record without its hidden fields and with the values hidden on it masked (a copy, when any)."""
        applying = [h for h in self.hidings if h.applies(record)]
        if not self.hidden and not applying:
            return record
        out = {name: value for name, value in record.items() if name not in self.hidden}
        for hiding in applying:
            for name in hiding.fields & out.keys():
                out[name] = masked_value(self.obj.fields[name].type, out[name])
        return out

    def hidden_on(self, record: Mapping[str, Any]) -> frozenset[str]:
        """The fields hidden from the caller on `record`: their roles' and the behaviors' that apply to it."""
        return self.hidden.union(*(h.fields for h in self.hidings if h.applies(record)))

    def column(self, table: sa.FromClause, name: str, column: ColumnElement) -> ColumnElement:
        """The column of field `name` in `table` (the object's table or an alias) as the caller may see it."""
        if name in self.hidden:
            return sa.cast(sa.null(), column.type)
        conditions = [h.condition(table) for h in self.hidings if name in h.fields]
        if not conditions:
            return column
        return sa.case((sa.or_(*conditions), masked_column(self.obj.fields[name].type, column)), else_=column)

    def sort_column(self, table: sa.FromClause, name: str, column: ColumnElement) -> ColumnElement:
        """The column of field `name` as the caller's sort key: NULL on the records a behavior hides it on,
        so a hidden value never decides where such a record comes (a field their roles hide is no sort key
        at all: the list refuses it)."""
        conditions = [h.condition(table) for h in self.hidings if name in h.fields]
        if not conditions:
            return column
        return sa.case((sa.or_(*conditions), sa.null()), else_=column)

    def guard(self, table: sa.FromClause, q: str, filtered: set[str], searchable: Iterable[str],
              matches: Callable[[str], ColumnElement[bool]]) -> ColumnElement[bool] | None:
        """The condition keeping a list from finding a record by a value hidden on it: the records a hiding
        applies to are left out when a filter names one of its fields, or when `q` (matched on a field by
        `matches`) finds none of their searchable fields left visible. None when nothing is left out."""
        searchable = tuple(searchable)
        excluded = []
        for hiding in self.hidings:
            condition = hiding.condition(table)
            if filtered & hiding.fields:
                excluded.append(condition)
            elif q and hiding.fields.intersection(searchable):
                visible = [matches(n) for n in searchable if n not in hiding.fields and n not in self.hidden]
                excluded.append(sa.and_(condition, sa.not_(sa.or_(*visible))) if visible else condition)
        return sa.not_(sa.or_(*excluded)) if excluded else None

    def refuse_read_only(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[str]]:
        """The errors of a change (`before` -> `after`) of fields the caller may not change."""
        return {name: [READ_ONLY if name in self.read_only else NOT_SEEN]
                for name in sorted(self.hidden | self.read_only)
                if name in after and after.get(name) != before.get(name)}


def field_mask(platform, access, obj: str) -> FieldMask:
    """The mask of `obj` for `access` (None, the system: nothing hidden), made once per access."""
    definition = platform.metadata.objects[obj]
    if access is None:
        return FieldMask(definition)
    made = access.masks.get(obj)
    if made is None:
        hidings = () if access.is_admin else tuple(
            h for provider in platform.registry.hidings for h in provider(platform, access, definition))
        made = access.masks[obj] = FieldMask(definition, access.field_levels.get(obj), hidings)
    return made


# ------------------------------------------------------------------------------------ writes


class HeldValidator:
    """An object's record validator for one caller's writes (`Records.within(access)`): a field their roles
    hide may not be given at all, and a field they may only read may not be given a value on a new record
    (other than empty or its default). A change of a read-only field of an existing record is refused by
    `refuse_read_only` (a before_update hook), which compares the record before and after: a value sent
    equal to the stored one is no change. A field a behavior hides on the record being changed may not be
    given other than as the caller sees it (its mask, which is no change). Everything else is the wrapped
    validator's."""

    def __init__(self, inner, mask: FieldMask):
        self.inner, self.mask = inner, mask

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def changed(self, data: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
        """The wrapped validator's changes, and any hidden field given (refused whatever its value, so a
        write cannot tell whether a guess equals the hidden value). A field hidden on `current` given with
        another value than its mask is refused here, whatever the value, for the same reason."""
        here = self.mask.hidden_on(current) - self.mask.hidden
        seen = self.mask(current)
        refused = {name: [HIDDEN_HERE] for name in sorted(here & data.keys())
                   if data[name] != seen.get(name) and self.inner.changed({name: data[name]}, seen)}
        if refused:
            raise ValidationFailed(refused)
        found = [name for name in self.inner.changed(data, current) if name not in here]
        return [*found, *(name for name in data if name in self.mask.hidden and name not in found)]

    def load(self, data: Mapping[str, Any], partial: bool = False, system: bool = False,
             current: Mapping[str, Any] | None = None) -> dict:
        if system:
            return self.inner.load(data, partial=partial, system=system, current=current)
        refused = {name: [NOT_SEEN] for name in data if name in self.mask.hidden}
        if not partial:
            refused.update({name: [READ_ONLY] for name, value in data.items()
                            if name in self.mask.read_only and not self._unset(name, value)})
        rest = {name: value for name, value in data.items() if name not in refused}
        try:
            values = self.inner.load(rest, partial=partial, system=system, current=current)
        except ValidationFailed as e:
            raise ValidationFailed({**e.fields, **refused}) from None
        if refused:
            raise ValidationFailed(refused)
        return values

    def load_many(self, rows: list[Mapping[str, Any]], *, system: bool = False) -> list[dict | None]:
        """The wrapped validator's `load_many`, but None (load it alone) for a row giving a field the caller's
        roles hide or let them only read."""
        loaded = self.inner.load_many(rows, system=system)
        if system:
            return loaded
        held = self.mask.hidden | self.mask.read_only
        return [None if values is None or not held.isdisjoint(row) else values
                for row, values in zip(rows, loaded, strict=True)]

    def _unset(self, name: str, value: Any) -> bool:
        """Whether a value given for a new record is what it gets anyway: empty, or the field's default."""
        if value in (None, "", []):
            return True
        default = self.inner.object.fields[name].default
        if default is None:
            return False
        try:
            given = self.inner.load({name: value}, partial=True, system=True)
            return given == self.inner.load({name: default}, partial=True, system=True)
        except ValidationFailed:
            return False


class HeldValidators(Mapping):
    """The service's validators as one caller's writes see them (`HeldValidator` where their mask restricts)."""

    def __init__(self, inner: Mapping[str, Any], mask_of: Callable[[str], FieldMask]):
        self.inner, self.mask_of = inner, mask_of

    def __getitem__(self, obj: str):
        mask = self.mask_of(obj)
        validator = self.inner[obj]
        return HeldValidator(validator, mask) if mask.restricts else validator

    def __iter__(self):
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)


def _refuse_read_only(ctx: hooks.HookContext) -> None:
    """A caller's change of a field their roles let them only read (or not see) is a field error."""
    caller = getattr(ctx.records, "caller", None)
    if caller is not None:
        for name, messages in field_mask(ctx.records.platform, caller, ctx.object).refuse_read_only(
                ctx.before, ctx.after).items():
            ctx.errors.setdefault(name, []).extend(messages)


def register(registry) -> None:
    """Refuse a caller's change of a field their roles hide or keep read-only, on every write path."""
    # a set-based write is the system's: no caller's field levels hold it
    registry.hook("before_update", _refuse_read_only, needed=lambda metadata, obj, values: False)
