"""The labels people read instead of the values fields store: a picklist option's label, and a sales process's,
stage's or stage task's label for the text fields holding their keys. Every face that shows values to people
(the pages, their CSV export, reports and their charts) reads them here; the API keeps the stored values."""

from __future__ import annotations

from objectplatform.metadata import Label, Metadata, ObjectDef

from .sales_processes import processes

# The fields of an object with sales processes (and of its detail objects: stage history, stage tasks) that
# hold keys of those processes. `left_to` holds the next stage or the status the record closed as.
PROCESS_FIELDS = frozenset({"sales_process"})
STAGE_FIELDS = frozenset({"stage", "pending_stage", "left_to"})
TASK_FIELDS = frozenset({"task"})
CLOSED_AS = "status"  # the field of the staged object whose option `left_to` names when a record closes


def value_labels(metadata: Metadata, obj: ObjectDef, field: str, process: str | None = None) -> dict[str, Label]:
    """{stored value: its label} for `obj`.`field`; empty when its values are shown as they are.

    A picklist's options; for the text fields of an object with sales processes and of its detail objects
    that hold their keys, the processes, stages and tasks. A key that two processes label differently takes
    the label of `process` when given, else of the first process defining it.
    """
    f = obj.fields.get(field)
    if f is not None and f.type in ("picklist", "multi_picklist"):
        options = f.options or (metadata.picklists[f.picklist].options if f.picklist in metadata.picklists else ())
        return {o.value: o.label for o in options}
    if f is None or f.type != "text" or field not in PROCESS_FIELDS | STAGE_FIELDS | TASK_FIELDS:
        return {}
    staged = _staged_object(metadata, obj)
    if staged is None:
        return {}
    found = sorted(processes(metadata, staged.name), key=lambda p: p.name != process)  # `process` first
    labels: dict[str, Label] = {}
    if field in PROCESS_FIELDS:
        labels = {p.name: p.label for p in found}
    elif field in STAGE_FIELDS:
        for stage in (s for p in found for s in p.stages):
            labels.setdefault(stage.key, stage.label)
        if field == "left_to" and CLOSED_AS in staged.fields:
            for option in staged.fields[CLOSED_AS].options:
                labels.setdefault(option.value, option.label)
    elif field in TASK_FIELDS:
        for task in (t for p in found for s in p.stages for t in s.tasks):
            labels.setdefault(task.key, task.label)
    return labels


def _staged_object(metadata: Metadata, obj: ObjectDef) -> ObjectDef | None:
    """`obj` when sales processes are defined for it, else the master of `obj` they are defined for."""
    if processes(metadata, obj.name):
        return obj
    for f in obj.fields.values():
        if f.type == "master_detail" and f.to in metadata.objects and processes(metadata, f.to):
            return metadata.objects[f.to]
    return None

