"""The demo company: demo/company.yaml's fixed organisation, then demo/generated.yaml's volume made with Faker; or
another folder's company.yaml in the same format (an industry edition's demo/, `objectplatform demo --template`).

(How it works: docs/engine.md, "objectplatform_crm/demo.py".)"""

from __future__ import annotations

import base64
import copy
import csv
import functools
import mimetypes
import random
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from faker import Faker
from ruamel.yaml import YAML

from objectplatform.runtime import approvals, geo
from objectplatform.runtime.actions import run_action
from objectplatform.runtime.apps import DemoResult, DemoUser
from objectplatform.runtime.behaviors import route, staged
from objectplatform.runtime.behaviors.check_in import CHECK_IN
from objectplatform.runtime.errors import ValidationFailed
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.sales_processes import Process, department_path, pick, process, processes
from objectplatform.runtime.storage.convert import to_db

DEMO = Path(__file__).resolve().parent / "demo"  # company.yaml, generated.yaml, leads.csv
DEMO_FILE = "company.yaml"
ROUTED, ROUTE_DAY = "visits", "2026-12-09"  # the route behavior's path of visits; the day of the saved route
GENERATED_FILE = "generated.yaml"
CENT = Decimal("0.01")
# the 客户反馈 of the generated completed visits, taken in turn (no random draw: the rest of the demo stays the same)
FEEDBACK_CATEGORIES = ("product", "service", "price", "delivery", "other")
SATISFACTION = ("satisfied", "very_satisfied", "satisfied", "neutral")


def load_demo(platform, folder: Path | None = None, now: datetime | None = None) -> DemoResult:
    """Create the records of `folder`'s company.yaml (default: the CRM's demo company), then those its
    generated.yaml makes, if it has one, dated around `now` (default: the platform's clock)."""
    folder = folder or DEMO
    steps = _read_yaml(folder / DEMO_FILE)["steps"]
    generated = folder / GENERATED_FILE
    spec = _read_yaml(generated) if generated.exists() else None
    now = (now or platform.clock.now()).astimezone(platform.settings.zone).replace(second=0, microsecond=0)
    records = platform.records
    with records.transaction() as conn:
        company = _Company(platform, conn, now)
        for step in steps:
            company.run(step, folder)
        bulk = _Generator(company, spec, now).generate() if spec is not None else []
    for obj, user, rows in bulk:
        dates = [row.pop("created_at", None) for row in rows]
        result = records.create_many(obj, rows, user=user, all_or_nothing=True, system=True)
        if result.errors:
            error = result.errors[0]
            raise ValidationFailed({f"{obj}[{error.index}].{name}": m for name, m in error.fields.items()})
        company.counts[obj] += len(result.created)
        company.dated += [(obj, record_id, at) for record_id, at in zip(result.created, dates, strict=True) if at]
    _backdate(platform, company.dated)
    if spec is not None:
        _saved_route(platform, company)
    company.run_later()
    return DemoResult(dict(company.counts), tuple(company.users))


def _backdate(platform, dated: Sequence[tuple[str, str, str]]) -> None:
    """The records the demo data dates earlier ((object, id, `created_at` as ISO text)): each says, and its
    "create" history with it, that it was made then (last changed: by the load); one UPDATE of each table per
    object."""
    history = platform.schema.history
    by_object: dict[str, list[dict]] = defaultdict(list)
    for obj, record_id, at in dated:
        by_object[obj].append({"rid": int(record_id), "at": to_db("datetime", datetime.fromisoformat(at))})
    with platform.records.transaction() as conn:
        for obj, rows in by_object.items():
            table = platform.schema[obj].table
            ids = table.c.id.in_([row["rid"] for row in rows])
            with platform.records.rollups.summaries.moving(conn, obj, ids, ("created_at",)):
                conn.execute(table.update().where(table.c.id == sa.bindparam("rid"))
                             .values(created_at=sa.bindparam("at")), rows)
            conn.execute(history.update().where(history.c.object == obj, history.c.record_id == sa.bindparam("rid"),
                                                history.c.change == "create").values(at=sa.bindparam("at")), rows)


def _saved_route(platform, company: _Company) -> None:
    """孙伟's route of 9 December (规划拜访路线), from his home point, saved as the visits' route service saves it."""
    planned = route.plan_day(platform, access_for(platform, company.ids["sunwei"]), ROUTED, {"date": ROUTE_DAY})
    company.counts["visit_route"] += 1
    company.counts["visit_route_stop"] += len(planned["stops"])


def demo_users(folder: Path | None = None) -> list[DemoUser]:
    """The users `folder`'s company.yaml (default: the CRM's) creates, with the passwords they are created with."""
    steps = _read_yaml((folder or DEMO) / DEMO_FILE)["steps"]
    return [_demo_user(raw) for step in steps if step.get("create") == "user" for raw in step["records"]]


def _read_yaml(path: Path) -> Any:
    """A demo file's data, a copy of its text's parse: a process loading the demo again (the tests) parses it once."""
    return copy.deepcopy(_parsed(path.read_text(encoding="utf-8")))


@functools.lru_cache(maxsize=8)
def _parsed(text: str) -> Any:
    """The data of a demo file's text, parsed once per process (`_read_yaml` hands out copies)."""
    return YAML(typ="safe").load(text)


def _demo_user(values: Mapping[str, Any]) -> DemoUser:
    return DemoUser(values["username"], values["password"], values["display_name"])


class _Company:
    """The records created so far in one transaction: ids and input values by key, counts, users."""

    def __init__(self, platform, conn, now: datetime):
        self.platform = platform
        self.records = platform.records
        self.metadata = platform.metadata
        self.conn = conn
        self.now = now
        self.stage_rng = random.Random(20261127)  # stage paths draw apart from generated.yaml's sequence
        self.processes: dict[str | None, Process | None] = {}  # owner id -> their department's process
        self.ids: dict[str, str] = {}
        self.values: dict[str, dict] = {}
        self.counts: Counter[str] = Counter()
        self.users: list[DemoUser] = []
        self.dated: list[tuple[str, str, str]] = []  # (object, id, created_at) of the records dated earlier
        self.later: list[tuple[str, str, str, dict]] = []  # (object, id, action, params) run once all is saved

    def run(self, step: Mapping, folder: Path) -> None:
        """One step of company.yaml."""
        if "action" in step:
            for raw in step["records"]:
                params = _resolve({k: v for k, v in raw.items() if k != "key"}, self.ids)
                self.later.append((step["on"], self.ids[raw["key"]], step["action"], params))
            return
        if "update" in step:
            for raw in step["records"]:
                record_id = self.ids[raw["key"]]
                values = _resolve({k: v for k, v in raw.items() if k != "key"}, self.ids)
                current = self.records.get(step["update"], record_id, conn=self.conn)
                self.records.update(
                    step["update"], record_id, values, version=current["version"], conn=self.conn, system=True
                )
            return
        if "submit" in step:
            for raw in step["records"]:
                record = self.records.get(step["submit"], self.ids[raw["key"]], conn=self.conn)
                self.submit(step["submit"], record, record["owner"], raw.get("comment"))
            return
        for raw in _step_records(step, folder):
            key = raw.pop("key", None)
            self.create(step["create"], _resolve(_uploads(raw, folder), self.ids), key)

    def create(self, obj: str, values: dict, key: str | None = None) -> str:
        """Create one record as the system, its owner as the creator; returns its id (the record is not read back:
        `get` it when more is needed)."""
        path = None
        created_at = values.pop("created_at", None)
        if obj == "opportunity":
            values, path = self._staged(values)
        lines = _child_lines(self.metadata, obj, values)
        line_keys = {child: [line.pop("key", None) for line in values[child]] for child in lines}
        record_id = self.records.create_id(obj, values, user=values.get("owner"), conn=self.conn, system=True)
        self.counts[obj] += 1
        if created_at:
            self.dated.append((obj, record_id, str(created_at)))
        if path is not None:
            self._stage_history(record_id, values, *path)
        self.counts.update(lines)
        if any(k for keys in line_keys.values() for k in keys):  # an inline line may have a key (a return names it)
            record = self.get(obj, record_id)
            for child, keys in line_keys.items():
                self.ids.update((k, line["id"]) for k, line in zip(keys, record[child], strict=True) if k)
        if key:
            self.ids[key] = record_id
            self.values[key] = values
        if obj == "user":
            self.users.append(_demo_user(values))
        return record_id

    def get(self, obj: str, record_id: str) -> dict:
        """A record created so far, as `get` gives it."""
        return self.records.get(obj, record_id, conn=self.conn)

    def run_later(self) -> None:
        """The actions (and edits, `update`) the demo runs once its records are saved, each as the record's owner
        runs it, in its own transaction (the lines it adds counted): a stage approval an `advance` starts waits in
        the approver's inbox."""
        accesses: dict[str, Any] = {}
        for obj, record_id, action, params in self.later:
            current = self.records.get(obj, record_id)
            owner = current["owner"]
            if action == "update":
                self.records.update(obj, record_id, params, version=current["version"], user=owner)
                continue
            if owner not in accesses:
                accesses[owner] = access_for(self.platform, owner)
            after = run_action(self.platform, accesses[owner], obj, action, record_id, params)["record"]
            before = _child_lines(self.metadata, obj, current)
            self.counts.update({child: n - before.get(child, 0)  # the lines it added (a completed task's)
                                for child, n in _child_lines(self.metadata, obj, after).items()})

    def submit(self, obj: str, record: Mapping[str, Any], user: str, comment: str | None = None) -> None:
        """Submit `record` for approval as `user` would (its object's submit flows; none applying: nothing)."""
        flows = approvals.flows_started_by(self.metadata, obj, "submit")
        approvals.approvals(self.platform).start(self.conn, obj, record, flows, user, self.now, comment,
                                                 required=False)

    # ------------------------------------------------------------------------ opportunity stages

    def process(self, owner: str | None) -> Process | None:
        """The process the sales_process behavior gives the owner's opportunities (their department's)."""
        if owner not in self.processes:
            department = self.records.get("user", owner, conn=self.conn)["department"] if owner else None
            path = department_path(self.conn, self.records.schema, department)
            self.processes[owner] = pick(processes(self.metadata), path)
        return self.processes[owner]

    def _staged(self, values: dict) -> tuple[dict, tuple | None]:
        """An opportunity's stage consistent with its status and probability: open ones sit in the last
        stage whose probability the given one reaches, won ones in the last stage, lost and invalid ones
        where they stopped; the probability is then the stage's (100 won, 0 lost or invalid)."""
        chosen = values.get("sales_process")
        found = process(self.metadata, chosen, "opportunity") if chosen else self.process(values.get("owner"))
        if found is None:
            return values, None
        status = values.get("status") or "open"
        stages = found.stages
        if status == "open":
            given = Decimal(str(values.get("probability") or 0))
            index = max([i for i, s in enumerate(stages) if s.probability <= given] or [0])
            probability = stages[index].probability
        elif status == "won":
            index, probability = len(stages) - 1, Decimal(100)
        else:
            index, probability = self.stage_rng.randrange(max(len(stages) - 1, 1)), Decimal(0)
        values = {**values, "sales_process": found.name, "stage": stages[index].key, "probability": str(probability)}
        if status != "open" and not values.get("closed_at"):
            closed = date.fromisoformat(str(values["expected_close_date"])) if values.get("expected_close_date") \
                else self.now.date()
            closing = datetime.combine(min(closed, self.now.date()), time(18, 0), self.now.tzinfo)
            values["closed_at"] = closing.isoformat()
        return values, (found, index)

    def _stage_history(self, record_id: str, values: Mapping[str, Any], found: Process, index: int) -> None:
        """The stages the opportunity created from `values` (as `_staged` left them) went through, dated backwards
        from its close (or from now), with the required tasks of every stage it left completed."""
        status, owner = values.get("status") or "open", values.get("owner")
        end = datetime.fromisoformat(values["closed_at"]) if status != "open" \
            else self.now - timedelta(days=self.stage_rng.randint(1, 20))
        rows, tasks = [], []
        left_at, left_to = (end, status) if status != "open" else (None, None)
        entered = end
        for stage in reversed(found.stages[:index + 1]):
            if left_at is not None:
                entered = left_at - timedelta(days=self.stage_rng.randint(3, 25), hours=self.stage_rng.randint(0, 8))
            rows.append({"stage": stage.key, "entered_at": entered, "left_at": left_at, "left_to": left_to,
                         "moved_by": owner})
            if left_at is not None and (left_to != "lost" and left_to != "invalid"):
                tasks += [{"opportunity": record_id, "sales_process": found.name, "stage": stage.key,
                           "task": t.key, "completed_at": entered + (left_at - entered) / 2,
                           "completed_by": owner, "owner": owner}
                          for t in stage.tasks if t.required]
            left_at, left_to = entered, stage.key
        rows.reverse()
        staged.replace_stage_history(self.records, self.conn, "opportunity", record_id, rows, owner, self.now)
        staged.complete_tasks(self.records, self.conn, "opportunity", tasks, owner, self.now)
        self.counts["stage_history"] += len(rows)
        self.counts["opportunity_task"] += len(tasks)


class _Generator:
    """Faker-made records on top of company.yaml's, as generated.yaml describes them."""

    def __init__(self, company: _Company, spec: Mapping, now: datetime):
        self.company = company
        self.spec = spec
        self.now = now
        self.rng = random.Random(spec["seed"])
        self.fake = Faker("zh_CN")
        self.fake.seed_instance(spec["seed"])
        self.reps = {region: self._reps(dept) for region, dept in spec["teams"].items()}
        self.all_reps = [rep for reps in self.reps.values() for rep in reps]
        self.finance = next(k for k, v in company.values.items() if v.get("username") == spec["finance_user"])
        self.shipper = next(k for k, v in company.values.items() if v.get("username") == spec["shipper_user"])
        # records without system-set fields, for create_many: (object, creating user) -> rows
        self.bulk: dict[tuple[str, str | None], list[dict]] = defaultdict(list)
        self.used_names: set[str] = set()
        self.completed_visits = 0
        self.recent_orders: Counter = Counter()  # per rep: how many of generated.yaml's recent_orders are made
        self.recent_rng = random.Random(spec["seed"])  # their dates draw apart from the sequence
        self.arrival_rng = random.Random(spec["seed"])  # so do the times the leads came in
        self.awaiting: Counter = Counter()  # per rep: how many opportunities wait for a stage approval
        self.rep_accounts: dict[str, list[tuple[dict, list]]] = defaultdict(list)  # per rep: (account, contacts)
        self.tolerance_m = CHECK_IN.config_of(company.platform.metadata.objects["visit"]).tolerance_m

    def _reps(self, department_key: str) -> list[str]:
        """The ids of the sales reps of a department, in company.yaml's order."""
        dept = self.company.ids[department_key]
        return [
            self.company.ids[key]
            for key, v in self.company.values.items()
            if v.get("department") == dept and "sales_rep" in v.get("roles", ())
        ]

    def generate(self) -> list[tuple[str, str | None, list[dict]]]:
        """Create the one-by-one records; return the bulk as (object, creating user, rows) for create_many."""
        for _ in range(self.spec["volume"]["accounts"]):
            region = self.rng.choice(list(self.reps))
            self._account(region, self.rng.choice(self.spec["cities"][region]), self._weighted("industry"),
                          self.rng.choice(self.reps[region]))
        for _ in range(self.spec["volume"]["leads_total"] - self.company.counts["lead"]):
            self._lead()
        self._targets()
        for rep in self.all_reps:
            self._todays_visits(rep)
        self._partner_orders()
        return [(obj, user, rows) for (obj, user), rows in self.bulk.items()]

    def _targets(self) -> None:
        """This month's targets of every rep and every team's department (each owned, as the CRM does, by the rep
        or the department's manager)."""
        period = self.now.strftime("%Y-%m")
        rep_orders, rep_payments = self.spec["targets"]["rep"]
        dept_orders, dept_payments = self.spec["targets"]["department"]
        for rep in self.all_reps:
            self.company.create("sales_target", {"user": rep, "period": period, "order_amount": rep_orders,
                                                 "payment_amount": rep_payments})
        for department in self.spec["teams"].values():
            self.company.create("sales_target", {"department": self.company.ids[department], "period": period,
                                                 "order_amount": dept_orders, "payment_amount": dept_payments})

    # ------------------------------------------------------------------------------------ leads

    def _lead(self) -> None:
        spec = self.spec
        region = self._weighted("lead_region")
        city = self.rng.choice(spec["cities"][region])
        industry = self._weighted("industry")
        source = self._weighted("lead_source")
        arrived = self._arrived()
        recent = (self.now.date() - arrived.date()).days < spec["recent_lead_days"]  # by day: the same at any hour
        status = self._weighted("lead_status", "recent" if recent else "older")
        campaigns = spec["campaigns_by_source"].get(source)
        values = {
            "name": self.fake.name(),
            "company": self._company_name(city, industry),
            "title": self.rng.choice(spec["job_titles"]),
            "mobile": self.fake.phone_number(),
            "source": source,
            "campaign": self.company.ids[self.rng.choice(campaigns)] if campaigns else None,
            "industry": industry,
            "region": region,
            "intention": self.rng.choice(["high", "medium", "medium", "low", None]),
            "company_size": self.rng.choice(["s1_20", "s21_100", "s101_500", "s501_1000", "s1000_plus"]),
            "address": self._address(city),
            "status": status,
            "created_at": arrived,
        }
        if self.rng.random() < 0.5:
            values["email"] = self._email()
        if self.rng.random() < 0.25:
            values["phone"] = self._landline(city)
        if self.rng.random() < 0.4:
            values["description"] = self.rng.choice(spec["lead_notes"])
        pool = self._pool(industry, region)
        if status == "unassigned":
            self.bulk[("lead", None)].append(_iso({k: v for k, v in values.items() if v is not None} | {"pool": pool}))
            return
        owner = self._rep(region)
        values |= {"owner": owner, "pool": pool if self.rng.random() * 100 < spec["claimed_from_pool"] else None}
        if status in ("pending", "invalid", "voided"):  # imported with their owner: no assignment, no follow-up
            if status != "pending":
                reasons = spec["invalid_reasons" if status == "invalid" else "void_reasons"]
                values["invalid_reason"] = self.rng.choice(reasons)
            self.bulk[("lead", None)].append(_iso({k: v for k, v in values.items() if v is not None}))
            return
        values["assigned_at"] = self._past(15, 180)
        values["created_at"] = values["assigned_at"] - timedelta(hours=self.arrival_rng.randint(1, 96))
        low, high = spec["volume"]["follow_ups_per_lead"]
        follow_ups = self._follow_ups(self.rng.randint(low, high), values["assigned_at"])
        if status == "following" and self.rng.random() * 100 >= spec["stale_following"]:  # followed up this week
            follow_ups[-1]["followed_at"] = max(follow_ups[-1]["followed_at"], self._past(0, 5))
        values["last_followed_at"] = follow_ups[-1]["followed_at"]
        if status == "following" and self.rng.random() < 0.6:
            follow_ups[-1]["next_follow_up_at"] = self._future(1, 14)
        if status == "converted":
            converted_at = values["last_followed_at"] + timedelta(hours=self.rng.randint(2, 72))
            converted_at = min(converted_at, self.now - timedelta(minutes=30))
            values |= {"converted_at": converted_at, **self._conversion(values, city)}
        lead = self.company.create("lead", _iso({k: v for k, v in values.items() if v is not None}))
        self._add_follow_ups(follow_ups, "lead", lead, owner)

    def _arrived(self) -> datetime:
        """When a lead came in: a time of day within generated.yaml's `lead_days` before now, from draws of its own
        (the rest of the company stays as it was), so every month of them, this one too, has its new leads."""
        rng = self.arrival_rng
        day = self.now.date() - timedelta(days=rng.randint(0, self.spec["volume"]["lead_days"]))
        at = datetime.combine(day, time(rng.randint(8, 20), rng.randrange(60)), self.now.tzinfo)
        return at if at < self.now else at - timedelta(days=1)

    def _conversion(self, lead: Mapping[str, Any], city: Mapping) -> dict[str, str]:
        """The account, contact and opportunity a converted lead became (as its convert action makes them)."""
        account, contacts, opportunities = self._account(
            lead["region"], city, lead["industry"], lead["owner"],
            {"name": lead["company"], "source": lead["source"], "size": lead["company_size"],
             "address": lead["address"], "phone": lead.get("phone")},
            contact={k: lead.get(k) for k in ("name", "title", "mobile", "email")},
            opportunity={"source": lead["source"], "campaign": lead["campaign"]},
        )
        return {"converted_account": account, "converted_contact": contacts[0],
                "converted_opportunity": opportunities[0]}

    def _pool(self, industry: str, region: str) -> str:
        pools = self.spec["pools"]
        key = pools["industry"].get(industry) or pools["region"].get(region) or pools["other"]
        return self.company.ids[key]

    def _rep(self, region: str) -> str:
        return self.rng.choice(self.reps.get(region) or self.all_reps)

    # --------------------------------------------------------------------------------- accounts

    def _account(self, region: str, city: Mapping, industry: str, owner: str, given: Mapping | None = None,
                 contact: Mapping | None = None, opportunity: Mapping | None = None) -> tuple[str, list, list]:
        """An account with contacts, opportunities (won ones with an order), visits and follow-ups.

        `given` fixes account fields, `contact` the first contact and `opportunity` fields of one
        opportunity (a converted lead's); returns the ids of the account, its contacts and opportunities.
        """
        spec, volume = self.spec, self.spec["volume"]
        given = dict(given or {})
        name = given.pop("name", None) or self._company_name(city, industry)
        lat = round(city["lat"] + self.rng.uniform(-0.06, 0.06), 6)
        lng = round(city["lng"] + self.rng.uniform(-0.06, 0.06), 6)
        values = {
            "name": name,
            "short_name": self._short_name(name, city),
            "phone": self._landline(city),
            "industry": industry,
            "region": region,
            "grade": self.rng.choice(["a", "b", "b", "c", "c", "c", "d"]),
            "size": self.rng.choice(["s21_100", "s101_500", "s501_1000", "s1000_plus"]),
            "source": self._weighted("lead_source"),
            "annual_revenue": str(self.rng.randrange(5, 5000) * 1_000_000),
            "employees": self.rng.randrange(30, 8000),
            "address": self._address(city),
            "location": {"lat": lat, "lng": lng},
            "owner": owner,
        }
        if self.rng.random() < 0.4:
            values["website"] = f"https://www.{self.fake.domain_word()}-demo.cn"
        values |= {k: v for k, v in given.items() if v is not None}
        low, high = volume["follow_ups_per_account"]
        since = self._past(60, 365)
        follow_ups = self._follow_ups(self.rng.randint(low, high), since)
        if follow_ups:
            values["last_followed_at"] = follow_ups[-1]["followed_at"]
        account = {**values, "id": self.company.create("account", _iso(values))}  # as created: no need to read it
        self._add_follow_ups(follow_ups, "account", account["id"], owner)

        contacts = []
        low, high = volume["contacts_per_account"]
        for i in range(self.rng.randint(low, high)):
            person = {"name": self.fake.name(), "title": self.rng.choice(spec["job_titles"]),
                      "mobile": self.fake.phone_number(), "email": self._email()}
            if i == 0 and contact:
                person |= {k: v for k, v in contact.items() if v is not None}
            person |= {"account": account["id"], "is_primary": i == 0,
                       "is_decision_maker": i == 0 or self.rng.random() < 0.2, "owner": owner}
            contacts.append({**person, "id": self.company.create("contact", person)})
        self.rep_accounts[owner].append((account, contacts))

        opportunities = []
        low, high = volume["opportunities_per_account"]
        count = max(self.rng.randint(low, high), 1 if opportunity else 0)
        for i in range(count):
            opportunities.append(self._opportunity(account, contacts, opportunity if i == 0 else None, owner))
        self._visits(account, contacts, opportunities, values, owner)
        return account["id"], [c["id"] for c in contacts], opportunities

    def _opportunity(self, account: Mapping, contacts: Sequence[Mapping], given: Mapping | None,
                     owner: str) -> str:
        """A new opportunity of `account` (its id), with its follow-ups and, when won, mostly an order."""
        spec = self.spec
        status = self._weighted("opportunity_status")
        values = {
            "name": f"{account['short_name']}{self.rng.choice(spec['opportunity_names'])}",
            "account": account["id"],
            "contact": self.rng.choice(contacts)["id"],
            "amount": str(self.rng.randrange(30, 2000) * 1000),
            "status": status,
            "source": account["source"],
            "owner": owner,
        }
        values |= {k: v for k, v in (given or {}).items() if v is not None}
        if status == "open":
            values |= {"probability": self.rng.choice([10, 20, 30, 50, 60, 75, 90]),
                       "expected_close_date": self._future(10, 150).date(),
                       "next_step": self.rng.choice(spec["next_steps"])}
        else:
            closed = self._past(5, 200)
            values |= {"probability": 100 if status == "won" else 0, "expected_close_date": closed.date(),
                       "closed_at": closed}
        if status == "lost":
            values["lost_reason"] = self.rng.choice(["price", "competitor", "requirement_change", "no_budget",
                                                     "lost_contact"])
        low, high = spec["volume"]["follow_ups_per_opportunity"]
        follow_ups = self._follow_ups(self.rng.randint(low, high), self._past(30, 240))
        if follow_ups:
            values["last_followed_at"] = follow_ups[-1]["followed_at"]
        record_id = self.company.create("opportunity", _iso(values))
        self._add_follow_ups(follow_ups, "opportunity", record_id, owner)
        if status == "open" and self.awaiting[owner] < spec["awaiting_approval"]:
            self._ask_approval(record_id, account, owner)
        if status == "won" and self.rng.random() < 0.8:
            self._order(account, record_id, contacts, values["closed_at"], owner)
        return record_id

    def _ask_approval(self, record_id: str, account: Mapping, owner: str) -> None:
        """When the open opportunity's next stage needs an approval: once the demo is saved, its rep fills the
        stage's required fields, completes its required tasks and advances it, as they would on its page, so it
        waits for the approver (their manager) in their inbox."""
        found = self.company.process(owner)
        if found is None or not any(stage.approval for stage in found.stages):
            return
        record = self.company.get("opportunity", record_id)
        stage = found.stage(record["stage"])
        following = found.after(stage.key)
        if following is None or not following.approval:
            return
        self.awaiting[owner] += 1
        known = {"customer_address": account["address"], "budget": str(record["amount"]),
                 "expected_close_date": str(record["expected_close_date"])}
        fields = {name: known[name] for name in stage.required_fields if record.get(name) in (None, "")}
        later = self.company.later
        if fields:
            later.append(("opportunity", record_id, "update", fields))
        later += [("opportunity", record_id, "complete_task", {"task": task.key}) for task in stage.tasks
                  if task.required]
        later.append(("opportunity", record_id, "advance", {}))

    # ----------------------------------------------------------------------------------- orders

    def _order(self, account: Mapping, opportunity: str, contacts: Sequence[Mapping], won_at: datetime,
               owner: str) -> None:
        """A won opportunity's order; its lines, then payments and invoices as far as its status got."""
        spec = self.spec
        products = self.rng.sample(sorted(spec["products"]), self.rng.randint(1, 4))
        lines = []
        for key in products:
            low, high = spec["products"][key]
            lines.append({"product": self.company.ids[key], "quantity": self.rng.randint(low, high),
                          "unit_price": self.company.values[key]["price"],
                          "discount": self.rng.choice(spec["line_discounts"])})
        ordered = min(won_at.date() + timedelta(days=self.rng.randint(0, 5)), self.now.date())
        age = (self.now.date() - ordered).days
        if age > 60:
            status = self.rng.choice(["completed", "completed", "completed", "shipped"])
        elif age > 20:
            status = self.rng.choice(["shipped", "approved", "completed"])
        else:
            status = self.rng.choice(["draft", "submitted", "approved"])
        ordered = self._recent(owner, ordered, status)
        contact = self.rng.choice(contacts)
        values = {
            "account": account["id"], "opportunity": opportunity, "contact": contact["id"],
            "order_date": ordered, "delivery_date": ordered + timedelta(days=self.rng.randint(7, 30)),
            "status": "draft" if status == "submitted" else status,
            "order_discount": self.rng.choice(spec["order_discounts"]),
            "receiver": contact["name"], "receiver_phone": contact["mobile"],
            "shipping_address": account["address"], "owner": owner, "order_line": lines,
        }
        shipped = None
        if status in ("shipped", "completed"):
            shipped = self._office_hours(ordered + timedelta(days=self.rng.randint(2, 10)))
            shipped = min(shipped, self.now - timedelta(minutes=30))
            carrier = self.rng.choice(spec["delivery_carriers"])
            values |= {"shipped_at": shipped, "shipped_by": self.company.ids[self.shipper],
                       "delivery_note": f"{carrier}{self.rng.randrange(10**11, 10**12)}"}
        if status == "completed":  # received three days after shipping (no draw: the sequence stays as it was)
            received = min(shipped + timedelta(days=3), self.now - timedelta(minutes=20))
            values |= {"received_on": received.date(), "received_at": received, "received_by": owner}
        order = self.company.get("sales_order", self.company.create("sales_order", _iso(values)))  # its totals
        if status == "submitted":  # waiting in the manager's inbox: the flow starts as the rep's submit starts it
            self.company.submit("sales_order", order, owner)
        total = Decimal(str(order["total_amount"]))
        if status == "completed":
            first = (total * Decimal(self.rng.choice([30, 50, 100])) / 100).quantize(CENT)
            self._payment(order, first, shipped, True, owner)
            if first < total:
                self._payment(order, total - first, shipped + timedelta(days=self.rng.randint(10, 40)), True, owner)
            self._invoice(order, account, total, "issued", shipped, owner)
        elif status == "shipped":
            first = (total * Decimal(self.rng.choice([30, 50])) / 100).quantize(CENT)
            self._payment(order, first, shipped, True, owner)
            self._payment(order, total - first, None, False, owner)
            self._invoice(order, account, total, "submitted", None, owner)
        elif status == "approved" and self.rng.random() < 0.5:
            self._payment(order, (total * Decimal(30) / 100).quantize(CENT), None, False, owner)

    def _recent(self, owner: str, ordered: date, status: str) -> date:
        """The order date of the rep's order: while generated.yaml's `recent_orders` lists a month for it, a
        counted order (approved or later) of the rep falls in that month (this month: by today; the drawn date
        if it is already in it), so the homes' this-month figures and their comparison with last month show real
        amounts whatever day the demo is loaded. Its own draws: the rest of the company stays as it was."""
        wanted = self.spec.get("recent_orders", ())
        done = self.recent_orders[owner]
        if done >= len(wanted) or status not in ("approved", "shipped", "completed"):
            return ordered
        self.recent_orders[owner] += 1
        month, last_day = self._month(wanted[done])
        if ordered.replace(day=1) == month:
            return ordered
        return month.replace(day=self.recent_rng.randint(1, last_day))

    def _month(self, months_ago: int) -> tuple[date, int]:
        """The first day of the month `months_ago` months before this one, and the last of its days that has begun
        (this month: today)."""
        today = self.now.date()
        month = today.replace(day=1)
        for _ in range(months_ago):
            month = (month - timedelta(days=1)).replace(day=1)
        return month, today.day if months_ago == 0 else ((month + timedelta(days=31)).replace(day=1) - month).days

    def _partner_orders(self) -> None:
        """The orders of generated.yaml's `partner_orders`, a customer ordering through the partner portal (订货通):
        one in each month it lists, by this day of its month (this month's by today), the older ones shipped and half
        paid, this month's approved, so the partner's home compares this month's orders with the same days of last
        month's and shows what is still to pay."""
        spec = self.spec["partner_orders"]
        ids, values = self.company.ids, self.company.values
        account, contact, owner = values[spec["account"]], values[spec["contact"]], ids[spec["owner"]]
        account = {**account, "id": ids[spec["account"]]}
        product, discount = spec["product"], spec["discount"]
        for months_ago, quantity in spec["months"].items():
            month, last_day = self._month(months_ago)
            ordered = month.replace(day=min(self.rng.randint(1, last_day), self.now.day))
            order = {
                "account": account["id"], "contact": ids[spec["contact"]], "order_date": ordered,
                "delivery_date": ordered + timedelta(days=7), "status": "approved" if months_ago == 0 else "shipped",
                "receiver": contact["name"], "receiver_phone": contact["mobile"],
                "shipping_address": account["address"], "owner": owner,
                "order_line": [{"product": ids[product], "quantity": quantity, "discount": discount,
                                "unit_price": values[product]["price"]}],
            }
            shipped = None
            if months_ago:
                shipped = min(self._office_hours(ordered + timedelta(days=3)), self.now - timedelta(minutes=30))
                carrier = self.rng.choice(self.spec["delivery_carriers"])
                order |= {"shipped_at": shipped, "shipped_by": self.company.ids[self.shipper],
                          "delivery_note": f"{carrier}{self.rng.randrange(10**11, 10**12)}"}
            created = self.company.get("sales_order", self.company.create("sales_order", _iso(order)))
            if shipped is not None:
                total = Decimal(str(created["total_amount"]))
                self._payment(created, (total / 2).quantize(CENT), shipped, True, owner)
                self._invoice(created, account, total, "submitted", None, owner)

    def _payment(self, order: Mapping, amount: Decimal, after: datetime | None, confirmed: bool,
                 owner: str) -> None:
        values: dict[str, Any] = {"sales_order": order["id"], "amount": str(amount), "owner": owner,
                                  "method": self.rng.choice(["bank_transfer"] * 4 + ["cheque", "alipay"])}
        if confirmed:
            paid = min(after + timedelta(days=self.rng.randint(1, 20)), self.now - timedelta(hours=2))
            values |= {"status": "confirmed", "paid_on": paid.date(), "confirmed_by": self.company.ids[self.finance],
                       "confirmed_at": paid + timedelta(hours=1)}
        else:
            values |= {"status": "pending", "paid_on": self._past(0, 5).date(), "remark": "待财务确认到账"}
        self.company.create("payment", _iso(values))

    def _invoice(self, order: Mapping, account: Mapping, amount: Decimal, status: str, after: datetime | None,
                 owner: str) -> None:
        values: dict[str, Any] = {
            "sales_order": order["id"], "amount": str(amount), "title": account["name"],
            "invoice_type": self.rng.choice(["vat_special", "vat_special", "vat_normal"]),
            "tax_no": "91" + "".join(self.rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(16)),
            "company_address": account["address"], "company_phone": account["phone"], "status": status,
            "owner": owner,
        }
        if status == "issued":
            values["issued_at"] = min(after + timedelta(days=self.rng.randint(3, 30)), self.now - timedelta(hours=1))
        self.company.create("invoice", _iso(values))

    # ------------------------------------------------------------------------ visits, follow-ups

    def _visits(self, account: Mapping, contacts: Sequence[Mapping], opportunities: Sequence[str],
                values: Mapping, owner: str) -> None:
        low, high = self.spec["volume"]["visits_per_account"]
        location = values["location"]
        for _ in range(self.rng.randint(low, high)):
            status = self.rng.choice(["completed", "completed", "completed", "planned", "planned", "cancelled"])
            visit: dict[str, Any] = {
                "subject": f"{account['short_name']}{self.rng.choice(self.spec['visit_subjects'])}",
                "account": account["id"], "contact": self.rng.choice(contacts)["id"], "status": status,
                "owner": owner,
            }
            if opportunities:
                visit["opportunity"] = self.rng.choice(opportunities)
            if status == "planned":
                visit["planned_at"] = self._future(1, 21)
            else:
                visit["planned_at"] = self._past(1, 120)
            if status == "completed":
                check_in = visit["planned_at"] - timedelta(minutes=self.rng.randint(0, 15))
                here = self._near(location)
                minutes = self.rng.randint(40, 150)
                self.completed_visits += 1
                # 异常拜访 to look at, drawn by count (no extra random draw: the rest of the demo stays the same):
                # every 17th completed visit checked in some 445 m north, every 23rd checked out after 9 minutes
                if self.completed_visits % 17 == 0:
                    here = {"lat": round(here["lat"] + 0.004, 6), "lng": here["lng"]}
                if self.completed_visits % 23 == 0:
                    minutes = 9
                distance = round(geo.distance_m(location, here), 1)
                visit |= {
                    "check_in_at": check_in,
                    "check_in_location": here,
                    "check_in_address": values["address"],
                    "check_in_distance": distance,
                    "check_in_valid": distance <= self.tolerance_m,
                    "check_out_at": check_in + timedelta(minutes=minutes),
                    "check_out_location": self._near(location),
                    "duration_minutes": minutes,
                    "summary": self.rng.choice(self.spec["visit_summaries"]),
                }
                created = self.company.create("visit", _iso(visit))
                # its required 拜访动作 (客户反馈), from its summary; every 29th left without one (异常拜访 too)
                if self.completed_visits % 29:
                    n = self.completed_visits
                    self.company.create("customer_feedback", {
                        "visit": created, "category": FEEDBACK_CATEGORIES[n % len(FEEDBACK_CATEGORIES)],
                        "satisfaction": SATISFACTION[n % len(SATISFACTION)], "content": visit["summary"],
                        "owner": owner})
            else:
                self.bulk[("visit", owner)].append(_iso(visit))

    def _todays_visits(self, owner: str) -> None:
        """The rep's visits of today at generated.yaml's `todays_visits` (hours before or after now, rounded to the
        quarter hour), to their first accounts: those begun an hour or more before now done (checked in, out and
        their 客户反馈 filled), the one begun since checked in, the later ones planned."""
        start = self.now.replace(minute=self.now.minute // 15 * 15)
        for hours, (account, contacts) in zip(self.spec["todays_visits"], self.rep_accounts[owner], strict=False):
            planned = start + timedelta(hours=hours)
            visit: dict[str, Any] = {
                "subject": f"{account['short_name']}{self.rng.choice(self.spec['visit_subjects'])}",
                "account": account["id"], "contact": contacts[0]["id"], "planned_at": planned, "owner": owner,
                "status": "planned",
            }
            if hours > 0:
                self.bulk[("visit", owner)].append(_iso(visit))
                continue
            location = account["location"]
            here = self._near(location)
            distance = round(geo.distance_m(location, here), 1)
            visit |= {"status": "checked_in", "check_in_at": planned - timedelta(minutes=5), "check_in_location": here,
                      "check_in_address": account["address"], "check_in_distance": distance,
                      "check_in_valid": distance <= self.tolerance_m}
            if hours <= -1:
                minutes = 50
                visit |= {"status": "completed", "check_out_at": visit["check_in_at"] + timedelta(minutes=minutes),
                          "check_out_location": self._near(location), "duration_minutes": minutes,
                          "summary": self.rng.choice(self.spec["visit_summaries"])}
            created = self.company.create("visit", _iso(visit))
            if visit["status"] == "completed":
                self.company.create("customer_feedback", {
                    "visit": created, "category": "product", "satisfaction": "satisfied", "content": visit["summary"],
                    "owner": owner})

    def _follow_ups(self, count: int, since: datetime) -> list[dict]:
        """`count` follow-ups between `since` and now, oldest first, not yet tied to a record.

        Every random draw here (as everywhere in the generator) is the same whatever the time: the
        same seed gives the same records, whenever the demo is loaded.
        """
        span = self.now - since
        rows = []
        for share in sorted(self.rng.random() for _ in range(count)):
            kind = self.rng.choice(["call", "call", "wechat", "email", "visit"])
            text = self.rng.choice(self.spec["follow_ups"][kind]).format(
                topic=self.rng.choice(self.spec["topics"]), feedback=self.rng.choice(self.spec["feedback"]),
                when=self.rng.choice(self.spec["when"]))
            at = since + span * (0.02 + 0.96 * share)
            rows.append({"kind": kind, "content": text, "followed_at": at.replace(second=0, microsecond=0)})
        return rows

    def _add_follow_ups(self, rows: list[dict], obj: str, record_id: str, owner: str) -> None:
        for row in rows:
            self.bulk[("follow_up", owner)].append(_iso(row | {"related_object": obj, "related_id": record_id,
                                                      "owner": owner, "created_at": row["followed_at"]}))

    # ----------------------------------------------------------------------------------- values

    def _weighted(self, name: str, part: str | None = None) -> str:
        weights = self.spec[name] if part is None else self.spec[name][part]
        return self.rng.choices(list(weights), weights=list(weights.values()))[0]

    def _company_name(self, city: Mapping, industry: str) -> str:
        """City + brand + ending, e.g. 杭州恒信网络科技有限公司; never the same name twice.

        Only Faker is asked again for another brand, so the other random draws do not depend on Faker's
        word lists (another Faker version changes names, not how many records of each kind there are).
        """
        ending = self.rng.choice(self.spec["company_endings"][industry])
        while True:
            brand = self.fake.company_prefix()
            name = f"{city['name']}{brand}{ending}"
            if "公司" not in brand and 2 <= len(brand) <= 4 and name not in self.used_names:
                self.used_names.add(name)
                return name

    @staticmethod
    def _short_name(name: str, city: Mapping) -> str:
        core = name.removeprefix(city["name"])
        for tail in ("股份有限公司", "有限公司", "学校", "中心"):
            core = core.removesuffix(tail)
        return core[:8]

    def _address(self, city: Mapping) -> str:
        district = self.rng.choice(city["districts"])
        return f"{city['name']}市{district}{self.fake.street_name()}{self.rng.randint(1, 999)}号"

    def _landline(self, city: Mapping) -> str:
        digits = 7 if len(city["area"]) == 4 else 8
        return f"{city['area']}-{self.rng.randrange(2 * 10 ** (digits - 1), 10 ** digits)}"

    def _email(self) -> str:
        return f"{self.fake.user_name()}{self.rng.randint(1, 99)}@{self.rng.choice(self.spec['email_domains'])}"

    def _near(self, location: Mapping) -> dict:
        """A check-in point within some fifty metres of `location`."""
        return {"lat": round(location["lat"] + self.rng.uniform(-0.0005, 0.0005), 6),
                "lng": round(location["lng"] + self.rng.uniform(-0.0005, 0.0005), 6)}

    def _past(self, least_days: int, most_days: int) -> datetime:
        """A time in office hours between `least_days` and `most_days` days ago, always before now."""
        at = self._office_hours(self.now.date() - timedelta(days=self.rng.randint(least_days, most_days)))
        return at if at < self.now else at - timedelta(days=1)

    def _future(self, least_days: int, most_days: int) -> datetime:
        return self._office_hours(self.now.date() + timedelta(days=self.rng.randint(least_days, most_days)))

    def _office_hours(self, day: date) -> datetime:
        return datetime.combine(day, time(self.rng.randint(9, 17), self.rng.choice([0, 10, 15, 20, 30, 40, 45])),
                                self.now.tzinfo)


def _iso(values: Mapping[str, Any]) -> dict:
    """The values with dates and times written as ISO 8601 text, as an API client sends them."""
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in values.items()}


def _child_lines(metadata, name: str, values: Mapping[str, Any]) -> dict[str, int]:
    """How many inline child lines a record carried, by child object (e.g. {"order_line": 3})."""
    fields = metadata.objects[name].fields
    return {key: len(v) for key, v in values.items() if key not in fields and key in metadata.objects}


def _step_records(step: Mapping, folder: Path) -> Iterator[dict]:
    """A create step's records: inline ones, or the CSV file's rows without their empty cells."""
    if "csv" not in step:
        yield from (dict(r) for r in step["records"])
        return
    with (folder / step["csv"]).open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            yield {k: v for k, v in row.items() if v != ""}


def _uploads(value: Any, folder: Path) -> Any:
    """The value with every `{file: PATH}` (a file beside company.yaml, e.g. a shelf photo) replaced by an
    attachment upload of that file, as the API takes one."""
    if isinstance(value, Mapping) and set(value) == {"file"}:
        path = folder / value["file"]
        return {"filename": path.name, "content_base64": base64.b64encode(path.read_bytes()).decode("ascii"),
                "content_type": mimetypes.guess_type(path.name)[0] or "application/octet-stream"}
    if isinstance(value, Mapping):
        return {k: _uploads(v, folder) for k, v in value.items()}
    if isinstance(value, list):
        return [_uploads(v, folder) for v in value]
    return value


def _resolve(value: Any, ids: Mapping[str, str]) -> Any:
    """The value with every "@key" replaced by that record's id and dates written as ISO 8601 text."""
    if isinstance(value, str) and value.startswith("@"):
        if value[1:] not in ids:
            raise KeyError(f"demo data names {value}, which no earlier record has as its key")
        return ids[value[1:]]
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, ids) for v in value]
    return value
