"""Typed, immutable definitions: what the loader produces and everything else reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, ClassVar

from .expressions import Expression

EMPTY: Mapping[str, Any] = MappingProxyType({})


def no_entries() -> Any:
    """An empty-mapping default: dataclasses refuse a mappingproxy as a plain default (it is unhashable)."""
    return field(default_factory=lambda: EMPTY)


@dataclass(frozen=True)
class Source:
    """Where a definition was written: file, 1-based line and column."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Label:
    """A label in Chinese and English; `get` falls back to the other language."""

    zh: str
    en: str

    @classmethod
    def of(cls, value: Mapping[str, str] | None) -> Label:
        """A label from a YAML or JSON `{zh, en}` mapping; a missing language takes the other's text."""
        zh, en = (value or {}).get("zh") or "", (value or {}).get("en") or ""
        return cls(zh or en, en or zh)

    def get(self, lang: str = "zh") -> str:
        return (self.en or self.zh) if lang == "en" else (self.zh or self.en)


@dataclass(frozen=True)
class Option:
    """One picklist option; `attrs` holds free attributes such as a probability."""

    value: str
    label: Label
    active: bool = True
    order: int = 0
    attrs: Mapping[str, Any] = no_entries()


@dataclass(frozen=True)
class Picklist:
    name: str
    label: Label
    options: tuple[Option, ...]
    source: Source

    def option(self, value: str) -> Option | None:
        return next((o for o in self.options if o.value == value), None)


@dataclass(frozen=True)
class RollupSpec:
    """sum/count/min/max of `field` over the `child` records whose `via` field points here."""

    function: str
    child: str
    via: str
    field: str | None = None
    filter: Mapping[str, Any] = no_entries()
    never_above: str | None = None  # an expression over the parent: a change raising the value above it is refused


@dataclass(frozen=True)
class TypedOverride:
    """A stored formula the user may type over: kept as typed within `min`..`max` (expressions), with each
    `derive` field (name: expression) set from the typed value, until a field the formula reads changes."""

    derive: Mapping[str, str] = no_entries()
    min: str | None = None
    max: str | None = None


@dataclass(frozen=True)
class DefaultMatch:
    """A new record's empty field takes `value` of the best record of `object` (a price policy's discount): the
    records `where` admits, matched by the first entry of `match` ({their field: a path of this record}) that
    finds one. `record` names this object's lookup keeping the record matched; a caller whose roles lack the
    `override` permission may not give a value other than the matched one."""

    object: str
    value: str
    match: tuple[Mapping[str, str], ...]
    where: str | None = None
    record: str | None = None
    override: str | None = None


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str
    label: Label
    source: Source
    help: Label | None = None
    required: bool = False
    unique: bool = False
    default: Any = None
    read_only: bool = False
    hidden: bool = False
    index: bool = False
    searchable: bool = False
    # type-specific options (None when the type has no such option)
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    min: float | None = None
    max: float | None = None
    to: str | None = None  # lookup, master_detail, user, department: the target object
    picklist: str | None = None  # picklist, multi_picklist: the shared picklist's name
    options: tuple[Option, ...] = ()  # picklist, multi_picklist: inline or resolved options
    pattern: str | None = None  # auto_number
    expression: str | None = None  # formula
    result_type: str | None = None  # formula: the field type of its value
    stored: bool = False  # formula: stored on write instead of computed on read
    typed_override: TypedOverride | None = None  # formula: the user may type the value instead
    rollup: RollupSpec | None = None
    system: bool = False  # written only by transitions, flows, rules and behaviors, never by an edit
    team: str | None = None  # multi_user: its users may read ("read") or edit ("edit") the record (相关团队)
    on_delete: str | None = None  # lookup, department: refuse (default), cascade or clear when its target is deleted
    filter: Mapping[str, Any] = no_entries()  # lookup: the values a newly named target must hold ({field: value(s)})
    show: tuple[str, ...] = ()  # lookup: fields of the chosen target a form shows beside it, read-only
    default_from: tuple[str, ...] = ()  # paths through lookups whose first value a new record's empty field takes
    default_match: DefaultMatch | None = None  # the best matching record of another object gives the default

    def option(self, value: str) -> Option | None:
        return next((o for o in self.options if o.value == value), None)

    @property
    def is_reference(self) -> bool:
        return self.to is not None


@dataclass(frozen=True)
class ValidationRule:
    """A record is invalid when `condition` holds; the error goes to `field` (or `__all__`)."""

    name: str
    condition: str
    message: Label
    source: Source
    field: str | None = None


@dataclass(frozen=True)
class DuplicateRule:
    """查重: records sharing the values of all `fields` (text compared trimmed and case-insensitively)
    are duplicates; `action` "block" refuses a new one, "warn" only reports it."""

    name: str
    fields: tuple[str, ...]
    action: str  # block | warn
    label: Label
    source: Source


@dataclass(frozen=True)
class ListView:
    columns: tuple[str, ...]
    filters: tuple[str, ...] = ()
    sort: tuple[str, ...] = ("-created_at",)  # "-name" sorts descending


@dataclass(frozen=True)
class LayoutSection:
    name: str
    label: Label
    fields: tuple[str, ...]
    columns: int = 2


ALL_FIELDS = "all"  # a state whose fields all stay editable


@dataclass(frozen=True)
class State:
    """A lifecycle state: which fields (and child objects' lines) stay editable in it (ALL_FIELDS or a
    tuple of names) and which roles, beside administrators, may still edit the others (audited); `side`, an
    outcome off the main path (rejected, cancelled), which a record's path of states shows only while it is in it."""

    value: str
    editable: str | tuple[str, ...]
    editable_by: tuple[str, ...]
    source: Source
    on_enter: tuple[Mapping[str, Any], ...] = ()  # notify / todo when a record is created in or moved to it
    side: bool = False

    def locks(self, name: str) -> bool:
        return self.editable != ALL_FIELDS and name not in self.editable


@dataclass(frozen=True)
class Transition:
    """A named move of a lifecycle: an action from `sources` to `to`, run by the engine (`by` None) or
    by the behavior or approval engine named in `by` (then only its edge and checks are declared here).
    `params` are FieldDefs; `set` maps fields to expressions over the record, `params.<name>` and
    `current_user`; `actions` (the rules' notify and todo) and `close_todos` (the record's open to-dos
    of those actions) are the effects after the move; `message` is what a refusal by the condition says."""

    name: str
    label: Label
    sources: tuple[str, ...]
    to: str | None
    source: Source
    roles: tuple[str, ...] = ()
    condition: str | None = None
    params: tuple[FieldDef, ...] = ()
    required_fields: tuple[str, ...] = ()
    set: Mapping[str, str] = no_entries()
    actions: tuple[Mapping[str, Any], ...] = ()  # notify / todo, run by the rules' executor on the record
    close_todos: tuple[str, ...] = ()
    by: str | None = None
    when: str | None = None  # automatic: run by the engine when a write leaves this condition true
    message: Label | None = None  # what a refusal by `condition` says


@dataclass(frozen=True)
class Lifecycle:
    """The state machine on one picklist field of an object."""

    field: str
    initial: tuple[str, ...]
    states: Mapping[str, State]
    transitions: Mapping[str, Transition]
    source: Source

    def setting(self, name: str) -> tuple[str, ...]:
        """The transitions that write field `name` (every one writes the lifecycle field)."""
        return tuple(t.name for t in self.transitions.values() if name == self.field or name in t.set)


@dataclass(frozen=True)
class VCardImport:
    """How a business card (.vcf) becomes a record: vCard property (FN, ORG, TITLE, TEL, TEL;TYPE=cell,
    EMAIL, ADR, NOTE) -> field, and the values every card sets."""

    fields: Mapping[str, str]
    set: Mapping[str, Any] = no_entries()


@dataclass(frozen=True)
class ObjectDef:
    name: str
    label: Label
    fields: Mapping[str, FieldDef]
    source: Source
    title_field: str = "id"
    plural_label: Label | None = None
    validation_rules: tuple[ValidationRule, ...] = ()
    duplicate_rules: tuple[DuplicateRule, ...] = ()
    list_view: ListView | None = None
    layout: tuple[LayoutSection, ...] = ()
    behaviors: Mapping[str, Mapping[str, Any]] = no_entries()
    extended_by: tuple[str, ...] = ()  # files of the object_extension documents applied
    lifecycle: Lifecycle | None = None
    vcard_import: VCardImport | None = None  # `imports: vcard:` (None: no vCard import)
    search: tuple[str, ...] = ()  # the fields the global search finds its records by (): not searched

    @property
    def searchable_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields.values() if f.searchable)

    def children(self, metadata: Metadata) -> tuple[FieldDef, ...]:
        """The master_detail fields of other objects that point at this object."""
        return tuple(
            f
            for o in metadata.objects.values()
            for f in o.fields.values()
            if f.type == "master_detail" and f.to == self.name
        )


FIELD_LEVELS = ("hidden", "read", "edit")  # a role's access to one field, least permissive first


@dataclass(frozen=True)
class RoleDef:
    name: str
    label: Label
    source: Source
    # object name (or "*") -> {"create": bool, "read": bool, "edit": bool, "delete": bool,
    #                          "scope": own|subordinates|department|all, "actions": [names]}
    permissions: Mapping[str, Mapping[str, Any]] = no_entries()
    # (object or "*", action) -> where the role grants it, for `check` to name the line
    action_sources: Mapping[tuple[str, str], Source] = no_entries()
    # object -> {field: "hidden" | "read" | "edit"}: field-level security (a field left out is "edit")
    field_levels: Mapping[str, Mapping[str, str]] = no_entries()


# ------------------------------------------------------------ flows and reports (kinds of flows/, report_templates/)

Effects = tuple[Mapping[str, Any], ...]  # a list of actions (set, notify + message, todo, recycle) as validated


@dataclass(frozen=True)
class FlowTrigger:
    """What starts an approval flow: `on` create, action (the `action` named), field_change (of `field`), manual."""

    on: str
    action: str | None = None
    field: str | None = None


@dataclass(frozen=True)
class ApprovalStep:
    """A step of an approval flow: skipped when `condition` is false; `approvers` are approver specs (role,
    manager_of, department_manager, users, field); mode any (the first decision decides) or all."""

    name: str
    label: Label
    approvers: tuple[Mapping[str, Any], ...]
    mode: str = "any"
    condition: Expression | None = None
    remind_after_hours: float | None = None


@dataclass(frozen=True)
class ApprovalFlow:
    """kind: approval_flow. `document` is the document as written: an approval keeps it as it was when the
    record was submitted."""

    kind: ClassVar[str] = "approval_flow"
    name: str
    label: Label
    object: str
    source: Source
    trigger: FlowTrigger
    steps: tuple[ApprovalStep, ...]
    condition: Expression | None = None
    on_submit: Effects = ()
    on_withdraw: Effects = ()
    on_approve: Effects = ()
    on_reject: Effects = ()
    document: Mapping[str, Any] = no_entries()

    @property
    def effects(self) -> Mapping[str, Effects]:
        """The action lists by the key the document gives each."""
        return {"on_submit": self.on_submit, "on_withdraw": self.on_withdraw, "on_approve": self.on_approve,
                "on_reject": self.on_reject}


@dataclass(frozen=True)
class Task:
    """A task of a sales-process stage; a required one must be done before the record leaves the stage."""

    key: str
    label: Label
    required: bool = False


@dataclass(frozen=True)
class Stage:
    """A sales-process stage: the probability a record takes on entering it, its tasks and required fields,
    and the approver spec entering it needs (or None)."""

    key: str
    label: Label
    probability: Decimal
    tasks: tuple[Task, ...] = ()
    required_fields: tuple[str, ...] = ()
    approval: Mapping[str, Any] | None = None

    def task(self, key: str) -> Task | None:
        return next((t for t in self.tasks if t.key == key), None)


@dataclass(frozen=True)
class SalesProcess:
    """kind: sales_process: the stages in order, the departments it is assigned to (by name) and the settings
    its rules read."""

    kind: ClassVar[str] = "sales_process"
    name: str
    label: Label
    object: str
    source: Source
    stages: tuple[Stage, ...]
    departments: tuple[str, ...] = ()
    avg_cycle_days: int | None = None
    close_reminder_days: int | None = None
    document: Mapping[str, Any] = no_entries()

    @property
    def effects(self) -> Mapping[str, Effects]:
        return EMPTY  # a sales process runs no actions of the rules' kind

    def stage(self, key: str | None) -> Stage | None:
        return next((s for s in self.stages if s.key == key), None)

    def after(self, key: str) -> Stage | None:
        """The stage following `key` (None after the last one)."""
        keys = [s.key for s in self.stages]
        i = keys.index(key)
        return self.stages[i + 1] if i + 1 < len(self.stages) else None

    @property
    def first(self) -> Stage:
        return self.stages[0]

    @property
    def last(self) -> Stage:
        return self.stages[-1]


@dataclass(frozen=True)
class Rule:
    """kind: rule: run on a `schedule` (or, checked but not run yet, on an `event`) for the records of its
    object for which `condition` holds (None: every record)."""

    kind: ClassVar[str] = "rule"
    name: str
    label: Label
    object: str
    source: Source
    actions: Effects = ()
    schedule: str | None = None
    event: str | None = None
    condition: Expression | None = None
    document: Mapping[str, Any] = no_entries()

    @property
    def effects(self) -> Mapping[str, Effects]:
        return {"actions": self.actions}


@dataclass(frozen=True)
class ReportDimension:
    """A report's grouping (or its matrix's column dimension): a field path, optionally bucketed by date."""

    key: str
    field: str
    bucket: str | None = None
    label: Label | None = None


@dataclass(frozen=True)
class MatchKey:
    """One key of a matched measure: `field` of the measured record (bucketed by date when `bucket`) equals
    `equals` of the base record; with `within_days`, it falls at or after `equals` (YAML `after`) and less than
    that many days later."""

    field: str
    equals: str
    bucket: str | None = None
    within_days: int | None = None


@dataclass(frozen=True)
class ReportMeasure:
    """count (of the base records, or of the records at the end of `field`), count_distinct, sum, avg, min, max;
    `filters` keep only some of the measured records; `object` and `match` measure the records of a second
    object whose keys equal the base record's; `expression` computes the measure from the others of its row (and
    in the totals row, from the totals, unless `total` is "sum": the sum of its rows' values)."""

    key: str
    function: str | None
    field: str | None = None
    label: Label | None = None
    filters: Mapping[str, Any] = no_entries()
    object: str | None = None
    match: tuple[MatchKey, ...] = ()
    expression: Expression | None = None
    period: str | None = None  # a date field of the measured records that falls in the run's period
    total: str | None = None


@dataclass(frozen=True)
class RuntimeFilter:
    """A filter the person running the report fills in."""

    field: str
    label: Label | None = None


@dataclass(frozen=True)
class ReportPeriod:
    """A report's `period` parameter: the date range its period measures count in, `default` (this_month, ...)
    unless the run names another."""

    default: str
    label: Label | None = None


# the field types a summary groups by: few values each, stored in one column (a picklist's value, a record's id)
SUMMARY_KEY_TYPES = ("picklist", "lookup", "master_detail", "user", "department")


@dataclass(frozen=True)
class ReportSummary:
    """`summary:` of a report: its runs may read a summary table the writes keep current, grouped by the report's
    dimensions and filters, the data scope's fields and `keys` (fields its run-time filters name)."""

    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chart:
    """How a report is drawn: its type, the dimension along the axis (default: the first) and the measures."""

    type: str
    measures: tuple[str, ...] = ()
    dimension: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, **({"dimension": self.dimension} if self.dimension else {}),
                "measures": list(self.measures)}


@dataclass(frozen=True)
class Report:
    """kind: report (a template of report_templates/ or a user's personal report). `document` is the document
    as written, for its YAML export and the builder."""

    kind: ClassVar[str] = "report"
    name: str
    label: Label
    object: str
    source: Source
    engine: str = "grouping"
    dimensions: tuple[ReportDimension, ...] = ()
    columns: ReportDimension | None = None
    measures: tuple[ReportMeasure, ...] = ()
    filters: Mapping[str, Any] = no_entries()  # path or path__op -> value
    runtime_filters: tuple[RuntimeFilter, ...] = ()
    scene: str = "all"
    sort: tuple[str, ...] = ()
    limit: int | None = None
    totals: bool = True
    chart: Chart | None = None
    document: Mapping[str, Any] = no_entries()
    period: ReportPeriod | None = None
    folder: str | None = None  # the key of a `kind: report_folders` folder the reports page lists it under
    description: Label | None = None
    summary: ReportSummary | None = None  # served from a pre-aggregated summary table (runtime/storage/summaries.py)


@dataclass(frozen=True)
class ReportFolder:
    """A folder of the reports page (线索, 商机, ...): reports naming its key are listed under its label."""

    key: str
    label: Label
    source: Source


@dataclass(frozen=True)
class Widget:
    """One tile of a dashboard: `type` says which of the options apply (docs/metadata.md, kind: dashboard)."""

    type: str
    title: Label
    source: Source
    span: int = 1
    report: str | None = None
    measure: str | None = None
    period: str | None = None
    date_field: str = "created_at"
    filters: Mapping[str, Any] = no_entries()
    object: str | None = None
    condition: Expression | None = None
    columns: tuple[str, ...] = ()
    sort: tuple[str, ...] = ()
    scene: str | None = None  # mine: the viewer's own records; None: all they read (a report: its own scene)
    kinds: tuple[str, ...] = ()
    limit: int = 10


@dataclass(frozen=True)
class Dashboard:
    """kind: dashboard: a grid of widgets, the home page of the users holding one of its `roles`."""

    kind: ClassVar[str] = "dashboard"
    name: str
    label: Label
    source: Source
    roles: tuple[str, ...] = ()
    widgets: tuple[Widget, ...] = ()


@dataclass(frozen=True)
class NavItem:
    """A menu entry: an object's list or a registered page; `label` replaces the object's or page's own."""

    source: Source
    object: str | None = None
    page: str | None = None
    label: Label | None = None


@dataclass(frozen=True)
class NavGroup:
    key: str
    label: Label
    items: tuple[NavItem, ...]
    source: Source


def plain(value: Any) -> Any:
    """Read-only definition data (a `document`, an approver spec) as plain dicts and lists: for JSON, YAML and
    the schema checks."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


Flow = ApprovalFlow | SalesProcess | Rule
Definition = Flow | Report  # a document of flows/ or report_templates/, typed by its kind


@dataclass(frozen=True)
class Metadata:
    """Everything the layers define, after extensions are applied and every check passed."""

    objects: Mapping[str, ObjectDef]  # by name: the order navigation and the API list them in
    picklists: Mapping[str, Picklist]
    roles: Mapping[str, RoleDef]
    flows: Mapping[str, Flow]  # approval_flow, sales_process and rule documents by name
    reports: Mapping[str, Report]
    layers: tuple[str, ...] = ()
    extras: Mapping[str, Any] = no_entries()
    dashboards: Mapping[str, Dashboard] = no_entries()  # by name, in the order the layers define them
    navigation: tuple[NavGroup, ...] = ()  # the menu's groups in their declared order
    report_folders: tuple[ReportFolder, ...] = ()  # the reports page's folders in their declared order

    def object(self, name: str) -> ObjectDef:
        return self.objects[name]
