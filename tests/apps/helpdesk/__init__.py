"""A second, small sample app: a helpdesk whose tickets wait in queues (the pool behavior), move through a
lifecycle and convert into tasks, plus one action and one page of its own, all through the app API."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, jsonify

from objectplatform.metadata import Label
from objectplatform.runtime.apps import App
from objectplatform.runtime.extension_points import ActionCall, Registry
from objectplatform.web.current import get_platform

HERE = Path(__file__).resolve().parent


def _escalate(call: ActionCall) -> dict:
    """The ticket's priority becomes urgent."""
    record = call.platform.records.update("ticket", call.record["id"], {"priority": "urgent"},
                                          version=call.record["version"], user=call.access.user_id)
    return {"record": record}


def register(registry: Registry) -> None:
    """The helpdesk's own action: escalate a ticket (only on the platforms running this app)."""
    registry.action("ticket", "escalate", _escalate, label=Label("升级", "Escalate"), bulk=False)


pages = Blueprint("helpdesk", __name__)


@pages.route("/helpdesk/states")
def states():
    """The ticket's lifecycle states with their English labels, in order."""
    ticket = get_platform().metadata.objects["ticket"]
    return jsonify([[o.value, o.label.en] for o in ticket.fields["status"].options])


app = App(name="helpdesk", layers=(HERE,), register=register,
          pages=lambda flask_app: flask_app.register_blueprint(pages))
