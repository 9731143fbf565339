"""Routing: the order of a day's stops that travels least, solved by OR-Tools on great-circle distances times a road
factor, with the stops that keep a fixed time as time windows. No map service: everything is computed here.

(How it works: docs/engine.md, "objectplatform/runtime/routing.py".)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .geo import distance_m

LATE_PENALTY = 1_000  # per second past a window's end, in metres of travel: a window is missed only when it must be
SOLVE_MS_PER_STOP = 20  # GUIDED_LOCAL_SEARCH runs to its time limit: a small one per stop, up to the setting


@dataclass(frozen=True)
class Stop:
    """A place to visit: `id`, its {"lat", "lng"}, the minutes spent there and, for a fixed time, the window
    (earliest, latest) of its arrival in minutes after the route departs."""

    id: str
    point: Mapping[str, float]
    service_minutes: float = 0
    window: tuple[float, float] | None = None


@dataclass(frozen=True)
class Leg:
    from_: str | None  # None: the start point
    to: str
    km: float
    minutes: int


@dataclass(frozen=True)
class Plan:
    """The stops in order, the legs between them (from the start point when there is one), the arrival at each
    stop in minutes after departure, and the totals of the legs (travel only)."""

    stops: tuple[str, ...]
    legs: tuple[Leg, ...]
    arrivals: tuple[int, ...]  # whole minutes after departure

    @property
    def total_km(self) -> float:
        return round(sum(leg.km for leg in self.legs), 2)

    @property
    def total_minutes(self) -> int:
        return sum(leg.minutes for leg in self.legs)


@dataclass(frozen=True)
class Roads:
    """How travel is estimated: great-circle distance times `road_factor`, at `speed_kmh` on average."""

    road_factor: float = 1.3
    speed_kmh: float = 30

    def metres(self, a: Mapping[str, float], b: Mapping[str, float]) -> float:
        return distance_m(a, b) * self.road_factor

    def seconds(self, metres: float) -> float:
        return metres / (self.speed_kmh * 1000 / 3600)

    def leg(self, from_: str | None, to: str, metres: float) -> Leg:
        km = round(metres / 1000, 2)
        return Leg(from_, to, km, round(km / self.speed_kmh * 60))


def plan_route(start: Mapping[str, float] | None, stops: Sequence[Stop], roads: Roads, time_limit_ms: int = 300
               ) -> Plan:
    """The open route through `stops` from `start` (None: from whichever stop makes it shortest) that travels
    least, arriving at each stop with a window within it where any order can; 0 or 1 stops need no solver."""
    order = list(range(len(stops))) if len(stops) <= 1 else _solve(start, stops, roads, time_limit_ms)
    return plan_in_order(start, [stops[i] for i in order], roads)


def plan_in_order(start: Mapping[str, float] | None, ordered: Sequence[Stop], roads: Roads) -> Plan:
    """The legs and the arrival times of the stops taken in this order (waiting for a window to open)."""
    legs, arrivals, clock = [], [], 0.0
    previous: Stop | None = None
    for stop in ordered:
        origin = previous.point if previous else start
        if origin is not None:
            metres = roads.metres(origin, stop.point)
            legs.append(roads.leg(previous.id if previous else None, stop.id, metres))
            clock += roads.seconds(metres) / 60
        if stop.window is not None:
            clock = max(clock, stop.window[0])
        arrivals.append(round(clock))
        clock += stop.service_minutes
        previous = stop
    return Plan(tuple(s.id for s in ordered), tuple(legs), tuple(arrivals))


def _solve(start: Mapping[str, float] | None, stops: Sequence[Stop], roads: Roads, time_limit_ms: int) -> list[int]:
    """The indexes of `stops` in the order OR-Tools finds. Node 0 is the start (free to leave from anywhere
    when there is none) and the route ends where its last stop is (arcs back to node 0 cost nothing)."""
    n = len(stops) + 1
    points = [start, *(s.point for s in stops)]
    metres = [[0 if j == 0 or i == j or points[i] is None else round(roads.metres(points[i], points[j]))
               for j in range(n)] for i in range(n)]
    travel = [[service + round(roads.seconds(m)) for m in row]  # leaving a stop: its visit, then the drive
              for row, service in zip(metres, [0, *(round(s.service_minutes * 60) for s in stops)], strict=True)]
    limit = min(time_limit_ms, SOLVE_MS_PER_STOP * len(stops))
    manager, routing, solution = _search(stops, metres, travel, limit)
    if solution is None:  # the time ran out before a first route (a busy machine): the first route, without a limit
        manager, routing, solution = _search(stops, metres, travel, None)
    order, index = [], routing.Start(0)
    while not routing.IsEnd(index := solution.Value(routing.NextVar(index))):
        order.append(manager.IndexToNode(index) - 1)
    return order


def _search(stops: Sequence[Stop], metres: list[list[int]], travel: list[list[int]], limit_ms: int | None):
    """OR-Tools' model of the stops and its search: improved by guided local search for `limit_ms`, or (None) its
    first solution only. Returns (manager, model, solution or None)."""
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2  # 0.15 s to import: only where a day is routed

    manager = pywrapcp.RoutingIndexManager(len(metres), 1, 0)
    routing = pywrapcp.RoutingModel(manager)
    routing.SetArcCostEvaluatorOfAllVehicles(routing.RegisterTransitMatrix(metres))
    if any(s.window for s in stops):
        day = 24 * 3600
        routing.AddDimension(routing.RegisterTransitMatrix(travel), day, 2 * day, True, "time")
        time = routing.GetDimensionOrDie("time")
        for node, stop in enumerate(stops, 1):
            if stop.window is not None:
                index = manager.NodeToIndex(node)
                time.CumulVar(index).SetMin(round(stop.window[0] * 60))
                time.SetCumulVarSoftUpperBound(index, round(stop.window[1] * 60), LATE_PENALTY)
    search = pywrapcp.DefaultRoutingSearchParameters()
    search.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    if limit_ms is not None:
        search.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
        search.time_limit.FromMilliseconds(limit_ms)
    return manager, routing, routing.SolveWithParameters(search)
