"""The administrators' recycle bin page (回收站): deleted records with who deleted them, when, when the purge
removes them, and a restore button each."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, url_for

from objectplatform.runtime.errors import Conflict, NotFound
from objectplatform.runtime.records import recycle_bin

from .api_recycle_bin import require_admin
from .current import get_platform
from .i18n import error_text, text
from .pages_base import bp, page_display
from .pages_view import local_time, object_label


@bp.route("/admin/recycle_bin")
def recycle_bin_page():
    require_admin()
    platform = get_platform()
    display = page_display()
    entries = recycle_bin.entries(platform)
    display.want_ids("user", [e["deleted_by"] for e in entries])
    rows = [{"id": e["id"], "title": e["title"], "record_id": e["record_id"],
             "object": object_label(platform.metadata.objects[e["object"]], g.lang)
             if e["object"] in platform.metadata.objects else e["object"],
             "deleted_by": display.title("user", e["deleted_by"]) if e["deleted_by"] else "",
             "deleted_at": local_time(e["deleted_at"], g.zone).strftime("%Y-%m-%d %H:%M"),
             "purge_at": local_time(e["purge_at"], g.zone).strftime("%Y-%m-%d")} for e in entries]
    return render_template("pages/recycle_bin.html", rows=rows, days=platform.settings.recycle_bin_days)


@bp.route("/admin/recycle_bin/<entry_id>/restore", methods=["POST"])
def restore_from_bin(entry_id: str):
    require_admin()
    try:
        obj, record = recycle_bin.restore(get_platform(), entry_id, g.access.user_id)
    except (Conflict, NotFound) as e:
        flash(error_text(e.message, g.lang), "error")
        return redirect(url_for("pages.recycle_bin_page"))
    flash(text("recycle_bin.restored", g.lang), "success")
    return redirect(url_for("pages.record", obj=obj, id=record["id"]))
