"""An agent whose phone rings and is never answered is skipped: the call goes to another."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
