"""再次下单: `copy` on a sales order makes a new draft for the same customer with the same lines at today's prices
(and today's price policies)."""

from __future__ import annotations

from objectplatform.metadata import Label
from objectplatform.runtime.actions import ActionCall

COPIED = ("account", "contact", "order_discount", "receiver", "receiver_phone", "shipping_address")
COPIED_LINE = ("product", "quantity", "discount")  # the unit price is left out: the product's price today


def copy_order(call: ActionCall) -> dict:
    """A new draft of the caller's with the order's customer, discount and lines; the typed total is not kept."""
    order = call.record
    values = {name: order.get(name) for name in COPIED if order.get(name) is not None}
    values["order_line"] = [{name: line.get(name) for name in COPIED_LINE if not _priced_by_policy(line, name)}
                            for line in order.get("order_line", [])]
    created = call.platform.records.within(call.access).create("sales_order", values, user=call.access.user_id)
    return {"record": created}


def _priced_by_policy(line: dict, name: str) -> bool:
    """A discount a price policy gave is left out too: the new line takes today's policy."""
    return name == "discount" and line.get("price_policy") is not None


def register(registry) -> None:
    """The CRM's own action on sales orders."""
    registry.action("sales_order", "copy", copy_order, label=Label("再次下单", "Order again"), bulk=False)
