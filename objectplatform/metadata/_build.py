"""Documents to typed definitions: layers merged in order, extensions applied, references resolved."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from ._yaml import Document
from .expressions import Expression, ExpressionError, parse
from .fieldtypes import FIELD_TYPES
from .model import (
    ALL_FIELDS,
    ApprovalFlow,
    ApprovalStep,
    Chart,
    Dashboard,
    DefaultMatch,
    Definition,
    DuplicateRule,
    Effects,
    FieldDef,
    Flow,
    FlowTrigger,
    Label,
    LayoutSection,
    Lifecycle,
    ListView,
    MatchKey,
    NavGroup,
    NavItem,
    ObjectDef,
    Option,
    Picklist,
    Report,
    ReportDimension,
    ReportFolder,
    ReportMeasure,
    ReportPeriod,
    ReportSummary,
    RoleDef,
    RollupSpec,
    Rule,
    RuntimeFilter,
    SalesProcess,
    Source,
    Stage,
    State,
    Task,
    Transition,
    TypedOverride,
    ValidationRule,
    VCardImport,
    Widget,
)
from .problems import Problem, closest

FLOW_KINDS = ("approval_flow", "sales_process", "rule")
FLAGS = ("required", "unique", "read_only", "hidden", "index", "searchable", "system")
# options copied as they are onto FieldDef; `options` and the rollup's become Option and RollupSpec
PLAIN_OPTIONS = (
    "max_length",
    "precision",
    "scale",
    "min",
    "max",
    "to",
    "picklist",
    "pattern",
    "expression",
    "result_type",
    "stored",
    "team",
    "on_delete",
)
# what an object_extension may change on a field an earlier document defined
RELABEL_OPTIONS = ("label", "help", "hidden", "searchable", "index", "required", "default")
OPTION_KEYS = ("value", "label", "active", "order")


@dataclass
class Catalog:
    """The definitions built so far, by name."""

    objects: dict[str, ObjectDef] = field(default_factory=dict)
    picklists: dict[str, Picklist] = field(default_factory=dict)
    roles: dict[str, RoleDef] = field(default_factory=dict)
    flows: dict[str, Flow] = field(default_factory=dict)
    reports: dict[str, Report] = field(default_factory=dict)
    dashboards: dict[str, Dashboard] = field(default_factory=dict)
    navigation: dict[str, NavGroup] = field(default_factory=dict)  # by key, in declared order
    report_folders: dict[str, ReportFolder] = field(default_factory=dict)  # by key, in declared order
    # names whose definitions failed validation (objects, picklists, roles; fields as "object.field"):
    # references to them are not reported again
    rejected: set[str] = field(default_factory=set)


def build_label(value: Mapping[str, str] | None) -> Label:
    """A label from `{zh, en}`; a missing language takes the other's text."""
    return Label.of(value)


def build_definition(data: Mapping[str, Any], source: Source, staged: str | None = None) -> Definition:
    """A flow or report document (validated by its kind's schema) as its typed definition, its expressions
    parsed; a sales process is about `staged` (the object with the sales_process behavior) unless it says."""
    kind = data["kind"]
    default_object = staged if kind == "sales_process" else None
    name, label, obj = data["name"], build_label(data["label"]), data.get("object", default_object)
    document = _frozen(data)
    if kind == "approval_flow":
        trigger = data["trigger"]
        return ApprovalFlow(
            name, label, obj, source, FlowTrigger(trigger["on"], trigger.get("action"), trigger.get("field")),
            tuple(ApprovalStep(s["name"], build_label(s["label"]), _frozen(s["approvers"]), s.get("mode", "any"),
                               _expression(s.get("condition")), s.get("remind_after_hours"))
                  for s in data["steps"]),
            _expression(data.get("condition")),
            *(_effects(data, part) for part in ("on_submit", "on_withdraw", "on_approve", "on_reject")),
            document=document,
        )
    if kind == "sales_process":
        stages = tuple(
            Stage(s["key"], build_label(s["label"]), Decimal(str(s["probability"])),
                  tuple(Task(t["key"], build_label(t["label"]), bool(t.get("required"))) for t in s.get("tasks", ())),
                  tuple(s.get("required_fields", ())), _frozen(s.get("approval") or None))
            for s in data["stages"])
        return SalesProcess(name, label, obj, source, stages, tuple(data.get("departments", ())),
                            data.get("avg_cycle_days"), data.get("close_reminder_days"), document)
    if kind == "rule":
        trigger = data["trigger"]
        return Rule(name, label, obj, source, _effects(data, "actions"), trigger.get("schedule"),
                    trigger.get("event"), _expression(data.get("condition")), document)
    chart = data.get("chart")
    return Report(
        name, label, obj, source, data.get("engine", "grouping"),
        tuple(_dimension(d) for d in data.get("dimensions", ())),
        _dimension(data["columns"]) if "columns" in data else None,
        tuple(_measure(m) for m in data.get("measures", ())),
        _frozen(data.get("filters", {})),
        tuple(RuntimeFilter(f["field"], _optional_label(f)) for f in data.get("runtime_filters", ())),
        data.get("scene", "all"), tuple(data.get("sort", ())), data.get("limit"), data.get("totals", True),
        Chart(chart["type"], tuple(chart["measures"]), chart.get("dimension")) if chart else None,
        document,
        ReportPeriod(data["period"]["default"], _optional_label(data["period"])) if "period" in data else None,
        data.get("folder"), _optional_label(data, "description"), _summary(data.get("summary", False)),
    )


def _summary(given: bool | Mapping[str, Any]) -> ReportSummary | None:
    """`summary: true` or `summary: {keys: [...]}` as the report's summary; None for none."""
    if given is False:
        return None
    return ReportSummary(tuple(given.get("keys", ())) if isinstance(given, Mapping) else ())


def _expression(text: str | None) -> Expression | None:
    """The parsed expression; None when there is none, or when it does not parse (the kind's check reports
    that with file:line, and metadata with a problem never loads)."""
    if text is None:
        return None
    try:
        return parse(text)
    except ExpressionError:
        return None


def _effects(data: Mapping[str, Any], part: str) -> Effects:
    return tuple(_frozen(data.get(part, ())))


def _dimension(spec: Mapping[str, Any]) -> ReportDimension:
    return ReportDimension(spec["key"], spec["field"], spec.get("bucket"), _optional_label(spec))


def _widget(spec: Mapping[str, Any], source: Source) -> Widget:
    """A dashboard widget with the options its type uses (checks.check_dashboard says which are needed)."""
    return Widget(
        spec["type"], build_label(spec["title"]), source, spec.get("span", 1), spec.get("report"),
        spec.get("measure"), spec.get("period"), spec.get("date_field", "created_at"),
        _frozen(spec.get("filters", {})), spec.get("object"), _expression(spec.get("condition")),
        tuple(spec.get("columns", ())), tuple(spec.get("sort", ())), spec.get("scene"),
        tuple(spec.get("kinds", ())), spec.get("limit", 10),
    )

def _measure(spec: Mapping[str, Any]) -> ReportMeasure:
    return ReportMeasure(
        spec["key"], spec.get("function"), spec.get("field"), _optional_label(spec), _frozen(spec.get("filters", {})),
        spec.get("object"), tuple(_match_key(k) for k in spec.get("match", ())),
        _expression(spec.get("expression")), spec.get("period"), spec.get("total"))


def _match_key(spec: Mapping[str, Any]) -> MatchKey:
    if "after" in spec:
        return MatchKey(spec["field"], spec["after"], within_days=spec["within_days"])
    return MatchKey(spec["field"], spec["equals"], spec.get("bucket"))


def _optional_label(spec: Mapping[str, Any], key: str = "label") -> Label | None:
    return build_label(spec[key]) if spec.get(key) else None


def _frozen(value: Any) -> Any:
    """YAML data made read-only: mappings as mapping proxies, lists as tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def merge_options(options: tuple[Option, ...], items: Iterable[Mapping[str, Any]]) -> tuple[Option, ...]:
    """`options` plus `items`: new values appended, known ones relabelled, reordered, (de)activated."""
    merged = {o.value: o for o in options}
    for item in items:
        attrs = {k: v for k, v in item.items() if k not in OPTION_KEYS}
        old = merged.get(item["value"])
        if old:
            merged[old.value] = replace(
                old,
                label=build_label(item["label"]),
                active=item.get("active", old.active),
                order=item.get("order", old.order),
                attrs=MappingProxyType({**old.attrs, **attrs}),
            )
        else:
            merged[item["value"]] = Option(
                item["value"],
                build_label(item["label"]),
                item.get("active", True),
                item.get("order", (len(merged) + 1) * 10),
                MappingProxyType(attrs),
            )
    return tuple(sorted(merged.values(), key=lambda o: o.order))


def build_field(name: str, spec: Mapping[str, Any], source: Source) -> FieldDef:
    """A field from its YAML mapping, with the type's defaults; an unknown type keeps only common options."""
    field_type = FIELD_TYPES.get(spec.get("type", ""))
    given = {k: spec[k] for k in field_type.options if k in spec} if field_type else {}
    defaults: dict[str, Any] = dict(field_type.defaults) if field_type else {}
    if field_type and field_type.reference not in (None, "to"):
        defaults["to"] = field_type.reference
    rollup = None
    if field_type and field_type.name == "rollup":
        rollup = RollupSpec(
            given.get("function", ""),
            given.get("child", ""),
            given.get("via", ""),
            given.get("field"),
            MappingProxyType(given.get("filter", {})),
            given.get("never_above"),
        )
    typed = given.get("typed_override") if field_type and field_type.name == "formula" else None
    return FieldDef(
        name,
        spec.get("type", ""),
        build_label(spec.get("label")),
        source,
        help=build_label(spec["help"]) if "help" in spec else None,
        default=spec.get("default"),
        default_from=(spec["default_from"],) if isinstance(spec.get("default_from"), str)
        else tuple(spec.get("default_from", ())),
        **{k: spec[k] for k in FLAGS if k in spec},
        **{**defaults, **{k: v for k, v in given.items() if k in PLAIN_OPTIONS}},
        options=merge_options((), given.get("options", ())),
        rollup=rollup,
        typed_override=None if typed is None else TypedOverride(
            MappingProxyType(dict(typed.get("derive", {}))), typed.get("min"), typed.get("max")),
        filter=MappingProxyType(dict(given["filter"] if "filter" in given and rollup is None else {})),
        show=tuple(given.get("show", ())),
        default_match=None if "default_match" not in spec else DefaultMatch(
            spec["default_match"]["object"], spec["default_match"]["value"],
            tuple(MappingProxyType(dict(m)) for m in spec["default_match"]["match"]),
            spec["default_match"].get("where"), spec["default_match"].get("record"),
            spec["default_match"].get("override")),
    )


def build_lifecycle(doc: Document, base: Lifecycle | None = None) -> Lifecycle:
    """The document's `lifecycle:` as typed definitions (checked by checks.check_lifecycle); an
    extension's adds states and transitions to `base` (or replaces those of the same name)."""
    spec, at = doc.data["lifecycle"], ("lifecycle",)
    initial = spec.get("initial", base.initial if base else ())
    states = {**(base.states if base else {}),
              **{value: _state(value, state or {}, doc.source((*at, "states", value)))
                 for value, state in spec.get("states", {}).items()}}
    transitions = dict(base.transitions) if base else {}
    for name, t in spec.get("transitions", {}).items():
        here = (*at, "transitions", name)
        transitions[name] = Transition(
            name, build_label(t.get("label") or {"en": name}), tuple(t["from"]), t.get("to"), doc.source(here),
            roles=tuple(t.get("roles", ())), condition=t.get("condition"),
            params=tuple(build_field(p, ps, doc.source((*here, "params", p))) for p, ps in t.get("params", {}).items()),
            required_fields=tuple(t.get("required_fields", ())), set=MappingProxyType(dict(t.get("set", {}))),
            actions=tuple(t.get("actions", ())), close_todos=tuple(t.get("close_todos", ())), by=t.get("by"),
            when=t.get("when"), message=build_label(t["message"]) if "message" in t else None,
        )
    return Lifecycle(spec.get("field") or base.field, (initial,) if isinstance(initial, str) else tuple(initial),
                     MappingProxyType(states), MappingProxyType(transitions), base.source if base else doc.source(at))


def _state(value: str, spec: Mapping[str, Any], source: Source) -> State:
    """A state keeps every field editable unless it lists them; the others stay editable to the roles of
    `editable_by` and to administrators (full access)."""
    editable = spec.get("editable", ALL_FIELDS)
    return State(value, editable if editable == ALL_FIELDS else tuple(editable),
                 tuple(spec.get("editable_by", ())), source, tuple(spec.get("on_enter", ())), bool(spec.get("side")))


def via_candidates(catalog: Catalog, child: str, parent: str) -> list[str]:
    """The lookup and master_detail fields of `child` that point at `parent`."""
    fields = catalog.objects[child].fields.values() if child in catalog.objects else ()
    return [f.name for f in fields if f.type in ("lookup", "master_detail") and f.to == parent]


class Builder:
    """Adds documents to a catalog in layer order, yielding the conflicts between them."""

    def __init__(self, rejected: set[str]):
        self.catalog = Catalog(rejected=rejected)
        self.first_layer: dict[tuple[str, str], int] = {}  # (kind, name) -> layer of its first definition

    def build(self, docs: list[Document]) -> Iterator[Problem]:
        """Every document, kind by kind so that references across kinds resolve; then the finishing pass."""
        steps = (
            ("picklist", self.add_picklist),
            ("roles", self.add_roles),
            ("object", self.add_object),
            ("object_extension", self.extend_object),
            *((k, self.add_definition) for k in FLOW_KINDS),
            ("report", self.add_definition),
            ("dashboard", self.add_dashboard),
            ("navigation", self.add_navigation),
            ("report_folders", self.add_report_folders),
        )
        for kind, add in steps:
            for doc in docs:
                if doc.data["kind"] == kind:
                    yield from add(doc)
        self.finish(next((d for d in docs if d.data["kind"] == "roles"), None))

    def _same_layer(self, kind: str, name: str, doc: Document) -> bool:
        """Whether `doc` is in the layer that first defined `name`: a duplicate rather than an extension."""
        return self.first_layer[kind, name] == doc.layer

    def add_picklist(self, doc: Document) -> Iterator[Problem]:
        data, picklists = doc.data, self.catalog.picklists
        name = data["name"]
        old = picklists.get(name)
        if name == "roles":
            yield doc.problem(("name",), "picklist 'roles' is built in: it lists the roles of kind: roles")
        elif old is None:
            self.first_layer["picklist", name] = doc.layer
            picklists[name] = Picklist(
                name, build_label(data["label"]), merge_options((), data["options"]), doc.source()
            )
        elif self._same_layer("picklist", name, doc):
            yield doc.problem(("name",), f"picklist {name!r} is already defined at {old.source}")
        else:
            picklists[name] = replace(
                old, label=build_label(data["label"]), options=merge_options(old.options, data["options"])
            )

    def add_roles(self, doc: Document) -> Iterator[Problem]:
        roles = self.catalog.roles
        for name, spec in doc.data["roles"].items():
            old, path = roles.get(name), ("roles", name)
            permissions = {k: MappingProxyType(v) for k, v in spec.get("permissions", {}).items()}
            sources = {(obj, action): doc.source((*path, "permissions", obj, "actions", i))
                       for obj, grant in permissions.items() for i, action in enumerate(grant.get("actions", ()))}
            levels = {obj: MappingProxyType(dict(grant.get("fields", {}))) for obj, grant in permissions.items()
                      if obj != "*"}
            if old is None:
                self.first_layer["role", name] = doc.layer
                roles[name] = RoleDef(
                    name, build_label(spec["label"]), doc.source(path), MappingProxyType(permissions),
                    MappingProxyType(sources), MappingProxyType(levels),
                )
            elif self._same_layer("role", name, doc):
                yield doc.problem(path, f"role {name!r} is already defined at {old.source}")
            else:
                roles[name] = replace(
                    old,
                    label=build_label(spec["label"]),
                    permissions=MappingProxyType({**old.permissions, **permissions}),
                    action_sources=MappingProxyType({**old.action_sources, **sources}),
                    field_levels=MappingProxyType({**old.field_levels, **levels}),
                )

    def add_object(self, doc: Document) -> Iterator[Problem]:
        data, objects = doc.data, self.catalog.objects
        name = data["name"]
        if old := objects.get(name):
            later = "" if self._same_layer("object", name, doc) else "; use kind: object_extension"
            yield doc.problem(("name",), f"object {name!r} is already defined at {old.source}{later}")
            return
        self.first_layer["object", name] = doc.layer
        rules: dict[str, ValidationRule] = {}
        yield from self._add_rules(doc, name, rules)
        duplicate_rules: dict[str, DuplicateRule] = {}
        yield from self._add_duplicate_rules(doc, name, duplicate_rules)
        view = data.get("list_view")
        objects[name] = ObjectDef(
            name,
            build_label(data["label"]),
            {n: build_field(n, spec, doc.source(("fields", n))) for n, spec in data["fields"].items()},
            doc.source(),
            title_field=data.get("title_field", "id"),
            plural_label=build_label(data["plural_label"]) if "plural_label" in data else None,
            validation_rules=tuple(rules.values()),
            duplicate_rules=tuple(duplicate_rules.values()),
            list_view=_extend_list_view(ListView(()), view) if view else None,
            layout=tuple(
                LayoutSection(s["name"], build_label(s["label"]), tuple(s["fields"]), s.get("columns", 2))
                for s in data.get("layout", {}).get("sections", ())
            ),
            behaviors=data.get("behaviors", {}),
            lifecycle=build_lifecycle(doc) if "lifecycle" in data else None,
            vcard_import=_vcard_import(data["imports"]["vcard"]) if "vcard" in data.get("imports", {}) else None,
            search=tuple(data.get("search", ())),
        )

    def _add_rules(self, doc: Document, obj: str, rules: dict[str, ValidationRule]) -> Iterator[Problem]:
        for i, spec in enumerate(doc.data.get("validation_rules", ())):
            name, path = spec["name"], ("validation_rules", i)
            if old := rules.get(name):
                yield doc.problem(
                    (*path, "name"), f"validation rule {name!r} of {obj!r} is already defined at {old.source}"
                )
            else:
                rules[name] = ValidationRule(
                    name, spec["condition"], build_label(spec["message"]), doc.source(path), spec.get("field")
                )

    def _add_duplicate_rules(self, doc: Document, obj: str, rules: dict[str, DuplicateRule]) -> Iterator[Problem]:
        """A duplicate rule of a new name is added; in an extension, one of an earlier layer's name replaces it."""
        seen: set[str] = set()
        for i, spec in enumerate(doc.data.get("duplicate_rules", ())):
            name, path = spec["name"], ("duplicate_rules", i)
            if name in seen:
                yield doc.problem(
                    (*path, "name"), f"duplicate rule {name!r} of {obj!r} is already defined at {rules[name].source}"
                )
                continue
            seen.add(name)
            rules[name] = DuplicateRule(
                name, tuple(spec["fields"]), spec["action"], build_label(spec["label"]), doc.source(path)
            )

    def extend_object(self, doc: Document) -> Iterator[Problem]:
        data, objects = doc.data, self.catalog.objects
        obj = objects.get(data["object"])
        if obj is None:
            if data["object"] not in self.catalog.rejected:
                yield doc.problem(
                    ("object",), f"unknown object {data['object']!r}", closest(data["object"], objects)
                )
            return
        fields = dict(obj.fields)
        for name, spec in data.get("fields", {}).items():
            if name in fields:
                yield from self._relabel_field(doc, obj, fields, name, spec)
            elif missing := [key for key in ("type", "label") if key not in spec]:
                yield doc.problem(
                    ("fields", name),
                    f"{obj.name!r} has no field {name!r}; a new field needs a {' and a '.join(missing)}",
                )
            else:
                fields[name] = build_field(name, spec, doc.source(("fields", name)))
        for name, items in data.get("options", {}).items():
            yield from self._extend_options(doc, obj, fields, name, items)
        rules = {r.name: r for r in obj.validation_rules}
        yield from self._add_rules(doc, obj.name, rules)
        duplicate_rules = {r.name: r for r in obj.duplicate_rules}
        yield from self._add_duplicate_rules(doc, obj.name, duplicate_rules)
        sections = {s.name: s for s in obj.layout}
        for i, spec in enumerate(data.get("layout", {}).get("sections", ())):
            old = sections.get(spec["name"])
            if old:
                sections[old.name] = replace(
                    old,
                    label=build_label(spec["label"]) if "label" in spec else old.label,
                    fields=_append(old.fields, spec.get("fields", ())),
                    columns=spec.get("columns", old.columns),
                )
            elif "label" in spec:
                sections[spec["name"]] = LayoutSection(
                    spec["name"],
                    build_label(spec["label"]),
                    tuple(spec.get("fields", ())),
                    spec.get("columns", 2),
                )
            else:
                yield doc.problem(("layout", "sections", i), f"new section {spec['name']!r} needs a label")
        if "lifecycle" in data and obj.lifecycle is None:
            yield doc.problem(("lifecycle",), f"{obj.name!r} has no lifecycle to extend; its object document "
                                              "declares one")
        behaviors = {**obj.behaviors}
        for name, config in data.get("behaviors", {}).items():
            behaviors[name] = {**behaviors.get(name, {}), **config}
        objects[obj.name] = replace(
            obj,
            fields=fields,
            label=build_label(data["label"]) if "label" in data else obj.label,
            plural_label=build_label(data["plural_label"]) if "plural_label" in data else obj.plural_label,
            validation_rules=tuple(rules.values()),
            duplicate_rules=tuple(duplicate_rules.values()),
            list_view=_extend_list_view(obj.list_view or ListView(()), data["list_view"])
            if "list_view" in data
            else obj.list_view,
            layout=tuple(sections.values()),
            behaviors=behaviors,
            extended_by=(*obj.extended_by, doc.file),
            lifecycle=build_lifecycle(doc, obj.lifecycle) if "lifecycle" in data and obj.lifecycle else obj.lifecycle,
            search=_append(obj.search, data.get("search", ())),
        )

    def _relabel_field(
        self, doc: Document, obj: ObjectDef, fields: dict[str, FieldDef], name: str, spec: Mapping[str, Any]
    ) -> Iterator[Problem]:
        old, path = fields[name], ("fields", name)
        if spec.get("type", old.type) != old.type:
            yield doc.problem(
                (*path, "type"),
                f"field {name!r} of {obj.name!r} is a {old.type} in {old.source}; "
                f"{doc.file} cannot change it to {spec['type']}",
            )
        if "default" in spec and old.type in FIELD_TYPES and FIELD_TYPES[old.type].computed:
            yield doc.problem((*path, "default"),
                              f"a {old.type} field is computed by the platform: it takes no default")
        for option in sorted(spec.keys() - {"type", *RELABEL_OPTIONS}):
            yield doc.problem(
                (*path, option),
                f"field {name!r} of {obj.name!r} is defined at {old.source}; an "
                f"extension may only change its {', '.join(RELABEL_OPTIONS)}",
            )
        changes = {k: spec[k] for k in RELABEL_OPTIONS if k in spec}
        for key in ("label", "help"):
            if key in changes:
                changes[key] = build_label(changes[key])
        fields[name] = replace(old, **changes)

    def _extend_options(
        self,
        doc: Document,
        obj: ObjectDef,
        fields: dict[str, FieldDef],
        name: str,
        items: list[Mapping[str, Any]],
    ) -> Iterator[Problem]:
        old, path = fields.get(name), ("options", name)
        if old is None:
            yield doc.problem(path, f"unknown field {name!r} of {obj.name!r}", closest(name, fields))
        elif old.picklist:
            yield doc.problem(
                path,
                f"field {name!r} takes its options from picklist {old.picklist!r}; "
                "extend that picklist with a kind: picklist of the same name",
            )
        elif old.type not in ("picklist", "multi_picklist"):
            yield doc.problem(path, f"field {name!r} of {obj.name!r} is a {old.type}; it has no options")
        else:
            fields[name] = replace(old, options=merge_options(old.options, items))

    def add_definition(self, doc: Document) -> Iterator[Problem]:
        data = doc.data
        kind, name = data["kind"], data["name"]
        registry = self.catalog.reports if kind == "report" else self.catalog.flows
        if old := registry.get(name):
            yield doc.problem(("name",), f"{old.kind} {name!r} is already defined at {old.source}")
            return
        registry[name] = build_definition(data, doc.source(), self._staged())

    def add_dashboard(self, doc: Document) -> Iterator[Problem]:
        data, dashboards = doc.data, self.catalog.dashboards
        if old := dashboards.get(data["name"]):
            yield doc.problem(("name",), f"dashboard {data['name']!r} is already defined at {old.source}")
            return
        dashboards[data["name"]] = Dashboard(
            data["name"], build_label(data["label"]), doc.source(), tuple(data.get("roles", ())),
            tuple(_widget(spec, doc.source(("widgets", i))) for i, spec in enumerate(data["widgets"])))

    def add_navigation(self, doc: Document) -> Iterator[Problem]:
        """A group of a new key is added after the others; one of a known key gets the items appended (and a
        new label, if given)."""
        groups = self.catalog.navigation
        for i, spec in enumerate(doc.data["groups"]):
            at = ("groups", i)
            items = tuple(NavItem(doc.source((*at, "items", j)), item.get("object"), item.get("page"),
                                  _optional_label(item)) for j, item in enumerate(spec["items"]))
            old = groups.get(spec["key"])
            if old is None and "label" not in spec:
                yield doc.problem(at, f"new menu group {spec['key']!r} needs a label")
            elif old is None:
                groups[spec["key"]] = NavGroup(spec["key"], build_label(spec["label"]), items, doc.source(at))
            else:
                groups[old.key] = replace(old, label=_optional_label(spec) or old.label, items=old.items + items)

    def add_report_folders(self, doc: Document) -> Iterator[Problem]:
        """A folder of a new key is added after the others; one of a known key may be given a new label."""
        folders = self.catalog.report_folders
        for i, spec in enumerate(doc.data["folders"]):
            at = ("folders", i)
            old = folders.get(spec["key"])
            if old is None and "label" not in spec:
                yield doc.problem(at, f"new report folder {spec['key']!r} needs a label")
            elif old is None:
                folders[spec["key"]] = ReportFolder(spec["key"], build_label(spec["label"]), doc.source(at))
            else:
                folders[old.key] = replace(old, label=_optional_label(spec) or old.label)

    def _staged(self) -> str | None:
        """The one object declaring the sales_process behavior (the object of a process that names none)."""
        staged = [o.name for o in self.catalog.objects.values() if "sales_process" in o.behaviors]
        return staged[0] if len(staged) == 1 else None

    def finish(self, first_roles: Document | None) -> None:
        """Add the built-in picklist `roles`; give fields their picklist's options and rollups their `via`."""
        catalog = self.catalog
        catalog.picklists["roles"] = Picklist(
            "roles",
            Label("角色", "Roles"),
            tuple(Option(r.name, r.label, order=(i + 1) * 10) for i, r in enumerate(catalog.roles.values())),
            first_roles.source() if first_roles else Source("<built-in>"),
        )
        for name, obj in catalog.objects.items():
            fields = {n: self._resolve(f, name) for n, f in obj.fields.items()}
            catalog.objects[name] = replace(
                obj, fields=MappingProxyType(fields), behaviors=MappingProxyType(dict(obj.behaviors))
            )

    def _resolve(self, f: FieldDef, parent: str) -> FieldDef:
        if f.picklist in self.catalog.picklists:
            return replace(f, options=self.catalog.picklists[f.picklist].options)
        if (
            f.rollup
            and not f.rollup.via
            and len(via := via_candidates(self.catalog, f.rollup.child, parent)) == 1
        ):
            return replace(f, rollup=replace(f.rollup, via=via[0]))
        return f


def _append(old: tuple[str, ...], new: Iterable[str]) -> tuple[str, ...]:
    return old + tuple(x for x in dict.fromkeys(new) if x not in old)


def _extend_list_view(view: ListView, spec: Mapping[str, Any]) -> ListView:
    return ListView(
        _append(view.columns, spec.get("columns", ())),
        _append(view.filters, spec.get("filters", ())),
        tuple(spec.get("sort", view.sort)),
    )


def _vcard_import(spec: Mapping[str, Any]) -> VCardImport:
    return VCardImport(MappingProxyType(dict(spec["fields"])), MappingProxyType(dict(spec.get("set", {}))))
