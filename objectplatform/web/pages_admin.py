"""The administrators' read-only metadata browser: every object with its fields, types, picklists and
rules, the shared picklists, roles, flows and reports, each with the file and line that defines it."""

from __future__ import annotations

from objectplatform.metadata import FieldDef, Metadata, Source

from .i18n import text


def where(source: Source) -> str:
    """`file:line` of a definition."""
    return f"{source.file}:{source.line}"


def _details(f: FieldDef, lang: str) -> list[str]:
    details = []
    if f.to:
        details.append(f"→ {f.to}")
    if f.picklist:
        details.append(f"picklist: {f.picklist}")
    if f.expression:
        details.append(f"= {f.expression}")
    if f.rollup:
        over = f"{f.rollup.child}.{f.rollup.field}" if f.rollup.field else f.rollup.child
        details.append(f"{f.rollup.function}({over}) via {f.rollup.via}")
    if f.pattern:
        details.append(f.pattern)
    for flag, key in ((f.required, "meta.required"), (f.unique, "meta.unique"), (f.read_only, "meta.read_only")):
        if flag:
            details.append(text(key, lang))
    return details


def _options(options, lang: str) -> list[dict]:
    return [{"value": o.value, "label": o.label.get(lang), "active": o.active} for o in options]


def metadata_context(metadata: Metadata, lang: str) -> dict:
    """What the browser shows, as plain data for its template."""
    objects = []
    for obj in metadata.objects.values():
        objects.append({
            "name": obj.name, "label": obj.label.get(lang), "source": where(obj.source),
            "extended_by": list(obj.extended_by),
            "fields": [{"name": f.name, "label": f.label.get(lang), "type": f.type, "source": where(f.source),
                        "details": _details(f, lang),
                        "options": _options(f.options, lang) if f.type in ("picklist", "multi_picklist")
                        and not f.picklist else []}
                       for f in obj.fields.values()],
            "rules": [{"name": r.name, "condition": r.condition, "message": r.message.get(lang),
                       "source": where(r.source)} for r in obj.validation_rules],
        })
    picklists = [{"name": p.name, "label": p.label.get(lang), "source": where(p.source),
                  "options": _options(p.options, lang)} for p in metadata.picklists.values()]
    roles = [{"name": r.name, "label": r.label.get(lang), "source": where(r.source)} for r in metadata.roles.values()]

    def definitions(items) -> list[dict]:
        return [{"name": d.name, "kind": d.kind, "object": d.object or "",
                 "label": d.label.get(lang) if d.label else "", "source": where(d.source)} for d in items]

    return {"objects": objects, "picklists": picklists, "roles": roles,
            "flows": definitions(metadata.flows.values()), "reports": definitions(metadata.reports.values())}
