"""Benchmark of acd_core: the compiled router against its pure-Python twin, same workloads.

    python tests/bench/bench_router.py [--quick] [--json PATH]

`make bench-router` writes docs/bench/router.json (with `meta`: commit, date, CPU, cores,
Python) and regenerates the table of docs/routing.md from it (scripts/bench_docs.py).

Workloads (tests/bench/workloads.py, seeded): (a) a 95598 day — 180 agents, 20 skills,
10 queues with relaxation, peak/flat/valley arrivals, RONA, abandons, breaks; (b) a huge
center — 10 000 agents, 100 skills, 200 queues, 100 000 waiting calls — where each decision
routes one agent who came free. Latency is one `dispatch(now)` call as the controller makes
it after an event (dispatches that assigned nothing included), in ns; throughput is router
operations per second of router time. The ratio compiled/pure is what the targets judge;
absolute times depend on the machine and are reported, not asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import acd_core
from tests.bench.meta import bench_meta
from tests.bench.workloads import Probe, backlog, center_day, percentile

TARGETS = {"day_p99_ns": 1_000, "backlog_p99_ns": 20_000, "speedup": 10.0}


def run(twin: str, workload: str, quick: bool) -> dict[str, Any]:
    probe = Probe(acd_core.load(twin)())
    start = time.perf_counter()
    if workload == "day":
        outcome = center_day(probe, seed=95598, hours=2 if quick else 12)
    else:
        outcome = backlog(probe, seed=95598, decisions=300 if quick else 3_000)
    wall = time.perf_counter() - start
    busy = [ns for ns in probe.dispatch_ns]
    return {
        "twin": twin,
        "workload": workload,
        "outcome": outcome,
        "dispatches": len(busy),
        "decisions": probe.decisions,
        "dispatch_p50_ns": percentile(busy, 0.50),
        "dispatch_p99_ns": percentile(busy, 0.99),
        "ns_per_decision": sum(busy) / max(1, probe.decisions),
        "router_ops": probe.ops,
        "ops_per_s": probe.ops / (probe.op_ns / 1e9) if probe.op_ns else 0.0,
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (< 30 s)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if acd_core.IMPLEMENTATION != "cython":
        print("the compiled router is not built: run `make venv` first", file=sys.stderr)
        return 2
    results: list[dict[str, Any]] = []
    for workload in ("day", "backlog"):
        pair = {twin: run(twin, workload, args.quick) for twin in ("cython", "python")}
        if pair["cython"]["outcome"] != pair["python"]["outcome"]:
            print(f"twins disagree on {workload}: {pair}", file=sys.stderr)
            return 1
        results.extend(pair.values())
        speedup = pair["python"]["dispatch_p50_ns"] / pair["cython"]["dispatch_p50_ns"]
        for r in pair.values():
            r["speedup_p50"] = speedup
            print(
                f"{workload:8} {r['twin']:7} dispatch p50 {r['dispatch_p50_ns']:>10,.0f} ns"
                f"  p99 {r['dispatch_p99_ns']:>10,.0f} ns"
                f"  {r['ns_per_decision']:>10,.0f} ns/decision"
                f"  {r['ops_per_s']:>12,.0f} ops/s  ({r['dispatches']} dispatches,"
                f" {r['decisions']} decisions, {r['wall_s']:.1f} s)"
            )
        print(f"{workload:8} compiled/pure speed-up at p50: {speedup:.1f}x")
    report = {
        "meta": bench_meta(),
        "quick": args.quick,
        "targets": TARGETS,
        "results": results,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
