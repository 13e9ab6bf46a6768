"""The load test's HTML report: self-contained, escaped, and robust to missing data.

Results are synthetic but shaped like the harness's result JSON (version 1): both systems,
one system, and a run whose series and samples are empty.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from ccserver.errors import InputError
from ccserver.loadtest import cli as loadtest_cli
from ccserver.loadtest import results
from ccserver.loadtest.report import render_html, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMG = re.compile(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


def _system(scale: float, *, empty: bool = False) -> dict[str, Any]:
    t = [] if empty else [float(s) for s in range(30)]
    pct = {"n": 0} if empty else {"n": 120, "p50": 8 * scale, "p90": 15 * scale}
    if not empty:
        pct |= {"p99": 30 * scale, "max": 41.5 * scale}
    return {
        "calls": {"offered": 120, "completed": 118, "failed": 0, "abandoned": 2},
        "ring_delay_ms": pct,
        "wait_ms": {k: v if k == "n" else v * 10 for k, v in pct.items()},
        "cpu": {
            "asterisk_pct_mean": 40.0 * scale,
            "asterisk_pct_max": 71.25,
            "controller_pct_mean": 2.5,
            "controller_pct_max": 6.0,
            "controller_to_asterisk": 0.0625,
        },
        "series": {
            "t_s": t,
            "calls_active": [min(s, 10.0 * scale) for s in t],
            "calls_completed": [s * 4 for s in t],
            "calls_failed": [0 for _ in t],
            "asterisk_cpu_pct": [30 + s for s in t],
            "controller_cpu_pct": [2.0 for _ in t],
        },
        "samples": {"ring_delay_ms": [] if empty else [5.0, 8.0, 30.0], "wait_ms": []},
    }


def _result(*systems: str, empty: bool = False) -> dict[str, Any]:
    built = {name: _system(1.0 if name == "ccserver" else 1.2, empty=empty) for name in systems}
    if "ccserver" in built:
        built["ccserver"]["controller_metrics"] = {"ccserver_calls_total": 120}
    return {
        "version": 1,
        "started_at": "2025-11-25T10:30:00+00:00",
        "params": {"system": "both", "cps": 20, "concurrency": 150, "talk_ms": [2000, 5000]},
        "systems": built,
        "capacity": [
            {"system": "ccserver", "concurrency": 150, "cps": 20, "calls": 600, "completed": 600,
             "failed": 0, "ok": True, "asterisk_cpu_pct": 55.5, "controller_cpu_pct": 3.1},
            {"system": "app_queue", "concurrency": 300, "cps": 40, "calls": 1200,
             "completed": 1190, "failed": 10, "ok": False, "asterisk_cpu_pct": 98.0,
             "controller_cpu_pct": 0.0},
        ],
        "goals": [
            {"goal": "150 concurrent, 20 CPS, 0 failed", "measured": "0 failed", "met": True},
            {"goal": "controller CPU <= 10 % of Asterisk's", "measured": "12 %", "met": False},
        ],
    }  # fmt: skip


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(data, validate=True) for data in IMG.findall(page)]


def _assert_offline(page: str) -> None:
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower()
    assert page.count("<img") == len(IMG.findall(page))  # every image is an embedded PNG


@pytest.mark.parametrize(
    "systems", [("ccserver", "app_queue"), ("ccserver",), ("app_queue",)], ids="+".join
)
def test_report_renders_offline_with_three_valid_png_charts(systems: tuple[str, ...]) -> None:
    page = render_html(_result(*systems))
    _assert_offline(page)
    pngs = _pngs(page)
    assert len(pngs) == 3  # calls over time, percentile bars, CPU over time
    assert all(png.startswith(PNG_SIGNATURE) for png in pngs)
    assert "no data" not in page
    for name in ("ccserver", "app_queue"):
        assert (f"<th>{name}</th>" in page) == (name in systems)
    assert "ccserver loadtest --system both --cps 20 --concurrency 150 --talk-ms 2000:5000" in page
    print(f"{'+'.join(systems)}: {len(page)} bytes, charts {[len(p) for p in pngs]} bytes")


def test_side_by_side_table_shows_counts_percentiles_and_cpu() -> None:
    page = render_html(_result("ccserver", "app_queue"))
    assert "<tr><td>calls completed</td><td>118</td><td>118</td></tr>" in page
    assert "<tr><td>ring delay p99 (ms)</td><td>30.0</td><td>36.0</td></tr>" in page
    assert "<tr><td>Asterisk CPU max (% of a core)</td><td>71.2</td><td>71.2</td></tr>" in page
    assert "<td>controller / Asterisk CPU (%)</td><td>6.2</td>" in page
    assert "<td>ccserver_calls_total</td><td>120</td>" in page


def test_goals_and_capacity_rows_are_marked_met_or_not() -> None:
    page = render_html(_result("ccserver", "app_queue"))
    assert re.search(
        r'<tr class="met"><td>150 concurrent, 20 CPS, 0 failed</td>.*<td>met</td>', page
    )
    assert re.search(
        r'<tr class="notmet"><td>controller CPU &lt;= 10 % of Asterisk&#x27;s</td>'
        r".*<td>not met</td>",
        page,
    )
    assert '<tr class="met"><td>ccserver</td><td>150</td>' in page
    assert '<tr class="notmet"><td>app_queue</td><td>300</td>' in page
    assert ".met {" in page and ".notmet {" in page  # coloured by the inline CSS


def test_empty_series_and_samples_say_no_data_instead_of_failing() -> None:
    page = render_html(_result("ccserver", "app_queue", empty=True))
    _assert_offline(page)
    assert _pngs(page) == []
    assert page.count('<p class="nodata">no data</p>') == 3
    assert "<tr><td>ring delay p50 (ms)</td><td>—</td><td>—</td></tr>" in page


def test_a_result_without_systems_goals_or_capacity_still_renders() -> None:
    page = render_html({"version": 1})
    _assert_offline(page)
    assert "Capacity" not in page
    assert page.count("no data") == 6  # params, goals, table and three charts
    assert "<code>ccserver loadtest</code>" in page


def test_one_series_with_data_still_yields_a_chart_that_says_no_data_elsewhere() -> None:
    result = _result("ccserver", empty=True)
    result["systems"]["ccserver"]["series"] |= {"t_s": [0, 1, 2], "calls_active": [1, 2, None]}
    pngs = _pngs(render_html(result))
    assert len(pngs) == 1 and pngs[0].startswith(PNG_SIGNATURE)


def test_every_string_from_the_result_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    result = _result("ccserver")
    result["started_at"] = evil
    result["params"] = {evil: evil}
    result["goals"] = [{"goal": evil, "measured": evil, "met": True}]
    result["capacity"][0]["system"] = evil
    result["systems"]["ccserver"]["calls"]["offered"] = evil
    result["systems"]["ccserver"]["controller_metrics"] = {evil: evil}
    page = render_html(result)
    assert "<script" not in page
    assert page.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") >= 8


def test_write_report_writes_utf8_and_refuses_an_unwritable_path(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    write_report(_result("app_queue"), path)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    with pytest.raises(InputError) as caught:
        write_report(_result("app_queue"), tmp_path / "missing" / "report.html")
    assert caught.value.slug == "report-unwritable"


def test_a_run_through_the_ivr_shows_its_times_branches_and_warnings() -> None:
    result = _result("ccserver")
    ccserver = result["systems"]["ccserver"]
    ccserver["samples"]["ivr_ms"] = [15000.0, 22000.0, 41000.0]
    ccserver["branches"] = {
        "repair": {"callers": 3, "agent": 2, "abandoned": 1, "ended_by_ivr": 0, "cut_off": 0},
        "<billing>": {"callers": 1, "agent": 0, "abandoned": 0, "ended_by_ivr": 1, "cut_off": 0},
    }
    ccserver["warnings"] = ["4 of the 40 calls asked for were never placed"]
    page = render_html(result)
    assert "<h2>Through the IVR</h2>" in page and "ccserver: outcome by branch" in page
    assert "<td>repair</td><td>3</td><td>2</td><td>1</td><td>0</td><td>0</td>" in page
    assert "&lt;billing&gt;" in page and "<billing>" not in page
    assert "4 of the 40 calls asked for were never placed" in page
    assert len(IMG.findall(page)) == 4  # calls, percentiles, CPU, and the IVR times


def test_the_terminal_summary_shows_cut_off_calls_branches_and_warnings_last() -> None:
    result = _result("ccserver")
    ccserver = result["systems"]["ccserver"]
    ccserver["calls"] |= {"asked": 40, "offered": 36, "cut_off": 1}
    ccserver["ivr_ms"] = {"n": 36, "p50": 27000.0, "p99": 45500.0}
    ccserver["branches"] = {
        "repair": {"callers": 3, "agent": 2, "abandoned": 1, "ended_by_ivr": 0, "cut_off": 0}
    }
    ccserver["warnings"] = ["4 of the 40 calls asked for were never placed"]
    lines = loadtest_cli.summary(result).splitlines()
    assert lines[0].split()[:7] == ["system", "asked", "offered", "done", "failed", "cut", "aband"]
    assert lines[1].split()[:7] == ["ccserver", "40", "36", "118", "0", "1", "2"]
    assert "27.0/45.5" in lines[1]  # time in the IVR, in seconds
    assert lines[2].split() == ["branch", *results.BRANCH_OUTCOMES]
    assert lines[3].split() == ["repair", "3", "2", "1", "0", "0"]
    assert lines[-1] == "WARNING ccserver: 4 of the 40 calls asked for were never placed"
