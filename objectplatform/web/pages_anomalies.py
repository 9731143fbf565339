"""异常拜访: the check-in anomalies of an object with the check_in behavior (out of range, too short, missed, never
checked out, ...) in a period, per owner and kind, with an offline SVG map of the check-ins beside their targets'
locations and the tolerance circles (no map tiles: the points on a plane, a scale bar), and the period's mileage
(里程) per owner and day.

(How it works: docs/engine.md, "objectplatform/web/pages_anomalies.py".)"""

from __future__ import annotations

import math

from flask import g, render_template, request, url_for

from objectplatform.runtime.behaviors import anomalies
from objectplatform.runtime.geo import M_PER_DEGREE, Plane

from .current import get_platform
from .i18n import text
from .pages_base import bp, object_def, page_display
from .pages_view import field_label, object_label

MAP_WIDTH, MAP_HEIGHT = 640, 420


def check_in_map(items: list[dict], tolerance_m: float, target_label: str, rows: bool = True) -> dict | None:
    """What the SVG (pages/_check_in_map.html) draws: per item with a point, its check-in, its target and the
    tolerance circle, in pixels; None when no item has a point. `rows`: the marks link to the list's rows."""
    located = [i for i in items if i["check_in"] or i["target_location"]]
    if not located:
        return None
    points = [p for i in located for p in (i["check_in"], *_circle(i["target_location"], tolerance_m)) if p]
    plane = Plane(points, MAP_WIDTH, MAP_HEIGHT, min_span_m=tolerance_m * 2)
    marks = []
    for item in located:
        mark = {"n": item["n"], "id": item["id"], "title": item["title"],
                "out": "out_of_range" in item["kinds"], "radius": plane.length(tolerance_m)}
        if item["check_in"]:
            mark["x"], mark["y"] = plane.xy(item["check_in"])
        if item["target_location"]:
            mark["tx"], mark["ty"] = plane.xy(item["target_location"])
        marks.append(mark)
    metres, bar = plane.scale_bar(MAP_WIDTH / 4)
    return {"width": MAP_WIDTH, "height": MAP_HEIGHT, "marks": marks, "bar": bar, "rows": rows,
            "tolerance": f"{tolerance_m:g}", "target_label": target_label,
            "bar_label": f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"}


def _circle(centre: dict | None, radius_m: float) -> list[dict]:
    """The north, south, east and west ends of a circle around `centre`, so the map fits the whole circle."""
    if centre is None:
        return []
    dlat = radius_m / M_PER_DEGREE
    dlng = dlat / math.cos(math.radians(centre["lat"]))
    return [{"lat": centre["lat"] + dlat * n, "lng": centre["lng"] + dlng * e}
            for n, e in ((1, 0), (-1, 0), (0, 1), (0, -1))]


@bp.route("/o/<obj>/anomalies")
def anomalies_page(obj: str):
    """异常拜访: `start`, `end` (days, both included; default the last 30 days to today), `owner`, `kind`, `record`."""
    definition = object_def(obj)
    platform = get_platform()
    start, end = anomalies.period_query(request.args, platform.local_now().date())
    owner, kind = request.args.get("owner") or None, request.args.get("kind") or None
    record = request.args.get("record") or None
    found = anomalies.anomalies(platform, g.access, obj, start, end, owner, kind, record)
    display = page_display()
    display.want_ids("user", [i["owner"] for i in found["items"] if i["owner"]])
    config = anomalies.CHECK_IN.config_of(definition)
    target = platform.metadata.objects[definition.fields[config.lookup].to]
    items = []
    for n, item in enumerate(found["items"], 1):
        items.append({
            **item, "n": n, "url": url_for("pages.record", obj=obj, id=item["id"]),
            "map_url": url_for("pages.anomalies_page", obj=obj, start=start.isoformat(), end=end.isoformat(),
                               record=item["id"]),
            "title": item["title"] or display.record_title(definition, {"id": item["id"]}),
            "owner_name": display.title("user", item["owner"]) if item["owner"] else "",
            "target_url": url_for("pages.record", obj=target.name, id=item["target"]) if item["target"] else None,
            "planned": display.text(definition, config.planned_field, item["planned_at"]),
            "checked_in": display.text(definition, config.checked_in_field, item["check_in_at"]),
        })
    mileage = anomalies.mileage(platform, g.access, obj, start, end, owner)
    display.want_ids("user", [i["owner"] for i in mileage["items"] if i["owner"]])
    for item in mileage["items"]:
        item["owner_name"] = display.title("user", item["owner"]) if item["owner"] else ""
    query = {"start": start.isoformat(), "end": end.isoformat(), **({"owner": owner} if owner else {})}
    kinds = [{"kind": k, "label": text(f"anomalies.kind.{k}", g.lang), "count": found["counts"][k], "active": k == kind,
              "url": url_for("pages.anomalies_page", obj=obj, **query, **({} if k == kind else {"kind": k}))}
             for k in found["kinds"]]
    return render_template(
        "pages/anomalies.html", obj=definition, object_label=object_label(definition, g.lang, plural=True),
        single_label=object_label(definition, g.lang),
        items=items, found=found, mileage=mileage, kinds=kinds, kind_labels={k["kind"]: k["label"] for k in kinds},
        kind=kind,
        owner=owner, record=record,
        map=check_in_map(items, config.tolerance_m, object_label(target, g.lang)),
        target_label=object_label(target, g.lang),
        labels={name: field_label(definition, name, g.lang) for name in (
            config.planned_field, config.checked_in_field, config.distance_field, config.duration_field)},
        fields=config, all_url=url_for("pages.anomalies_page", obj=obj, start=start.isoformat(),
                                       end=end.isoformat()))
