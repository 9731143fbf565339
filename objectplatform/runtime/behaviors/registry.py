"""Behaviors as declarations: one `Behavior` per mechanic an object opts into under `behaviors:`, and the
check of every object's `behaviors:` entries against them (docs/metadata.md, "Writing a behavior")."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from objectplatform.metadata import Locator, Metadata, ObjectDef, Problem
from objectplatform.metadata.problems import closest

from .. import actions
from ..expressions_sql import DerivedValues
from ..records import hooks

Key = str | tuple[str, ...]  # where in the configuration a need is named: a key, or a path of keys


@dataclass(frozen=True)
class ObjectNeed:
    """An object the behavior works with, named by the configuration at `key`."""

    name: str
    key: Key


@dataclass(frozen=True)
class FieldNeed:
    """A field the behavior reads or writes: `name` of `object` (None: the object declaring the behavior),
    of one of `types` (empty: any), a reference to `to` when given, offering the picklist `options`. `key`:
    where the configuration names the field (None: the behavior's fixed contract), where a problem is shown."""

    name: str
    types: tuple[str, ...]
    key: Key | None = None
    object: str | None = None
    to: str | None = None
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class TransitionNeed:
    """A transition of the declaring object's lifecycle the behavior runs, named by the configuration at `key`."""

    name: str
    key: Key


Need = ObjectNeed | FieldNeed | TransitionNeed


@dataclass(frozen=True)
class Behavior:
    """One behavior: its configuration's JSON Schema and typed form (a frozen dataclass whose fields are
    the schema's properties, defaults applied), what it needs of the metadata, the actions it adds, the
    record hooks it handles, the values it derives for rule conditions (their names and kinds are declared
    in metadata/checks.BEHAVIOR_VALUES), the page panels that show it (template names) and whether it
    moves records between lifecycle states in a hook (then a transition `by` it names no action)."""

    name: str
    schema: Mapping[str, Any]
    config: Callable[..., Any]
    needs: Callable[[ObjectDef, Any], Iterable[Need]] = lambda obj, config: ()
    actions: actions.Provider | None = None
    hooks: Mapping[str, hooks.Handler] = field(default_factory=dict)
    applies: Callable[[ObjectDef], bool] | None = None  # the objects its hooks run on (default: declaring it)
    derived: DerivedValues | None = None
    panels: tuple[str, ...] = ()
    moves_in_hooks: bool = False
    # whether a set-based write of the same values on many records needs its update hooks (see records/hooks.Hook)
    needed: Callable[[Metadata, ObjectDef, Mapping[str, Any]], bool] | None = None

    def __post_init__(self) -> None:
        Draft202012Validator.check_schema(self.schema)  # once per declaration, not per platform built

    def declared_by(self, obj: ObjectDef) -> bool:
        return self.name in obj.behaviors

    def config_of(self, obj: ObjectDef) -> Any:
        """The typed configuration of this behavior on `obj` (which declares it), defaults applied."""
        return self.config(**obj.behaviors[self.name])

    def configured(self, metadata: Metadata) -> Iterator[tuple[ObjectDef, Any]]:
        """Each object of `metadata` declaring this behavior, with its typed configuration."""
        for obj in metadata.objects.values():
            if self.name in obj.behaviors:
                yield obj, self.config_of(obj)


# ------------------------------------------------------------------------------------------ check


def check_behaviors(metadata: Metadata, behaviors: Mapping[str, Behavior]) -> list[Problem]:
    """Every `behaviors:` entry held to its declaration: a known behavior, a configuration valid under its
    schema, and the objects and fields it needs, each problem at its file:line:col."""
    locate = Locator()
    problems = []
    for obj in metadata.objects.values():
        for name, spec in obj.behaviors.items():
            problems.extend(_check_one(locate, metadata, behaviors, obj, name, spec))
    return sorted(problems, key=lambda p: (p.file, p.line, p.col))


def _check_one(locate: Locator, metadata: Metadata, behaviors: Mapping[str, Behavior], obj: ObjectDef, name: str,
               spec: Mapping[str, Any]) -> Iterator[Problem]:
    at = ("behaviors", name)

    def problem(path: tuple[str | int, ...], message: str, hint: str | None = None) -> Problem:
        return locate.setting(obj, (*at, *path), message, hint)

    behavior = behaviors.get(name)
    if behavior is None:
        yield problem((), f"unknown behavior {name!r}", closest(name, behaviors))
        return
    errors = list(Draft202012Validator(behavior.schema).iter_errors(spec))
    for error in errors:
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            known = error.schema.get("properties", {})
            for key in sorted(error.instance.keys() - known.keys()):
                yield problem((*path, key), f"unknown key {key!r} of the {name} behavior", closest(key, known))
        else:
            yield problem(path, f"the {name} behavior: {error.message}")
    if errors:
        return
    config = behavior.config(**spec)
    for need in behavior.needs(obj, config):
        place = () if need.key is None else (need.key,) if isinstance(need.key, str) else need.key
        if isinstance(need, ObjectNeed):
            if need.name not in metadata.objects:
                yield problem(place, f"unknown object {need.name!r}, which the {name} behavior needs",
                              closest(need.name, metadata.objects))
            continue
        if isinstance(need, TransitionNeed):
            transitions = obj.lifecycle.transitions if obj.lifecycle else {}
            if need.name not in transitions:
                yield problem(place, f"{obj.name!r} has no transition {need.name!r}, which the {name} behavior "
                                     "runs", closest(need.name, transitions))
            continue
        owner = metadata.objects.get(need.object or obj.name)
        if owner is None or need.to is not None and need.to not in metadata.objects:
            continue  # its object, or the one it refers to, is reported as unknown
        found = owner.fields.get(need.name)
        if found is None:
            yield problem(place, f"{owner.name!r} has no field {need.name!r}, which the {name} behavior needs",
                          closest(need.name, owner.fields))
        elif need.types and found.type not in need.types:
            yield problem(place, f"field {need.name!r} of {owner.name!r} is {_a(found.type)}; the {name} behavior "
                                 f"needs {' or '.join(map(_a, need.types))}")
        elif need.to is not None and found.to != need.to:
            yield problem(place, f"field {need.name!r} of {owner.name!r} is {_a(found.type)} to {found.to!r}; the "
                                 f"{name} behavior needs {_a(found.type)} to {need.to!r}")
        else:
            missing = [v for v in need.options if found.option(v) is None]
            if missing:
                options = "option" if len(missing) == 1 else "options"
                yield problem(place, f"field {need.name!r} of {owner.name!r} has no {options} "
                                     f"{', '.join(map(repr, missing))}, which the {name} behavior needs")


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def child(name: str, key: Key, parent_field: str, parent: str, fields: Iterable[tuple[str, tuple[str, ...]]]
          ) -> Iterator[Need]:
    """The needs of a child object `name` (named by `key`): it exists, its `parent_field` points at
    `parent`, and it has `fields` (name, types)."""
    yield ObjectNeed(name, key)
    yield FieldNeed(parent_field, ("master_detail", "lookup"), key, name, parent)
    for field_name, types in fields:
        yield FieldNeed(field_name, types, key, name)
