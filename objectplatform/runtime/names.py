"""The action names the YAML uses, held to the actions the engine registers for the same metadata, its
`behaviors:` entries held to the registered behaviors, and its fields' `default:` values to their types' validators.

(How it works: docs/engine.md, "objectplatform/runtime/names.py".)"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from marshmallow import ValidationError

from objectplatform.metadata import Locator, Metadata, ObjectDef, Problem, Source, Transition
from objectplatform.metadata.checks import LIFECYCLE_BY
from objectplatform.metadata.problems import closest

from . import actions, approvals, transitions
from .behaviors.registry import check_behaviors
from .fieldtypes import type_named
from .lifecycles import own_label
from .navigation import check_pages
from .registry import Registry
from .validation import converter

EVERY_OBJECT = "*"


def check_names(metadata: Metadata, registry: Registry) -> list[Problem]:
    """Every `behaviors:` entry that its behavior's declaration refuses; once they are all valid (the actions
    a behavior adds follow from its configuration), every action name in `metadata` that the engine does
    not register for its object (or registers twice); and every `default:` its field refuses. Each at its
    file:line:col with a "did you mean" hint."""
    defaults = [*check_defaults(metadata), *check_pages(metadata, registry)]
    if problems := check_behaviors(metadata, registry.behaviors):
        return sorted([*defaults, *problems], key=lambda p: (p.file, p.line, p.col))
    check = _NameCheck(metadata, registry)
    problems = [*defaults, *check.grants(), *check.todos()]
    for obj in metadata.objects.values():
        for t in obj.lifecycle.transitions.values() if obj.lifecycle else ():
            problems.extend(check.transition(obj, t))
    return sorted(problems, key=lambda p: (p.file, p.line, p.col))


def check_defaults(metadata: Metadata) -> Iterator[Problem]:
    """Each field's `default:` is a value its type's validator takes, as a record write would (a picklist's
    one of its active options, a boolean true or false), at the layer that set it."""
    locate = Locator()
    for obj in metadata.objects.values():
        for f in obj.fields.values():
            if f.default is None or type_named(f.type).computed:  # a computed type's default is a load error
                continue
            try:
                converter(type_named(f.type).validator(f, metadata))(f.default)
            except ValidationError as e:
                messages = e.messages if isinstance(e.messages, list) else [e.messages]
                yield locate.setting(obj, ("fields", f.name, "default"),
                                     f"default {f.default!r} of {obj.name}.{f.name}: {'; '.join(map(str, messages))}")


class _NameCheck:
    """One check of one metadata: the actions the engine registers for it, and where problems are placed."""

    def __init__(self, metadata: Metadata, registry: Registry):
        self.metadata, self.registry = metadata, registry
        self.provided = registry.provided_actions(metadata)
        self.names: dict[str, set[str]] = {name: set() for name in metadata.objects}
        for _, action in self.provided:
            self.names[action.object].add(action.name)
        for obj in metadata.objects.values():  # a default_match's override is granted like an action of its object
            self.names[obj.name].update(f.default_match.override for f in obj.fields.values()
                                        if f.default_match and f.default_match.override)
        self.locate = Locator()

    def grants(self) -> Iterator[Problem]:
        """A role grants actions of its object, or under "*" of some object, or permission-only names."""
        permissions = set(self.registry.permissions)
        anywhere = set().union(*self.names.values())
        for role in self.metadata.roles.values():
            for obj, grant in role.permissions.items():
                known = anywhere if obj == EVERY_OBJECT else self.names[obj]
                for i, name in enumerate(grant.get("actions", ())):
                    if name in known or name in permissions:
                        continue
                    message = (f"unknown action {name!r}: no object has it" if obj == EVERY_OBJECT
                               else f"unknown action {name!r} of {obj!r}")
                    yield self.locate.problem(role.action_sources[obj, name],
                                              ("roles", role.name, "permissions", obj, "actions", i), (),
                                              message, closest(name, known | permissions))

    def todos(self) -> Iterator[Problem]:
        """A to-do of an approval flow, a rule or a transition names an action of its record's object."""
        for flow in self.metadata.flows.values():
            for part, effects in flow.effects.items():
                for i, effect in enumerate(effects):
                    yield from self._todo(effect, flow.object, flow.source, (), (part, i))
        for obj in self.metadata.objects.values():
            for t in obj.lifecycle.transitions.values() if obj.lifecycle else ():
                for i, effect in enumerate(t.actions):
                    yield from self._todo(effect, obj.name, t.source, ("lifecycle", "transitions", t.name),
                                          ("actions", i))

    def _todo(self, effect: Mapping[str, Any], obj: str, source: Source, at: tuple[str, ...],
              path: tuple[str | int, ...]) -> Iterator[Problem]:
        name = effect.get("todo", {}).get("action")
        if name is not None and name not in self.names[obj]:
            yield self.locate.problem(source, at, (*path, "todo", "action"), f"unknown action {name!r} of {obj!r}",
                                      closest(name, self.names[obj]))

    def transition(self, obj: ObjectDef, t: Transition) -> Iterator[Problem]:
        """A transition the engine runs is its object's only action of that name; one run `by` a behavior
        or the approval engine is an action they register, unless the behavior moves the state in a hook."""
        at, names = ("lifecycle", "transitions", t.name), self.names[obj.name]
        if t.by is None:
            others = [(provider, self._origin(provider, action)) for provider, action in self.provided
                      if action.object == obj.name and action.name == t.name
                      and provider is not transitions.transition_actions]
            if others:
                by = ("`by: approval`" if any(p is approvals.approval_actions for p, _ in others)
                      else "`by` the behavior that registers it")
                yield self.locate.problem(t.source, at, (), f"{t.name!r} of {obj.name!r} is both this transition and "
                                                            f"an action of {' and '.join(o for _, o in others)}: "
                                                            f"rename the transition, or give it {by}")
        elif t.by not in self.registry.hook_movers and t.name not in names:
            runner = "the approval engine" if t.by == LIFECYCLE_BY else f"the {t.by} behavior"
            yield self.locate.problem(t.source, at, (), f"{obj.name!r} has no action {t.name!r} for {runner} to run",
                                      closest(t.name, names))
        elif t.name not in names and own_label(t) is None:
            yield self.locate.problem(t.source, at, (), f"{t.name!r} of {obj.name!r} is moved by the {t.by} behavior, "
                                                        "with no action whose label messages could name it by: give "
                                                        "it a label")

    def _origin(self, provider: actions.Provider | None, action: actions.Action) -> str:
        """Who registers `action`, as a message names it: its approval flows, or the function giving it."""
        if provider is approvals.approval_actions:
            flows = (approvals.flows_started_by(self.metadata, action.object, action.name)
                     or approvals.flows_of(self.metadata, action.object))
            return " and ".join(f"the approval flow {f.name!r} ({f.source})" for f in flows) or "the approval engine"
        function = provider or action.handler
        return f"{function.__module__}.{function.__qualname__}"
