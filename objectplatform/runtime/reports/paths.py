"""A report's field path (`campaign.name`, `converted_account.sales_order(account).total_amount`) as hops
between tables, so the compiler can join them: forward hops follow a lookup to one record, reverse hops
reach the many records whose lookup points back."""

from __future__ import annotations

from dataclasses import dataclass

from objectplatform.metadata import SYSTEM_FIELDS, FieldDef, Metadata
from objectplatform.metadata.checks import STEP

from ..errors import BadRequest, Message
from ..storage.convert import ID_FIELDS
from ..storage.tables import REFERENCE_TYPES


@dataclass(frozen=True)
class Hop:
    """One step to another object: forward (`field` of `source` names one `target`), or reverse (the
    `target` records whose `field` points at the `source` record)."""

    source: str
    field: str
    target: str
    reverse: bool


@dataclass(frozen=True)
class FieldPath:
    """A resolved path: the hops from the base object, then the field of the last object reached."""

    text: str
    hops: tuple[Hop, ...]
    object: str
    field: str
    type: str  # the field type ("lookup" for id and reverse ends, "user" for owner, ...)
    target: str | None  # the object a reference field points at

    @property
    def fans_out(self) -> bool:
        return any(h.reverse for h in self.hops)


def field_type(field: FieldDef | None, name: str) -> str:
    """The stored type of a field (a formula's result type; system fields by their kind)."""
    if field is None:
        return "lookup" if name == "id" else SYSTEM_FIELDS[name] if name not in ID_FIELDS else "user"
    if field.type == "formula":
        return field.result_type or "text"
    return field.type


def resolve(metadata: Metadata, base: str, text: str) -> FieldPath:
    """The path `text` from the object `base`; BadRequest saying which step does not resolve (templates are
    checked at load, so this only fails for paths given at run time)."""
    obj, hops, steps = metadata.objects[base], [], text.split(".")
    for i, step in enumerate(steps):
        match = STEP.fullmatch(step)
        if match is None:
            raise BadRequest(Message("report.bad_path_step", "invalid path step {step!r}", step=step))
        name, via = match.groups()
        last = i == len(steps) - 1
        if via:
            child = metadata.objects.get(name)
            target = child.fields.get(via) if child else None
            if target is None or target.to != obj.name:
                raise BadRequest(Message("report.not_a_lookup_to", "{object}.{field} is not a lookup to {target}",
                                         object=name, field=via, target=obj.name))
            hops.append(Hop(obj.name, via, name, True))
            obj = child
            if last:
                return FieldPath(text, tuple(hops), obj.name, "id", "lookup", obj.name)
            continue
        field = obj.fields.get(name)
        if field is None and name not in SYSTEM_FIELDS or field is not None and field.type == "password":
            raise BadRequest(Message("report.unknown_field", "unknown field {field!r} of {object}", field=name,
                                     object=obj.name))
        kind = field_type(field, name)
        target = field.to if field is not None else ("user" if name in ID_FIELDS and name != "id" else obj.name)
        if last:
            return FieldPath(text, tuple(hops), obj.name, name, kind, target if kind in REFERENCE_TYPES else None)
        if kind not in REFERENCE_TYPES or name == "id":
            raise BadRequest(Message("report.not_a_lookup", "{field!r} of {object} is a {type}, not a lookup",
                                     field=name, object=obj.name, type=kind))
        hops.append(Hop(obj.name, name, target, False))
        obj = metadata.objects[target]
    raise BadRequest(Message("report.empty_path", "empty path"))
