"""The pure arithmetic of a load test: percentiles, the capacity steps and their search,
and the goals of issue 10 judged from the measured figures.

Kept apart from the orchestration (harness.py) so that what decides "met" or "failed" is
unit-tested without a stack, and so the result JSON's shape lives in one place.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

GOAL_CONCURRENCY = 150
GOAL_CPS = 20
GOAL_CPU_RATIO = 0.10
BRANCH_OUTCOMES = ("callers", "agent", "abandoned", "ended_by_ivr", "cut_off")
"""A run's per-branch table through the IVR: the branch's callers, then how each ended
(one of the other four: an agent answered, the caller hung up first, the flow hung up —
self-service or a closed service —, or the call was cut off with no end)."""
RING_ALLOWANCE_S = 0.5
"""Ring plus answer time added to the talk time in Little's law (concurrency = cps × hold):
the agents' scenario rings ~0.2 s before answering, and routing adds a little."""


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (an observed value, never interpolated); q in 0..100."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not in 0..100")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def pct(values_ms: Sequence[float]) -> dict[str, Any]:
    """The contract's PCT: {"n", "p50", "p90", "p99", "max"}, milliseconds, None when empty."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return {
        "n": len(values_ms),
        "p50": rounded(percentile(values_ms, 50)),
        "p90": rounded(percentile(values_ms, 90)),
        "p99": rounded(percentile(values_ms, 99)),
        "max": rounded(max(values_ms) if values_ms else None),
    }


def cpu_block(asterisk: list[float | None], controller: list[float | None]) -> dict[str, Any]:
    """The contract's "cpu" block from two per-second series (percent of one core)."""
    a_mean, a_max = _mean_max(asterisk)
    c_mean, c_max = _mean_max(controller)
    return {
        "asterisk_pct_mean": round(a_mean, 2),
        "asterisk_pct_max": round(a_max, 2),
        "controller_pct_mean": round(c_mean, 2),
        "controller_pct_max": round(c_max, 2),
        "controller_to_asterisk": round(c_mean / a_mean, 4) if a_mean > 0 else None,
    }


def _mean_max(series: list[float | None]) -> tuple[float, float]:
    values = [v for v in series if v is not None]
    return (sum(values) / len(values), max(values)) if values else (0.0, 0.0)


@dataclass(frozen=True)
class Step:
    """One capacity step: `cps` arrivals per second for `arrival_s`, each call held
    `talk_ms` by its agent, so that about `concurrency` calls are up at once."""

    concurrency: int
    cps: float
    talk_ms: int
    arrival_s: float

    @property
    def calls(self) -> int:
        return max(1, round(self.cps * self.arrival_s))


def talk_for(concurrency: int, cps: float) -> int:
    """The fixed talk time (ms) that makes `cps` arrivals hold `concurrency` calls up:
    Little's law, concurrency = cps × (talk + ring)."""
    hold_s = concurrency / cps
    if hold_s <= RING_ALLOWANCE_S:
        raise ValueError(f"{concurrency} calls at {cps} CPS leave no talk time")
    return round((hold_s - RING_ALLOWANCE_S) * 1000)


def capacity_steps(
    goal_concurrency: int = GOAL_CONCURRENCY,
    goal_cps: float = GOAL_CPS,
    *,
    count: int = 9,
    goal_step: int = 4,
    min_arrival_s: float = 12.0,
) -> list[Step]:
    """`count` steps growing linearly, the `goal_step`-th (1-based) exactly at the goals and
    the rest beyond them. Every step keeps the goals' hold time (concurrency / cps), so the
    talk time is one figure; arrivals last at least twice the hold time, so the last half
    of each step runs at the full concurrency."""
    if not 1 <= goal_step <= count:
        raise ValueError("the goal step must be one of the steps")
    hold_s = goal_concurrency / goal_cps
    talk_ms = talk_for(goal_concurrency, goal_cps)
    arrival_s = max(min_arrival_s, 2 * hold_s)
    steps = []
    for n in range(1, count + 1):
        cps = goal_cps * n / goal_step
        steps.append(Step(round(cps * hold_s), round(cps, 2), talk_ms, arrival_s))
    return steps


def search(
    steps: Sequence[Step], run_step: Callable[[Step], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Run the steps in order and stop after the first that is not ok: a system that
    failed at some load is not pushed harder. `run_step` returns a capacity row."""
    rows = []
    for step in steps:
        row = run_step(step)
        rows.append(row)
        if not row["ok"]:
            break
    return rows


def largest_ok(rows: Sequence[dict[str, Any]], system: str) -> dict[str, Any] | None:
    """The heaviest step the system passed (0 failed calls), or None."""
    passed = [r for r in rows if r["system"] == system and r["ok"]]
    return max(passed, key=lambda r: (r["concurrency"], r["cps"])) if passed else None


def goals(
    systems: dict[str, dict[str, Any]], capacity: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The issue's goals for ccserver, each judged only when this run measured it."""
    out: list[dict[str, Any]] = []
    if any(r["system"] == "ccserver" for r in capacity):
        best = largest_ok(capacity, "ccserver")
        measured = (
            "no step passed"
            if best is None
            else f"{best['concurrency']} concurrent at {best['cps']:g} CPS with 0 failed"
        )
        met = best is not None and (
            best["concurrency"] >= GOAL_CONCURRENCY and best["cps"] >= GOAL_CPS
        )
        out.append(
            {
                "goal": f"{GOAL_CONCURRENCY} concurrent calls at {GOAL_CPS} CPS, 0 failed",
                "measured": measured,
                "met": met,
            }
        )
    ours = systems.get("ccserver")
    if ours is not None and ours["cpu"]["controller_to_asterisk"] is not None:
        ratio = ours["cpu"]["controller_to_asterisk"]
        out.append(
            {
                "goal": f"controller CPU <= {GOAL_CPU_RATIO:.0%} of Asterisk's",
                "measured": (
                    f"{ratio:.1%} ({ours['cpu']['controller_pct_mean']:.1f} % vs "
                    f"{ours['cpu']['asterisk_pct_mean']:.1f} % of a core)"
                ),
                "met": ratio <= GOAL_CPU_RATIO,
            }
        )
    theirs = systems.get("app_queue")
    if ours is not None and theirs is not None:
        a, b = ours["ring_delay_ms"]["p99"], theirs["ring_delay_ms"]["p99"]
        if a is not None and b is not None:
            out.append(
                {
                    "goal": "ring delay p99 no worse than app_queue's",
                    "measured": f"ccserver {a:.1f} ms, app_queue {b:.1f} ms",
                    "met": a <= b,
                }
            )
    return out


def parse_range(text: str, what: str) -> tuple[int, int]:
    """ "MIN:MAX" (or one number) in milliseconds; ValueError says what is wrong."""
    parts = text.split(":")
    if len(parts) > 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"{what} {text!r}: give MIN:MAX in whole milliseconds, e.g. 3000:5000")
    low, high = int(parts[0]), int(parts[-1])
    if low > high:
        raise ValueError(f"{what} {text!r}: MIN is above MAX")
    return low, high
