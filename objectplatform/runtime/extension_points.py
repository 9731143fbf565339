"""The extension points: everything an app or an industry template registers its own Python through, in one
place (docs/metadata.md, "Extension points" and "Writing a behavior", says how each is used)."""

from __future__ import annotations

from objectplatform.metadata.fieldtypes import register as register_field_type

from .actions import Action, ActionCall, Param, action_provider, register_action, register_permission
from .apps import App, Demo
from .behaviors.registry import Behavior, FieldNeed, ObjectNeed, config_of, register_behavior
from .expressions_sql import register_derived_values
from .fieldtypes import FieldType
from .records.hooks import EVENTS as HOOK_EVENTS
from .records.hooks import HookContext, register_hook
from .records.masking import Hiding, register_hiding
from .reports.charts import register_chart
from .reports.run import register_report_engine

__all__ = [
    # an app: its metadata layers, a register() making the registrations below, its pages, its demo data
    "App", "Demo",
    # actions: named operations on a record, of one object or following from the metadata (a provider)
    "Action", "ActionCall", "Param", "action_provider", "register_action", "register_permission",
    # behaviors: a mechanic an object opts into under `behaviors:` (schema, needs, actions, hooks, panels;
    # the page panels are template names the web layer's pages_records.RECORD_PANELS shows)
    "Behavior", "FieldNeed", "ObjectNeed", "config_of", "register_behavior",
    # values a behavior derives for each record, which rule conditions may name (computed in SQL)
    "register_derived_values",
    # record hooks: react to records being written, inside the write's transaction
    "HOOK_EVENTS", "HookContext", "register_hook",
    # field masking: hide fields of some records from some callers on every read path
    "Hiding", "register_hiding",
    # field types: one definition each (storage, validation, filters, forms, display, export, OpenAPI)
    "FieldType", "register_field_type",
    # chart kinds drawn by the report pages
    "register_chart",
    # report engines: a report whose `engine:` names one is run by it, not by the grouping compiler
    "register_report_engine",
]
