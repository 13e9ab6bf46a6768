"""Quality inspection on a real history file: the shipped 95598 form scores as its source
says (a deduction comes off its own section, never below 0), sampling fills the
inspectors' queue as the rules say, an agent disputes a score once, and `ccserver report
--by agent` gains the QA average; two contacts linked to one work order are "the same
matter" for FCR."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ccserver.cli import main
from ccserver.errors import CCServerError
from ccserver.history import History
from ccserver.records import Records
from ccserver.records.qa import SamplingRules, load_form, pick
from tests.records import ZONE, records_of
from tests.unit.test_reports import _answered_call

MONDAY = dt.datetime(2025, 1, 6, 9, 0, tzinfo=ZONE).timestamp()


def test_the_shipped_form_is_the_95598_form_of_the_source_documents() -> None:
    form = load_form()
    assert [(s.id, s.points) for s in form.sections] == [
        ("accuracy", 20),
        ("voice", 10),
        ("phrases", 10),
        ("attitude", 23),
    ]
    assert form.max_points == 63
    phrases = form.sections[2]
    assert [(d.id, d.points) for d in phrases.deductions] == [
        ("forbidden", 2),
        ("casual", 2),
        ("colloquial", 2),
    ]


def test_a_deduction_comes_off_its_own_section_and_never_below_zero() -> None:
    form = load_form()
    every_phrase = [f"phrases.{i.id}" for i in form.sections[2].items]
    every_voice = [f"voice.{i.id}" for i in form.sections[1].items]
    sheet = form.score(
        [*every_phrase, *every_voice, "accuracy.correct", "accuracy.complete"],
        ["phrases.forbidden"],
    )
    points = {s["id"]: s["points"] for s in sheet["sections"]}
    assert points == {"accuracy": 13, "voice": 10, "phrases": 8, "attitude": 0}
    assert (sheet["total"], sheet["max"]) == (31, 63)
    twice = form.score(["phrases.thanks"], ["phrases.forbidden", "phrases.forbidden"])
    assert twice["sections"][2] | {} == {
        "id": "phrases",
        "title": "服务用语",
        "max": 10,
        "earned": 1,
        "deducted": 4,
        "points": 0,
    }
    with pytest.raises(CCServerError) as unknown:
        form.score(["phrases.smile", "voice.clear"], ["voice.clear"])
    assert unknown.value.slug == "input-invalid"
    assert "phrases.smile, voice.clear" in unknown.value.message


def test_a_broken_form_file_is_refused_with_its_path_and_problem(tmp_path: Path) -> None:
    broken = tmp_path / "form.yaml"
    broken.write_text("form: x\ntitle: t\nsections:\n  - {id: a, title: A, points: 5, items: []}\n")
    with pytest.raises(CCServerError) as refused:
        load_form(broken)
    assert refused.value.slug == "qa-form-invalid"
    assert str(broken) in refused.value.message and "items" in refused.value.message


@pytest.fixture
async def recorded(tmp_path: Path) -> AsyncIterator[tuple[History, Records]]:
    """20 recorded calls of agents 1001 and 1002 in one week, and one unrecorded."""
    history = History(tmp_path / "history.sqlite")
    for n in range(20):
        start = MONDAY + n * 3600
        agent = "1001" if n % 2 else "1002"
        _answered_call(
            history,
            f"r{n:02d}",
            f"1380000{n:04d}",
            (start, start + 5, start + 10, start + 100),
            agent,
        )
    _answered_call(
        history, "plain", "13900000000", (MONDAY, MONDAY + 1, MONDAY + 2, MONDAY + 9), "1001"
    )
    await history.flush()
    changes: dict[str, dict[str, Any]] = {
        "r00": {"queue": "complaints"},
        "r01": {"queue": "complaints"},
        "r02": {"survey_score": 1},
        "r03": {"connected_at": MONDAY + 3 * 3600 + 10, "ended_at": MONDAY + 3 * 3600 + 900},
    }
    for n in range(20):
        call_id = f"r{n:02d}"
        change = {"recording": f"/rec/{call_id}.wav", **changes.get(call_id, {})}
        history.save_call(_patched(history, call_id, change))
    await history.flush()
    yield history, records_of(history, rules=SamplingRules(random_pct=0.0))
    history.close()


def _patched(history: History, call_id: str, change: dict[str, Any]) -> dict[str, Any]:
    record = history.call(call_id)
    assert record is not None
    return {**record["record"], **change}


async def test_sampling_fills_the_inspectors_queue_as_the_rules_say(
    recorded: tuple[History, Records],
) -> None:
    _, records = recorded
    assert records.qa.sample(MONDAY - 1) == 4  # complaints ×2, csat, long; weekly: none
    rules = {row["call_id"]: row["rule"] for row in records.qa.queue()}
    assert rules == {"r00": "queue", "r01": "queue", "r02": "csat", "r03": "long"}
    assert "plain" not in rules  # not recorded: nothing to listen to
    assert records.qa.sample(MONDAY - 1) == 0  # sampling again adds nothing


def test_with_no_other_rule_each_agents_week_still_gets_one_call() -> None:
    off = SamplingRules(queues=(), csat_at_most=None, longer_than_s=None, random_pct=0.0)
    week = 7 * 86400
    calls = [
        {"call_id": f"w{n}-{agent}-{later}", "agent": agent, "queue": "general",
         "survey_score": None, "talk_s": 60.0, "arrived_at": MONDAY + n * 3600 + later}
        for n in range(5) for agent in ("1001", "1002") for later in (0, week)
    ]  # fmt: skip
    picked = pick(calls, off, ZONE)
    assert sorted(picked.values()) == ["weekly"] * 4  # 2 agents × 2 weeks
    assert pick(calls, off, ZONE) == picked  # the same draw every time


async def test_a_fifth_of_calls_are_drawn_the_same_way_every_time(tmp_path: Path) -> None:
    history = History(tmp_path / "history.sqlite")
    try:
        for n in range(200):
            start = MONDAY + n * 60
            _answered_call(
                history,
                f"d{n:03d}",
                "13800000000",
                (start, start + 1, start + 2, start + 30),
                "1001",
            )
        await history.flush()
        for n in range(200):
            history.save_call(_patched(history, f"d{n:03d}", {"recording": "/rec/x.wav"}))
        await history.flush()
        rules = SamplingRules(queues=(), csat_at_most=None, longer_than_s=None, random_pct=20.0)
        records = records_of(history, rules=rules)
        added = records.qa.sample(MONDAY - 1)
        assert 25 <= added <= 55  # about 40 of 200
        assert {row["rule"] for row in records.qa.queue(limit=1000)} == {"random"}
    finally:
        history.close()


async def test_a_score_counts_in_the_report_by_agent_and_is_disputed_once(
    recorded: tuple[History, Records], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history, records = recorded
    records.qa.sample(MONDAY - 1)
    form = records.qa.form
    every = [f"{s.id}.{i.id}" for s in form.sections for i in s.items]
    first = records.qa.score(
        "r00",
        inspector="qa:zhang",
        ticked=every,
        deducted=["phrases.forbidden"],
        comment="禁语一次",
    )
    assert (first["agent"], first["total"], first["max_points"]) == ("1002", 61, 63)
    second = records.qa.score("r02", inspector="qa:zhang", ticked=[], deducted=[])
    assert second["total"] == 0
    assert [row["call_id"] for row in records.qa.queue(scored=True)] == ["r00", "r02"]
    with pytest.raises(CCServerError) as nobody:
        records.qa.score("plain-x", inspector="qa:zhang", ticked=[], deducted=[])
    assert nobody.value.slug == "call-unknown"

    with pytest.raises(CCServerError) as other:
        records.qa.dispute(first["id"], agent="1001", reason="not mine")
    assert other.value.slug == "forbidden"
    disputed = records.qa.dispute(first["id"], agent="1002", reason="我没有说禁语")
    assert disputed["dispute"] == "我没有说禁语" and disputed["disputed_at"] is not None
    with pytest.raises(CCServerError) as again:
        records.qa.dispute(first["id"], agent="1002", reason="again")
    assert (again.value.slug, again.value.status) == ("dispute-exists", 409)
    assert [s["id"] for s in records.qa.scores(agent="1002")] == [second["id"], first["id"]]

    await history.flush()
    db = str(history.path)
    code = main(
        [
            "report",
            "--from",
            "2025-01-06",
            "--to",
            "2025-01-08",
            "--by",
            "agent",
            "--format",
            "json",
            "--db",
            db,
        ]
    )
    rows = {row["agent"]: row for row in json.loads(capsys.readouterr().out)}
    assert code == 0
    assert (rows["1002"]["qa"], rows["1002"]["qa_n"]) == (round(61 / 63 / 2, 4), 2)
    assert (rows["1001"]["qa"], rows["1001"]["qa_n"]) == (None, 0)


async def test_two_contacts_linked_to_one_work_order_are_the_same_matter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = History(tmp_path / "history.sqlite")
    try:
        a, b = MONDAY, MONDAY + 3600  # the same caller, an hour apart, no disposition
        _answered_call(history, "first", "13800000001", (a, a + 1, a + 5, a + 60), "1001")
        _answered_call(history, "again", "13800000001", (b, b + 1, b + 5, b + 60), "1002")
        await history.flush()
        records = records_of(history)
        order = records.orders.open("fault", who="ivr", call_id="first")
        records.orders.link_call(order.id, "again", who="agent:1002")
        code = main(
            [
                "report",
                "--from",
                "2025-01-06",
                "--to",
                "2025-01-07",
                "--by",
                "agent",
                "--format",
                "json",
                "--db",
                str(history.path),
            ]
        )
        rows = {row["agent"]: row for row in json.loads(capsys.readouterr().out)}
        assert code == 0
        assert (rows["1001"]["fcr"], rows["1001"]["fcr_same"]) == (
            0.0,
            0.0,
        )  # called again, same matter
        assert rows["1002"]["fcr_same"] == 1.0
    finally:
        history.close()
