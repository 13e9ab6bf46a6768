"""`ccserver report` on a history store written by the real `History` class: one day of
known calls (2025-01-06, Asia/Shanghai) whose KPIs are worked out by hand below.

The day, local times; "wait" is from entering the queue; agents 1001-1003:

    g1  08:30:00  flat    hangs up during the greeting, before any queue   -> lost
    a2  09:10:00  peak    answered by 1002 after 40 s, talks 180 s, survey 3 -> answered
    s1  10:00:00  peak    abandons after 5 s in the queue                  -> short abandon
    a1  11:59:50  peak    answered by 1001 at 12:00:10 (18 s), talks 120 s,
                          wrap-up 30 s, survey 5  (answered in the flat band:
                          still a peak call)                                 -> answered
    l1  12:30:00  flat    1003 lets it ring out; abandons after 60 s         -> abandon
    a3  15:00:00  peak    a2's number again, served by the IVR              -> ivr
    t1  16:00:00  peak    1001 answers after 10 s, talks 60 s, transfers it
                          blind to billing (wrap-up 30 s); 1002 answers, talks
                          120 s; survey 4                                     -> answered
    cb1 19:30:00  flat    asks for a callback; 1003 reaches the customer at
                          19:40:00 and talks 300 s                           -> callback
    n1  23:30:00  valley  answered by 1003 after 5 s, talks 300 s, wrap-up 20 s
                                                                             -> answered

Around it: p0 at 2025-01-05 23:59:59 (before the day), r1 on 2025-01-07 at 10:00 from a1's
number (21 h 58 min after a1 ended: a repeat within 24 h) and r2 at 18:00 from t1's number
(25 h 56 min after t1 ended: outside the window), both served by the IVR.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ccserver import config, reports
from ccserver.cli import main
from ccserver.errors import ConfigError
from ccserver.history import History

ZONE = ZoneInfo("Asia/Shanghai")
DAY = ["--from", "2025-01-06", "--to", "2025-01-07"]


def at(day: int, hour: int, minute: int, second: int = 0) -> float:
    return dt.datetime(2025, 1, day, hour, minute, second, tzinfo=ZONE).timestamp()


def _record(call_id: str, caller: str, arrived: float, **extra: Any) -> dict[str, Any]:
    """A record shaped like `ccserver.calls.model.Call.to_record()`."""
    record: dict[str, Any] = {
        "id": call_id,
        "caller": caller,
        "dnis": "95598",
        "arrived_at": arrived,
        "state": "ended",
        "queue": None,
        "queued_at": None,
        "agent": None,
        "connected_at": None,
        "ended_at": None,
        "outcome": None,
        "hangup_by": None,
        "attempts": [],
        "overflowed_from": [],
        "callback": None,
        "handled_by": None,
        "survey_score": None,
        **extra,
    }
    queued, end = record["queued_at"], record["connected_at"] or record["ended_at"]
    record["wait_s"] = None if queued is None else round(end - queued, 3)
    return record


def _ivr_call(h: History, call_id: str, caller: str, arrived: float) -> None:
    h.record_event(call_id, "arrived", at=arrived, caller=caller, dnis="95598")
    h.record_event(call_id, "complete", at=arrived + 60, outcome="self-service")
    h.save_call(
        _record(
            call_id, caller, arrived, ended_at=arrived + 60, outcome="self-service",
            hangup_by="caller", handled_by="ivr",
        )
    )  # fmt: skip


def _answered_call(
    h: History,
    call_id: str,
    caller: str,
    times: tuple[float, float, float, float],
    agent: str,
    score: int | None = None,
    disposition: str | None = None,
) -> None:
    arrived, queued, answered, ended = times
    wait = answered - queued
    h.record_event(call_id, "arrived", at=arrived, caller=caller, dnis="95598")
    h.record_event(call_id, "enter", at=queued, queue="general", position=1)
    h.record_event(call_id, "connect", at=answered, queue="general", agent=agent, wait_s=wait)
    h.record_event(call_id, "complete", at=ended, queue="general", agent=agent, wait_s=wait)
    h.save_call(
        _record(
            call_id, caller, arrived, queue="general", queued_at=queued, agent=agent,
            connected_at=answered, ended_at=ended, outcome="completed", hangup_by="caller",
            attempts=[{"agent": agent, "at": answered - 2, "result": "answered"}],
            survey_score=score, disposition=disposition,
        )
    )  # fmt: skip


def _abandoned_call(
    h: History, call_id: str, caller: str, times: tuple[float, float | None, float], queue: str
) -> None:
    arrived, queued, ended = times
    h.record_event(call_id, "arrived", at=arrived, caller=caller, dnis="95598")
    attempts = []
    if queued is not None:
        h.record_event(call_id, "enter", at=queued, queue=queue, position=1)
        if queue == "repair":  # 1003's phone rings out first
            h.record_event(call_id, "rona", at=queued + 20, queue=queue, agent="1003")
            attempts = [{"agent": "1003", "at": queued + 5, "result": "no-answer"}]
    h.record_event(call_id, "abandon", at=ended, queue=queue if queued else None)
    h.save_call(
        _record(
            call_id, caller, arrived, queue=queue if queued else None, queued_at=queued,
            ended_at=ended, outcome="abandoned", hangup_by="caller", attempts=attempts,
        )
    )  # fmt: skip


def _write_day(h: History) -> None:
    _ivr_call(h, "p0", "13900000009", at(5, 23, 59, 59))
    _abandoned_call(h, "g1", "13800000008", (at(6, 8, 30), None, at(6, 8, 30, 4)), "general")
    a2 = (at(6, 9, 10), at(6, 9, 10, 5), at(6, 9, 10, 45), at(6, 9, 13, 45))
    _answered_call(h, "a2", "13800000002", a2, "1002", score=3, disposition="bill-enquiry")
    s1 = (at(6, 10, 0), at(6, 10, 0, 2), at(6, 10, 0, 7))
    _abandoned_call(h, "s1", "13800000003", s1, "general")
    a1 = (at(6, 11, 59, 50), at(6, 11, 59, 52), at(6, 12, 0, 10), at(6, 12, 2, 10))
    _answered_call(h, "a1", "13800000001", a1, "1001", score=5, disposition="fault-reported")
    l1 = (at(6, 12, 30), at(6, 12, 30, 3), at(6, 12, 31, 3))
    _abandoned_call(h, "l1", "13800000004", l1, "repair")
    _ivr_call(h, "a3", "13800000002", at(6, 15, 0))
    _write_transfer(h)
    _write_callback(h)
    n1 = (at(6, 23, 30), at(6, 23, 30, 2), at(6, 23, 30, 7), at(6, 23, 35, 7))
    _answered_call(h, "n1", "13800000007", n1, "1003", disposition="fault-reported")
    # n1's caller calls again next morning about the same fault: not resolved at first.
    n2 = (at(7, 8, 0), at(7, 8, 0, 2), at(7, 8, 0, 12), at(7, 8, 3, 12))
    _answered_call(h, "n2", "13800000007", n2, "1003", disposition="fault-reported")
    _ivr_call(h, "r1", "13800000001", at(7, 10, 0))
    _ivr_call(h, "r2", "13800000005", at(7, 18, 0))
    _write_agent_states(h)


def _write_transfer(h: History) -> None:
    queued, first, moved, second, ended = (
        at(6, 16, 0, 2), at(6, 16, 0, 12), at(6, 16, 1, 12), at(6, 16, 1, 32), at(6, 16, 3, 32)
    )  # fmt: skip
    h.record_event("t1", "arrived", at=at(6, 16, 0), caller="13800000005", dnis="95598")
    h.record_event("t1", "enter", at=queued, queue="general", position=1)
    h.record_event("t1", "connect", at=first, queue="general", agent="1001", wait_s=10.0)
    h.record_event(
        "t1", "transfer", at=moved, queue="general", source="1001", target="billing",
        by="1001", mode="blind",
    )  # fmt: skip
    h.record_event("t1", "enter", at=moved, queue="billing", position=1)
    # The second answer's wait counts from the first queueing (the call keeps its place).
    h.record_event("t1", "connect", at=second, queue="billing", agent="1002", wait_s=90.0)
    h.record_event("t1", "complete", at=ended, queue="billing", agent="1002", wait_s=90.0)
    h.save_call(
        _record(
            "t1", "13800000005", at(6, 16, 0), queue="billing", queued_at=queued, agent="1002",
            connected_at=second, ended_at=ended, outcome="completed", hangup_by="caller",
            attempts=[
                {"agent": "1001", "at": first - 3, "result": "answered"},
                {"agent": "1002", "at": second - 3, "result": "answered"},
            ],
            survey_score=4,
        )
    )  # fmt: skip


def _write_callback(h: History) -> None:
    queued, asked, reached, ended = (
        at(6, 19, 30, 2), at(6, 19, 31, 2), at(6, 19, 40), at(6, 19, 45)
    )  # fmt: skip
    number = "13800000006"
    h.record_event("cb1", "arrived", at=at(6, 19, 30), caller=number, dnis="95598")
    h.record_event("cb1", "enter", at=queued, queue="general", position=3)
    h.record_event("cb1", "callback", at=asked, queue="general", number=number)
    h.record_event("cb1", "callback_dial", at=reached - 8, queue="general", agent="1003")
    h.record_event("cb1", "connect", at=reached, queue="general", agent="1003", wait_s=598.0)
    h.record_event("cb1", "complete", at=ended, queue="general", agent="1003")
    h.save_call(
        _record(
            "cb1", number, at(6, 19, 30), queue="general", queued_at=queued, agent="1003",
            connected_at=reached, ended_at=ended, outcome="completed", hangup_by="caller",
            attempts=[{"agent": "1003", "at": reached - 10, "result": "answered"}],
            callback={
                "number": number, "customer_channel": None,
                "attempts": [{"at": reached - 8, "number": number, "result": "answered"}],
            },
        )
    )  # fmt: skip


def _write_agent_states(h: History) -> None:
    states = {
        "1001": [
            (at(6, 8, 0), "ready"), (at(6, 12, 0, 10), "busy"), (at(6, 12, 2, 10), "wrap-up"),
            (at(6, 12, 2, 40), "ready"), (at(6, 16, 0, 12), "busy"),
            (at(6, 16, 1, 12), "wrap-up"), (at(6, 16, 1, 42), "ready"),
            (at(6, 17, 0), "logged-out"),
        ],
        "1002": [  # logged in since the evening before: ready when the day begins
            (at(5, 21, 0), "logged-out"), (at(5, 22, 0), "ready"),
            (at(6, 9, 10, 45), "busy"), (at(6, 9, 13, 45), "ready"),
            (at(6, 16, 1, 32), "busy"), (at(6, 16, 3, 32), "ready"),
            (at(6, 18, 0), "logged-out"),
        ],
        "1003": [
            (at(6, 19, 0), "ready"), (at(6, 19, 40), "busy"), (at(6, 19, 45), "ready"),
            (at(6, 23, 30, 7), "busy"), (at(6, 23, 35, 7), "wrap-up"),
            (at(6, 23, 35, 27), "logged-out"),
        ],
    }  # fmt: skip
    for agent, changes in states.items():
        for when, state in changes:
            h.agent_state(agent, state, at=when)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run dir whose history store holds the day above (written, then closed)."""
    run = tmp_path_factory.mktemp("run")
    history = History(run / "history.sqlite")
    _write_day(history)
    history.close()
    assert history.failed_writes == 0
    return run


@pytest.fixture
def conf(run_dir: Path, tmp_path: Path) -> Path:
    """A configuration file pointing at that run dir; tests append [reports] keys."""
    path = tmp_path / "ccserver.toml"
    path.write_text(f'[stack]\nrun_dir = "{run_dir}"\n')
    return path


def report(conf: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, dict[str, Any]]:
    """The JSON report, keyed by group."""
    assert main(["report", "--config", str(conf), *argv, "--format", "json"]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    key = argv[argv.index("--by") + 1]
    return {row[key]: row for row in rows}


def test_by_band_every_kpi_matches_the_hand_count(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = report(conf, capsys, *DAY, "--by", "band")
    assert list(rows) == ["peak", "flat", "valley", "(total)"]  # configured order, then total
    peak, flat, valley, total = rows.values()
    # peak: a2, s1, a1 (arrived 11:59:50, answered 12:00:10), a3, t1.
    assert peak == {
        "band": "peak",
        "offered": 5,
        "ivr_handled": 1,  # a3
        "ivr_abandoned": 0,
        "agent_handled": 3,  # a1, a2, t1
        "manual_share": 0.6,  # 3 / 5
        "queued": 4,  # a1, a2, s1, t1
        "answered": 3,
        "answer_rate": 0.75,  # 3 / 4
        "abandoned": 0,
        "short_abandoned": 1,  # s1 after 5 s < 10 s
        "abandon_rate": 0.0,
        "callbacks": 0,
        "callbacks_done": 0,
        "call_loss": 1,  # 5 - 3 - 1 - 0: s1
        "loss_rate": 0.2,
        "service_level": 0.6667,  # within 20 s: a1 (18), t1 (10); / (4 queued - 1 short)
        "asa_s": 22.67,  # (18 + 40 + 10) / 3
        "aht_s": 180.0,  # a1 120 + 30 wrap; a2 180; t1 60 + 30 wrap + 120 -> 540 / 3
        # logged in during 09-12 and 15-19: 1001 3 h + 2 h, 1002 3 h + 3 h = 39600 s;
        # busy/wrap in them: 1001 t1 60 + 30, 1002 a2 180 + t1 120 (a1's talk is flat time)
        "occupancy": 0.0098,  # 390 / 39600
        "transfers": 1,
        "fcr": 0.3333,  # a1 (r1 next morning) and a2 (a3) called again; t1 did not: 1 / 3
        "fcr_same": 1.0,  # a1, a2 with a code: their repeats (self-service) had none
        "csat": 4.0,  # (5 + 3 + 4) / 3
        "csat_n": 3,
        "qa": None,
        "qa_n": 0,
    }
    # flat: g1 (greeting hang-up: lost, not an abandon), l1 (60 s), cb1 (callback reached)
    assert (flat["offered"], flat["queued"], flat["answered"], flat["agent_handled"]) == (
        3, 2, 0, 1,
    )  # fmt: skip
    assert (flat["abandoned"], flat["short_abandoned"], flat["abandon_rate"]) == (1, 0, 0.5)
    assert (flat["callbacks"], flat["callbacks_done"], flat["call_loss"]) == (1, 1, 2)
    assert flat["service_level"] == 0.0  # 0 answered within 20 s / (2 - 0)
    assert flat["asa_s"] is None and flat["fcr"] is None and flat["csat"] is None
    assert flat["aht_s"] == 300.0  # cb1's talk; 1003 went straight back to ready
    # 1001 08-09 + 12-15 (14400) + 1002 the same (14400) + 1003 19-22 (10800) = 39600 s;
    # busy/wrap: 1001 a1 120 + 30, 1003 cb1 300 = 450
    assert flat["occupancy"] == round(450 / 39600, 4)
    # valley: n1, 5 s wait, 300 s talk + 20 s wrap-up; 007 called again next morning (n2)
    # about the same fault: neither first-contact resolution holds
    assert (valley["offered"], valley["service_level"], valley["asa_s"]) == (1, 1.0, 5.0)
    assert (valley["aht_s"], valley["fcr"], valley["fcr_same"]) == (320.0, 0.0, 0.0)
    # 1002 00:00-08:00 (28800, ready since the evening before) + 1003 22:00-23:35:27 (5727)
    assert valley["occupancy"] == round(320 / 34527, 4)
    assert total == {
        "band": "(total)",
        "offered": 9,  # p0 (the day before) and r1, r2 (the day after) are not in it
        "ivr_handled": 1,
        "ivr_abandoned": 0,
        "agent_handled": 5,
        "manual_share": 0.5556,  # 5 / 9
        "queued": 7,
        "answered": 4,  # a1, a2, t1, n1
        "answer_rate": 0.5714,  # 4 / 7
        "abandoned": 1,
        "short_abandoned": 1,
        "abandon_rate": 0.1429,  # 1 / 7
        "callbacks": 1,
        "callbacks_done": 1,
        "call_loss": 3,  # 9 - 4 - 1 - 1: g1, s1, l1
        "loss_rate": 0.3333,
        "service_level": 0.5,  # a1, t1, n1 within 20 s / (7 - 1)
        "asa_s": 18.25,  # (18 + 40 + 10 + 5) / 4
        "aht_s": 232.0,  # (150 + 180 + 210 + 300 + 320) / 5
        # logged in: 1001 08-17 (32400), 1002 00-18 (64800), 1003 19:00-23:35:27 (16527);
        # busy/wrap: 1001 240, 1002 300, 1003 620
        "occupancy": round(1160 / 113727, 4),
        "transfers": 1,
        "fcr": 0.25,  # a1, a2, n1 called again; t1 (outside 24 h) did not
        "fcr_same": 0.6667,  # a1, a2, n1 have a code; only n1's next call had the same
        "csat": 4.0,
        "csat_n": 3,
        "qa": None,
        "qa_n": 0,
    }


def test_by_hour_a_call_stays_in_the_hour_it_arrived(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = report(conf, capsys, *DAY, "--by", "hour")
    hours = [f"2025-01-06 {h:02d}:00" for h in range(24)]
    assert list(rows) == [*hours, "(total)"]  # empty hours are listed too
    assert sum(rows[h]["offered"] for h in hours) == 9
    eleven, noon = rows["2025-01-06 11:00"], rows["2025-01-06 12:00"]
    assert (eleven["offered"], eleven["answered"], eleven["asa_s"]) == (1, 1, 18.0)  # a1
    assert (noon["offered"], noon["abandoned"], noon["answered"]) == (1, 1, 0)  # l1
    # but a1's talk is noon's agent time: 1001 and 1002 logged in, 120 s busy + 30 s wrap
    assert noon["occupancy"] == round(150 / 7200, 4)
    assert rows["2025-01-06 03:00"]["offered"] == 0
    assert rows["2025-01-06 03:00"]["occupancy"] == 0.0  # 1002 was ready, idle


def test_by_day_spans_several_days_and_the_fcr_window_reaches_past_the_end(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = report(conf, capsys, "--from", "2025-01-05", "--to", "2025-01-08", "--by", "day")
    assert list(rows) == ["2025-01-05", "2025-01-06", "2025-01-07", "(total)"]
    assert [rows[d]["offered"] for d in rows] == [1, 9, 3, 13]
    # a1 (r1), a2 (a3) and n1 (n2) called again, t1 did not; only n2 was n1's matter again
    assert (rows["2025-01-06"]["fcr"], rows["2025-01-06"]["fcr_same"]) == (0.25, 0.6667)
    assert rows["2025-01-05"]["occupancy"] == 0.0  # 1002 ready 22:00-24:00, idle
    assert rows["2025-01-07"]["occupancy"] is None  # nobody logged in
    # Ending at 2025-01-07 10:00 still finds r1 as a1's repeat (read past the period).
    only = report(conf, capsys, "--from", "2025-01-06", "--to", "2025-01-06T12:00", "--by", "day")
    assert only["2025-01-06"]["fcr"] == 0.0  # a1, a2 both called again


def test_a_caller_leaving_the_ivr_unserved_is_call_loss_not_self_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = History(tmp_path / "history.sqlite")
    _ivr_call(history, "v1", "13800000011", at(6, 10, 0))
    arrived = at(6, 10, 5)  # pressed 9 for the main menu again, hung up 20 s later
    history.record_event("v2", "arrived", at=arrived, caller="13800000012", dnis="95598")
    history.record_event("v2", "complete", at=arrived + 40, outcome="ivr-abandoned")
    history.save_call(
        _record(
            "v2", "13800000012", arrived, ended_at=arrived + 40, outcome="ivr-abandoned",
            hangup_by="caller",
        )
    )  # fmt: skip
    history.close()
    conf = tmp_path / "ccserver.toml"
    conf.write_text(f'[stack]\nrun_dir = "{tmp_path}"\n')
    total = report(conf, capsys, *DAY, "--by", "band")["(total)"]
    assert (total["offered"], total["ivr_handled"], total["ivr_abandoned"]) == (2, 1, 1)
    assert (total["call_loss"], total["loss_rate"], total["abandoned"]) == (1, 0.5, 0)


def test_by_queue_uses_the_last_queue_and_puts_queueless_calls_apart(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = report(conf, capsys, *DAY, "--by", "queue")
    assert list(rows) == ["billing", "general", "repair", "(none)", "(total)"]
    assert [rows[q]["offered"] for q in rows] == [1, 5, 1, 2, 9]  # t1 / a1 a2 s1 cb1 n1 / l1
    assert rows["billing"]["transfers"] == 1 and rows["billing"]["asa_s"] == 10.0
    assert rows["(none)"]["ivr_handled"] == 1 and rows["(none)"]["call_loss"] == 1  # a3, g1
    assert all(rows[q]["occupancy"] is None for q in ["billing", "general", "repair", "(none)"])
    assert rows["(total)"]["occupancy"] == round(1160 / 113727, 4)


def test_by_agent_credits_the_last_agent_and_gives_each_occupancy(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = report(conf, capsys, *DAY, "--by", "agent")
    assert list(rows) == ["1001", "1002", "1003", "(none)", "(total)"]
    a, b, c, none = (rows[k] for k in ["1001", "1002", "1003", "(none)"])
    assert (a["answered"], a["aht_s"], a["occupancy"]) == (1, 150.0, round(240 / 32400, 4))
    # t1 ended with 1002: its transfer and both agents' time are there
    assert (b["answered"], b["transfers"], b["aht_s"]) == (2, 1, 195.0)  # (180 + 210) / 2
    assert b["occupancy"] == round(300 / 64800, 4)
    assert (c["answered"], c["callbacks_done"], c["agent_handled"]) == (1, 1, 2)
    assert (c["aht_s"], c["occupancy"]) == (310.0, round(620 / 16527, 4))  # (300 + 320) / 2
    assert (none["offered"], none["call_loss"], none["occupancy"]) == (4, 3, None)


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ("answered", 0.75),  # 3 within 20 s / 4 answered
        ("offered", 0.4286),  # 3 / 7 queued
        ("offered-minus-short", 0.5),  # 3 / (7 - 1 short)
    ],
)
def test_service_level_definitions(
    conf: Path, capsys: pytest.CaptureFixture[str], definition: str, expected: float
) -> None:
    conf.write_text(conf.read_text() + f'[reports]\nservice_level_definition = "{definition}"\n')
    assert report(conf, capsys, *DAY, "--by", "band")["(total)"]["service_level"] == expected


def test_short_abandon_and_service_time_settings(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf.write_text(conf.read_text() + "[reports]\nshort_abandon_s = 3\nservice_level_s = 40\n")
    total = report(conf, capsys, *DAY, "--by", "band")["(total)"]
    assert (total["abandoned"], total["short_abandoned"]) == (2, 0)  # s1's 5 s is long now
    assert total["service_level"] == 0.5714  # a1, a2 (40 s), t1, n1 / 7


def test_csv_parses_and_matches_json(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--config", str(conf), *DAY, "--by", "band", "--format", "csv"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["band"] for r in parsed] == ["peak", "flat", "valley", "(total)"]
    assert list(parsed[0]) == ["band", *reports.COLUMNS]
    assert parsed[3]["offered"] == "9" and parsed[3]["asa_s"] == "18.25"
    assert parsed[1]["asa_s"] == ""  # not computable: an empty cell


def test_table_is_aligned_with_a_total_and_marks_a_missed_service_level(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--config", str(conf), *DAY, "--by", "band"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("calls arriving 2025-01-06 00:00 to 2025-01-07 00:00 (Asia/Shanghai)")
    blocks = out.split("\n\n")
    for block in blocks[1:3]:  # volumes, then service
        lines = block.splitlines()
        assert lines[0].split()[0] == "band" and lines[-1].startswith("(total)")
        assert len({len(line) for line in lines}) == 1  # every line as wide: aligned
    service = blocks[2].splitlines()
    peak = service[1].split()
    assert peak[0] == "peak" and peak[3] == "66.7%!"  # SL below the 80 % target
    assert service[3].split()[3] == "100.0%"  # valley meets it
    assert "SL = answered within 20 s / (queued − short), ! below the 80% target" in out


def test_an_empty_period_says_no_calls(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = ["--from", "2024-06-01", "--to", "2024-06-02"]
    assert main(["report", "--config", str(conf), *empty]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no calls arrived from 2024-06-01 00:00 to 2024-06-02 00:00")
    assert report(conf, capsys, *empty, "--by", "band") == {}
    assert main(["report", "--config", str(conf), *empty, "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [",".join(["band", *reports.COLUMNS])]
    assert "no calls arrived" in captured.err


def test_naive_times_are_in_the_center_zone(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aware = ["--from", "2025-01-05T16:00:00+00:00", "--to", "2025-01-06T16:00Z"]
    assert report(conf, capsys, *aware, "--by", "day") == report(conf, capsys, *DAY, "--by", "day")


@pytest.mark.parametrize(
    ("argv", "code", "slug"),
    [
        (["--from", "2025-01-07", "--to", "2025-01-06"], 2, "report-range-invalid"),
        (["--from", "2025-01-06", "--to", "2025-01-06"], 2, "report-range-invalid"),
        (["--from", "yesterday", "--to", "2025-01-06"], 2, "report-date-invalid"),
        ([*DAY, "--db", "/nonexistent/history.sqlite"], 1, "history-missing"),
    ],
)
def test_bad_input_is_one_line_with_a_slug(
    conf: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, slug: str
) -> None:
    assert main(["report", "--config", str(conf), *argv]) == code
    err = capsys.readouterr().err
    assert err.startswith(f"error[{slug}]: ") and err.count("\n") == 1


def test_a_file_that_is_not_a_history_store(
    conf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("not a database\n")
    assert main(["report", "--config", str(conf), *DAY, "--db", str(bogus)]) == 1
    assert capsys.readouterr().err.startswith("error[history-unavailable]: ")


def test_bands_must_cover_the_day_once_and_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    for bands, problem in [
        ('peak = ["09:00-13:00"]', "12:00 is in both band 'peak' and 'flat'"),
        ('valley = ["23:00-08:00"]', "no band covers 22:00-23:00"),
        ('peak = ["9:00-12:00"]', "'9:00-12:00' is not a range HH:MM-HH:MM"),
        ('flat = ["08:00-08:00"]', "empty or ambiguous"),
    ]:
        path.write_text(f"[reports.bands]\n{bands}\n")
        with pytest.raises(ConfigError, match=r"reports\.bands") as caught:
            config.load(path, environ={})
        assert problem in caught.value.message


def test_bands_are_renamed_by_emptying_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[reports.bands]\npeak = []\nflat = []\nvalley = []\nday = ["08:00-20:00"]\n'
        'night = ["20:00-08:00"]\n'
    )
    settings = config.load(path, environ={}).reports
    assert list(settings.bands) == ["day", "night"]
    minute_bands = settings.minute_bands()
    assert minute_bands[8 * 60] == "day" and minute_bands[7 * 60 + 59] == "night"


def test_clock_cuts_agent_time_at_band_boundaries() -> None:
    clock = reports.Clock("band", ZONE, config.ReportsConfig().minute_bands())
    assert clock.key(at(6, 11, 59, 50)) == "peak" and clock.key(at(6, 12, 0, 10)) == "flat"
    assert clock.next_boundary(at(6, 11, 59, 50)) == at(6, 12, 0)
    assert clock.next_boundary(at(6, 22, 30)) == at(7, 8, 0)  # valley crosses midnight
    assert list(clock.split(at(6, 11, 59, 50), at(6, 12, 0, 30))) == [
        ("peak", 10.0),
        ("flat", 30.0),
    ]
