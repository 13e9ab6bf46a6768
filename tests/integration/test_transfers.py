"""Transfers on the real stack: a phone's own blind transfer (SIP REFER, which the
controller owns with ari-only transfer handling), and attended transfers from the API, both
completed and cancelled. Every transferred caller keeps its original arrival time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ccserver.stack.procs import wait_until
from tests.integration.conftest import LiveStack, start_stack

pytestmark = pytest.mark.integration

ACD = {
    "queues": [
        {"name": "general", "skills": {"general": 1}, "wrap_up_s": 0.0},
        {"name": "billing", "skills": {"billing": 1}, "wrap_up_s": 0.0},
    ],
    "entry": {"95599": "billing"},
    "announce_every_s": 0.0,
    "agents": [
        {"id": "1001", "skills": {"general": 5}, "phone": "2001", "auto_login": True},
        {"id": "1002", "skills": {"billing": 5}, "phone": "2002", "auto_login": True},
        {"id": "1003", "skills": {"billing": 3}, "phone": "2003", "auto_login": True},
    ],
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from start_stack(
        tmp_path_factory.mktemp("transfers"),
        {"refer": ["2001"], "answer": ["2002", "2003"]},
        acd=ACD,
        hotline=["95598", "95599"],
    )


def test_a_phone_transfers_its_call_to_a_queue_by_refer(live: LiveStack) -> None:
    run = live.next_run()
    with_refer = live.agents("refer", talk_ms=2000, refer_to="billing").start()
    answering = live.agents("answer", talk_ms=3000).start()
    try:
        stats = live.caller(run, calls=1).start().wait(timeout=60)
    finally:
        refer_stats = with_refer.stop()
        answering.stop()
    assert (stats.successful, stats.failed) == (1, 0), live.stack.run_dir
    assert (refer_stats.successful, refer_stats.failed) == (1, 0), with_refer.errors()
    (record,) = live.records(run, expected=1)
    assert record["outcome"] == "completed" and record["queue"] == "billing"
    assert record["agent"] in ("1002", "1003")
    events = live.events(record["id"])
    (moved,) = [e for e in events if e["kind"] == "transfer"]
    assert (moved["source"], moved["target"], moved["mode"]) == ("1001", "billing", "blind")
    assert moved["by"] == "agent:1001"
    assert [e["agent"] for e in events if e["kind"] == "connect"] == ["1001", record["agent"]]


def test_an_attended_transfer_consults_then_completes_when_the_agent_hangs_up(
    live: LiveStack,
) -> None:
    run = live.next_run()
    phones = live.agents("answer", talk_ms=6000).start()
    try:
        caller = live.caller(run, calls=1, service="95599").start()
        call = _one_call(live, "connected")
        source = str(call["agent"])
        target = "1003" if source == "1002" else "1002"
        status, moved = live.api(
            "POST",
            f"/calls/{call['id']}/transfer",
            {"agent": target, "mode": "attended"},
            token=f"agent:{source}",
        )
        assert status == 200 and moved["consult"]["agent"] == source, moved
        consulting = _one_call(live, "consulting")
        assert consulting["agent"] == target
        stats = caller.wait(timeout=60)
    finally:
        phones.stop()
    assert (stats.successful, stats.failed) == (1, 0)
    (record,) = live.records(run, expected=1)
    assert (record["agent"], record["outcome"]) == (target, "completed")
    assert record["arrived_at"] == call["arrived_at"]
    events = live.events(record["id"])
    kinds = [e["kind"] for e in events]
    assert kinds.index("transfer") < kinds.index("consult") < len(kinds) - 1
    joined = [e for e in events if e["kind"] == "connect"][-1]
    assert (joined["agent"], joined["transfer_from"]) == (target, source)


def test_an_attended_transfer_nobody_answers_returns_the_caller_to_its_queue(
    live: LiveStack,
) -> None:
    # General's only agent (1001) is on the "refer" phone, which nobody runs here: its leg
    # fails, RONA, and the consult is cancelled.
    assert wait_until(lambda: live.agent("1001")["state"] == "ready", 10)
    run = live.next_run()
    phones = live.agents("answer", talk_ms=8000).start()
    try:
        caller = live.caller(run, calls=1, service="95599").start()
        call = _one_call(live, "connected")
        status, moved = live.api(
            "POST",
            f"/calls/{call['id']}/transfer",
            {"queue": "general", "mode": "attended"},
            token="supervisor",
        )
        assert status == 200, moved
        stats = caller.wait(timeout=60)
    finally:
        phones.stop()
    assert (stats.successful, stats.failed) == (1, 0)
    (record,) = live.records(run, expected=1)
    assert record["outcome"] == "completed" and record["queue"] == "billing"
    assert record["arrived_at"] == call["arrived_at"]
    events = live.events(record["id"])
    (cancelled,) = [e for e in events if e["kind"] == "transfer_cancelled"]
    assert (cancelled["target"], cancelled["queue"]) == ("1001", "billing")
    assert [e["kind"] for e in events].count("connect") == 2
    assert live.agent("1001")["reason"] == "RONA"
    status, _ = live.api("POST", "/agents/1001/state", {"action": "ready"}, token="supervisor")
    assert status == 200


def _one_call(live: LiveStack, state: str) -> dict[str, Any]:
    def found() -> list[dict[str, Any]]:
        status, calls = live.api("GET", "/calls", token="supervisor")
        assert status == 200
        return [c for c in calls if c["state"] == state]

    assert wait_until(lambda: len(found()) == 1, 15), f"no call {state}"
    (call,) = found()
    return call
