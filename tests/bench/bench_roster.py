"""Roster solve time and quality: 60 and 200 named agents over four weeks, half-hour
intervals, a requirement that a hand-built roster meets exactly (so the shortfall shows what
the solver left on the table), the default labour rules, a time limit per size.

    python tests/bench/bench_roster.py [--json PATH] [--quick]

`make bench-roster` writes docs/bench/roster.json (with `meta`) and regenerates the table of
docs/workforce.md from it (scripts/bench_docs.py). About 4 minutes (`--quick`: 60 agents).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ccserver.workforce import roster, roster_spec
from ccserver.workforce.roster_spec import AgentSpec, RosterInput, Rules, Template
from tests.bench.meta import bench_meta

TEMPLATES = (
    Template("early", (7 * 60, 8 * 60), 9 * 60, 60, (180, 300)),
    Template("late", (13 * 60,), 9 * 60, 60, (180, 300)),
    Template("night", (22 * 60,), 9 * 60, 0, (0, 0), night=True),
)
SIZES = {60: 30.0, 200: 120.0}  # agents: time limit (s)


def problem(agents: int) -> tuple[RosterInput, dict[tuple[int, str], int]]:
    """Agents of three skill sets; the requirement is what a hand-built roster within the
    rules covers: five days on, two off (staggered), one shift kind each — a tenth work
    three nights and a late shift a week — a multi-skilled agent counted for `general`."""
    specs = []
    for i in range(agents):
        skills: tuple[str, ...] = ("general", "repair") if i % 3 == 0 else ("repair",)
        if i % 3 == 2:
            skills = ("general",)
        specs.append(
            AgentSpec(
                id=f"{1000 + i}",
                skills=skills,
                contract_hours_week=40,
                team="ABCD"[i % 4],
                preferred_days_off=frozenset({5, 6}) if i % 4 == 0 else frozenset(),
            )
        )
    rules = Rules(max_hours_week=40)
    spec = RosterInput(dt.date(2027, 1, 4), 28, 30, TEMPLATES, rules, tuple(specs))
    variants = roster_spec.variants(spec.templates, spec.interval_min)
    night = next(i for i, v in enumerate(variants) if v.night)
    per_day = 24 * 60 // spec.interval_min
    need: dict[tuple[int, str], int] = defaultdict(int)
    late = variants[6]
    for i, agent in enumerate(spec.agents):
        if i % 10 == 9:  # nights on three days, a late shift two days after the last
            week = {(i + k) % 7: variants[night] for k in (0, 2, 4)} | {(i + 6) % 7: late}
        else:
            chosen = variants[[0, 3, 6][i % 3]]
            week = {d: chosen for d in set(range(7)) - {i % 7, (i + 1) % 7}}
        for d in range(spec.days):
            if d % 7 in week:
                for offset in week[d % 7].intervals(spec.interval_min):
                    need[(d * per_day + offset, agent.skills[0])] += 1
    return spec, dict(need)


def run(agents: int, limit: float) -> dict[str, Any]:
    spec, required = problem(agents)
    started = time.monotonic()
    result = roster.solve(spec, required, time_limit_s=limit, workers=2)
    wall = time.monotonic() - started
    needed = sum(required.values())
    row = {
        "agents": agents,
        "days": spec.days,
        "time_limit_s": limit,
        "wall_s": round(wall, 1),
        "status": result.status,
        "shifts": len(result.shifts),
        "required": needed,
        "under": result.under,
        "under_pct": round(100 * result.under / needed, 2),
        "over": result.over,
        "preference_violations": result.preference_violations,
    }
    print(
        f"{agents} agents x {spec.days} days: {result.status} in {wall:.1f} s "
        f"(limit {limit:g} s), {result.under} of {needed} short ({row['under_pct']} %), "
        f"{result.over} over"
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--quick", action="store_true", help="60 agents only")
    args = parser.parse_args(argv)
    sizes = {60: SIZES[60]} if args.quick else SIZES
    results = [run(agents, limit) for agents, limit in sizes.items()]
    if args.json:
        data = {"meta": bench_meta(), "quick": args.quick, "results": results}
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
