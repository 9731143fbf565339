"""The labels people read instead of the values fields store: a picklist option's label, and a sales process's,
stage's or stage task's label for the text fields holding their keys. Every face that shows values to people
(the pages, their CSV export, reports and their charts) reads them here; the API keeps the stored values."""

from __future__ import annotations

from objectplatform.metadata import Label, Metadata, ObjectDef

from .behaviors.staged import SALES_PROCESS
from .sales_processes import processes

PROCESS, STAGE, CLOSING, TASK = "process", "stage", "closing", "task"  # what a key-holding text field holds


def value_labels(metadata: Metadata, obj: ObjectDef, field: str, process: str | None = None) -> dict[str, Label]:
    """{stored value: its label} for `obj`.`field`; empty when its values are shown as they are.

    A picklist's options; for the text fields of an object with the sales_process behavior and of its history
    and task objects that hold their keys (as its configuration names them), the processes, stages and tasks;
    the history's `left_to` also holds the status a record closed as. A key that two processes label
    differently takes the label of `process` when given, else of the first process defining it.
    """
    f = obj.fields.get(field)
    if f is not None and f.type in ("picklist", "multi_picklist"):
        options = f.options or (metadata.picklists[f.picklist].options if f.picklist in metadata.picklists else ())
        return {o.value: o.label for o in options}
    if f is None or f.type != "text":
        return {}
    staged, status_field, held = _key_fields(metadata, obj)
    if staged is None or field not in held:
        return {}
    found = sorted(processes(metadata, staged.name), key=lambda p: p.name != process)  # `process` first
    labels: dict[str, Label] = {}
    if held[field] == PROCESS:
        labels = {p.name: p.label for p in found}
    elif held[field] in (STAGE, CLOSING):
        for stage in (s for p in found for s in p.stages):
            labels.setdefault(stage.key, stage.label)
        status = staged.fields.get(status_field)
        if held[field] == CLOSING and status is not None:
            for option in status.options:
                labels.setdefault(option.value, option.label)
    else:
        for task in (t for p in found for s in p.stages for t in s.tasks):
            labels.setdefault(task.key, task.label)
    return labels


def _key_fields(metadata: Metadata, obj: ObjectDef) -> tuple[ObjectDef | None, str, dict[str, str]]:
    """The object with the sales_process behavior that `obj` is or keeps the history or tasks of, its status
    field, and the fields of `obj` holding keys of its processes ({field: PROCESS, STAGE, CLOSING or TASK})."""
    for staged, config in SALES_PROCESS.configured(metadata):
        f, h, t = config.fields, config.history_fields, config.task_fields
        if obj.name == staged.name:
            return staged, config.status_field, {f.sales_process: PROCESS, f.stage: STAGE, f.pending_stage: STAGE}
        if obj.name == config.history:
            return staged, config.status_field, {h.sales_process: PROCESS, h.stage: STAGE, h.left_to: CLOSING}
        if obj.name == config.tasks:
            return staged, config.status_field, {t.sales_process: PROCESS, t.stage: STAGE, t.task: TASK}
    return None, "", {}
