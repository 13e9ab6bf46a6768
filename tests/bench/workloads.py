"""Seeded routing workloads, shared by the benchmark and the twin-equivalence tests.

`center_day` plays a utility hotline's day as a discrete-event simulation against a router:
Poisson arrivals with a peak/flat/valley profile, ring time with a chance of RONA, talk
time, wrap-up (the router's own timers), callers who abandon, agents taking breaks.
`backlog` builds a huge center (10 000 agents, 100 000 waiting calls) and then measures
the decision made each time one agent comes free. Every router call goes through a `Probe`,
so the same code times one twin or checks two twins against each other.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from acd_core import RelaxStep, RouterError

STRATEGIES = ["longest-idle", "longest-idle", "most-skilled", "least-calls"]
# Share of the day's calls per hour from 08:00: the peak/flat/valley shape of the hotline.
HOURLY_PROFILE = [6, 9, 10, 9, 7, 6, 7, 8, 9, 8, 6, 5]


@dataclass
class Probe:
    """Calls the router, timing `dispatch` (the decision) and counting everything."""

    router: Any
    dispatch_ns: list[int] = field(default_factory=list)
    decisions: int = 0
    ops: int = 0
    op_ns: int = 0

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        fn: Callable[..., Any] = getattr(self.router, method)
        start = time.perf_counter_ns()
        result = fn(*args, **kwargs)
        elapsed = time.perf_counter_ns() - start
        self.ops += 1
        self.op_ns += elapsed
        if method == "dispatch":
            self.dispatch_ns.append(elapsed)
            self.decisions += len(result)
        return result


def define_center(
    probe: Probe, rng: random.Random, *, agents: int, skills: int, queues: int, ready: bool = True
) -> list[str]:
    """Queues needing one or two skills, with relaxation; agents with 2–6 skills each."""
    names = [f"s{i}" for i in range(skills)]
    queue_names = []
    for i in range(queues):
        need = {rng.choice(names): rng.randint(3, 7) for _ in range(rng.choice([1, 1, 2]))}
        relax = [RelaxStep(20.0, 2), RelaxStep(60.0, 1, ({names[0]: 3},))]
        probe(
            "define_queue", f"q{i}", need,
            strategy=rng.choice(STRATEGIES), relaxation=relax,
            wrap_up_s=rng.choice([0.0, 10.0, 20.0]), preferred_s=rng.choice([0.0, 15.0]),
        )  # fmt: skip
        queue_names.append(f"q{i}")
    for i in range(agents):
        own = {rng.choice(names): rng.randint(1, 10) for _ in range(rng.randint(2, 6))}
        own.setdefault(names[0], rng.randint(3, 10))
        probe("login", f"a{i}", own, 0.0, ready=ready)
    return queue_names


def center_day(
    probe: Probe,
    seed: int,
    *,
    agents: int = 180,
    skills: int = 20,
    queues: int = 10,
    hours: int = 12,
    load: float = 0.9,
) -> dict[str, int]:
    """Play `hours` of the hotline; returns outcome counts (identical for identical twins)."""
    rng = random.Random(seed)
    queue_names = define_center(probe, rng, agents=agents, skills=skills, queues=queues)
    aht = 240.0
    peak_rate = load * agents / aht  # calls per second at the busiest hour
    events: list[tuple[float, int, str, str, str]] = []
    seq = itertools.count()

    def at(t: float, kind: str, call: str = "", agent: str = "") -> None:
        heapq.heappush(events, (t, next(seq), kind, call, agent))

    now = 0.0
    for hour in range(hours):
        rate = peak_rate * HOURLY_PROFILE[hour % len(HOURLY_PROFILE)] / max(HOURLY_PROFILE)
        t = hour * 3600.0
        while True:
            t += rng.expovariate(rate)
            if t >= (hour + 1) * 3600.0:
                break
            at(t, "arrive")
    counts = dict.fromkeys(["offered", "answered", "abandoned", "rona", "breaks"], 0)
    last_agent: dict[str, str] = {}  # a caller's last agent: the preferred one next time
    caller_of: dict[str, str] = {}
    n_calls = 0
    while events:
        now, _, kind, call, agent = heapq.heappop(events)
        if kind == "arrive":
            n_calls += 1
            call = f"c{n_calls}"
            caller = f"caller{rng.randint(0, n_calls)}"
            probe(
                "enqueue", call, rng.choice(queue_names), now,
                priority=2 if rng.random() < 0.1 else 0,
                preferred_agent=last_agent.get(caller),
            )  # fmt: skip
            caller_of[call] = caller
            at(now + rng.expovariate(1 / 120.0), "abandon", call)
        elif kind == "abandon":
            try:
                waiting = probe.router.call(call).state == "waiting"
            except RouterError:  # answered and finished already
                waiting = False
            if waiting:
                probe("remove", call, now)
                counts["abandoned"] += 1
        elif kind == "ring-end":
            if rng.random() < 0.03:
                probe("reject", call, agent, now)
                counts["rona"] += 1
                at(now + 30.0, "back", "", agent)
            else:
                probe("answer", call, now)
                counts["answered"] += 1
                at(now + rng.expovariate(1 / aht), "hangup", call, agent)
        elif kind == "hangup":
            probe("complete", call, now)
            if rng.random() < 0.02:
                probe("set_not_ready", agent, "break", now)
                counts["breaks"] += 1
                at(now + 300.0, "back", "", agent)
        elif kind == "back" and probe.router.agent(agent).state == "not-ready":
            probe("set_ready", agent, now)
        for a in probe("dispatch", now):
            counts["offered"] += 1
            last_agent[caller_of[a.call]] = a.agent
            at(now + rng.uniform(1.0, 8.0), "ring-end", a.call, a.agent)
        nxt = probe.router.next_timer()
        if nxt is not None and (not events or nxt < events[0][0]):
            at(nxt, "timer")
    return counts


def backlog(
    probe: Probe,
    seed: int,
    *,
    agents: int = 10_000,
    skills: int = 100,
    queues: int = 200,
    waiting: int = 100_000,
    decisions: int = 2_000,
) -> dict[str, int]:
    """A huge center with every agent busy and `waiting` calls queued; then, `decisions`
    times, one call ends and a new one arrives — each dispatch routes the freed agent."""
    rng = random.Random(seed)
    queue_names = define_center(
        probe, rng, agents=agents, skills=skills, queues=queues, ready=False
    )
    now = 0.0
    for i in range(waiting + agents):
        probe("enqueue", f"c{i}", rng.choice(queue_names), now + i * 1e-3)
    now = (waiting + agents) * 1e-3
    talking = []
    for i in range(agents):  # agents come in one by one, as on a real morning
        probe("set_ready", f"a{i}", now)
        for a in probe("dispatch", now):
            probe("answer", a.call, now)
            talking.append(a.call)
    probe.dispatch_ns.clear()
    probe.decisions = 0
    n = waiting + agents
    served = 0
    for _ in range(decisions):
        now += 0.01
        if not talking:
            break
        call = talking.pop(rng.randrange(len(talking)))
        probe("complete", call, now, wrap_up_s=0.0)
        probe("enqueue", f"c{n}", rng.choice(queue_names), now)
        n += 1
        for a in probe("dispatch", now):
            probe("answer", a.call, now)
            talking.append(a.call)
            served += 1
    return {"served": served, "waiting": probe.router.waiting(), "talking": len(talking)}


def percentile(values: list[int], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])
