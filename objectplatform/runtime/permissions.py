"""Who may do what: roles from the metadata, applied to one signed-in user.

(How it works: docs/engine.md, "objectplatform/runtime/permissions.py".)"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from objectplatform.metadata import FIELD_LEVELS, SYSTEM_FIELDS, Label, ObjectDef

from .derived import per_metadata
from .errors import Forbidden, Message, Unauthenticated, no_record, said_name, said_records
from .storage.convert import from_db
from .storage.engine import reading

OPERATIONS = ("create", "read", "edit", "delete")
OPERATION_VERBS = {"create": Message("operation.create", "create"), "read": Message("operation.read", "read"),
                   "edit": Message("operation.edit", "edit"), "delete": Message("operation.delete", "delete")}
SCOPES = ("own", "subordinates", "department", "all")
DEFAULT_SCOPE = "own"


@dataclass(frozen=True)
class Matching:
    """A data scope by value: the records whose `path` (lookups, then a field, or `id`) holds the value of the
    user's own field `user_field` (a partner's orders: `sales_order.account` is the user's `account`)."""

    path: str
    user_field: str


@dataclass(frozen=True)
class Within:
    """A data scope through another user field than the owner: the records whose user at `path` (lookups, then a
    user field) is among the owners the scope `within` reaches (the orders of a rep's accounts: `account.owner`)."""

    path: str
    within: str


@dataclass(frozen=True)
class Grant:
    """What a user's roles together allow on one object; `scopes` come from the roles that grant read."""

    operations: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()
    scopes: frozenset[str | Matching | Within] = frozenset()


NO_GRANT = Grant()


@dataclass(frozen=True)
class Access:
    """What one signed-in user may do: per-object operations, actions and the data scope."""

    user_id: str
    username: str
    display_name: str
    roles: frozenset[str]
    grants: Mapping[str, Grant] = field(default_factory=dict, repr=False, compare=False)
    # object -> the owner ids whose rows the user may read (None: every row)
    visible_owners: Mapping[str, frozenset[int] | None] = field(default_factory=dict, repr=False, compare=False)
    full_access: bool = False
    object_order: tuple[str, ...] = ()
    # object with the pool behavior -> (its pool field, the pools whose waiting, unowned records the user sees)
    pools: Mapping[str, tuple[str, frozenset[int]]] = field(default_factory=dict, repr=False, compare=False)
    # object -> {field: "hidden" | "read"}: the fields the user's roles restrict (every other one is "edit")
    field_levels: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False, compare=False)
    # object with team fields -> {field: "read" | "edit"}, and the side table listing each record's members
    teams: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False, compare=False)
    team_table: sa.Table | None = field(default=None, repr=False, compare=False)
    # object -> its records/masking.FieldMask for this user, made once on first use
    masks: dict = field(default_factory=dict, repr=False, compare=False)
    # (object, its table, operation) -> the condition of `scope` on it, made once on first use
    scopes: dict = field(default_factory=dict, repr=False, compare=False)
    # object -> the conditions (on its table) of the scopes by value its roles give it (Matching, Within)
    matches: Mapping[str, tuple] = field(default_factory=dict, repr=False, compare=False)
    # the metadata's objects, which refusals name by their labels
    objects: Mapping[str, ObjectDef] = field(default_factory=dict, repr=False, compare=False)

    def _grant(self, obj: str) -> Grant:
        return self.grants.get(obj, NO_GRANT)

    def can(self, obj: str, operation: str) -> bool:
        return operation in self._grant(obj).operations

    def require(self, obj: str, operation: str) -> None:
        """Forbidden unless one of the user's roles grants `operation` on `obj`."""
        if not self.can(obj, operation):
            raise Forbidden(Message("permission.operation", "your roles do not allow you to {operation} {object}",
                                    operation=OPERATION_VERBS[operation], object=self._records(obj)))

    def can_act(self, obj: str, action: str) -> bool:
        return action in self._grant(obj).actions

    def require_action(self, obj: str, action: str, label: Label | None = None) -> None:
        """Forbidden unless one of the user's roles grants the named action (labelled `label`) on `obj`."""
        if not self.can_act(obj, action):
            raise Forbidden(Message("permission.action", "your roles do not allow the action {action} on {object}",
                                    action=said_name(action, label) if label else action, object=self._records(obj)))

    def _records(self, obj: str) -> str:
        """`obj`'s records as a refusal names them (by the object's plural label)."""
        return said_records(self.objects[obj]) if obj in self.objects else obj

    def scope(self, obj: str, table: sa.Table, operation: str = "read",
              owner: str | None = None) -> ColumnElement[bool] | None:
        """The condition on `table` limiting rows to those the user may read (or, for `operation` "edit",
        edit; "delete", delete); None: every row. `owner`: the owner a list's filter pins the rows to; when the
        scope reaches that owner, the filter alone keeps the rows in scope and there is no condition (given both,
        PostgreSQL counts the owner twice, expects a few rows, and sorts them all instead of reading the
        (owner, sort) index in order).

        The rows of the owners the role's data scope reaches, the unowned rows waiting in the pools the user
        sees, and the rows whose team fields name the user: every team field for reading, the `team: edit`
        ones for editing, none for deleting. An object the user may not read gets a condition no row satisfies.
        """
        if not self.can(obj, "read"):
            return sa.false()
        owners = self.visible_owners.get(obj, frozenset())
        if owners is None or owner is not None and str(owner).isdigit() and int(owner) in owners:
            return None
        if not isinstance(table, sa.Table):  # an alias: made anew (a caller may make many)
            return self._scope(obj, table, operation, owners)
        key = (obj, table, operation)
        if key not in self.scopes:
            self.scopes[key] = self._scope(obj, table, operation, owners)
        return self.scopes[key]

    def _scope(self, obj: str, table: sa.FromClause, operation: str, owners: frozenset[int]) -> ColumnElement[bool]:
        """`scope`'s condition when the user may read some but not every row of `obj`."""
        reached = [match(table) for match in self.matches.get(obj, ())]
        if owners:
            reached.append(table.c.owner == next(iter(owners)) if len(owners) == 1
                           else table.c.owner.in_(sorted(owners)))
        pool_field, pools = self.pools.get(obj, (None, frozenset()))
        if pools:
            reached.append(sa.and_(table.c.owner.is_(None), table.c[pool_field].in_(sorted(pools))))
        teams = [name for name, level in self.teams.get(obj, {}).items()
                 if operation == "read" or operation == "edit" and level == "edit"]
        if teams:
            reached.append(self._member_of(obj, table, teams))
        if not reached:
            return sa.false()
        return reached[0] if len(reached) == 1 else sa.or_(*reached)

    def _member_of(self, obj: str, table: sa.Table, fields: list[str]) -> ColumnElement[bool]:
        """The records whose team `fields` name the user: ids from the side table's (user, object) index."""
        team = self.team_table
        return IdAmong(table.c.id, sa.select(team.c.record_id).where(
            team.c.user_id == int(self.user_id), team.c.object == obj,
            team.c.field == fields[0] if len(fields) == 1 else team.c.field.in_(fields)).scalar_subquery())

    def field_level(self, obj: str, name: str) -> str:
        """What the user's roles let them do with field `name` of `obj`: "hidden", "read" or "edit"."""
        return self.field_levels.get(obj, {}).get(name, "edit")

    def readable_objects(self) -> list[str]:
        """The objects the user may read, in metadata order (for navigation)."""
        return [name for name in self.object_order if self.can(name, "read")]

    @property
    def is_admin(self) -> bool:
        """Holds a role granting every operation with scope all on every object ("*")."""
        return self.full_access


class IdAmong(ColumnElement[bool]):
    """`id IN (SELECT ...)`; on PostgreSQL `id = ANY(ARRAY(SELECT ...))`, which the planner can combine with
    the owner condition (a BitmapOr of the owner index and the primary key) where `OR id IN (SELECT ...)`
    makes it filter every row (1,000,000 rows, a few hundred team records: 7 ms against 130 ms)."""

    inherit_cache = True
    type = sa.Boolean()
    _is_implicitly_boolean = True  # a condition already: SQLite gets no "= 1" after it
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement), ("ids", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: ColumnElement, ids: sa.ScalarSelect):
        self.column, self.ids = column, ids


@compiles(IdAmong)
def _id_among(element: IdAmong, compiler, **kw) -> str:
    return compiler.process(element.column.in_(element.ids.element), **kw)


@compiles(IdAmong, "postgresql")
def _id_among_pg(element: IdAmong, compiler, **kw) -> str:
    return f"{compiler.process(element.column, **kw)} = ANY(ARRAY{compiler.process(element.ids, **kw)})"


def role_grant(permissions: Mapping[str, Mapping], obj: str) -> Grant:
    """One role's grant on `obj`: its entry for the object, else its "*" entry; an operation left out is
    not granted and a scope left out is own."""
    entry = permissions.get(obj, permissions.get("*"))
    if entry is None:
        return NO_GRANT
    operations = frozenset(op for op in OPERATIONS if entry.get(op, False))
    given = entry.get("scope", DEFAULT_SCOPE)
    scopes = frozenset(map(_scope, given if isinstance(given, list) else [given])) if "read" in operations \
        else frozenset()
    return Grant(operations, frozenset(entry.get("actions", ())), scopes)


def _scope(given: str | Mapping[str, str]) -> str | Matching | Within:
    if not isinstance(given, Mapping):
        return given
    return Matching(given["field"], given["equals_user"]) if "equals_user" in given \
        else Within(given["field"], given["within"])


def combine(grants: Iterable[Grant]) -> Grant:
    """The union of several roles' grants on one object."""
    grants = list(grants)
    return Grant(
        frozenset().union(*(g.operations for g in grants)),
        frozenset().union(*(g.actions for g in grants)),
        frozenset().union(*(g.scopes for g in grants)),
    )


@per_metadata
def _by_roles(metadata) -> dict[tuple[str, frozenset[str]], Mapping]:
    """What grants_for and field_levels_for made of each set of roles: the same for every request of a user."""
    return {}


def grants_for(metadata, roles: Iterable[str]) -> Mapping[str, Grant]:
    """{object: the union of the roles' grants} for every object of the metadata."""
    made, key = _by_roles(metadata), ("grants", frozenset(roles))
    if key not in made:
        defs = [metadata.roles[r].permissions for r in key[1] if r in metadata.roles]
        made[key] = MappingProxyType({obj: combine(role_grant(p, obj) for p in defs) for obj in metadata.objects})
    return made[key]


def field_levels_for(metadata, roles: Iterable[str]) -> Mapping[str, Mapping[str, str]]:
    """{object: {field: "hidden" | "read"}}: per field, the most permissive level among the roles granting
    anything on the object (a field a role leaves out is "edit" for it); full access restricts nothing."""
    made, key = _by_roles(metadata), ("levels", frozenset(roles))
    if key not in made:
        made[key] = MappingProxyType(_field_levels(metadata, key[1]))
    return made[key]


def _field_levels(metadata, roles: frozenset[str]) -> dict[str, Mapping[str, str]]:
    """The roles' field levels, and hidden: every reference field to an object the roles may not read at all (a
    partner's view of an order line's price policy), which could only show an internal id naming nothing they may
    open. The system fields (owner, created_by, updated_by) stay: every record carries them (API.md); the pages show
    such a reference as a dash, not an id."""
    if has_full_access(metadata, roles):
        return {}
    defs = [metadata.roles[r] for r in roles if r in metadata.roles]
    grants = grants_for(metadata, roles)
    unread = {name for name, grant in grants.items() if "read" not in grant.operations}
    result: dict[str, Mapping[str, str]] = {}
    for obj in metadata.objects:
        levels = [role.field_levels.get(obj, {}) for role in defs if role_grant(role.permissions, obj).operations]
        references = {f.name: f.to for f in metadata.objects[obj].fields.values() if f.name not in SYSTEM_FIELDS}
        restricted = {name: "hidden" for name, to in references.items() if to in unread} if obj not in unread else {}
        for name in set().union(*levels) if levels else ():
            level = max((given.get(name, "edit") for given in levels), key=FIELD_LEVELS.index)
            if level != "edit" and restricted.get(name) != "hidden":
                restricted[name] = level
        if restricted:
            result[obj] = MappingProxyType(restricted)
    return result


@per_metadata
def team_fields(metadata) -> Mapping[str, Mapping[str, str]]:
    """{object: {team field: "read" | "edit"}} for the objects that have team fields."""
    found = {obj.name: {f.name: f.team for f in obj.fields.values() if f.team} for obj in metadata.objects.values()}
    return MappingProxyType({name: MappingProxyType(fields) for name, fields in found.items() if fields})


def has_full_access(metadata, roles: Iterable[str]) -> bool:
    """Whether one of `roles` grants every operation with scope all on every object ("*"): an administrator's."""
    for name in roles:
        role = metadata.roles.get(name)
        entry = role.permissions.get("*") if role else None
        if entry and all(entry.get(op, False) for op in OPERATIONS) and entry.get("scope") == "all":
            return True
    return False


@dataclass(frozen=True)
class Org:
    """The organisation as the scopes need it: who reports to whom and the department tree."""

    reports: Mapping[int, list[int]]  # manager -> direct reports
    members: Mapping[int, list[int]]  # department -> its users
    child_departments: Mapping[int, list[int]]
    managed: Mapping[int, list[int]]  # user -> departments they manage

    @classmethod
    def read(cls, conn: sa.Connection, schema) -> Org:
        users, departments = schema["user"], schema["department"]
        reports: dict[int, list[int]] = {}
        members: dict[int, list[int]] = {}
        for id_, manager, department in conn.execute(
            sa.select(users.table.c.id, users.column("manager"), users.column("department"))
        ):
            if manager is not None:
                reports.setdefault(manager, []).append(id_)
            if department is not None:
                members.setdefault(department, []).append(id_)
        children: dict[int, list[int]] = {}
        managed: dict[int, list[int]] = {}
        for id_, parent, manager in conn.execute(
            sa.select(departments.table.c.id, departments.column("parent"), departments.column("manager"))
        ):
            if parent is not None:
                children.setdefault(parent, []).append(id_)
            if manager is not None:
                managed.setdefault(manager, []).append(id_)
        return cls(reports, members, children, managed)

    def subtree(self, roots: Iterable[int]) -> set[int]:
        """The departments `roots` and every department below them."""
        found: set[int] = set()
        stack = list(roots)
        while stack:
            dept = stack.pop()
            if dept not in found:
                found.add(dept)
                stack.extend(self.child_departments.get(dept, ()))
        return found

    def department_members(self, department: int | None, me: int) -> frozenset[int]:
        """Me and every user of my department and the departments below it."""
        depts = self.subtree([department]) if department is not None else set()
        return frozenset({me, *(u for d in depts for u in self.members.get(d, ()))})

    def subordinates(self, me: int) -> frozenset[int]:
        """Me and everyone below me: my reports and the users of the departments I manage (with their
        sub-departments), and theirs in turn."""
        found = {me}
        stack = [me]
        seen_depts: set[int] = set()
        while stack:
            user = stack.pop()
            depts = self.subtree(d for d in self.managed.get(user, ()) if d not in seen_depts) - seen_depts
            seen_depts |= depts
            for below in [*self.reports.get(user, ()), *(u for d in depts for u in self.members.get(d, ()))]:
                if below not in found:
                    found.add(below)
                    stack.append(below)
        return frozenset(found)


def access_for(platform, user_id: str, conn: sa.Connection | None = None) -> Access:
    """The access of the user `user_id`; Unauthenticated when there is no such user.

    Reads the user and, only when a role's scope needs them, the manager chain and department tree.
    """
    if conn is None:
        with reading(platform.engine) as own:
            return access_for(platform, user_id, own)
    metadata, schema = platform.metadata, platform.schema
    users = schema["user"]
    text = str(user_id)
    if not (text.isascii() and text.isdigit()):
        raise Unauthenticated(no_record(users.object, user_id))
    row = conn.execute(
        sa.select(users.column("username"), users.column("display_name"), users.column("roles"),
                  users.column("active"), users.column("department")).where(users.table.c.id == int(text))
    ).first()
    if row is None:
        raise Unauthenticated(no_record(users.object, user_id))
    username, display_name, roles_json, active, department = row
    roles = frozenset(from_db("multi_picklist", roles_json) or ()) if active else frozenset()
    grants = grants_for(metadata, roles)
    me = int(text)
    needed = {s for g in grants.values() for s in g.scopes}
    needed |= {s.within for s in needed if isinstance(s, Within)}
    org = Org.read(conn, schema) if needed & {"subordinates", "department"} else None
    owners_by_scope: dict[str, frozenset[int]] = {"own": frozenset({me})}
    if "subordinates" in needed:
        owners_by_scope["subordinates"] = org.subordinates(me)
    if "department" in needed:
        owners_by_scope["department"] = org.department_members(department, me)
    pools = _pools_seen(conn, platform, me, department, grants)
    mine = _user_values(conn, users, me, {s.user_field for s in needed if isinstance(s, Matching)})
    visible: dict[str, frozenset[int] | None] = {}
    matches: dict[str, tuple] = {}
    for obj, grant in grants.items():
        if "all" in grant.scopes:
            visible[obj] = None
            continue
        visible[obj] = frozenset().union(*(owners_by_scope[s] for s in grant.scopes if isinstance(s, str)))
        found = [_matching(platform, obj, s.path.split("."), mine[s.user_field])
                 for s in grant.scopes if isinstance(s, Matching)]
        found += [_matching(platform, obj, s.path.split("."), owners_by_scope[s.within])
                  for s in grant.scopes if isinstance(s, Within)]
        if found:
            matches[obj] = tuple(found)
    return Access(
        text, username, display_name, roles, grants, MappingProxyType(visible),
        has_full_access(metadata, roles), tuple(metadata.objects), MappingProxyType(pools),
        field_levels_for(metadata, roles), team_fields(metadata),
        schema.teams, matches=MappingProxyType(matches), objects=metadata.objects,
    )


def _user_values(conn: sa.Connection, users, me: int, names: set[str]) -> dict[str, object]:
    """The user's own values of the fields their matching scopes compare with."""
    if not names:
        return {}
    ordered = sorted(names)
    row = conn.execute(sa.select(*(users.column(n) for n in ordered)).where(users.table.c.id == me)).first()
    return dict(zip(ordered, row, strict=True))


def _matching(platform, obj: str, steps: list[str], value):
    """The condition "`steps` of a row of `obj`'s table hold `value`" (given a set of them: one of them): one
    column compared, or a lookup's value among the ids of its target's rows that match the rest of the path. An
    empty user value matches nothing."""
    if value is None or value == frozenset():
        return lambda table: sa.false()
    ot = platform.schema[obj]
    first = steps[0]
    column = "id" if first == "id" else ot.columns[first][0]
    if len(steps) == 1 and isinstance(value, frozenset):
        return lambda table: table.c[column].in_(sorted(value))
    if len(steps) == 1:
        return lambda table: table.c[column] == value
    target = platform.metadata.objects[obj].fields[first].to
    tt = platform.schema[target].table
    inner = _matching(platform, target, steps[1:], value)(tt)
    return lambda table: IdAmong(table.c[column], sa.select(tt.c.id).where(inner).scalar_subquery())


def _pools_seen(conn: sa.Connection, platform, me: int, department: int | None,
                grants: Mapping[str, Grant]) -> dict[str, tuple[str, frozenset[int]]]:
    """For each readable object with the pool behavior: its pool field and the pools whose unowned records
    the user sees besides their scope: the pools they administer, and the claimable ones they are a member
    of (named, or through their department or a department above it)."""
    schema, result = platform.schema, {}
    chain: set[str] | None = None
    for obj in platform.metadata.objects.values():
        spec = obj.behaviors.get("pool")
        if not spec or not grants.get(obj.name, NO_GRANT).scopes:
            continue
        if chain is None:
            chain = department_chain(conn, schema, department)
        pool_ot = schema[spec["pool_object"]]
        rows = conn.execute(sa.select(pool_ot.table.c.id, pool_ot.column("admins"), pool_ot.column("members"),
                                      pool_ot.column("member_departments"), pool_ot.column("claimable")))
        seen = set()
        for id_, admins, members, departments, claimable in rows:
            member = str(me) in (from_db("multi_user", members) or []) or bool(
                chain & set(from_db("multi_department", departments) or []))
            if str(me) in (from_db("multi_user", admins) or []) or (claimable and member):
                seen.add(id_)
        result[obj.name] = (schema[obj.name].columns[spec.get("pool_field", "pool")][0], frozenset(seen))
    return result


def department_chain(conn: sa.Connection, schema, department: int | None) -> set[str]:
    """The user's department and every department above it, as id strings."""
    departments = schema["department"]
    parents = dict(conn.execute(sa.select(departments.table.c.id, departments.column("parent"))).all())
    chain: set[str] = set()
    while department is not None and str(department) not in chain:
        chain.add(str(department))
        department = parents.get(department)
    return chain
