"""A short load through the real harness (`ccserver loadtest`'s own code, its own private
stack): tens of calls against ccserver, then the same against app_queue, with 0 failed
calls for both, and a result that carries what the report and the benchmark read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ccserver import config as config_mod
from ccserver.loadtest import harness, params

pytestmark = pytest.mark.integration

SYS_KEYS = {"calls", "ring_delay_ms", "wait_ms", "cpu", "series", "samples"}
PCT_KEYS = {"n", "p50", "p90", "p99", "max"}
SERIES_KEYS = {
    "t_s",
    "calls_active",
    "calls_completed",
    "calls_failed",
    "asterisk_cpu_pct",
    "controller_cpu_pct",
}


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("loadtest")
    p = params.from_args(
        system="both",
        cps=4.0,
        concurrency=None,
        calls=24,
        duration=None,
        agents=None,
        pools=2,
        talk_ms="1000:2000",
        abandon_pct=0.0,
        abandon_wait_ms="1000:10000",
        mix=None,
        out=str(out),
        capacity=False,
        progress=False,
    )
    found = harness.run(p, config_mod.load(environ={}))
    print(json.dumps({k: v["calls"] for k, v in found["systems"].items()}))
    return found, out


def test_both_systems_complete_every_call(result: tuple[dict[str, Any], Path]) -> None:
    found, _ = result
    for name in ("ccserver", "app_queue"):
        calls = found["systems"][name]["calls"]
        assert (calls["offered"], calls["completed"], calls["failed"]) == (24, 24, 0), name


def test_the_result_has_the_contract_keys(result: tuple[dict[str, Any], Path]) -> None:
    found, out = result
    assert json.loads((out / "result.json").read_text()) == found
    assert {"version", "started_at", "params", "systems", "capacity", "goals"} <= set(found)
    for name, system in found["systems"].items():
        assert set(system) >= SYS_KEYS, name
        assert {"offered", "completed", "failed", "abandoned"} <= set(system["calls"])
        assert PCT_KEYS == set(system["ring_delay_ms"]) == set(system["wait_ms"])
        assert set(system["series"]) == SERIES_KEYS
    assert "controller_metrics" in found["systems"]["ccserver"]
    assert any(
        k.startswith("ccserver_calls_answered")
        for k in found["systems"]["ccserver"]["controller_metrics"]
    )


def test_ring_delays_were_measured_for_both(result: tuple[dict[str, Any], Path]) -> None:
    """Every answered call has its ring delay. (Not asserted >= 0: app_queue rings the
    agent a millisecond after answering the caller, and the two SIPp processes may read
    Asterisk's 200 OK and INVITE in either order.)"""
    found, _ = result
    for name in ("ccserver", "app_queue"):
        system = found["systems"][name]
        assert system["ring_delay_ms"]["n"] == system["calls"]["completed"], name
        assert len(system["samples"]["ring_delay_ms"]) == system["ring_delay_ms"]["n"], name
        assert system["wait_ms"]["n"] == system["calls"]["completed"], name
        print(name, "ring delay ms", system["ring_delay_ms"], "wait ms", system["wait_ms"])


def test_cpu_of_asterisk_and_the_controller_was_sampled(
    result: tuple[dict[str, Any], Path],
) -> None:
    found, _ = result
    for name in ("ccserver", "app_queue"):
        series = found["systems"][name]["series"]
        assert series["t_s"], name
        assert any(v is not None and v > 0 for v in series["asterisk_cpu_pct"]), name
        print(name, "cpu", found["systems"][name]["cpu"])


def test_the_html_report_is_self_contained(result: tuple[dict[str, Any], Path]) -> None:
    _, out = result
    html = (out / "report.html").read_text()
    assert "http://" not in html and "https://" not in html
