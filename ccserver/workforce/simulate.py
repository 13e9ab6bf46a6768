"""The routing digital twin: a discrete-event simulation of the center around the real router.

Arrivals (Poisson per interval), handle times, caller patience, ring time, RONA and wrap-up
are simulated; every routing decision is made by `acd_core.Router` — the same code the
controller runs — so skills, priorities, relaxation and RONA are in the answer, which the
Erlang formulas cannot capture. Seeded: the same configuration gives the same result.

Definitions match `ccserver.workforce.erlang`: service level = answered within the target
over offered calls (abandoned calls count as missed), ASA = mean wait of answered calls,
abandon rate = abandoned over offered, occupancy = agent time spent ringing, talking and in
wrap-up over staffed time. Calls count in the interval they arrived in.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from acd_core import Router, RouterAPI, RouterError
from ccserver.errors import InputError

RONA_BACK_S = 30.0
"""How long an agent who let a call ring out stays not-ready before pressing ready again."""


@dataclass(frozen=True)
class QueueMix:
    """A queue in the simulation: the skills its calls need and its share of arrivals."""

    name: str
    skills: dict[str, int]
    share: float = 1.0
    priority: int = 0


@dataclass(frozen=True)
class SimConfig:
    agents: int
    rates_per_s: tuple[float, ...]
    """Arrival rate of each interval, calls per second."""
    interval_s: float = 1800.0
    aht_s: float = 180.0
    handle: str = "exponential"
    """"exponential", or "lognormal" with a coefficient of variation of 1."""
    patience_s: float | None = None
    """Mean (exponential) patience; None: callers never abandon."""
    target_s: float = 20.0
    ring_s: float = 0.0
    rona_prob: float = 0.0
    wrap_up_s: float = 0.0
    queues: tuple[QueueMix, ...] = (QueueMix("general", {"general": 1}),)
    agent_skills: tuple[dict[str, int], ...] = ()
    """Skills of each agent, cycled over the agents; default: every queue's skills at 5."""
    seed: int = 1


@dataclass
class Tally:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    within_target: int = 0
    wait_sum_s: float = 0.0
    busy_s: float = 0.0

    def service_level(self) -> float:
        return self.within_target / self.offered if self.offered else math.nan

    def asa(self) -> float:
        return self.wait_sum_s / self.answered if self.answered else math.nan

    def abandon_rate(self) -> float:
        return self.abandoned / self.offered if self.offered else math.nan


@dataclass
class SimResult:
    config: SimConfig
    total: Tally = field(default_factory=Tally)
    intervals: list[Tally] = field(default_factory=list)
    queues: dict[str, Tally] = field(default_factory=dict)

    def occupancy(self, tally: Tally, seconds: float) -> float:
        return tally.busy_s / (self.config.agents * seconds)


def _validate(cfg: SimConfig) -> None:
    if cfg.agents < 1:
        raise InputError("agents must be at least 1")
    if not cfg.rates_per_s or any(r < 0 or not math.isfinite(r) for r in cfg.rates_per_s):
        raise InputError("arrival rates must be finite and >= 0, at least one interval")
    if cfg.interval_s <= 0 or cfg.aht_s <= 0 or cfg.target_s < 0 or cfg.ring_s < 0:
        raise InputError("interval, AHT must be > 0; target and ring time >= 0")
    if cfg.patience_s is not None and cfg.patience_s <= 0:
        raise InputError("patience must be > 0 (or none)")
    if not 0.0 <= cfg.rona_prob < 1.0:
        raise InputError("rona_prob must be in [0, 1)")
    if cfg.handle not in ("exponential", "lognormal"):
        raise InputError(f"handle must be exponential or lognormal, not {cfg.handle!r}")
    if not cfg.queues or sum(q.share for q in cfg.queues) <= 0:
        raise InputError("at least one queue with a positive share")


def simulate(cfg: SimConfig, progress: Callable[[float], None] | None = None) -> SimResult:
    """Run the day; `progress(fraction)` is called now and then for a progress bar."""
    _validate(cfg)
    rng = random.Random(cfg.seed)
    router: RouterAPI = Router(rona_memory_s=60.0)
    for q in cfg.queues:
        try:
            router.define_queue(q.name, q.skills, wrap_up_s=cfg.wrap_up_s)
        except RouterError as exc:
            raise InputError(f"queue {q.name!r}: {exc.message}") from exc
    default = {k: 5 for q in cfg.queues for k in q.skills}
    skills = cfg.agent_skills or (default,)
    for i in range(cfg.agents):
        router.login(f"agent{i}", skills[i % len(skills)], 0.0)

    result = SimResult(cfg, intervals=[Tally() for _ in cfg.rates_per_s])
    result.queues = {q.name: Tally() for q in cfg.queues}
    end = cfg.interval_s * len(cfg.rates_per_s)
    events: list[tuple[float, int, str, str]] = []
    seq = itertools.count()
    for k, rate in enumerate(cfg.rates_per_s):
        t = k * cfg.interval_s
        while rate > 0:
            t += rng.expovariate(rate)
            if t >= (k + 1) * cfg.interval_s:
                break
            heapq.heappush(events, (t, next(seq), "arrive", ""))

    sigma = math.sqrt(math.log(2.0))  # lognormal with CV 1
    mu = math.log(cfg.aht_s) - sigma * sigma / 2

    def handle_time() -> float:
        if cfg.handle == "exponential":
            return rng.expovariate(1.0 / cfg.aht_s)
        return rng.lognormvariate(mu, sigma)

    weights = [q.share for q in cfg.queues]
    arrival: dict[str, tuple[float, int, str]] = {}  # call -> (time, interval, queue)
    ringing: dict[str, float] = {}  # call -> when the ring started
    n = 0
    total_events = len(events)
    done_events = 0

    def tallies(call: str) -> tuple[Tally, Tally, Tally]:
        _, k, queue = arrival[call]
        return result.total, result.intervals[k], result.queues[queue]

    def connect(call: str, now: float, rang_s: float) -> None:
        """The agent answers: count the wait, draw the talk time, schedule the hang-up."""
        _answer(router, call, now, arrival, tallies(call), cfg.target_s)
        talk = handle_time()
        _busy(tallies(call), rang_s + talk + cfg.wrap_up_s)
        heapq.heappush(events, (now + talk, next(seq), "hangup", call))

    while events:
        now, _, kind, who = heapq.heappop(events)
        if kind == "arrive":
            n += 1
            call = f"c{n}"
            q = rng.choices(cfg.queues, weights)[0]
            arrival[call] = (now, min(int(now // cfg.interval_s), len(cfg.rates_per_s) - 1), q.name)
            router.enqueue(call, q.name, now, priority=q.priority)
            for tally in tallies(call):
                tally.offered += 1
            if cfg.patience_s is not None:
                heapq.heappush(
                    events, (now + rng.expovariate(1 / cfg.patience_s), next(seq), "abandon", call)
                )
            done_events += 1
            if progress is not None and done_events % 2000 == 0:
                progress(done_events / total_events)
        elif kind == "abandon":
            state = _state(router, who)
            if state in ("waiting", "offered"):
                router.remove(who, now)
                ringing.pop(who, None)
                for tally in tallies(who):
                    tally.abandoned += 1
        elif kind == "ring-end" and who in ringing:  # not if the caller hung up meanwhile
            rang_s = now - ringing.pop(who)
            if rng.random() < cfg.rona_prob:
                agent = router.call(who).agent
                assert agent is not None
                router.reject(who, agent, now)
                _busy(tallies(who), rang_s)
                heapq.heappush(events, (now + RONA_BACK_S, next(seq), "back", agent))
            else:
                connect(who, now, rang_s)
        elif kind == "hangup":
            router.complete(who, now)
        elif kind == "back" and router.agent(who).state == "not-ready":
            router.set_ready(who, now)
        for a in router.dispatch(now):
            if cfg.ring_s > 0:
                ringing[a.call] = now
                heapq.heappush(events, (now + cfg.ring_s, next(seq), "ring-end", a.call))
            else:
                connect(a.call, now, 0.0)
        nxt = router.next_timer()
        if nxt is not None and (not events or nxt < events[0][0]) and nxt <= end + 86400:
            heapq.heappush(events, (nxt, next(seq), "timer", ""))
    if progress is not None:
        progress(1.0)
    return result


def _state(router: RouterAPI, call: str) -> str:
    try:
        return router.call(call).state
    except RouterError:  # answered and finished
        return "gone"


def _answer(
    router: RouterAPI,
    call: str,
    now: float,
    arrival: dict[str, tuple[float, int, str]],
    tallies: tuple[Tally, ...],
    target_s: float,
) -> None:
    router.answer(call, now)
    wait = now - arrival[call][0]
    for t in tallies:
        t.answered += 1
        t.wait_sum_s += wait
        if wait <= target_s:
            t.within_target += 1


def _busy(tallies: tuple[Tally, ...], seconds: float) -> None:
    for t in tallies:
        t.busy_s += seconds
