"""销售目标: a target belongs to whom it measures, so a rep reads their own and a manager sets those of their scope."""

from __future__ import annotations

from objectplatform.runtime.errors import Forbidden, Message, NotFound
from objectplatform.runtime.records.hooks import HookContext

TARGET = "sales_target"


def owned_by_whom_it_measures(ctx: HookContext) -> None:
    """The owner of a target is its employee, or its department's manager (else whoever sets it); a caller whose
    data scope does not reach that owner may not set it (403)."""
    target = ctx.after
    owner = target.get("user")
    if owner is None and target.get("department") is not None:
        try:
            owner = ctx.records.get("department", target["department"], conn=ctx.conn).get("manager")
        except NotFound:  # no such department: the field's own check says so (422), not this hook
            return
    if owner is None:
        return
    caller = getattr(ctx.records, "caller", None)
    owners = caller.visible_owners.get(TARGET, frozenset()) if caller is not None else None
    if owners is not None and int(owner) not in owners:
        raise Forbidden(Message("sales_target.outside_scope", "you may set the targets of your reports and your "
                                "departments only: user {user} is not one of them", user=owner))
    target["owner"] = str(owner)


def register(registry) -> None:
    for event in ("before_create", "before_update"):
        registry.hook(event, owned_by_whom_it_measures, applies=lambda obj: obj.name == TARGET)
