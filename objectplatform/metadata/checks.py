"""Named checks of metadata documents: each yields the problems it finds, at the document's own positions."""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any

from ._build import Catalog, build_field, via_candidates
from ._schema import NAME, NAME_RULE
from ._yaml import Document, JsonPath
from .expressions import ExpressionError, Name, parse, walk
from .fieldtypes import FIELD_TYPES, SYSTEM_FIELDS, value_kind
from .model import ALL_FIELDS, SUMMARY_KEY_TYPES, ApprovalFlow, FieldDef, ObjectDef, Source, Transition
from .problems import Problem, closest

STEP = re.compile(r"([a-z][a-z0-9_]*)(?:\(([a-z][a-z0-9_]*)\))?")  # `field` or `object(via_field)` in a path
AUTO_NUMBER_TOKEN = re.compile(r"\{(YYYY|YY|MM|DD|0+)\}|\{[^}]*\}")
RESULT_TYPES = (
    "text",
    "long_text",
    "integer",
    "number",
    "currency",
    "percent",
    "boolean",
    "date",
    "datetime",
)
FILTER_OPERATORS = ("in", "gte", "lte", "gt", "lt", "contains", "isnull")
FUNNEL_MEASURES = (
    "count",
    "amount",
    "probability",
    "weighted_amount",
    "conversion_rate",
    "avg_days_in_stage",
)
ORDERED_KINDS = ("number", "date", "datetime", "any")


# --------------------------------------------------------------------------------- shared helpers


def field_of(obj: ObjectDef, name: str) -> FieldDef | None:
    """A declared or system field of `obj`."""
    if name in SYSTEM_FIELDS:
        return build_field(name, {"type": SYSTEM_FIELDS[name], "label": {"en": name}}, Source("<system>"))
    return obj.fields.get(name)


def field_names(obj: ObjectDef) -> set[str]:
    """The declared and system field names of `obj`."""
    return {*obj.fields, *SYSTEM_FIELDS}


def kind_of(f: FieldDef, catalog: Catalog) -> str:
    """The expression kind of a field's value; "any" when its definition is broken."""
    if f.type not in FIELD_TYPES or f.type == "formula" and f.result_type not in FIELD_TYPES:
        return "any"
    if f.rollup and f.rollup.function in ("min", "max") and f.rollup.child in catalog.objects:
        measured = catalog.objects[f.rollup.child].fields.get(f.rollup.field or "")
        if measured and measured.type in FIELD_TYPES and not measured.rollup:
            return kind_of(measured, catalog)
    return value_kind(f.type, f.result_type)


class PathError(Exception):
    """A field path that does not resolve, with the offset of the failing step in the path."""

    def __init__(self, message: str, hint: str | None, offset: int):
        super().__init__(message)
        self.message, self.hint, self.offset = message, hint, offset


def resolve_path(catalog: Catalog, obj: ObjectDef, path: str) -> FieldDef | None:
    """The field `campaign.name` or `sales_order(account).total` ends at; None past a rejected definition."""
    steps, offset, found = path.split("."), 0, None
    for i, step in enumerate(steps):
        if (match := STEP.fullmatch(step)) is None:
            raise PathError(f"invalid path step {step!r}", None, offset)
        name, via = match.groups()
        if via:  # a reverse step: the `name` records whose `via` field points at obj
            candidates = via_candidates(catalog, name, obj.name)
            if name not in catalog.objects:
                if name in catalog.rejected:
                    return None
                raise PathError(f"unknown object {name!r}", closest(name, catalog.objects), offset)
            if via not in candidates:
                raise PathError(
                    f"{name}.{via} is not a lookup to {obj.name!r}",
                    closest(via, candidates),
                    offset + len(name) + 1,
                )
            obj = catalog.objects[name]
            found = field_of(obj, "id")
        else:
            found = field_of(obj, name)
            if found is None:
                raise PathError(
                    f"unknown field {name!r} of {obj.name!r}", closest(name, field_names(obj)), offset
                )
            if i < len(steps) - 1:  # the next step starts from the record this field refers to
                if not found.to:
                    raise PathError(f"{name!r} of {obj.name!r} is a {found.type}, not a lookup", None, offset)
                if found.to in catalog.rejected:
                    return None
                if found.to not in catalog.objects:
                    raise PathError(
                        f"{name!r} refers to the object {found.to!r}, which is not defined", None, offset
                    )
                obj = catalog.objects[found.to]
        offset += len(step) + 1
    return found


def _path_kind(
    doc: Document, at: JsonPath, catalog: Catalog, obj: ObjectDef, path: str, on_key: bool = False
) -> Generator[Problem, None, str]:
    """Yields why a field path does not resolve; returns the kind it ends at ("any" when unknown)."""
    try:
        found = resolve_path(catalog, obj, path)
    except PathError as e:
        yield doc.problem(at, e.message, e.hint, offset=None if on_key else e.offset)
        return "any"
    return kind_of(found, catalog) if found else "any"


def _expression_kind(
    doc: Document, at: JsonPath, catalog: Catalog, obj: ObjectDef, derived: Mapping[str, str] | None = None
) -> Generator[Problem, None, str]:
    """Yields why the expression at `at` does not parse or type-check; returns its kind. `derived` adds
    names beyond the fields (a rule condition's behavior values) with their kinds."""
    env = {**(derived or {}), **{name: kind_of(field_of(obj, name), catalog) for name in field_names(obj)}}
    try:
        expression = parse(doc.get(at))
        for node in walk(expression.node):  # a dotted name follows lookups, like a report's field path
            if isinstance(node, Name) and "." in node.name and node.name not in env:
                prefix = node.name.split(".")[0] + "."
                if any(name.startswith(prefix) for name in derived or ()):
                    yield doc.problem(at, f"unknown value {node.name!r}",
                                      closest(node.name, [n for n in derived or () if n.startswith(prefix)]),
                                      offset=node.offset)
                    return "any"
                try:
                    found = resolve_path(catalog, obj, node.name)
                except PathError as e:
                    yield doc.problem(at, e.message, e.hint, offset=node.offset + e.offset)
                    return "any"
                env[node.name] = kind_of(found, catalog) if found else "any"
        return expression.check(env)
    except ExpressionError as e:
        suggestion = re.fullmatch(r"did you mean '(.*)'\?", e.hint or "")
        message = e.message if suggestion or not e.hint else str(e)
        yield doc.problem(at, message, suggestion and suggestion.group(1), offset=e.offset)
        return "any"


def _condition(doc: Document, at: JsonPath, catalog: Catalog, obj: ObjectDef,
               derived: Mapping[str, str] | None = None) -> Iterator[Problem]:
    """An expression that decides something: it must give true or false."""
    kind = yield from _expression_kind(doc, at, catalog, obj, derived)
    if kind not in ("boolean", "any"):
        yield doc.problem(at, f"a condition must be true or false, but this one gives {kind}")


def _field_reference(doc: Document, at: JsonPath, obj: ObjectDef, name: str) -> Iterator[Problem]:
    if field_of(obj, name) is None:
        yield doc.problem(at, f"unknown field {name!r} of {obj.name!r}", closest(name, field_names(obj)))


def _field_value(doc: Document, at: JsonPath, obj: ObjectDef, name: str, value: Any) -> Iterator[Problem]:
    """A field named with a value for it (a filter, a set action): a picklist value must be an option."""
    target = field_of(obj, name)
    if target is None:
        yield from _field_reference(doc, at, obj, name)
        return
    for item in value if isinstance(value, list) else [value]:
        if target.options and isinstance(item, str) and target.option(item) is None:
            yield doc.problem(
                at,
                f"{item!r} is not an option of {obj.name}.{name}",
                closest(item, (o.value for o in target.options)),
            )


def _computed(f: FieldDef) -> bool:
    """Whether the platform writes the field's value: the system fields but the owner, computed types."""
    field_type = FIELD_TYPES.get(f.type)
    return f.name in SYSTEM_FIELDS and f.name != "owner" or bool(field_type and field_type.computed)


def _unique(doc: Document, at: JsonPath, items: Iterable[Any], key: str, what: str) -> Iterator[Problem]:
    """Items of the list at `at` must not share the value of `key`."""
    seen: set[Any] = set()
    for i, item in enumerate(items):
        if item.get(key) in seen:
            yield doc.problem((*at, i, key), f"{what} {item[key]!r} is listed twice")
        seen.add(item.get(key))


def _role(doc: Document, at: JsonPath, catalog: Catalog, name: str) -> Iterator[Problem]:
    if name not in catalog.roles and name not in catalog.rejected:
        yield doc.problem(at, f"unknown role {name!r}", closest(name, catalog.roles))


def _user_reference(
    doc: Document, at: JsonPath, catalog: Catalog, obj: ObjectDef, path: str
) -> Iterator[Problem]:
    """A field path naming the users to ask or tell: it must end at a user field."""
    try:
        found = resolve_path(catalog, obj, path)
    except PathError as e:
        yield doc.problem(at, e.message, e.hint, offset=e.offset)
        return
    if found and found.to != "user":
        yield doc.problem(at, f"{path!r} is a {found.type}, not a user field")


# ----------------------------------------------------------------------------- object documents


def check_object(doc: Document, catalog: Catalog) -> Iterator[Problem]:
    """An object or object_extension document against the object it defines or extends."""
    data = doc.data
    obj = catalog.objects.get(data.get("name") or data["object"])
    if obj is None or data["kind"] == "object" and obj.source != doc.source():
        return  # a duplicate or an unknown object, already reported
    own = [
        (("fields", name), spec, obj.fields[name])
        for name, spec in data.get("fields", {}).items()
        if name in obj.fields
        and obj.fields[name].source == doc.source(("fields", name))
        and f"{obj.name}.{name}" not in catalog.rejected
    ]
    for check in (
        check_field_names,
        check_field_types,
        check_picklist_fields,
        check_references,
        check_auto_numbers,
        check_formulas,
        check_rollups,
        check_lookup_filters,
        check_default_from,
        check_default_match,
        check_typed_overrides,
    ):
        yield from check(doc, own, obj, catalog)
    yield from check_validation_rules(doc, obj, catalog)
    if "lifecycle" in data:
        yield from check_lifecycle(doc, obj, catalog)
    yield from check_duplicate_rules(doc, obj)
    yield from check_list_view(doc, obj)
    yield from check_search(doc, obj)
    yield from check_layout(doc, obj)
    yield from check_vcard_import(doc, obj)
    for name, items in data.get("options", {}).items():
        yield from _unique(doc, ("options", name), items, "value", "option")
    if "title_field" in data:
        yield from _field_reference(doc, ("title_field",), obj, data["title_field"])


OwnFields = list[tuple[JsonPath, Mapping[str, Any], FieldDef]]


def check_field_names(doc: Document, own: OwnFields, obj: ObjectDef, catalog: Catalog) -> Iterator[Problem]:
    """Field names are names, and not those of the system fields."""
    for path, _, f in own:
        if f.name in SYSTEM_FIELDS:
            yield doc.problem(path, f"{f.name!r} is a system field every object has; choose another name")
        elif not NAME.fullmatch(f.name):
            yield doc.problem(path, f"invalid field name {f.name!r}: {NAME_RULE}")


def check_field_types(doc: Document, own: OwnFields, obj: ObjectDef, catalog: Catalog) -> Iterator[Problem]:
    """Field types are registered, and each field uses only its type's options."""
    type_options = frozenset().union(*(t.options for t in FIELD_TYPES.values()))
    for path, spec, f in own:
        field_type = FIELD_TYPES.get(f.type)
        if field_type is None:
            yield doc.problem((*path, "type"), f"unknown field type {f.type!r}", closest(f.type, FIELD_TYPES))
            continue
        for option in sorted(spec.keys() & (type_options - field_type.options)):
            yield doc.problem((*path, option), f"option {option!r} does not apply to type {f.type!r}")
        if spec.get("searchable") and not field_type.searchable:
            searchable = sorted(name for name, t in FIELD_TYPES.items() if t.searchable)
            yield doc.problem((*path, "searchable"), f"searchable applies to text fields, not to type {f.type!r} "
                              f"(text types: {', '.join(searchable)})")
        if "default" in spec and field_type.computed:
            yield doc.problem((*path, "default"), f"a {f.type} field is computed by the platform: it takes no default")
        for option, message in field_type.check(f):
            yield doc.problem((*path, option) if option in spec else path, message)


def check_picklist_fields(
    doc: Document, own: OwnFields, obj: ObjectDef, catalog: Catalog
) -> Iterator[Problem]:
    """A picklist field has its own options or names a known picklist, never both."""
    for path, spec, f in own:
        if f.type not in ("picklist", "multi_picklist"):
            continue
        if ("picklist" in spec) == ("options" in spec):
            yield doc.problem(
                path, f"a {f.type} field takes either picklist: or options:, exactly one of them"
            )
        elif f.picklist and f.picklist not in catalog.picklists and f.picklist not in catalog.rejected:
            yield doc.problem(
                (*path, "picklist"),
                f"unknown picklist {f.picklist!r}",
                closest(f.picklist, catalog.picklists),
            )
        yield from _unique(doc, (*path, "options"), spec.get("options", ()), "value", "option")


def check_references(doc: Document, own: OwnFields, obj: ObjectDef, catalog: Catalog) -> Iterator[Problem]:
    """Lookup targets exist; so do the user and department objects when a field refers to them."""
    for path, spec, f in own:
        if not f.to or f.to in catalog.objects or f.to in catalog.rejected:
            continue
        if "to" in spec:
            yield doc.problem((*path, "to"), f"unknown object {f.to!r}", closest(f.to, catalog.objects))
        else:
            yield doc.problem(
                (*path, "type"), f"a {f.type} field needs the object {f.to!r}, which is not defined"
            )


def check_auto_numbers(doc: Document, own: OwnFields, obj: ObjectDef, catalog: Catalog) -> Iterator[Problem]:
    """An auto_number pattern uses known date parts and has a counter."""
    for path, _, f in own:
        if f.type != "auto_number":
            continue
        tokens = [m for m in AUTO_NUMBER_TOKEN.finditer(f.pattern or "")]
        for bad in (m.group(0) for m in tokens if m.group(1) is None):
            yield doc.problem(
                (*path, "pattern"),
                f"unknown {bad} in pattern: use {{YYYY}}, {{YY}}, {{MM}}, {{DD}} "
                "and a counter such as {0000}",
            )
        if not any(m.group(1) and m.group(1)[0] == "0" for m in tokens):
            yield doc.problem((*path, "pattern"), f"pattern {f.pattern!r} needs a counter such as {{0000}}")


def check_formulas(doc: Document, own: OwnFields, obj: ObjectDef, catalog: Catalog) -> Iterator[Problem]:
    """A formula's expression type-checks and gives a value of its result_type."""
    for path, _, f in own:
        if f.type != "formula":
            continue
        if f.result_type not in RESULT_TYPES:
            yield doc.problem(
                (*path, "result_type"),
                f"unknown result_type {f.result_type!r}",
                closest(f.result_type, RESULT_TYPES),
            )
        kind = yield from _expression_kind(doc, (*path, "expression"), catalog, obj)
        wanted = value_kind(f.type, f.result_type) if f.result_type in RESULT_TYPES else "any"
        if "any" not in (kind, wanted) and kind != wanted:
            yield doc.problem((*path, "expression"), f"the expression gives {kind}, not {f.result_type}")
        if cycle := _formula_cycle(obj, f.name):
            message = (f"formula {f.name!r} of {obj.name!r} names itself" if len(cycle) == 2
                       else f"circular formulas of {obj.name!r}: {' -> '.join(cycle)}")
            yield doc.problem((*path, "expression"), message)


def _formula_cycle(obj: ObjectDef, start: str) -> list[str]:
    """The formulas of `obj` from `start` back to it, each naming the next (`[a, b, a]`); empty when the
    formula `start` does not depend on itself."""
    def named(name: str) -> list[str]:
        try:
            names = parse(obj.fields[name].expression).names
        except ExpressionError:
            return []
        return sorted(n for n in names if n in obj.fields and obj.fields[n].type == "formula")

    trail, seen = [start], set()
    stack = [iter(named(start))]
    while stack:
        name = next(stack[-1], None)
        if name is None:
            stack.pop()
            trail.pop()
        elif name == start:
            return [*trail, start]
        elif name not in seen:
            seen.add(name)
            trail.append(name)
            stack.append(iter(named(name)))
    return []


def check_rollups(doc: Document, own: OwnFields, obj: ObjectDef, catalog: Catalog) -> Iterator[Problem]:
    """The child exists and points here, the field suits the function, the filter names child fields."""
    for path, spec, f in own:
        rollup = f.rollup
        if rollup is None or rollup.child in catalog.rejected:
            continue
        child = catalog.objects.get(rollup.child)
        if child is None:
            yield doc.problem(
                (*path, "child"), f"unknown object {rollup.child!r}", closest(rollup.child, catalog.objects)
            )
            continue
        candidates = via_candidates(catalog, child.name, obj.name)
        if "via" in spec and rollup.via not in candidates:
            yield doc.problem(
                (*path, "via"),
                f"{child.name}.{rollup.via} is not a lookup or master_detail to {obj.name!r}",
                closest(rollup.via, candidates),
            )
        elif "via" not in spec and len(candidates) != 1:
            yield doc.problem(
                path,
                f"no field of {child.name!r} points at {obj.name!r}"
                if not candidates
                else f"several fields of {child.name!r} point at {obj.name!r} "
                f"({', '.join(candidates)}); name one with via:",
            )
        if rollup.field is not None:
            yield from _rollup_field(doc, (*path, "field"), catalog, child, rollup.function, rollup.field)
        for key, value in spec.get("filter", {}).items():
            yield from _rollup_filter(doc, (*path, "filter", key), catalog, child, key, value)
        if rollup.never_above is not None:
            if rollup.function in ("min", "max"):
                yield doc.problem((*path, "never_above"),
                                  f"never_above holds a sum or a count, not a {rollup.function}")
            kind = yield from _expression_kind(doc, (*path, "never_above"), catalog, obj)
            if kind not in ("number", "any"):
                yield doc.problem((*path, "never_above"), f"never_above must give a number, but this one gives {kind}")


def check_default_from(doc: Document, own: OwnFields, obj: ObjectDef, catalog: Catalog) -> Iterator[Problem]:
    """Each `default_from` path follows lookups of `obj` to a field."""
    for path, spec, f in own:
        given = spec.get("default_from")
        for i, name in enumerate(f.default_from):
            at = (*path, "default_from", *([i] if isinstance(given, list) else []))
            try:
                resolve_path(catalog, obj, name)
            except PathError as e:
                yield doc.problem(at, e.message, e.hint)


def check_default_match(doc: Document, own: OwnFields, obj: ObjectDef, catalog: Catalog) -> Iterator[Problem]:
    """A `default_match` names an object and its value field, a `where` condition over it, match entries of its
    fields against paths of `obj`, and a `record` lookup of `obj` to it."""
    for path, _spec, f in own:
        if f.default_match is None:
            continue
        at, match = (*path, "default_match"), f.default_match
        source = catalog.objects.get(match.object)
        if source is None:
            if match.object not in catalog.rejected:
                yield doc.problem((*at, "object"), f"unknown object {match.object!r}",
                                  closest(match.object, catalog.objects))
            continue
        yield from _field_reference(doc, (*at, "value"), source, match.value)
        if match.where is not None:
            yield from _condition(doc, (*at, "where"), catalog, source)
        for i, entry in enumerate(match.match):
            for theirs, mine in entry.items():
                yield from _field_reference(doc, (*at, "match", i, theirs), source, theirs)
                try:
                    resolve_path(catalog, obj, mine)
                except PathError as e:
                    yield doc.problem((*at, "match", i, theirs), e.message, e.hint)
        kept = obj.fields.get(match.record or "")
        if match.record is not None and (kept is None or kept.to != match.object):
            yield doc.problem((*at, "record"), f"{match.record!r} is not a lookup of {obj.name!r} to "
                              f"{match.object!r}", closest(match.record, [n for n, g in obj.fields.items()
                                                                          if g.to == match.object]))


def check_typed_overrides(doc: Document, own: OwnFields, obj: ObjectDef, catalog: Catalog) -> Iterator[Problem]:
    """A `typed_override` sits on a stored number formula; its bounds are numbers and it derives writable fields."""
    for path, spec, f in own:
        if f.typed_override is None:
            continue
        at = (*path, "typed_override")
        if not f.stored or value_kind(f.type, f.result_type) != "number":
            yield doc.problem(at, "typed_override needs a stored formula giving a number (stored: true)")
        for bound in ("min", "max"):
            if bound in spec["typed_override"]:
                kind = yield from _expression_kind(doc, (*at, bound), catalog, obj)
                if kind not in ("number", "any"):
                    yield doc.problem((*at, bound), f"{bound} must give a number, but this one gives {kind}")
        for name in f.typed_override.derive:
            target = field_of(obj, name)
            if target is None:
                yield from _field_reference(doc, (*at, "derive", name), obj, name)
                continue
            if (ft := FIELD_TYPES.get(target.type)) is not None and ft.computed:
                yield doc.problem((*at, "derive", name), f"{obj.name}.{name} is computed: derive a field users write")
            yield from _expression_kind(doc, (*at, "derive", name), catalog, obj)


def check_lookup_filters(doc: Document, own: OwnFields, obj: ObjectDef, catalog: Catalog) -> Iterator[Problem]:
    """A lookup's `filter` names fields of its target, with values they can hold; `show` names its fields."""
    for path, spec, f in own:
        target = catalog.objects.get(f.to or "")
        if f.rollup is None and target is not None:
            for key, value in spec.get("filter", {}).items():
                yield from _field_value(doc, (*path, "filter", key), target, key, value)
            for i, name in enumerate(f.show):
                yield from _field_reference(doc, (*path, "show", i), target, name)


def _rollup_filter(
    doc: Document, at: JsonPath, catalog: Catalog, child: ObjectDef, key: str, value: Any
) -> Iterator[Problem]:
    """A rollup filter names a field of the child, or (`lookup.field`) of the record a lookup of the child names."""
    hop, _, far = key.partition(".")
    if not far:
        yield from _field_value(doc, at, child, key, value)
        return
    f = field_of(child, hop)
    target = catalog.objects.get(f.to or "") if f is not None and f.type in ("lookup", "master_detail") else None
    if target is None or "." in far:
        yield doc.problem(at, f"{key!r} is not a lookup of {child.name!r} and a field of its target",
                          closest(hop, [n for n, g in child.fields.items() if g.type in ("lookup", "master_detail")]))
        return
    yield from _field_value(doc, at, target, far, value)


def _rollup_field(
    doc: Document, at: JsonPath, catalog: Catalog, child: ObjectDef, function: str, name: str
) -> Iterator[Problem]:
    measured = field_of(child, name)
    if measured is None:
        yield from _field_reference(doc, at, child, name)
    elif function == "count":
        yield doc.problem(at, "count takes no field")
    elif kind_of(measured, catalog) not in (("number", "any") if function == "sum" else ORDERED_KINDS):
        yield doc.problem(at, f"cannot {function} {child.name}.{name}: it is a {measured.type}")


def check_validation_rules(doc: Document, obj: ObjectDef, catalog: Catalog) -> Iterator[Problem]:
    """Rule conditions are true-or-false expressions; the field an error is shown on exists."""
    for i, rule in enumerate(doc.data.get("validation_rules", ())):
        yield from _condition(doc, ("validation_rules", i, "condition"), catalog, obj)
        if "field" in rule:
            yield from _field_reference(doc, ("validation_rules", i, "field"), obj, rule["field"])


LIFECYCLE_BY = "approval"  # a transition the approval engine runs (its flows' on_* set the state)


def lifecycle_env(transition_params: Iterable[FieldDef]) -> dict[str, str]:
    """The names a transition's condition and `set` may read beside the record's fields."""
    return {"current_user": value_kind("user"), **{f"params.{p.name}": value_kind(p.type, p.result_type)
                                                   for p in transition_params if p.type in FIELD_TYPES}}


def check_lifecycle(doc: Document, obj: ObjectDef, catalog: Catalog) -> Iterator[Problem]:
    """The state field is a picklist whose options are the states; initial states, editable fields,
    roles, transitions (from, to, by, params, required fields, set, actions) resolve; every state is
    reachable from an initial one; the to-dos a transition closes are transitions' to-dos. An extension
    document is checked for what it adds; the object's document for the whole machine."""
    lc, at, own = obj.lifecycle, ("lifecycle",), doc.data["lifecycle"]
    if lc is None:
        return
    whole = doc.data["kind"] == "object"
    target = obj.fields.get(lc.field)
    if target is None or target.type != "picklist":
        if whole and target is None:
            yield doc.problem((*at, "field"), f"unknown field {lc.field!r} of {obj.name!r}",
                              closest(lc.field, obj.fields))
        elif whole:
            yield doc.problem((*at, "field"),
                              f"a lifecycle's field must be a picklist; {lc.field!r} is a {target.type}")
        return
    options = [o.value for o in target.options]
    for value in own.get("states", {}):
        if value not in options:
            yield doc.problem((*at, "states", value), f"{value!r} is not an option of {obj.name}.{lc.field}",
                              closest(value, options))
    for value in options if whole else ():
        if value not in lc.states:
            yield doc.problem((*at, "states"), f"option {value!r} of {obj.name}.{lc.field} is not a state")

    def state(where: JsonPath, value: str | None) -> Iterator[Problem]:
        if value is not None and value not in lc.states:
            yield doc.problem(where, f"unknown state {value!r}", closest(value, lc.states))

    initial = own.get("initial")
    for i, value in enumerate([initial] if isinstance(initial, str) else initial or ()):
        yield from state((*at, "initial") if isinstance(initial, str) else (*at, "initial", i), value)
    lines = {o.name for o in catalog.objects.values()
             if any(f.type == "master_detail" and f.to == obj.name for f in o.fields.values())}
    for value, spec in own.get("states", {}).items():
        here = (*at, "states", value)
        for i, name in enumerate(() if lc.states[value].editable == ALL_FIELDS else lc.states[value].editable):
            if name not in lines:
                yield from _field_reference(doc, (*here, "editable", i), obj, name)
        for i, role in enumerate((spec or {}).get("editable_by", ())):
            yield from _role(doc, (*here, "editable_by", i), catalog, role)
        if (spec or {}).get("on_enter"):
            yield from _actions(doc, (*here, "on_enter"), catalog, obj)
    flows = [f for f in catalog.flows.values() if f.kind == "approval_flow" and f.object == obj.name]
    for name in own.get("transitions", {}):
        yield from _transition(doc, (*at, "transitions", name), obj, catalog, lc.transitions[name], state, flows)
    named = [*lc.initial, *(v for t in lc.transitions.values() for v in (*t.sources, t.to) if v is not None)]
    if whole and all(v in lc.states for v in named):  # past a misspelt state, the states after it look unreachable
        yield from _reachable(doc, obj, catalog, flows)


def _transition(doc: Document, here: JsonPath, obj: ObjectDef, catalog: Catalog, t: Transition,
                state: Callable[[JsonPath, str | None], Iterator[Problem]], flows: list[ApprovalFlow],
                ) -> Iterator[Problem]:
    lc = obj.lifecycle
    for i, value in enumerate(t.sources):
        yield from state((*here, "from", i), value)
    yield from state((*here, "to"), t.to)
    if t.by == LIFECYCLE_BY and not flows:
        yield doc.problem((*here, "by"), f"no approval flow applies to {obj.name!r}, so nothing runs {t.name!r}")
    elif t.by is not None and t.by != LIFECYCLE_BY and t.by not in obj.behaviors:
        yield doc.problem((*here, "by"), f"{obj.name!r} has no behavior {t.by!r} to run {t.name!r}",
                          closest(t.by, [*obj.behaviors, LIFECYCLE_BY]))
    for i, role in enumerate(t.roles):
        yield from _role(doc, (*here, "roles", i), catalog, role)
    for p in t.params:
        if p.type not in FIELD_TYPES or FIELD_TYPES[p.type].computed:
            yield doc.problem((*here, "params", p.name, "type"), f"a parameter cannot be of type {p.type!r}",
                              closest(p.type, [n for n, ft in FIELD_TYPES.items() if not ft.computed]))
    env = lifecycle_env(t.params)
    if t.condition is not None:
        yield from _condition(doc, (*here, "condition"), catalog, obj, env)
    elif t.message is not None:
        yield doc.problem((*here, "message"), f"{t.name!r} has no condition for its message to explain")
    if t.when is not None:
        yield from _condition(doc, (*here, "when"), catalog, obj, lifecycle_env(()))
        if t.by is not None:
            yield doc.problem((*here, "when"), f"{t.name!r} runs by itself when its condition holds: drop `by`")
        for p in t.params:
            if p.required:
                yield doc.problem((*here, "params", p.name), f"nobody gives the parameters of the automatic "
                                                             f"transition {t.name!r}: {p.name!r} cannot be required")
    for i, name in enumerate(t.required_fields):
        yield from _field_reference(doc, (*here, "required_fields", i), obj, name)
    for name in t.set:
        target = field_of(obj, name)
        if target is None:
            yield from _field_reference(doc, (*here, "set", name), obj, name)
        elif _computed(target) or name == lc.field:
            what = "the lifecycle's state, set by `to`" if name == lc.field else "computed by the platform"
            yield doc.problem((*here, "set", name), f"{obj.name}.{name} is {what}")
        else:
            yield from _expression_kind(doc, (*here, "set", name), catalog, obj, env)
    if t.actions:
        yield from _actions(doc, (*here, "actions"), catalog, obj)
    for i, name in enumerate(t.close_todos):
        if name not in lc.transitions:
            yield doc.problem((*here, "close_todos", i), f"unknown transition {name!r} of {obj.name!r}",
                              closest(name, lc.transitions))


def _reachable(doc: Document, obj: ObjectDef, catalog: Catalog, flows: list[ApprovalFlow]) -> Iterator[Problem]:
    """Every state can be reached from an initial one through transitions, the object's approval flows'
    and rules' `set` of the state field (the approval engine moves the state that way)."""
    lc = obj.lifecycle
    edges: dict[str, set[str]] = {}
    for t in lc.transitions.values():
        for value in t.sources if t.to else ():
            edges.setdefault(value, set()).add(t.to)
    anywhere: set[str] = set()
    for flow in [*flows, *(f for f in catalog.flows.values() if f.kind == "rule" and f.object == obj.name)]:
        for effects in flow.effects.values():
            for action in effects:
                value = action.get("set", {}).get(lc.field)
                if isinstance(value, str):
                    anywhere.add(value)
    seen, todo = set(lc.initial) | anywhere, [*lc.initial, *anywhere]
    while todo:
        for value in edges.get(todo.pop(), ()):
            if value not in seen:
                seen.add(value)
                todo.append(value)
    for value in lc.states:
        if value not in seen:
            where = ("lifecycle", "states", *([value] if value in doc.data["lifecycle"]["states"] else []))
            yield doc.problem(where, f"state {value!r} cannot be reached: no transition, flow or rule leads to it")


def check_duplicate_rules(doc: Document, obj: ObjectDef) -> Iterator[Problem]:
    """A duplicate rule names fields of the object, each once, of a type whose values compare."""
    for i, rule in enumerate(doc.data.get("duplicate_rules", ())):
        seen: set[str] = set()
        for j, name in enumerate(rule["fields"]):
            at = ("duplicate_rules", i, "fields", j)
            target = obj.fields.get(name)
            if name in seen:
                yield doc.problem(at, f"field {name!r} is listed twice")
            elif name in SYSTEM_FIELDS and name != "owner":
                yield doc.problem(at, f"{name!r} is a system field; a duplicate rule compares the object's fields")
            elif target is None and name != "owner":
                yield from _field_reference(doc, at, obj, name)
            elif target is not None and target.type in FIELD_TYPES and not FIELD_TYPES[target.type].comparable:
                yield doc.problem(at, f"a duplicate rule cannot compare {obj.name}.{name}: it is a {target.type}")
            seen.add(name)


def check_vcard_import(doc: Document, obj: ObjectDef) -> Iterator[Problem]:
    """`imports: vcard:` maps vCard properties to fields the import may write; `set` gives valid values."""
    spec = doc.data.get("imports", {}).get("vcard", {})
    for prop, name in spec.get("fields", {}).items():
        at = ("imports", "vcard", "fields", prop)
        target = field_of(obj, name)
        if target is None:
            yield from _field_reference(doc, at, obj, name)
        elif _computed(target):
            yield doc.problem(at, f"a vCard import cannot write {obj.name}.{name}: the platform sets it")
    for name, value in spec.get("set", {}).items():
        yield from _field_value(doc, ("imports", "vcard", "set", name), obj, name, value)


def check_list_view(doc: Document, obj: ObjectDef) -> Iterator[Problem]:
    """List columns, filters and sorts name fields."""
    view = doc.data.get("list_view", {})
    for part in ("columns", "filters", "sort"):
        for i, name in enumerate(view.get(part, ())):
            yield from _field_reference(doc, ("list_view", part, i), obj, name.lstrip("-"))


def check_search(doc: Document, obj: ObjectDef) -> Iterator[Problem]:
    """`search:` names text fields of the object, each once: the global search keeps their terms."""
    seen: set[str] = set()
    for i, name in enumerate(doc.data.get("search", ())):
        target = obj.fields.get(name)
        if name in seen:
            yield doc.problem(("search", i), f"field {name!r} is listed twice")
        elif target is None:
            yield from _field_reference(doc, ("search", i), obj, name)
        elif target.type in FIELD_TYPES and not FIELD_TYPES[target.type].searchable:
            yield doc.problem(("search", i), f"search names text fields, not {obj.name}.{name} of type {target.type!r}")
        seen.add(name)


def check_layout(doc: Document, obj: ObjectDef) -> Iterator[Problem]:
    """Section names are unique and sections name fields."""
    sections = doc.data.get("layout", {}).get("sections", ())
    yield from _unique(doc, ("layout", "sections"), sections, "name", "section")
    for i, section in enumerate(sections):
        for j, name in enumerate(section.get("fields", ())):
            yield from _field_reference(doc, ("layout", "sections", i, "fields", j), obj, name)


# ------------------------------------------------------------------------------- other documents


def check_picklist(doc: Document, catalog: Catalog) -> Iterator[Problem]:
    """Option values are unique."""
    yield from _unique(doc, ("options",), doc.data["options"], "value", "option")


def check_roles(doc: Document, catalog: Catalog) -> Iterator[Problem]:
    """Role names are names; permissions name existing objects or "*"; field-level security names
    fields the object declares (the levels themselves are the schema's)."""
    for role, spec in doc.data["roles"].items():
        if not NAME.fullmatch(role):
            yield doc.problem(("roles", role), f"invalid role name {role!r}: {NAME_RULE}")
        for obj, grant in spec.get("permissions", {}).items():
            at = ("roles", role, "permissions", obj)
            if obj != "*" and obj not in catalog.objects and obj not in catalog.rejected:
                yield doc.problem(at, f"unknown object {obj!r}", closest(obj, catalog.objects))
            elif "fields" in grant and obj == "*":
                yield doc.problem((*at, "fields"), 'fields: names fields of one object: give it under that object, '
                                  'not under "*"')
            elif "fields" in grant and obj in catalog.objects:
                yield from _field_levels(doc, (*at, "fields"), catalog.objects[obj], grant["fields"])
            scopes = grant.get("scope")
            listed = scopes if isinstance(scopes, list) else [scopes]
            for i, scope in enumerate(listed):
                where = (*at, "scope", i) if isinstance(scopes, list) else (*at, "scope")
                if isinstance(scope, Mapping) and obj in catalog.objects:
                    yield from _matching_scope(doc, where, catalog, catalog.objects[obj], scope)


def _matching_scope(doc: Document, at: JsonPath, catalog: Catalog, obj: ObjectDef,
                    scope: Mapping[str, str]) -> Iterator[Problem]:
    """A matching scope's path resolves on the object and ends at a reference to the same object as the
    user's field it is compared with (or at `id` of that object); a `within` scope's path ends at a user field."""
    if "within" in scope:
        try:
            found = resolve_path(catalog, obj, scope["field"])
        except PathError as e:
            yield doc.problem((*at, "field"), e.message, e.hint)
            return
        if found is None or found.to != "user":
            yield doc.problem((*at, "field"), f"{scope['field']!r} does not end at a user field (within compares the "
                              "user it names with the caller)")
        return
    user = catalog.objects.get("user")
    mine = user.fields.get(scope["equals_user"]) if user else None
    if mine is None or not mine.to:
        yield doc.problem((*at, "equals_user"), f"{scope['equals_user']!r} is not a lookup field of 'user'",
                          closest(scope["equals_user"], [n for n, f in user.fields.items() if f.to] if user else []))
        return
    *steps, last = scope["field"].split(".")
    try:
        found = resolve_path(catalog, obj, scope["field"])
    except PathError as e:
        yield doc.problem((*at, "field"), e.message, e.hint)
        return
    end = obj.name
    for step in steps:
        end = (catalog.objects[end].fields[step].to if end in catalog.objects else None) or end
    reaches = end if last == "id" else found.to if found is not None else mine.to
    if reaches != mine.to:
        yield doc.problem((*at, "field"), f"{scope['field']!r} does not reach a record of {mine.to!r}, which the "
                          f"user's {scope['equals_user']!r} names")


def _field_levels(doc: Document, at: JsonPath, obj: ObjectDef, levels: Mapping[str, str]) -> Iterator[Problem]:
    """Each field a role's `fields:` names is declared by the object (a system field is not)."""
    for name in levels:
        if name in SYSTEM_FIELDS:
            yield doc.problem((*at, name), f"{name!r} is a system field: field-level security applies to the "
                              f"fields {obj.name!r} declares")
        elif name not in obj.fields:
            yield doc.problem((*at, name), f"unknown field {name!r} of {obj.name!r}", closest(name, obj.fields))


def _flow_object(doc: Document, catalog: Catalog) -> tuple[ObjectDef | None, list[Problem]]:
    """The object of a flow or report document (None for a duplicate), or the problem naming it."""
    registry = catalog.reports if doc.data["kind"] == "report" else catalog.flows
    definition = registry[doc.data["name"]]
    name = definition.object or ""
    if definition.source != doc.source() or name in catalog.rejected:
        return None, []
    if name not in catalog.objects:
        return None, [doc.problem(("object",), f"unknown object {name!r}", closest(name, catalog.objects))]
    return catalog.objects[name], []


def check_approval_flow(doc: Document, catalog: Catalog) -> Iterator[Problem]:
    """The object, trigger field, conditions, approvers and actions all resolve."""
    obj, problems = _flow_object(doc, catalog)
    yield from problems
    if obj is None:
        return
    data = doc.data
    if "field" in data["trigger"]:
        yield from _field_reference(doc, ("trigger", "field"), obj, data["trigger"]["field"])
    if "condition" in data:
        yield from _condition(doc, ("condition",), catalog, obj)
    yield from _unique(doc, ("steps",), data["steps"], "name", "step")
    for i, step in enumerate(data["steps"]):
        if "condition" in step:
            yield from _condition(doc, ("steps", i, "condition"), catalog, obj)
        for j, approver in enumerate(step["approvers"]):
            yield from _approver(doc, ("steps", i, "approvers", j), catalog, obj, approver)
    for part in ("on_submit", "on_withdraw", "on_approve", "on_reject"):
        yield from _actions(doc, part, catalog, obj)


def _approver(
    doc: Document, at: JsonPath, catalog: Catalog, obj: ObjectDef, approver: Mapping[str, Any]
) -> Iterator[Problem]:
    if "role" in approver:
        yield from _role(doc, (*at, "role"), catalog, approver["role"])
    if "field" in approver:
        yield from _user_reference(doc, (*at, "field"), catalog, obj, approver["field"])


def _actions(doc: Document, part: str | JsonPath, catalog: Catalog, obj: ObjectDef) -> Iterator[Problem]:
    """set targets are fields (and a picklist value one of its options); notify and to-dos reach users."""
    at = (part,) if isinstance(part, str) else part
    for i, action in enumerate(doc.data.get(part, ()) if isinstance(part, str) else doc.get(at)):
        here = (*at, i)
        for name, value in action.get("set", {}).items():
            target = field_of(obj, name)
            if target and _computed(target):
                yield doc.problem((*here, "set", name), f"{obj.name}.{name} is computed by the platform")
            yield from _field_value(doc, (*here, "set", name), obj, name, value)
        notify, todo = action.get("notify", {}), action.get("todo", {})
        for j, role in enumerate(notify.get("roles", ())):
            yield from _role(doc, (*here, "notify", "roles", j), catalog, role)
        if "role" in todo:
            yield from _role(doc, (*here, "todo", "role"), catalog, todo["role"])
        for key, target in (("notify", notify), ("todo", todo)):
            if "field" in target:
                yield from _user_reference(doc, (*here, key, "field"), catalog, obj, target["field"])
        if "recycle" in action and "pool" not in obj.behaviors:
            yield doc.problem(
                (*here, "recycle"), f"recycle needs the pool behavior, which {obj.name!r} lacks"
            )


def check_sales_process(doc: Document, catalog: Catalog) -> Iterator[Problem]:
    """Stage and task keys are unique; required fields and stage approvers resolve."""
    obj, problems = _flow_object(doc, catalog)
    yield from problems
    if obj is None:
        return
    stages = doc.data["stages"]
    yield from _unique(doc, ("stages",), stages, "key", "stage")
    for i, stage in enumerate(stages):
        yield from _unique(doc, ("stages", i, "tasks"), stage.get("tasks", ()), "key", "task")
        for j, name in enumerate(stage.get("required_fields", ())):
            yield from _field_reference(doc, ("stages", i, "required_fields", j), obj, name)
        if stage.get("approval"):
            yield from _approver(doc, ("stages", i, "approval"), catalog, obj, stage["approval"])


def check_rule(doc: Document, catalog: Catalog) -> Iterator[Problem]:
    """The object, the condition and the actions resolve."""
    obj, problems = _flow_object(doc, catalog)
    yield from problems
    if obj is None:
        return
    if "condition" in doc.data:
        yield from _condition(doc, ("condition",), catalog, obj, rule_values(obj))
    yield from _actions(doc, "actions", catalog, obj)
    yield from _rule_actions(doc, obj)


# Values a behavior derives for each record of its object, besides the fields: a rule's condition (run in the
# database) may name them; runtime/expressions_sql.register_derived_values says how each is computed.
BEHAVIOR_VALUES: dict[str, dict[str, str]] = {
    "sales_process": {  # the record's process settings (flows/, kind: sales_process) and its days
        "process.avg_cycle_days": "number", "process.close_reminder_days": "number",
        "process.stage_count": "number", "days_in_stage": "number", "days_to_close": "number",
    },
    "frequency": {  # the period's counted visits, the number the record's grade requires, the days left in it
        "frequency.visited": "number", "frequency.required": "number", "frequency.days_left": "number",
    },
}


def rule_values(obj: ObjectDef) -> dict[str, str]:
    """The derived values (name: kind) a rule condition over `obj` may name, by the object's behaviors."""
    return {name: kind for behavior in obj.behaviors for name, kind in BEHAVIOR_VALUES.get(behavior, {}).items()}


PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def _rule_actions(doc: Document, obj: ObjectDef) -> Iterator[Problem]:
    """A rule's messages and to-do titles fill `{field}` placeholders from the record's own fields, and
    reach users through lookups only (a reverse step would name the users of many records)."""
    for i, action in enumerate(doc.data.get("actions", ())):
        texts = [(("message", lang), text) for lang, text in action.get("message", {}).items()]
        texts += [(("todo", "title", lang), text) for lang, text in action.get("todo", {}).get("title", {}).items()]
        for at, text in texts:
            for match in PLACEHOLDER.finditer(text):
                name = match.group(1)
                if field_of(obj, name) is None:
                    yield doc.problem(("actions", i, *at), f"unknown field {name!r} of {obj.name!r} in a placeholder",
                                      closest(name, field_names(obj)))
        for key in ("notify", "todo"):
            path = action.get(key, {}).get("field", "")
            if "(" in path:
                yield doc.problem(("actions", i, key, "field"),
                                  f"a rule reaches users through lookups only, not the reverse relation in {path!r}")


def check_report(doc: Document, catalog: Catalog) -> Iterator[Problem]:
    """Paths resolve and suit their measures; chart, sort and filters name what the report has."""
    obj, problems = _flow_object(doc, catalog)
    yield from problems
    if obj is None:
        return
    data = doc.data
    if "folder" in data and data["folder"] not in catalog.report_folders:
        yield doc.problem(("folder",), f"unknown report folder {data['folder']!r}"
                          + ("" if catalog.report_folders else " (no kind: report_folders declares any)"),
                          closest(data["folder"], catalog.report_folders))
    dimensions = [(("dimensions", i), d) for i, d in enumerate(data.get("dimensions", ()))]
    dimensions += [(("columns",), data["columns"])] if "columns" in data else []
    measures = [(("measures", i), m) for i, m in enumerate(data.get("measures", ()))]
    yield from _report_columns(doc, catalog, obj, dimensions + measures)
    yield from _measure_expressions(doc, measures)
    computed = [m["key"] for _, m in measures if "expression" in m]
    if computed and "columns" in data:
        yield doc.problem(("columns",), f"a matrix cannot show the computed measure {computed[0]!r}")
    for at, dimension in dimensions:
        yield from _one_record_path(doc, (*at, "field"), dimension["field"], "a dimension")
    measure_keys = (
        FUNNEL_MEASURES if data.get("engine") == "sales_funnel" else [m["key"] for _, m in measures]
    )
    dimension_keys = [d["key"] for _, d in dimensions]
    chart = data.get("chart", {})
    if "dimension" in chart:
        yield from _key_reference(doc, ("chart", "dimension"), "dimension", dimension_keys)
    for i in range(len(chart.get("measures", ()))):
        yield from _key_reference(doc, ("chart", "measures", i), "measure", measure_keys)
    for i, key in enumerate(data.get("sort", ())):
        if key.lstrip("-") in computed:
            yield doc.problem(("sort", i), f"cannot sort by {key.lstrip('-')!r}: the database sorts, and a computed "
                              "measure is worked out after it")
        else:
            yield from _key_reference(doc, ("sort", i), "sort key", [*dimension_keys, *measure_keys])
    for key in data.get("filters", {}):
        path, _, operator = key.partition("__")
        if operator and operator not in FILTER_OPERATORS:
            yield doc.problem(
                ("filters", key), f"unknown filter operator {operator!r}", closest(operator, FILTER_OPERATORS)
            )
        yield from _path_kind(doc, ("filters", key), catalog, obj, path, on_key=True)
        yield from _one_record_path(doc, ("filters", key), path, "a filter", on_key=True)
    for i, runtime_filter in enumerate(data.get("runtime_filters", ())):
        yield from _path_kind(doc, ("runtime_filters", i, "field"), catalog, obj, runtime_filter["field"])
        yield from _one_record_path(doc, ("runtime_filters", i, "field"), runtime_filter["field"], "a filter")
    yield from _report_period(doc, measures)
    if data.get("summary"):
        yield from _report_summary(doc, obj, dimensions, measures)


SUMMED_FUNCTIONS = ("count", "sum")  # what adds up from the groups of a summary


def _report_summary(doc: Document, obj: ObjectDef, dimensions: list[tuple[JsonPath, dict[str, Any]]],
                    measures: list[tuple[JsonPath, dict[str, Any]]]) -> Iterator[Problem]:
    """A report served from a summary groups by fields of its own object that hold few values, and measures what
    adds up from groups: counts and sums (a distinct count does not: two groups may hold the same value)."""
    data = doc.data
    if data.get("engine", "grouping") != "grouping":
        yield doc.problem(("summary",), f"only a grouping report can be served from a summary, not engine "
                          f"{data['engine']!r}")
        return
    keys = [((*at, "field"), d["field"], "a dimension") for at, d in dimensions if "bucket" not in d]
    keys += [((*at, "bucket"), None, "a dimension") for at, d in dimensions if "bucket" in d]
    keys += [(("filters", name), name.partition("__")[0], "a filter") for name in data.get("filters", {})]
    declared = data["summary"].get("keys", ()) if isinstance(data["summary"], Mapping) else ()
    keys += [(("summary", "keys", i), name, "a key") for i, name in enumerate(declared)]
    for at, name, what in keys:
        f = None if name is None or "." in name else field_of(obj, name)
        if name is None:
            yield doc.problem(at, f"{what} of a summary cannot bucket dates: a summary groups by "
                              f"{', '.join(SUMMARY_KEY_TYPES)} fields")
        elif f is None and "." not in name:
            yield doc.problem(at, f"unknown field {name!r} of {obj.name!r}", closest(name, field_names(obj)))
        elif f is None or f.type not in SUMMARY_KEY_TYPES:
            kind = "a path through a lookup" if f is None else f"a {f.type} field"
            yield doc.problem(at, f"{what} of a summary must be a {', '.join(SUMMARY_KEY_TYPES)} field of "
                              f"{obj.name!r}: {name!r} is {kind}")
    for at, m in measures:
        function = m.get("function")
        if "expression" in m:
            continue
        if function == "count_distinct":
            yield doc.problem((*at, "function"), "a distinct count cannot be served from a summary: two groups may "
                              "hold the same value, so their distinct counts do not add up")
        elif function == "avg":
            yield doc.problem((*at, "function"), "a summary keeps counts and sums only: divide a sum by a count in an "
                              "expression measure (e.g. expression: \"amount / leads\")")
        elif function not in SUMMED_FUNCTIONS:
            yield doc.problem((*at, "function"), f"a summary keeps counts and sums only: a {function} cannot be kept "
                              "current when the record holding it leaves its group")
        elif extra := next((k for k in ("filters", "object", "period") if k in m), None):
            yield doc.problem((*at, extra), f"a summary measure counts every record of its group: {extra!r} is "
                              "not kept")
        elif "field" in m and function == "count":
            yield doc.problem((*at, "field"), "a summary counts the records of each group: its count names no field")
        elif "field" in m and "." in m["field"]:
            yield doc.problem((*at, "field"), f"a summary sums fields of {obj.name!r} itself: {m['field']!r} goes "
                              "through a lookup")


def _report_period(doc: Document, measures: list[tuple[JsonPath, dict[str, Any]]]) -> Iterator[Problem]:
    """A measure counting in the period needs the report's `period`, and a `period` some measure counting in it."""
    counted = [at for at, m in measures if "period" in m]
    if counted and "period" not in doc.data:
        yield doc.problem((*counted[0], "period"), "a measure counts in the report's period, and the report has no "
                          "`period` (e.g. period: {default: this_month})")
    elif "period" in doc.data and not counted:
        yield doc.problem(("period",), "no measure counts in the period: give one a `period` (its date field)")


def _one_record_path(doc: Document, at: JsonPath, path: str, what: str, on_key: bool = False) -> Iterator[Problem]:
    """Dimensions and filters follow lookups only: a reverse step would put one record in several groups."""
    offset = 0
    for step in path.split("."):
        match = STEP.fullmatch(step)
        if match and match.group(2):
            yield doc.problem(at, f"{what} cannot go through the reverse relation {step!r} (only measures can)",
                              offset=None if on_key else offset)
            return
        offset += len(step) + 1


def _report_columns(
    doc: Document, catalog: Catalog, obj: ObjectDef, columns: list[tuple[JsonPath, dict[str, Any]]]
) -> Iterator[Problem]:
    """Dimension and measure keys are unique; buckets group dates; sums and averages add numbers."""
    seen: set[str] = set()
    for at, column in columns:
        if column["key"] in seen:
            yield doc.problem((*at, "key"), f"key {column['key']!r} is used twice")
        seen.add(column["key"])
        kind = "any"
        measured = obj
        if "object" in column:
            measured = catalog.objects.get(column["object"])
            if measured is None:
                if column["object"] not in catalog.rejected:
                    yield doc.problem((*at, "object"), f"unknown object {column['object']!r}",
                                      closest(column["object"], catalog.objects))
                continue
            yield from _match_keys(doc, at, catalog, obj, measured, column["match"])
        if "field" in column:
            kind = yield from _path_kind(doc, (*at, "field"), catalog, measured, column["field"])
        if "filters" in column:
            yield from _measure_filters(doc, (*at, "filters"), catalog, measured, column)
        if "period" in column:
            yield from _measure_period(doc, at, catalog, measured, column)
        if "bucket" in column and kind not in ("date", "datetime", "any"):
            yield doc.problem((*at, "bucket"), f"a {column['bucket']} bucket needs a date, not {kind}")
        function = column.get("function")
        allowed = ("number", "any") if function in ("sum", "avg") else ORDERED_KINDS
        if function in ("sum", "avg", "min", "max") and kind not in allowed:
            yield doc.problem((*at, "function"), f"cannot {function} {column['field']!r}: it is {kind}")


def _match_keys(doc: Document, at: JsonPath, catalog: Catalog, base: ObjectDef, measured: ObjectDef,
                keys: Sequence[Mapping[str, Any]]) -> Iterator[Problem]:
    """Each key follows lookups of the measured object and of the base object, and compares alike kinds (a
    window `after` ... `within_days` compares dates with dates or date-times with date-times)."""
    for i, key in enumerate(keys):
        here = (*at, "match", i)
        side = "after" if "after" in key else "equals"
        mine = yield from _path_kind(doc, (*here, "field"), catalog, measured, key["field"])
        theirs = yield from _path_kind(doc, (*here, side), catalog, base, key[side])
        yield from _one_record_path(doc, (*here, "field"), key["field"], "a match key")
        yield from _one_record_path(doc, (*here, side), key[side], "a match key")
        if side == "after":
            if mine not in ("date", "datetime", "any"):
                yield doc.problem((*here, "field"), f"a window within days needs a date, not {mine}")
            elif "any" not in (mine, theirs) and mine != theirs:
                yield doc.problem((*here, "after"), f"a window compares alike dates: {key['field']!r} is {mine}, "
                                  f"{key['after']!r} is {theirs}")
        elif "bucket" in key:
            if mine not in ("date", "datetime", "any"):
                yield doc.problem((*here, "bucket"), f"a {key['bucket']} bucket needs a date, not {mine}")
            elif theirs not in ("text", "any"):
                yield doc.problem((*here, "equals"), f"a {key['bucket']} bucket is text such as 2026-03: "
                                  f"{key['equals']!r} is {theirs}")
        elif "any" not in (mine, theirs) and mine != theirs:
            yield doc.problem((*here, "equals"), f"a match key compares alike values: {key['field']!r} is {mine}, "
                              f"{key['equals']!r} is {theirs}")


def _measured_object(catalog: Catalog, obj: ObjectDef, path: str) -> ObjectDef | None:
    """The object whose records a measure's path ends at (None past a rejected or unknown definition)."""
    steps = path.split(".")
    for i, step in enumerate(steps):
        match = STEP.fullmatch(step)
        if match is None:
            return None
        name, via = match.groups()
        if via:
            obj = catalog.objects.get(name)
        elif i < len(steps) - 1:
            found = field_of(obj, name)
            obj = catalog.objects.get(found.to) if found is not None and found.to else None
        if obj is None:
            return None
    return obj


def _measure_filters(doc: Document, at: JsonPath, catalog: Catalog, measured: ObjectDef,
                     measure: Mapping[str, Any]) -> Iterator[Problem]:
    """A measure's filters name fields of the records it measures, with the report filters' operators."""
    target = _measured_object(catalog, measured, measure["field"]) if "field" in measure else measured
    if target is None:
        return
    for key in measure["filters"]:
        name, _, operator = key.partition("__")
        if operator and operator not in FILTER_OPERATORS:
            yield doc.problem((*at, key), f"unknown filter operator {operator!r}", closest(operator, FILTER_OPERATORS))
        if field_of(target, name) is None:
            yield doc.problem((*at, key), f"unknown field {name!r} of {target.name!r} (a measure's filters name "
                              "fields of the records it measures)", closest(name, field_names(target)))


def _measure_period(doc: Document, at: JsonPath, catalog: Catalog, measured: ObjectDef,
                    measure: Mapping[str, Any]) -> Iterator[Problem]:
    """A measure's `period` names a date or date-time field of the records it measures."""
    target = _measured_object(catalog, measured, measure["field"]) if "field" in measure else measured
    if target is None:
        return
    name = measure["period"]
    found = field_of(target, name)
    if found is None:
        yield doc.problem((*at, "period"), f"unknown field {name!r} of {target.name!r} (a measure's period names a "
                          "date field of the records it measures)", closest(name, field_names(target)))
    elif found.type not in ("date", "datetime"):
        yield doc.problem((*at, "period"), f"a period needs a date, not {found.type} ({name!r})")


def _measure_expressions(doc: Document, measures: list[tuple[JsonPath, dict[str, Any]]]) -> Iterator[Problem]:
    """An expression measure reads the other (not computed) measures of its row, as numbers."""
    env = {m["key"]: "number" for _, m in measures if "expression" not in m}
    for at, measure in measures:
        if "expression" not in measure:
            if "total" in measure:
                yield doc.problem((*at, "total"), "`total: sum` is for a computed measure (expression): the database "
                                  "works out a function's totals cell over all rows")
            continue
        try:
            expression = parse(measure["expression"])
            for node in walk(expression.node):
                if isinstance(node, Name) and node.name not in env:
                    yield doc.problem((*at, "expression"), f"unknown measure {node.name!r}",
                                      closest(node.name, env), offset=node.offset)
                    break
            else:
                if (kind := expression.check(env)) != "number":
                    yield doc.problem((*at, "expression"), f"a measure's expression gives a number, not {kind}")
        except ExpressionError as e:
            yield doc.problem((*at, "expression"), str(e), offset=e.offset)


def _key_reference(doc: Document, at: JsonPath, what: str, keys: Sequence[str]) -> Iterator[Problem]:
    key = doc.get(at).lstrip("-")
    if key not in keys:
        yield doc.problem(at, f"unknown {what} {key!r}", closest(key, keys))


# ----------------------------------------------------------------------------- dashboards, navigation

# Each widget type and the options it takes (besides type, title, span); the first ones listed are required.
# A "target vs achieved" widget (the sales targets) is a new entry here and in runtime/dashboards.WIDGETS.
WIDGET_OPTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "kpi": (("report", "measure"), ("period", "date_field", "filters", "scene")),
    "chart": (("report",), ("filters", "scene")),
    "table": (("report",), ("filters", "limit", "scene")),
    "todos": ((), ("kinds", "limit")),
    "list": (("object", "columns"), ("condition", "sort", "scene", "limit")),
}
COMMON_WIDGET_KEYS = ("type", "title", "span")


def check_dashboard(doc: Document, catalog: Catalog) -> Iterator[Problem]:
    """Roles are known and have one home each; each widget's type is known, takes the options it is given and
    names reports, measures, objects and fields that exist."""
    data = doc.data
    if catalog.dashboards.get(data["name"]) is None or catalog.dashboards[data["name"]].source != doc.source():
        return
    for i, role in enumerate(data.get("roles", ())):
        yield from _role(doc, ("roles", i), catalog, role)
        first = next(d for d in catalog.dashboards.values() if role in d.roles)
        if first.source != doc.source():
            yield doc.problem(("roles", i), f"role {role!r} already has its home: dashboard {first.name!r}")
    for i, widget in enumerate(data["widgets"]):
        yield from _widget(doc, ("widgets", i), catalog, widget)


def _widget(doc: Document, at: JsonPath, catalog: Catalog, widget: Mapping[str, Any]) -> Iterator[Problem]:
    kind = widget["type"]
    if kind not in WIDGET_OPTIONS:
        yield doc.problem((*at, "type"), f"unknown widget type {kind!r}", closest(kind, WIDGET_OPTIONS))
        return
    required, optional = WIDGET_OPTIONS[kind]
    for key in widget:
        if key not in (*COMMON_WIDGET_KEYS, *required, *optional):
            yield doc.problem((*at, key), f"a {kind} widget takes no {key!r}")
    missing = [key for key in required if key not in widget]
    if missing:
        yield doc.problem(at, f"a {kind} widget needs {' and '.join(missing)}")
        return
    if "report" in widget:
        yield from _widget_report(doc, at, catalog, widget)
    if "object" in widget:
        yield from _widget_list(doc, at, catalog, widget)


def _widget_report(doc: Document, at: JsonPath, catalog: Catalog, widget: Mapping[str, Any]) -> Iterator[Problem]:
    """The report exists; a KPI's measure is one of its and its date field a date; a chart's report has a chart."""
    report = catalog.reports.get(widget["report"])
    if report is None:
        yield doc.problem((*at, "report"), f"unknown report {widget['report']!r}", closest(widget["report"],
                                                                                           catalog.reports))
        return
    obj = catalog.objects.get(report.object)
    if obj is None:
        return
    if widget["type"] == "chart" and report.chart is None:
        yield doc.problem((*at, "report"), f"report {report.name!r} has no chart: show it as a table widget")
    if widget["type"] == "kpi":
        if report.engine != "grouping":
            yield doc.problem((*at, "report"), f"a kpi widget sums a grouping report; {report.name!r} is run by "
                                               f"the {report.engine} engine")
        keys = [m.key for m in report.measures]
        if widget["measure"] not in keys:
            yield doc.problem((*at, "measure"), f"unknown measure {widget['measure']!r} of report {report.name!r}",
                              closest(widget["measure"], keys))
        if "period" in widget or "date_field" in widget:
            kind = yield from _path_kind(doc, (*at, "date_field"), catalog, obj, widget.get("date_field", "created_at"))
            if kind not in ("date", "datetime", "any"):
                yield doc.problem((*at, "date_field"), f"a period needs a date field, not {kind}")
    for key in widget.get("filters", {}):
        yield from _path_kind(doc, (*at, "filters", key), catalog, obj, key, on_key=True)


def _widget_list(doc: Document, at: JsonPath, catalog: Catalog, widget: Mapping[str, Any]) -> Iterator[Problem]:
    """The object exists; columns and sort name its fields; the condition is true or false over them."""
    obj = catalog.objects.get(widget["object"])
    if obj is None:
        if widget["object"] not in catalog.rejected:
            yield doc.problem((*at, "object"), f"unknown object {widget['object']!r}",
                              closest(widget["object"], catalog.objects))
        return
    for part in ("columns", "sort"):
        for i, name in enumerate(widget.get(part, ())):
            yield from _field_reference(doc, (*at, part, i), obj, name.lstrip("-"))
    if "condition" in widget:
        yield from _condition(doc, (*at, "condition"), catalog, obj)


def check_navigation(doc: Document, catalog: Catalog) -> Iterator[Problem]:
    """Each item names a known object, once; a group's key appears once in the document (pages are held to
    the registered pages when the platform is built: runtime/navigation.py)."""
    keys: set[str] = set()
    for i, group in enumerate(doc.data["groups"]):
        if group["key"] in keys:
            yield doc.problem(("groups", i, "key"), f"menu group {group['key']!r} is listed twice")
        keys.add(group["key"])
        for j, item in enumerate(group["items"]):
            name = item.get("object")
            if name is not None and name not in catalog.objects and name not in catalog.rejected:
                yield doc.problem(("groups", i, "items", j, "object"), f"unknown object {name!r}",
                                  closest(name, catalog.objects))
    seen: dict[str, str] = {}
    for group in catalog.navigation.values():
        for item in group.items:
            name = " ".join(filter(None, (item.object, item.page and f"page {item.page}")))
            if name in seen and item.source.file == doc.file:
                yield Problem.at(item.source.file, item.source.line, item.source.col,
                                 f"{name!r} is already in the menu (group {seen[name]!r})")
            seen.setdefault(name, group.key)


def check_report_folders(doc: Document, catalog: Catalog) -> Iterator[Problem]:
    """A folder's key appears once in the document (a later layer may relabel it)."""
    yield from _unique(doc, ("folders",), doc.data["folders"], "key", "report folder")


CHECKS = {
    "object": check_object,
    "object_extension": check_object,
    "picklist": check_picklist,
    "roles": check_roles,
    "approval_flow": check_approval_flow,
    "sales_process": check_sales_process,
    "rule": check_rule,
    "report": check_report,
    "dashboard": check_dashboard,
    "navigation": check_navigation,
    "report_folders": check_report_folders,
}
