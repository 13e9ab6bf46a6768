"""An agent whose phone rings and is never answered is skipped: the call goes to another."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ccserver.stack.procs import wait_until
from tests.integration.conftest import LiveStack, start_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    # 1001 is the longest idle (ties go to the lowest id) and its phone never answers.
    yield from start_stack(
        tmp_path_factory.mktemp("rona"),
        {"silent": ["1001"], "answer": ["1002"]},
        ring_timeout_s=3,
        rona_cooldown_s=60,
    )


def test_an_unanswered_agent_is_skipped_and_the_call_goes_to_another(live: LiveStack) -> None:
    (record,) = live.place_calls(1, talk_ms=1000, silent="silent")
    assert [(a["agent"], a["result"]) for a in record["attempts"]] == [
        ("1001", "no-answer"),
        ("1002", "answered"),
    ]
    assert record["outcome"] == "completed"
    # The ring timeout passed before the second agent was tried.
    assert record["attempts"][1]["at"] - record["attempts"][0]["at"] >= 3.0
    kinds = [e["kind"] for e in live.events(record["id"])]
    assert "rona" in kinds


def test_the_unanswered_agent_rests_and_others_take_the_next_calls(live: LiveStack) -> None:
    records = live.place_calls(2, talk_ms=500, rate=1, limit=1)
    # 1001 is resting after its missed call: nobody rings it again within the cool-down.
    assert [[a["agent"] for a in r["attempts"]] for r in records] == [["1002"], ["1002"]]


def test_a_call_whose_agent_did_not_answer_keeps_its_place_ahead_of_later_callers(
    live: LiveStack,
) -> None:
    # 1002 talks to a first caller; 1001 (whose phone never answers) is the only one ready
    # when A arrives, so A rings it; B arrives while A rings. After RONA, A is back at the
    # head of the queue: when 1002 is free it takes A, then B.
    status, _ = live.api("POST", "/agents/1001/state", {"action": "not-ready", "reason": "break"})
    assert status == 200
    answering = live.agents("answer", talk_ms=6000).start()
    silent = live.agents("silent", talk_ms=0, answer=False).start()
    try:
        first_run, later_run = live.next_run(), live.next_run()
        first = live.caller(first_run, calls=1).start()
        assert wait_until(lambda: live.agent("1002")["state"] == "busy", 10)
        status, _ = live.api("POST", "/agents/1001/state", {"action": "ready"})
        assert status == 200
        later = live.caller(later_run, calls=2, rate=1, limit=2).start()
        stats = [first.wait(timeout=60), later.wait(timeout=60)]
    finally:
        answering.stop()
        silent.stop()
    assert [(s.successful, s.failed) for s in stats] == [(1, 0), (2, 0)]
    a, b = live.records(later_run, expected=2)
    assert a["arrived_at"] < b["arrived_at"]
    assert [(x["agent"], x["result"]) for x in a["attempts"]] == [
        ("1001", "no-answer"),
        ("1002", "answered"),
    ]
    assert [x["agent"] for x in b["attempts"]] == ["1002"]
    assert a["connected_at"] < b["connected_at"]
