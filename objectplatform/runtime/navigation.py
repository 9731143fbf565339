"""The menu from `kind: navigation`: its groups in their declared order, each holding the objects a user may read
and the registered pages shown to them; the engine's own pages are registered here like an app's.

(How it works: docs/engine.md, "objectplatform/runtime/navigation.py".)"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from objectplatform.metadata import Label, Metadata, Problem
from objectplatform.metadata.problems import closest

from .behaviors.follow_ups import follow_up_object
from .permissions import Access
from .registry import Registry

OTHER = Label("其他", "Other")  # the readable objects no group lists (a site's new object)


@dataclass
class MenuItem:
    label: Label
    endpoint: str
    object: str | None = None  # the list's object, or
    page: str | None = None  # the page's name


@dataclass
class MenuGroup:
    key: str
    label: Label
    items: list[MenuItem] = field(default_factory=list)


def register(registry: Registry) -> None:
    """The engine's pages a navigation may name."""
    registry.page("todos", endpoint="pages.todos", label=Label("我的待办", "My to-dos"))
    registry.page("notifications", endpoint="pages.notifications", label=Label("消息通知", "Notifications"))
    registry.page("reports", endpoint="pages.reports", label=Label("报表", "Reports"))
    registry.page(
        "pool_board",
        endpoint="pages.pool_board",
        label=Label("线索池看板", "Pool board"),
        shown=lambda md, access: any(
            access.can_act(o, "claim") or access.can_act(o, "assign") for o in _pool_objects(md, access)
        ),
    )
    registry.page(
        "my_leads",
        endpoint="pages.my_leads",
        label=Label("我的线索", "My leads"),
        shown=lambda md, access: bool(_pool_objects(md, access)),
    )
    registry.page(
        "feed",
        endpoint="pages.feed",
        label=Label("工作动态", "Team feed"),
        shown=lambda md, access: (obj := follow_up_object(md)) is not None and access.can(obj, "read"),
    )
    registry.page(
        "metadata",
        endpoint="pages.metadata_browser",
        label=Label("元数据", "Metadata"),
        shown=lambda md, access: access.is_admin,
    )
    registry.page(
        "recycle_bin",
        endpoint="pages.recycle_bin_page",
        label=Label("回收站", "Recycle bin"),
        shown=lambda md, access: access.is_admin,
    )


def _pool_objects(metadata: Metadata, access: Access) -> list[str]:
    return [name for name in access.readable_objects() if "pool" in metadata.objects[name].behaviors]


def menu(metadata: Metadata, registry: Registry, access: Access) -> list[MenuGroup]:
    """The groups with the items `access` may open, empty groups left out; the readable objects no group
    names (child objects aside: they live on their parent's page) last, under "Other"."""
    groups, listed = [], set()
    readable = set(access.readable_objects())
    for group in metadata.navigation:
        shown = MenuGroup(group.key, group.label)
        for item in group.items:
            page = registry.pages.get(item.page) if item.page is not None else None
            if item.object is not None and page is None:
                listed.add(item.object)
                if item.object in readable:
                    obj = metadata.objects[item.object]
                    shown.items.append(
                        MenuItem(item.label or obj.plural_label or obj.label, "pages.list_records", item.object)
                    )
            elif page is not None and page.shown(metadata, access):
                if page.of_object is None:
                    shown.items.append(MenuItem(item.label or page.label, page.endpoint, page=page.name))
                elif item.object in readable and page.of_object(metadata, item.object):
                    of = metadata.objects[item.object].label
                    label = item.label or Label(of.zh + page.label.zh, f"{of.en} {page.label.en}")
                    shown.items.append(MenuItem(label, page.endpoint, item.object, page.name))
        if shown.items:
            groups.append(shown)
    rest = [
        name
        for name in access.readable_objects()
        if name not in listed and not any(f.type == "master_detail" for f in metadata.objects[name].fields.values())
    ]
    if rest:
        objects = metadata.objects
        groups.append(
            MenuGroup(
                "other",
                OTHER,
                [MenuItem(objects[n].plural_label or objects[n].label, "pages.list_records", n) for n in rest],
            )
        )
    return groups


def check_pages(metadata: Metadata, registry: Registry) -> Iterator[Problem]:
    """Each `page:` of the navigation is a registered page."""
    for group in metadata.navigation:
        for item in group.items:
            if item.page is None:
                continue
            source = item.source
            page = registry.pages.get(item.page)
            if page is None:
                yield Problem.at(source.file, source.line, source.col, f"unknown page {item.page!r}",
                                 hint=closest(item.page, registry.pages))
            elif page.of_object is None and item.object is not None:
                yield Problem.at(source.file, source.line, source.col,
                                 f"page {item.page!r} is not a page of an object: leave out object:")
            elif page.of_object is not None and item.object is None:
                yield Problem.at(source.file, source.line, source.col,
                                 f"page {item.page!r} is a page of an object: name it with object:")
            elif page.of_object is not None and item.object in metadata.objects \
                    and not page.of_object(metadata, item.object):
                yield Problem.at(source.file, source.line, source.col,
                                 f"{item.object} has no {item.page} page (its behaviors do not give one)")
