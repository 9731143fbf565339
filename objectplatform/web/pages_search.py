"""The search page (/search): the global search's records for the signed-in user, grouped by object, from the box
in every page's header; the same runtime call as GET /api/v1/search."""

from __future__ import annotations

from flask import g, render_template, request, url_for

from objectplatform.runtime import search

from .current import get_platform
from .pages_base import bp, page_display
from .pages_view import field_label, object_label


@bp.route("/search")
def search_page():
    """全局搜索: names (also by pinyin and initials), phones and numbers across the searched objects."""
    platform, display = get_platform(), page_display()
    q = request.args.get("q", "").strip()
    groups = []
    for group in search.search(platform, g.access, q):
        obj = platform.metadata.objects[group["object"]]
        items = [{**item, "values": [display.text(obj, name, value) for name, value in item["values"].items()],
                  "url": url_for("pages.record", obj=obj.name, id=item["id"]),
                  "matched": field_label(obj, item["field"], g.lang) if item["field"] != obj.title_field else None}
                 for item in group["items"]]
        groups.append({"object": obj.name, "label": object_label(obj, g.lang), "items": items})
    return render_template("pages/search.html", q=q, groups=groups)
