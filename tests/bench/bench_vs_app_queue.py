"""Benchmark of the whole center: ccserver against Asterisk's own app_queue, same load.

    python tests/bench/bench_vs_app_queue.py [--quick] [--out DIR] [--json PATH]

One private stack (`ccserver loadtest`'s harness): the same fixed load — 10 CPS for 30 s,
talk 3–5 s, every call with a ready agent — first against ccserver, then against app_queue
(static members, leastrecent, no wrap-up), measured by the same code: calls completed and
failed, ring delay (queue entry to the agent's INVITE) and caller wait percentiles, CPU of
Asterisk and of the controller. Then the capacity search steps each system up to the goals
(150 concurrent, 20 CPS) and past them, stopping a system at its first failed call.
Results: tests/bench/results/vs_app_queue.json and .html (the whole run, with the per-second
series and per-call samples; not in git), and with `--json PATH` its summary with `meta`
(commit, date, CPU, cores, Python): `make bench` writes docs/bench/vs_app_queue.json and
regenerates the tables of docs/benchmarks.md from it (scripts/bench_docs.py). The goals are
judged on ratios and counts measured in this run; absolute times depend on the machine and
are printed, never asserted. `--quick` runs a smaller fixed load and no capacity search
(< 2 minutes). The whole run is bounded: every load stops at its own time limit (about 8
minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ccserver import config as config_mod
from ccserver.errors import CCServerError
from ccserver.loadtest import harness, params, results
from ccserver.loadtest.cli import summary
from tests.bench.meta import bench_meta

RESULTS = Path(__file__).resolve().parent / "results"
LEFT_OUT_OF_SUMMARY = ("series", "samples")
"""Per-second series and per-call samples: in the full result and its HTML report only."""


def docs_summary(result: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The result the docs are generated from: `meta`, the goals' thresholds and the
    capacity plan, every figure of the systems and the capacity rows, no raw series."""
    systems = {
        name: {k: v for k, v in block.items() if k not in LEFT_OUT_OF_SUMMARY}
        for name, block in result["systems"].items()
    }
    return {
        "meta": meta,
        **{k: v for k, v in result.items() if k != "systems"},
        "systems": systems,
        "targets": {
            "concurrency": results.GOAL_CONCURRENCY,
            "cps": results.GOAL_CPS,
            "cpu_ratio": results.GOAL_CPU_RATIO,
        },
        "capacity_plan": {
            "ring_allowance_s": results.RING_ALLOWANCE_S,
            "steps": [asdict(s) for s in results.capacity_steps()] if result["capacity"] else [],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small load, no capacity search")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the results go")
    parser.add_argument(
        "--json", type=Path, help="also write the summary with `meta` here (docs/bench/…)"
    )
    args = parser.parse_args(argv)
    meta = bench_meta()  # the tree as it was when the run started
    work = Path(tempfile.mkdtemp(prefix="bench-vs-app-queue-"))
    try:
        p = params.from_args(
            system="both",
            cps=5.0 if args.quick else 10.0,
            concurrency=None,
            calls=None,
            duration=10.0 if args.quick else 30.0,
            agents=None,
            pools=2 if args.quick else 4,
            talk_ms="3000:5000",
            abandon_pct=0.0,
            abandon_wait_ms="1000:10000",
            mix=None,
            out=str(work),
            capacity=not args.quick,
            progress=sys.stderr.isatty(),
        )
        started = time.monotonic()
        result = harness.run(p, config_mod.load(environ={}))
    except CCServerError as exc:
        print(f"error[{exc.slug}]: {exc.message}", file=sys.stderr)
        return exc.exit_code
    print(summary(result))
    print(f"bench took {time.monotonic() - started:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy(work / "result.json", args.out / "vs_app_queue.json")
    if (work / "report.html").exists():
        shutil.copy(work / "report.html", args.out / "vs_app_queue.html")
    print(f"results written to {args.out / 'vs_app_queue.json'} (logs and SIPp files in {work})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(docs_summary(result, meta), indent=2) + "\n")
        print(f"summary written to {args.json}")
    failed = sum(s["calls"]["failed"] for s in result["systems"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
