"""Typed, immutable definitions: what the loader produces and everything else reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

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
    rollup: RollupSpec | None = None
    system: bool = False  # written only by transitions, flows, rules and behaviors, never by an edit
    team: str | None = None  # multi_user: its users may read ("read") or edit ("edit") the record (相关团队)

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
    tuple of names) and which roles, beside administrators, may still edit the others (audited)."""

    value: str
    editable: str | tuple[str, ...]
    editable_by: tuple[str, ...]
    source: Source

    def locks(self, name: str) -> bool:
        return self.editable != ALL_FIELDS and name not in self.editable


@dataclass(frozen=True)
class Transition:
    """A named move of a lifecycle: an action from `sources` to `to`, run by the engine (`by` None) or
    by the behavior or approval engine named in `by` (then only its edge and checks are declared here).
    `params` are FieldDefs; `set` maps fields to expressions over the record, `params.<name>` and
    `current_user`; `actions` (the rules' notify and todo) and `close_todos` (the record's open to-dos
    of those actions) are the effects after the move."""

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


@dataclass(frozen=True)
class Definition:
    """A flow-like document (approval_flow, sales_process, rule, report) kept as validated data."""

    kind: str
    name: str
    source: Source
    data: Mapping[str, Any]
    object: str | None = None
    label: Label | None = None


@dataclass(frozen=True)
class Metadata:
    """Everything the layers define, after extensions are applied and every check passed."""

    objects: Mapping[str, ObjectDef]
    picklists: Mapping[str, Picklist]
    roles: Mapping[str, RoleDef]
    flows: Mapping[str, Definition]  # approval_flow, sales_process and rule documents by name
    reports: Mapping[str, Definition]
    layers: tuple[str, ...] = ()
    extras: Mapping[str, Any] = no_entries()

    def object(self, name: str) -> ObjectDef:
        return self.objects[name]
