"""What the engine's plugins and a site's apps add to one platform: actions, permissions, record hooks,
hidings, behaviors, approval settlers, report engines, derived values and the pages the menu names, each held
by the platform it was built for (`plugins.build_registry`), never by a module."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from objectplatform.metadata import Label, Metadata, ObjectDef

from .actions import Action, Handler, Param, Provider
from .records.hooks import EVENTS, Hook, HookContext, RowsContext

if TYPE_CHECKING:
    from .behaviors.registry import Behavior
    from .expressions_sql import DerivedValues
    from .records.masking import HidingProvider

    Settle = Callable[..., Any]
    ReportEngine = Callable[..., Any]


@dataclass(frozen=True)
class Page:
    """A page the navigation may name (`page: feed`): its web endpoint, its label, and whether a user sees it
    (`shown(metadata, access)`: the pool board only to who may claim or assign, ...). A page of an object
    (`{object: visit, page: calendar}`) has `of_object(metadata, object)`, whether the object has it; its endpoint
    takes the object as `obj`."""

    name: str
    endpoint: str
    label: Label
    shown: Callable[[Metadata, Any], bool]
    of_object: Callable[[Metadata, str], bool] | None = None


@dataclass
class Registry:
    """The registrations of one platform, made by each plugin's and app's `register(registry)` in turn."""

    actions: dict[tuple[str, str], Action] = field(default_factory=dict)
    action_providers: list[Provider] = field(default_factory=list)
    permissions: dict[str, Label] = field(default_factory=dict)
    hooks: list[Hook] = field(default_factory=list)
    hidings: list[HidingProvider] = field(default_factory=list)
    behaviors: dict[str, Behavior] = field(default_factory=dict)
    hook_movers: set[str] = field(default_factory=set)
    settlers: dict[str, Settle] = field(default_factory=dict)
    report_engines: dict[str, ReportEngine] = field(default_factory=dict)
    derived_values: dict[str, DerivedValues] = field(default_factory=dict)
    pages: dict[str, Page] = field(default_factory=dict)

    # ------------------------------------------------------------------------------ registering

    def action(self, obj: str, name: str, handler: Handler, *, label: Label, params: Sequence[Param] = (),
               bulk: bool = True, run_many: Callable[[Any, Any, str, list[str], dict], dict | None] | None = None
               ) -> Action:
        """Add an action of object `obj` (available where the metadata has that object); `run_many` runs its bulk
        call set-based (`Action.run_many`)."""
        action = Action(obj, name, label, handler, tuple(params), bulk, run_many=run_many)
        self.actions[(obj, name)] = action
        return action

    def action_provider(self, provider: Provider) -> Provider:
        """Add a function giving the actions that follow from a platform's metadata."""
        self.action_providers.append(provider)
        return provider

    def permission(self, name: str, *, label: Label) -> str:
        """Declare a name a role grants like an action that no action runs: the feature it names checks the
        grant itself (`access.require_action(obj, name)`). Returns the name, for that check."""
        self.permissions[name] = label
        return name

    def hook(self, event: str, handler: Callable[[HookContext], None], *,
             applies: Callable[[ObjectDef], bool] = lambda obj: True,
             reads: Callable[[ObjectDef], Iterable[str]] | None = None,
             needed: Callable[[Metadata, ObjectDef, Mapping[str, Any]], bool] | None = None,
             many: Callable[[RowsContext], None] | None = None) -> Hook:
        """Run `handler` on `event` (records/hooks.py says which) for every object `applies` accepts; an
        after_rollup handler may say which fields of the object it `reads` (else it gets the whole record), a
        before_update or after_update handler when a set-based write of the same values on many records `needed`
        it (else it always does, and such a write runs record by record); an after_rollup handler its set form
        `many`, run once on all the records a set-based refresh changed (else that refresh runs record by record)."""
        if event not in EVENTS:
            raise ValueError(f"unknown hook event {event}; one of {', '.join(sorted(EVENTS))}")
        hook = Hook(event, handler, applies, reads, needed, many)
        self.hooks.append(hook)
        return hook

    @contextmanager
    def hooked(self, event: str, handler: Callable[[HookContext], None], *,
               applies: Callable[[ObjectDef], bool] = lambda obj: True) -> Iterator[Hook]:
        """A hook in place for the duration of a `with` block."""
        hook = self.hook(event, handler, applies=applies)
        try:
            yield hook
        finally:
            self.hooks.remove(hook)

    def hiding(self, provider: HidingProvider) -> HidingProvider:
        """Let a behavior hide fields of some records from some callers (records/masking.Hiding)."""
        self.hidings.append(provider)
        return provider

    def behavior(self, behavior: Behavior) -> Behavior:
        """Make `behavior` known to `check` and wire its actions, hooks and derived values."""
        if behavior.name in self.behaviors:
            raise ValueError(f"behavior {behavior.name!r} is already registered")
        self.behaviors[behavior.name] = behavior
        if behavior.actions is not None:
            self.action_provider(behavior.actions)
        for event, handler in behavior.hooks.items():
            self.hook(event, handler, applies=behavior.applies or behavior.declared_by, needed=behavior.needed)
        if behavior.derived is not None:
            self.derived_values[behavior.name] = behavior.derived
        if behavior.moves_in_hooks:
            self.hook_movers.add(behavior.name)
        return behavior

    def settle(self, kind: str, settle: Settle) -> None:
        """Call `settle(platform, conn, object, user, record id, status)` when an approval of `kind` ends as
        approved, rejected or withdrawn."""
        self.settlers[kind] = settle

    def report_engine(self, name: str, run: ReportEngine) -> None:
        """Run the reports whose `engine` is `name` with `run(platform, report, *, access, filters, scene,
        now)` instead of the grouping compiler."""
        self.report_engines[name] = run

    def page(self, name: str, *, endpoint: str, label: Label,
             shown: Callable[[Metadata, Any], bool] = lambda metadata, access: True,
             of_object: Callable[[Metadata, str], bool] | None = None) -> Page:
        """Let the navigation name the page `name`, served by the web `endpoint` (which takes no argument, or the
        object as `obj` for a page `of_object`)."""
        page = Page(name, endpoint, label, shown, of_object)
        self.pages[name] = page
        return page

    # ------------------------------------------------------------------------------ reading

    def provided_actions(self, metadata: Metadata) -> list[tuple[Provider | None, Action]]:
        """Every action `metadata` gives, each with the provider giving it (None: `action` added it): those
        first, then the providers' by module and name, so the order (the pages' buttons, `_actions`) never
        depends on registration order; of two with the same object and name, the later one is the object's."""
        found: list[tuple[Provider | None, Action]] = [(None, a) for a in self.actions.values()
                                                       if a.object in metadata.objects]
        for provider in sorted(self.action_providers, key=lambda p: (p.__module__, p.__qualname__)):
            found.extend((provider, action) for action in provider(metadata))
        return found

    def actions_of(self, metadata: Metadata) -> dict[str, dict[str, Action]]:
        """{object: {name: action}}: the actions of each object of `metadata`."""
        by_object: dict[str, dict[str, Action]] = {name: {} for name in metadata.objects}
        for _, action in self.provided_actions(metadata):
            by_object[action.object][action.name] = action
        return by_object

    def hooks_of(self, event: str, obj: ObjectDef) -> list[Hook]:
        """The hooks of `event` that apply to `obj`, in the order they were registered."""
        return [hook for hook in self.hooks if hook.event == event and hook.applies(obj)]

    def run_hooks(self, event: str, obj: ObjectDef, context: HookContext) -> None:
        """Call the handlers of `event` that apply to `obj`, in the order they were registered."""
        for hook in list(self.hooks):
            if hook.event == event and hook.applies(obj):
                hook.handler(context)


def build_registry(plugins: Iterable[Callable[[Registry], None]]) -> Registry:
    """A registry filled by each of `plugins` (a `register(registry)` function) in turn."""
    registry = Registry()
    for register in plugins:
        register(registry)
    return registry

