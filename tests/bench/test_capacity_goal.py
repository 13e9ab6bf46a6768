"""The capacity step at the goal load, on its own: 150 concurrent calls at 20 CPS through
ccserver, with 0 failed calls. Marked `slow` (and `integration`): `make bench` runs it, the
default `make test` leaves it out. It is the same step the capacity search of
bench_vs_app_queue.py takes (`results.capacity_steps`, the goal step), on the load harness's
own private stack; its figures go to docs/bench/capacity_goal.json with the run's `meta`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ccserver import config as config_mod
from ccserver.loadtest import harness, privstack, results
from tests.bench.meta import bench_meta

pytestmark = [pytest.mark.slow, pytest.mark.integration]

OUT = Path(__file__).resolve().parents[2] / "docs" / "bench" / "capacity_goal.json"
POOLS = 4


def _goal_step() -> results.Step:
    return next(
        step
        for step in results.capacity_steps()
        if (step.concurrency, step.cps) == (results.GOAL_CONCURRENCY, results.GOAL_CPS)
    )


def test_ccserver_completes_every_call_at_the_goal_load(tmp_path: Path) -> None:
    step, meta = _goal_step(), bench_meta()
    plan = privstack.Plan(
        agents=math.ceil(step.concurrency * 1.1), pools=POOLS, concurrency=step.concurrency
    )
    progress = harness.Progress(enabled=False)
    with privstack.started(config_mod.load(environ={}), tmp_path, plan) as ps:
        block = harness.run_system(
            ps, "ccserver", harness.step_load(step), tmp_path / "sipp", "goal", progress
        )
    row = harness.capacity_row("ccserver", step, block)
    OUT.write_text(
        json.dumps(
            {
                "meta": meta,
                "step": {"concurrency": step.concurrency, "cps": step.cps, "calls": step.calls},
                "row": row,
                "ring_delay_ms": block["ring_delay_ms"],
                "wait_ms": block["wait_ms"],
                "cpu": block["cpu"],
            },
            indent=2,
        )
        + "\n"
    )
    print(json.dumps(row))
    assert (row["completed"], row["failed"]) == (step.calls, 0), row
    assert row["ok"]
