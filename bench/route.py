"""Route benchmark (not a test): a day of 30 and of 100 stops spread over a 30 km square around Shanghai, ordered by
the routing service (OR-Tools: PATH_CHEAPEST_ARC then GUIDED_LOCAL_SEARCH within its time limit) from a home point,
against the nearest-neighbour order (always drive to the closest stop not yet visited): solve time and total km
(roads 1.3 × the great-circle distance, as the CRM's visits are configured).

Usage: python bench/route.py [--stops 30,100] [--days 5] [--time-limit-ms 300]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from objectplatform.runtime.routing import Roads, Stop, plan_in_order, plan_route

CENTRE = (31.2304, 121.4737)
SPAN = 0.135  # degrees each side: about 30 km north to south


def nearest_neighbour(start: dict, stops: list[Stop], roads: Roads) -> list[Stop]:
    left, here, order = list(stops), start, []
    while left:
        closest = min(left, key=lambda s: roads.metres(here, s.point))
        left.remove(closest)
        order.append(closest)
        here = closest.point
    return order


def day(rng: random.Random, count: int) -> tuple[dict, list[Stop]]:
    def near() -> dict:
        return {"lat": CENTRE[0] + rng.uniform(-SPAN, SPAN), "lng": CENTRE[1] + rng.uniform(-SPAN, SPAN)}
    return near(), [Stop(str(i), near(), 30) for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stops", default="30,100")
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--time-limit-ms", type=int, default=300)
    args = parser.parse_args()
    roads = Roads(1.3, 30)
    print(f"{'stops':>5}  {'solve ms (median / max)':>24}  {'OR-Tools km':>11}  {'nearest km':>10}  {'saved':>6}")
    for count in (int(n) for n in args.stops.split(",")):
        rng = random.Random(count)
        times, solved, greedy = [], [], []
        for _ in range(args.days):
            start, stops = day(rng, count)
            began = time.perf_counter()
            plan = plan_route(start, stops, roads, args.time_limit_ms)
            times.append((time.perf_counter() - began) * 1000)
            solved.append(plan.total_km)
            greedy.append(plan_in_order(start, nearest_neighbour(start, stops, roads), roads).total_km)
        ours, theirs = statistics.mean(solved), statistics.mean(greedy)
        print(f"{count:>5}  {statistics.median(times):>13.0f} / {max(times):>8.0f}  {ours:>11.1f}  {theirs:>10.1f}"
              f"  {(theirs - ours) / theirs:>6.1%}")


if __name__ == "__main__":
    main()
