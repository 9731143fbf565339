"""The extension points: everything an app or an industry template registers its own Python through, in one
place (docs/metadata.md, "Extension points" and "Writing a behavior", says how each is used)."""

from __future__ import annotations

from objectplatform.metadata.fieldtypes import register as register_field_type

from .actions import Action, ActionCall, Param
from .apps import App, Demo
from .behaviors.registry import Behavior, FieldNeed, ObjectNeed
from .fieldtypes import FieldType
from .records.hooks import EVENTS as HOOK_EVENTS
from .records.hooks import HookContext
from .records.masking import Hiding
from .registry import Page, Registry

__all__ = [
    # an app: its metadata layers, a register(registry) filling each platform's registry, its pages, its demo
    "App", "Demo",
    # what an app's register(registry) adds to: registry.action, .action_provider, .permission (names a role
    # grants), .hook (record events, HOOK_EVENTS), .hiding (field masking), .behavior, .settle (an approval
    # of a kind ended), .report_engine (a report whose `engine:` names it), .page (a page the menu names)
    "Registry", "Page",
    # actions: named operations on a record; a handler gets an ActionCall
    "Action", "ActionCall", "Param",
    # behaviors: a mechanic an object opts into under `behaviors:` (schema, needs, actions, hooks, derived
    # values for rule conditions, page panels: template names shown on the record page)
    "Behavior", "FieldNeed", "ObjectNeed",
    # record hooks: react to records being written, inside the write's transaction
    "HOOK_EVENTS", "HookContext",
    # field masking: hide fields of some records from some callers on every read path
    "Hiding",
    # field types: one definition each (storage, validation, filters, forms, display, export, OpenAPI),
    # registered before metadata is loaded (metadata reads them)
    "FieldType", "register_field_type",
]
