"""Priority and recording: a repair call (priority 10) overtakes general calls that came
before it, and its queue records the conversation into the run dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ccserver.stack.procs import wait_until
from tests.integration.conftest import LiveStack, start_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    acd = {
        "queues": [
            {"name": "general", "skills": {"general": 1}, "wrap_up_s": 0.0},
            {
                "name": "repair",
                "skills": {"general": 1},
                "priority": 10,
                "wrap_up_s": 0.0,
                "record": True,
            },
        ],
        "entry": {"95597": "repair"},
        "announce_every_s": 60.0,  # on entry only
    }
    yield from start_stack(
        tmp_path_factory.mktemp("priority"),
        {"answer": ["1001"]},
        acd=acd,
        hotline=["95598", "95597"],
    )


def test_a_priority_call_overtakes_earlier_calls_and_is_recorded(live: LiveStack) -> None:
    busy, general, repair = live.next_run(), live.next_run(), live.next_run()
    agent = live.agents("answer", talk_ms=4000).start()
    try:
        first = live.caller(busy, calls=1).start()  # the only agent talks to this one
        assert wait_until(lambda: live.agent("1001")["state"] == "busy", 15)
        waits = live.caller(general, calls=1).start()
        assert wait_until(lambda: live.stack.controller_health()["waiting"] == 1, 15)
        urgent = live.caller(repair, calls=1, service="95597").start()
        results = [p.wait(timeout=60) for p in (first, waits, urgent)]
    finally:
        agent.stop()
    assert [(r.successful, r.failed) for r in results] == [(1, 0)] * 3
    (g,) = live.records(general, expected=1)
    (r,) = live.records(repair, expected=1)
    assert (g["queue"], g["priority"], r["queue"], r["priority"]) == ("general", 0, "repair", 10)
    assert r["arrived_at"] > g["arrived_at"] and r["connected_at"] < g["connected_at"]
    assert g["recording"] is None
    # While it waited, the general caller heard its place and expected wait on entry.
    (announce,) = [e for e in live.events(g["id"]) if e["kind"] == "announce"]
    assert announce["position"] == "1" and float(announce["ewt_s"]) > 0
    assert r["recording"] is not None and Path(r["recording"]).stat().st_size > 1000


def test_a_finished_call_is_in_the_history_with_its_events_and_decision(live: LiveStack) -> None:
    (record,) = live.place_calls(1, talk_ms=500, service="95597")
    status, call = live.api("GET", f"/calls/{record['id']}", token="supervisor")
    assert status == 200, call
    assert call["outcome"] == "completed" and call["decision"]["strategy"] == "longest-idle"
    kinds = [e["kind"] for e in call["events"]]
    assert kinds[:2] == ["arrived", "enter"] and "connect" in kinds and kinds[-1] == "complete"
    status, own = live.api("GET", f"/calls/{record['id']}", token=f"agent:{call['agent']}")
    assert status == 200 and own["id"] == record["id"]
