"""The pure parts of `ccserver loadtest`: argument checks, percentiles, CPU from /proc,
the capacity steps and their search, the goals, SIPp's live counters and the baseline
queue rendered for app_queue. The orchestration itself runs against the real stack in
tests/integration/test_loadtest_smoke.py."""

from __future__ import annotations

import io
import math
import os
import time
from pathlib import Path
from typing import Any

import pytest

from ccserver import cli
from ccserver import config as config_mod
from ccserver.errors import InputError
from ccserver.loadtest import cpu, harness, params, results, sipp
from ccserver.loadtest import mix as mix_mod
from ccserver.loadtest.privstack import Plan, phone_pools
from ccserver.stack.render import app_queue_queue

ARGS: dict[str, Any] = {
    "system": "both",
    "cps": 5.0,
    "concurrency": None,
    "calls": None,
    "duration": None,
    "agents": None,
    "pools": 2,
    "talk_ms": "3000:5000",
    "abandon_pct": 0.0,
    "abandon_wait_ms": "1000:10000",
    "mix": None,
    "out": "out",
    "capacity": False,
    "progress": False,
}


def make(**changes: Any) -> params.Params:
    return params.from_args(**{**ARGS, **changes})


# --- arguments ----------------------------------------------------------------------------
def test_defaults_size_concurrency_by_littles_law_and_give_each_call_an_agent() -> None:
    p = make()
    # 5 CPS × (5 s longest talk + 0.5 s ringing) = 27.5, rounded up, plus one.
    assert p.concurrency == 29
    assert p.agents == 29
    assert p.planned_calls == params.DEFAULT_CALLS
    assert p.systems == ["ccserver", "app_queue"]


def test_duration_sets_the_calls_and_the_hard_bound() -> None:
    p = make(duration=20.0, talk_ms="1000:2000")
    assert p.planned_calls == 100
    assert p.bound_s() == 20.0 + 2.0 + results.RING_ALLOWANCE_S + params.MARGIN_S
    assert p.drain_s() == 2.0 + results.RING_ALLOWANCE_S + params.MARGIN_S


def test_capacity_alone_runs_no_fixed_load() -> None:
    assert make(capacity=True).planned_calls is None
    assert make(capacity=True, calls=10).planned_calls == 10


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"system": "asterisk"}, "--system 'asterisk': choose one of ccserver, app_queue, both"),
        ({"cps": 0.0}, "--cps 0: give calls per second above 0"),
        ({"cps": 500.0}, "--cps 500: give calls per second above 0, at most 200"),
        ({"calls": 5, "duration": 10.0}, "--calls and --duration: give one of them, not both"),
        ({"calls": 0}, "--calls 0: at least 1"),
        ({"talk_ms": "5000:3000"}, "--talk-ms '5000:3000': MIN is above MAX"),
        ({"talk_ms": "3s"}, "--talk-ms '3s': give MIN:MAX in whole milliseconds"),
        ({"talk_ms": "100:150"}, "--talk-ms 100:150: at least 200 ms"),
        ({"abandon_pct": 120.0}, "--abandon-pct 120: a percentage, 0 to 100"),
        ({"pools": 0}, "--pools 0: 1 to 32 SIPp agent pools"),
        ({"agents": 1}, "--agents 1 cannot fill --pools 2"),
        ({"concurrency": 0}, "--concurrency 0: 1 to 2000 calls at once"),
        ({"mix": "/nonexistent/mix.csv"}, "--mix /nonexistent/mix.csv: no such file"),
    ],
)
def test_bad_arguments_are_named_with_what_to_give(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as info:
        make(**changes)
    assert info.value.slug == "loadtest-invalid"
    assert message in info.value.message


def test_the_ivr_mix_needs_ccserver_alone(tmp_path: Path) -> None:
    mix = tmp_path / "mix.csv"
    mix.write_text("SEQUENTIAL\ngeneral;general;1500;0;0;;0;\n")
    with pytest.raises(InputError, match="--mix walks ccserver's IVR"):
        make(mix=str(mix))
    assert make(mix=str(mix), system="ccserver").mix == mix


def test_a_mix_sizes_the_run_by_the_time_its_callers_spend_in_the_ivr(tmp_path: Path) -> None:
    # Keys after 39.2 s: 0.4 s lead-in + 0.4 s a key, then "connecting you": 40 s + 10 s.
    mix = tmp_path / "mix.csv"
    mix.write_text("RANDOM\n# a comment\nslow;general;30000;1;9200;0;0;\nfast;general;0;;0;;0;\n")
    p = make(mix=str(mix), system="ccserver", cps=2.0, talk_ms="3000:5000")
    assert p.ivr_s == 40.0 + mix_mod.AFTER_KEYS_S
    assert p.concurrency >= 2 * (40.0 + 5.0)  # the floor: cps × (IVR + talk)
    assert p.concurrency == math.ceil(2.0 * (p.ivr_s + 5.0 + results.RING_ALLOWANCE_S)) + 1
    arrivals = params.DEFAULT_CALLS / 2.0
    assert p.bound_s() == arrivals + p.ivr_s + 5.0 + results.RING_ALLOWANCE_S + params.MARGIN_S


def test_the_shipped_mix_keeps_callers_up_to_its_longest_walk() -> None:
    shipped = mix_mod.read(sipp.IVR_MIX_95598)
    assert shipped.order == "RANDOM"
    assert set(shipped.branches) >= {"business", "repair", "billing", "general", "invalid"}
    # "repeat": 9 after 28.5 s, 3 after 11.5 s more, one key: 40.8 s, then connecting.
    assert shipped.longest_ivr_s == 28.5 + 11.5 + 0.8 + mix_mod.AFTER_KEYS_S


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SOMETIMES\nx;q;0;;0;;0;\n", "line 1: 'SOMETIMES' is not one of"),
        ("RANDOM\nx;q;0\n", "line 2: 3 fields, want 8"),
        ("RANDOM\nx;q;soon;1;0;;0;\n", "line 2: wait 'soon' is not a number of ms"),
        ("RANDOM\n# only a comment\n", "no rows"),
    ],
)
def test_a_bad_mix_is_refused_with_its_line(tmp_path: Path, text: str, message: str) -> None:
    mix = tmp_path / "mix.csv"
    mix.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        make(mix=str(mix), system="ccserver")
    assert info.value.slug == "loadtest-invalid"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InputError) as info:
        make(system="x", cps=-1.0, pools=99)
    assert info.value.message.count(";") == 2


def test_the_command_line_prints_the_slug_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["loadtest", "--calls", "3", "--duration", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error[loadtest-invalid]: --calls and --duration")
    assert "Traceback" not in err


# --- percentiles -------------------------------------------------------------------------
def test_percentiles_are_nearest_rank_observed_values() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert results.percentile(values, 50) == 50
    assert results.percentile(values, 90) == 90
    assert results.percentile(values, 99) == 99
    assert results.percentile(values, 100) == 100
    assert results.percentile([7.0, 1.0, 3.0], 50) == 3.0
    assert results.percentile([4.0], 99) == 4.0
    assert results.percentile([], 50) is None
    with pytest.raises(ValueError):
        results.percentile([1.0], 101)


def test_pct_block_has_the_contract_keys_and_none_when_empty() -> None:
    assert results.pct([]) == {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    block = results.pct([12.345, 1.0, 30.0, 2.0])
    assert block == {"n": 4, "p50": 2.0, "p90": 30.0, "p99": 30.0, "max": 30.0}
    assert results.pct([12.345])["p50"] == 12.3


def test_cpu_block_ratio_of_means_skips_gaps() -> None:
    block = results.cpu_block([None, 40.0, 60.0], [None, 2.0, 4.0])
    assert block["asterisk_pct_mean"] == 50.0
    assert block["asterisk_pct_max"] == 60.0
    assert block["controller_pct_mean"] == 3.0
    assert block["controller_to_asterisk"] == 0.06
    assert results.cpu_block([], [])["controller_to_asterisk"] is None


# --- CPU from /proc ----------------------------------------------------------------------
def test_stat_parsing_counts_fields_after_the_last_parenthesis() -> None:
    # A command name with a space and a ')' must not shift the fields.
    fields = ["S", *[str(n) for n in range(4, 14)], "250", "50", *["0"] * 30]
    text = f"4242 (we)ird name) {' '.join(fields)}\n"
    assert cpu.parse_stat(text) == 300
    with pytest.raises(ValueError):
        cpu.parse_stat("4242 no parenthesis 1 2 3")
    with pytest.raises(ValueError):
        cpu.parse_stat("4242 (short) S 1 2")


def test_percent_is_of_one_core() -> None:
    assert cpu.percent(100, 1.0, ticks_per_s=100) == 100.0
    assert cpu.percent(50, 2.0, ticks_per_s=100) == 25.0
    assert cpu.percent(10, 0.0) == 0.0


def test_this_process_burning_cpu_is_measured() -> None:
    before = cpu.read_ticks(os.getpid())
    assert before is not None
    meter = cpu.CpuMeter({"me": os.getpid()})
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    sample = meter.sample()["me"]
    after = cpu.read_ticks(os.getpid())
    assert after is not None and after > before
    assert sample is not None and sample > 0


def test_a_process_that_is_gone_reads_as_none() -> None:
    meter = cpu.CpuMeter({"gone": 2**22 + 1})  # above the default pid_max: never a process
    assert meter.sample() == {"gone": None}
    assert cpu.summary([None, None]) == (0.0, 0.0)
    assert cpu.summary([None, 10.0, 30.0]) == (20.0, 30.0)


# --- capacity ----------------------------------------------------------------------------
def test_capacity_steps_hit_the_goals_then_go_beyond_with_one_talk_time() -> None:
    steps = results.capacity_steps()
    assert [(s.concurrency, s.cps) for s in steps] == [
        (38, 5.0),
        (75, 10.0),
        (112, 15.0),
        (150, 20.0),
        (188, 25.0),
        (225, 30.0),
        (262, 35.0),
        (300, 40.0),
        (338, 45.0),
    ]
    # Little's law: 150 calls at 20 CPS hold 7.5 s each: 0.5 s ringing, 7 s of talk.
    assert {s.talk_ms for s in steps} == {7000}
    assert steps[3].arrival_s == 15.0
    assert steps[3].calls == 300
    with pytest.raises(ValueError):
        results.capacity_steps(goal_step=10)
    with pytest.raises(ValueError):
        results.talk_for(5, 20)


def _row(system: str, step: results.Step, ok: bool) -> dict[str, Any]:
    return {"system": system, "concurrency": step.concurrency, "cps": step.cps, "ok": ok}


def test_the_search_stops_a_system_at_its_first_failed_step() -> None:
    steps = results.capacity_steps()
    tried: list[int] = []

    def run_step(step: results.Step) -> dict[str, Any]:
        tried.append(step.concurrency)
        return _row("ccserver", step, ok=step.concurrency < 150)

    rows = results.search(steps, run_step)
    assert tried == [38, 75, 112, 150]
    assert [r["ok"] for r in rows] == [True, True, True, False]
    best = results.largest_ok(rows, "ccserver")
    assert best is not None and best["concurrency"] == 112
    assert results.largest_ok(rows, "app_queue") is None


def _system(ring_p99: float | None, ast: float, ctl: float) -> dict[str, Any]:
    return {
        "ring_delay_ms": {"p99": ring_p99},
        "cpu": {
            "asterisk_pct_mean": ast,
            "controller_pct_mean": ctl,
            "controller_to_asterisk": ctl / ast,
        },
    }


def test_goals_are_judged_only_on_what_was_measured() -> None:
    steps = results.capacity_steps()
    capacity = [_row("ccserver", s, ok=True) for s in steps[:5]]
    systems = {"ccserver": _system(80.0, 50.0, 4.0), "app_queue": _system(90.0, 45.0, 1.0)}
    goals = {g["goal"]: g for g in results.goals(systems, capacity)}
    assert goals["150 concurrent calls at 20 CPS, 0 failed"]["met"]
    assert (
        "188 concurrent at 25 CPS" in goals["150 concurrent calls at 20 CPS, 0 failed"]["measured"]
    )
    assert goals["controller CPU <= 10% of Asterisk's"]["met"]
    assert goals["ring delay p99 no worse than app_queue's"]["met"]

    slower = {"ccserver": _system(95.0, 50.0, 6.0), "app_queue": _system(90.0, 45.0, 1.0)}
    judged = {g["goal"]: g["met"] for g in results.goals(slower, capacity[:3])}
    assert judged == {
        "150 concurrent calls at 20 CPS, 0 failed": False,
        "controller CPU <= 10% of Asterisk's": False,
        "ring delay p99 no worse than app_queue's": False,
    }
    assert results.goals({"app_queue": _system(90.0, 45.0, 1.0)}, []) == []


def test_a_capacity_step_becomes_a_load_that_is_not_throttled_by_sipp() -> None:
    step = results.capacity_steps()[3]
    load = harness.step_load(step)
    assert (load.calls, load.cps, load.talk_ms) == (300, 20.0, (7000, 7000))
    assert load.limit > step.concurrency
    assert load.bound_s == 15.0 + 7.5 + params.MARGIN_S


# --- the load itself ---------------------------------------------------------------------
def test_abandoners_take_their_share_of_calls_rate_and_limit() -> None:
    load = harness.Load(
        calls=40, cps=10.0, limit=20, talk_ms=(1000, 2000), bound_s=60.0, drain_s=30.0
    )
    assert load.split() == [("callers", 40, 10.0, 20)]
    mixed = harness.Load(
        calls=40,
        cps=10.0,
        limit=20,
        talk_ms=(1000, 2000),
        bound_s=60.0,
        drain_s=30.0,
        abandon_pct=25.0,
    )
    assert mixed.split() == [("callers", 30, 7.5, 15), ("abandoners", 10, 2.5, 5)]


def test_sipp_live_counters_come_from_the_last_stat_row(tmp_path: Path) -> None:
    stat = tmp_path / "c.stat.csv"
    header = "StartTime;TotalCallCreated;CurrentCall;SuccessfulCall(C);FailedCall(C)"
    stat.write_text(f"{header}\nx;3;3;0;0\nx;10;4;5;1\n", encoding="latin-1")
    assert harness.live_counts(stat) == {"created": 10, "active": 4, "completed": 5, "failed": 1}
    assert harness.live_counts(tmp_path / "missing.csv")["created"] == 0


def test_controller_metrics_keep_samples_but_not_buckets() -> None:
    text = "\n".join(
        [
            "# HELP ccserver_calls_offered_total Calls",
            'ccserver_calls_offered_total{queue="general"} 12.0',
            'ccserver_ring_seconds_bucket{le="0.5"} 3.0',
            "ccserver_ring_seconds_count 3.0",
            "ccserver_ring_seconds_created 1.7e9",
            "python_gc_objects_collected_total 10.0",
        ]
    )
    assert harness.parse_metrics(text) == {
        'ccserver_calls_offered_total{queue="general"}': 12.0,
        "ccserver_ring_seconds_count": 3.0,
    }


def test_progress_rewrites_one_line_and_only_when_enabled() -> None:
    stream = io.StringIO()
    progress = harness.Progress(True, stream)
    counts = {"created": 10, "active": 3, "completed": 5, "failed": 0}
    line = harness.bar("ccserver", 5, 10, counts, {"asterisk": 12.0, "controller": None}, 3, 40)
    assert "[############............] 5/10" in line and "ast  12% ctl   -%" in line
    progress.show(line)
    progress.show("short")
    progress.done()
    out = stream.getvalue()
    assert out.count("\r") == 2 and out.endswith("\n") and "\n" not in out[:-1]
    quiet = io.StringIO()
    harness.Progress(False, quiet).show(line)
    assert quiet.getvalue() == ""


# --- the private stack and the baseline ----------------------------------------------------
def test_phones_are_split_round_robin_and_asterisk_sized_for_the_calls() -> None:
    plan = Plan(agents=5, pools=2, concurrency=150)
    assert phone_pools(plan) == [["20001", "20003", "20005"], ["20002", "20004"]]
    assert plan.maxcalls == 350
    assert plan.rtp_ports == 800


def test_the_baseline_queue_is_rendered_only_when_asked_for() -> None:
    assert app_queue_queue(config_mod.Config()) == ""
    config = config_mod.Config.model_validate(
        {
            "asterisk": {"app_queue_numbers": ["95599"]},
            "phones": {"ids": ["1001", "1002"]},
            "controller": {"ring_timeout_s": 9},
        }
    )
    text = app_queue_queue(config)
    assert text.startswith("[baseline]\n")
    for line in ("strategy = leastrecent", "ringinuse = no", "timeout = 9", "wrapuptime = 0"):
        assert line in text.splitlines()
    assert "member => PJSIP/1001\nmember => PJSIP/1002\n" in text


def test_app_queue_numbers_are_digits() -> None:
    with pytest.raises(ValueError, match="must be digits only"):
        config_mod.Config.model_validate({"asterisk": {"app_queue_numbers": ["9559x"]}})
