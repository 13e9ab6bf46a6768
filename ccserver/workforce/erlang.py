"""Erlang B, Erlang C and Erlang A, numerically stable up to a thousand agents or more.

Traffic is in erlangs (arrival rate × average handling time); times are in seconds.

* Erlang B (M/M/N/N, blocked calls cleared) by the recursion
  B_n = A·B_{n-1} / (n + A·B_{n-1}), which is 1/B_n = 1 + n/(A·B_{n-1}) written so that it
  neither overflows nor divides by zero.
* Erlang C (M/M/N, infinite patience) from Erlang B: C = N·B / (N − A·(1 − B)). It needs
  N > A; otherwise the queue grows without bound and there is no steady state.
* Erlang A (M/M/N+M, Palm's model: exponential patience with mean `patience_s`) exactly
  from the birth–death chain, in log space, truncating the queue when the remaining states
  carry less than e^-60 of the mass. The waiting-time terms are closed forms (see
  `erlang_a`), so there is no numerical integration.

Every impossible input raises `InputError` (slug "input-invalid") with a message that
says what to change.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from ccserver.errors import InputError

__all__ = [
    "ErlangA",
    "agents_for_asa",
    "agents_for_service_level",
    "asa",
    "erlang_a",
    "erlang_b",
    "erlang_c",
    "occupancy",
    "servers_for_blocking",
    "service_level",
]

# Queue states are added until the unnormalised log-probability falls this far below the
# largest one (e^-60 ≈ 1e-26), and the terms are decreasing.
_LOG_TAIL = 60.0
# Hard cap on queue states for Erlang A (an overloaded queue with very long patience).
_MAX_QUEUE_STATES = 5_000_000
# Searches for a number of agents give up here (a million agents is not a contact center).
_MAX_AGENTS = 1_000_000


# --- input checks -------------------------------------------------------------------------


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def _non_negative(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{name} must be a finite number ≥ 0, got {value!r}")
    return value


def _count(name: str, value: int) -> int:
    whole = isinstance(value, int | np.integer) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or value < 1:
        raise InputError(f"{name} must be a whole number ≥ 1, got {value!r}")
    return int(value)


def _fraction(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or not 0 < value < 1:
        raise InputError(f"{name} must be strictly between 0 and 1, got {value!r}")
    return value


def _stable(traffic: float, agents: int) -> None:
    if agents <= traffic:
        raise InputError(
            f"{agents} agents cannot carry {traffic:g} erlangs: with agents ≤ traffic the queue "
            "grows without bound (no steady state), so Erlang C has no answer; add agents "
            f"(more than {math.floor(traffic)}) or use Erlang A, which models abandonment"
        )


# --- Erlang B -----------------------------------------------------------------------------


def _b_next(traffic: float, n: int, b_prev: float) -> float:
    ab = traffic * b_prev
    return ab / (n + ab)


def erlang_b(traffic: float, servers: int) -> float:
    """Blocking probability of `servers` lines offered `traffic` erlangs (M/M/N/N)."""
    a = _positive("traffic", traffic)
    n_max = _count("servers", servers)
    b = 1.0
    for n in range(1, n_max + 1):
        b = _b_next(a, n, b)
    return b


def servers_for_blocking(traffic: float, blocking: float) -> int:
    """The fewest lines whose Erlang B blocking is at most `blocking`."""
    a = _positive("traffic", traffic)
    target = _fraction("blocking", blocking)
    b = 1.0
    for n in range(1, _MAX_AGENTS + 1):
        b = _b_next(a, n, b)
        if b <= target:
            return n
    raise InputError(f"more than {_MAX_AGENTS} lines would be needed; check the traffic")


# --- Erlang C -----------------------------------------------------------------------------


def _c_from_b(traffic: float, agents: int, b: float) -> float:
    return agents * b / (agents - traffic * (1.0 - b))


def erlang_c(traffic: float, agents: int) -> float:
    """Probability that a caller waits (M/M/N, infinite patience). Needs agents > traffic."""
    a = _positive("traffic", traffic)
    n = _count("agents", agents)
    _stable(a, n)
    return _c_from_b(a, n, erlang_b(a, n))


def _sl_from_c(c: float, traffic: float, agents: int, aht_s: float, target_s: float) -> float:
    return 1.0 - c * math.exp(-(agents - traffic) * target_s / aht_s)


def service_level(traffic: float, agents: int, aht_s: float, target_s: float) -> float:
    """Erlang C service level: P(wait ≤ target_s) = 1 − C·exp(−(N − A)·t / AHT)."""
    aht = _positive("aht_s", aht_s)
    target = _non_negative("target_s", target_s)
    a = _positive("traffic", traffic)
    n = _count("agents", agents)
    return _sl_from_c(erlang_c(a, n), a, n, aht, target)


def asa(traffic: float, agents: int, aht_s: float) -> float:
    """Erlang C average speed of answer, seconds: C·AHT / (N − A), over all callers."""
    aht = _positive("aht_s", aht_s)
    a = _positive("traffic", traffic)
    n = _count("agents", agents)
    return erlang_c(a, n) * aht / (n - a)


def occupancy(traffic: float, agents: int) -> float:
    """Share of agent time spent handling calls, A / N (Erlang C: needs agents > traffic)."""
    a = _positive("traffic", traffic)
    n = _count("agents", agents)
    _stable(a, n)
    return a / n


def _fraction_or_one(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or not 0 < value <= 1:
        raise InputError(f"{name} must be in (0, 1], got {value!r}")
    return value


def _search_agents(
    traffic: float,
    max_occupancy: float | None,
    good_enough: Callable[[int, float], bool],
    what: str,
) -> int:
    """The fewest agents N > traffic with A/N ≤ max_occupancy for which
    `good_enough(N, P(wait))` holds. Erlang B advances one agent at a time: O(N) in all."""
    n_min = math.floor(traffic) + 1
    if max_occupancy is not None:
        occ = _fraction_or_one("max_occupancy", max_occupancy)
        n_min = max(n_min, math.ceil(traffic / occ - 1e-9))
    b = 1.0
    for n in range(1, _MAX_AGENTS + 1):
        b = _b_next(traffic, n, b)
        if n >= n_min and good_enough(n, _c_from_b(traffic, n, b)):
            return n
    raise InputError(f"more than {_MAX_AGENTS} agents would be needed to reach {what}")


def agents_for_service_level(
    traffic: float,
    aht_s: float,
    target_s: float,
    sl: float,
    max_occupancy: float | None = None,
) -> int:
    """The fewest agents with Erlang C service level ≥ `sl` (share answered within
    `target_s`) and, if given, occupancy A/N ≤ `max_occupancy`."""
    a = _positive("traffic", traffic)
    aht = _positive("aht_s", aht_s)
    target = _non_negative("target_s", target_s)
    goal = _fraction("sl", sl)

    def good_enough(n: int, c: float) -> bool:
        return _sl_from_c(c, a, n, aht, target) >= goal

    return _search_agents(a, max_occupancy, good_enough, f"a service level of {goal:g}")


def agents_for_asa(
    traffic: float, aht_s: float, asa_s: float, max_occupancy: float | None = None
) -> int:
    """The fewest agents with Erlang C ASA ≤ `asa_s` seconds (and occupancy ≤ the cap)."""
    a = _positive("traffic", traffic)
    aht = _positive("aht_s", aht_s)
    goal = _positive("asa_s", asa_s)

    def good_enough(n: int, c: float) -> bool:
        return c * aht / (n - a) <= goal

    return _search_agents(a, max_occupancy, good_enough, f"an ASA of {goal:g} s")


# --- Erlang A -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ErlangA:
    """Steady-state results of the M/M/N+M (Erlang A) queue, all per offered call.

    p_wait: P(all agents busy on arrival) — the caller queues.
    p_abandon: P(the caller hangs up before being answered).
    service_level: P(answered with a wait ≤ target_s); abandoned calls count as missed.
    asa: mean wait of *answered* callers in seconds, those answered at once included.
    """

    p_wait: float
    p_abandon: float
    service_level: float
    asa: float


def _queue_log_terms(lam: float, n_mu: float, theta: float) -> np.ndarray:
    """log of λ^k / ∏_{j=1..k}(Nμ + jθ) for k = 1..K, K chosen so the tail is negligible."""
    parts: list[np.ndarray] = []
    last = 0.0
    peak = 0.0
    start = 1
    chunk = 256
    while True:
        k = np.arange(start, start + chunk, dtype=float)
        logs = last + np.cumsum(math.log(lam) - np.log(n_mu + k * theta))
        parts.append(logs)
        peak = max(peak, float(logs.max()))
        last = float(logs[-1])
        death_rate = n_mu + (start + chunk - 1) * theta
        if death_rate > lam and last < peak - _LOG_TAIL:
            break
        start += chunk
        if start > _MAX_QUEUE_STATES:
            raise InputError(
                "the Erlang A queue does not settle: with agents ≤ traffic and patience this "
                "long, millions of callers would wait; shorten the patience or add agents"
            )
        chunk = min(chunk * 2, 1 << 18)
    terms = np.concatenate(parts)
    # Trim the far tail that is below the cut-off (keeps the arrays short).
    keep = np.nonzero(terms >= peak - _LOG_TAIL)[0]
    return terms[: int(keep[-1]) + 1] if keep.size else terms[:1]


def erlang_a(
    arrival_rate_per_s: float,
    aht_s: float,
    patience_s: float,
    agents: int,
    target_s: float,
) -> ErlangA:
    """Erlang A (Palm's M/M/N+M): Poisson arrivals at `arrival_rate_per_s`, exponential
    handling with mean `aht_s`, exponential patience with mean `patience_s` (math.inf gives
    Erlang C, which then needs agents > traffic), `agents` agents, FCFS.

    The birth–death chain has birth rate λ and death rate nμ in states n ≤ N, Nμ + kθ with
    k callers queued; arrivals see its stationary law (PASTA). A caller who finds k others
    queued reaches an agent after a sum of exponentials with rates Nμ + jθ, j = k..0, unless
    its own patience (rate θ) runs out first. Tilting that sum by e^{-θs} gives, exactly,

        P(answered | k)           = Nμ / (Nμ + (k+1)θ)
        P(answered, W ≤ t | k)    = P(answered | k) · I_{1−e^{−θt}}(k+1, Nμ/θ + 1)
        E[W · 1{answered} | k]    = P(answered | k) · Σ_{i=1..k+1} 1/(Nμ + iθ)

    (I is the regularised incomplete beta function: the law of a sum of exponentials with
    rates Nμ + iθ, i = 1..k+1.) With θ = 0 these become the Erlang-(k+1, Nμ) law.
    """
    lam = _positive("arrival_rate_per_s", arrival_rate_per_s)
    aht = _positive("aht_s", aht_s)
    patience = float(patience_s)
    if math.isnan(patience) or patience <= 0:
        raise InputError(f"patience_s must be > 0 (math.inf for no abandonment), got {patience}")
    n = _count("agents", agents)
    target = _non_negative("target_s", target_s)
    mu = 1.0 / aht
    theta = 0.0 if math.isinf(patience) else 1.0 / patience
    traffic = lam * aht
    if theta == 0.0:
        _stable(traffic, n)
    n_mu = n * mu

    # Unnormalised log-probabilities: states 0..N (no queue), then N+k, k ≥ 1.
    idx = np.arange(n + 1, dtype=float)
    log_low = idx * math.log(traffic) - special.gammaln(idx + 1.0)
    log_queue = log_low[-1] + _queue_log_terms(lam, n_mu, theta)
    log_all = np.concatenate([log_low, log_queue])
    shift = float(log_all.max())
    weights = np.exp(log_all - shift)
    weights /= weights.sum()
    p_low = weights[:n]  # an arrival finds a free agent
    p_busy = weights[n:]  # an arrival finds N busy and k = 0, 1, ... queued

    k1 = np.arange(1, p_busy.size + 1, dtype=float)  # k + 1
    if theta == 0.0:
        answered = np.ones_like(k1)
        abandoned = np.zeros_like(k1)
        within = special.gammainc(k1, n_mu * target)
        mean_wait = k1 / n_mu
    else:
        answered = n_mu / (n_mu + k1 * theta)
        abandoned = k1 * theta / (n_mu + k1 * theta)
        x = -math.expm1(-theta * target)
        within = special.betainc(k1, n_mu / theta + 1.0, x) if x > 0 else np.zeros_like(k1)
        mean_wait = np.cumsum(1.0 / (n_mu + k1 * theta))

    p_wait = float(p_busy.sum())
    p_answered_waiting = float(np.dot(p_busy, answered))
    p_answered = float(p_low.sum()) + p_answered_waiting
    sl = float(p_low.sum()) + float(np.dot(p_busy, answered * within))
    waited = float(np.dot(p_busy, answered * mean_wait))
    return ErlangA(
        p_wait=min(max(p_wait, 0.0), 1.0),
        p_abandon=min(max(float(np.dot(p_busy, abandoned)), 0.0), 1.0),
        service_level=min(max(sl, 0.0), 1.0),
        asa=waited / p_answered if p_answered > 0 else math.inf,
    )
