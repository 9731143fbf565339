"""Geometry over geolocation fields: great-circle distances, bounding boxes and the nearby search that any object
with a geolocation field offers.

(How it works: docs/engine.md, "objectplatform/runtime/geo.py".)"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import FieldDef, ObjectDef

from .errors import BadRequest, Message, NotFound, said_object
from .validation import REQUIRED


class LocatedThroughLookup:
    """A behavior's settings whose `location_of` ("account.location") is the geolocation field of the record a
    lookup names: the lookup and that field."""

    location_of: str

    @property
    def lookup(self) -> str:
        return self.location_of.split(".")[0]

    @property
    def target_field(self) -> str:
        return self.location_of.split(".")[1]


EARTH_RADIUS_M = 6_371_000.0  # the mean radius, as haversine formulas usually take it
DEFAULT_RADIUS_M = 5_000
MAX_RADIUS_M = 200_000
DEFAULT_LIMIT = 20
MAX_LIMIT = 200


def distance_m(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """The great-circle (haversine) distance in metres between two {"lat", "lng"} points."""
    lat1, lat2 = math.radians(a["lat"]), math.radians(b["lat"])
    dlat, dlng = lat2 - lat1, math.radians(b["lng"] - a["lng"])
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlng / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def bounding_box(lat: float, lng: float, radius_m: float) -> tuple[tuple[float, float], list[tuple[float, float]]]:
    """The latitude range and the longitude ranges (two across the antimeridian) holding every point within
    `radius_m` of (lat, lng)."""
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    low, high = lat - dlat, lat + dlat
    if low <= -90 or high >= 90:
        return (max(low, -90.0), min(high, 90.0)), [(-180.0, 180.0)]
    dlng = math.degrees(math.asin(min(1.0, math.sin(radius_m / EARTH_RADIUS_M) / math.cos(math.radians(lat)))))
    west, east = lng - dlng, lng + dlng
    if west < -180:
        return (low, high), [(west + 360, 180.0), (-180.0, east)]
    if east > 180:
        return (low, high), [(west, 180.0), (-180.0, east - 360)]
    return (low, high), [(west, east)]


def location_field(obj: ObjectDef) -> FieldDef | None:
    """The geolocation field a nearby search of `obj` measures from: the first one marked `index`, else the first."""
    found = [f for f in obj.fields.values() if f.type == "geolocation"]
    return next((f for f in found if f.index), found[0] if found else None)


def searched_field(obj: ObjectDef) -> FieldDef:
    """The field a nearby search of `obj` measures from; 404 when it has no geolocation field."""
    field = location_field(obj)
    if field is None:
        raise NotFound(Message("geo.no_location", "{object} has no geolocation field to search near",
                               object=said_object(obj)))
    return field


def _number(args: Mapping[str, str], name: str, default: float | None, low: float, high: float,
            errors: dict[str, list[str]]) -> float | None:
    raw = args.get(name)
    if raw is None or raw.strip() == "":
        if default is None:
            errors[name] = [REQUIRED]
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        errors[name] = [Message("geo.out_of_range", "must be a number from {low} to {high}", low=low, high=high)]
        return None
    return value


def nearby_query(args: Mapping[str, str]) -> tuple[float, float, float, int]:
    """(lat, lng, radius_m, limit) from a nearby search's query parameters; 400 naming every bad one."""
    errors: dict[str, list[str]] = {}
    lat = _number(args, "lat", None, -90, 90, errors)
    lng = _number(args, "lng", None, -180, 180, errors)
    radius = _number(args, "radius_m", DEFAULT_RADIUS_M, 1, MAX_RADIUS_M, errors)
    limit = _number(args, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT, errors)
    if limit is not None and limit != int(limit):
        errors["limit"] = [Message("geo.out_of_range", "must be a number from {low} to {high}", low=1, high=MAX_LIMIT)]
    if errors:
        raise BadRequest(Message("geo.bad_query", "bad nearby search: {fields}", fields=", ".join(sorted(errors))),
                         errors)
    return lat, lng, radius, int(limit)


def nearby(platform, obj: str, lat: float, lng: float, radius_m: float, limit: int, where=None) -> list[dict]:
    """The records of `obj` within `radius_m` of (lat, lng) that `where` (the caller's scope) admits, nearest
    first (then by id), each with its `distance_m`: a bounding box on the indexed coordinate columns, then the
    exact distance of each candidate."""
    field = searched_field(platform.metadata.objects[obj])
    ot = platform.schema[obj]
    table = ot.table
    lat_col, lng_col = (table.c[name] for name in ot.columns[field.name])
    (low, high), ranges = bounding_box(lat, lng, radius_m)
    stmt = sa.select(table.c.id, lat_col, lng_col).where(
        lat_col.between(low, high), sa.or_(*(lng_col.between(west, east) for west, east in ranges)),
        *([where] if where is not None else []))
    centre = {"lat": lat, "lng": lng}
    with platform.engine.connect() as conn:
        found = sorted((d, record_id) for record_id, plat, plng in conn.execute(stmt)
                       if (d := distance_m(centre, {"lat": plat, "lng": plng})) <= radius_m)[:limit]
        if not found:
            return []
        page = platform.records.list(obj, where=table.c.id.in_([record_id for _, record_id in found]),
                                     limit=len(found), count=False, conn=conn)
    by_id = {record["id"]: record for record in page.items}
    return [{**by_id[str(record_id)], "distance_m": round(d, 1)} for d, record_id in found]


def point(lat: Any, lng: Any) -> dict[str, float]:
    """A {"lat", "lng"} point from two numbers."""
    return {"lat": float(lat), "lng": float(lng)}


M_PER_DEGREE = math.pi * EARTH_RADIUS_M / 180


class Plane:
    """A map drawn offline: points projected on a plane tangent at their centre (x east, y south, metres scaled
    by the cosine of the centre's latitude), fitted into a `width` x `height` box with `margin` pixels around;
    at least `min_span_m` across, so one point and its tolerance circle still fill a sensible frame."""

    def __init__(self, points: list[Mapping[str, float]], width: int, height: int, margin: int = 24,
                 min_span_m: float = 1_000):
        lats, lngs = [p["lat"] for p in points] or [0.0], [p["lng"] for p in points] or [0.0]
        self.lat0, self.lng0 = (min(lats) + max(lats)) / 2, (min(lngs) + max(lngs)) / 2
        self.cos0 = math.cos(math.radians(self.lat0))
        span_x = max((max(lngs) - min(lngs)) * self.cos0 * M_PER_DEGREE, min_span_m)
        span_y = max((max(lats) - min(lats)) * M_PER_DEGREE, min_span_m)
        self.width, self.height = width, height
        self.px_per_m = min((width - 2 * margin) / span_x, (height - 2 * margin) / span_y)

    def xy(self, p: Mapping[str, float]) -> tuple[float, float]:
        """The pixel position of a {"lat", "lng"} point, to one decimal."""
        x = (p["lng"] - self.lng0) * self.cos0 * M_PER_DEGREE * self.px_per_m + self.width / 2
        y = (self.lat0 - p["lat"]) * M_PER_DEGREE * self.px_per_m + self.height / 2
        return round(x, 1), round(y, 1)

    def length(self, metres: float) -> float:
        """`metres` in pixels, to one decimal."""
        return round(metres * self.px_per_m, 1)

    def scale_bar(self, max_px: float) -> tuple[float, float]:
        """A round length (1, 2 or 5 × a power of ten metres) whose bar is at most `max_px` long: (metres, px)."""
        metres = max_px / self.px_per_m
        power = 10 ** math.floor(math.log10(metres))
        best = max(step * power for step in (1, 2, 5) if step * power <= metres)
        return best, self.length(best)
