"""Overflow at max wait: a call no agent of its queue can take moves, after the queue's
max wait, to the overflow queue — keeping its original arrival — and is answered there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import LiveStack, start_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    acd = {
        "queues": [
            {
                "name": "general",
                "skills": {"general": 1},
                "max_wait_s": 2.0,
                "on_max_wait": "overflow",
                "overflow_to": "billing",
            },
            {"name": "billing", "skills": {"billing": 1}, "wrap_up_s": 0.0},
        ],
        "announce_every_s": 0.0,
        "agents": [{"id": "1001", "skills": {"billing": 4}, "phone": "1001", "auto_login": True}],
    }
    yield from start_stack(tmp_path_factory.mktemp("overflow"), {"answer": ["1001"]}, acd=acd)


def test_a_call_overflows_at_max_wait_and_keeps_its_arrival(live: LiveStack) -> None:
    (record,) = live.place_calls(1, talk_ms=500)
    assert (record["queue"], record["overflowed_from"]) == ("billing", ["general"])
    assert record["agent"] == "1001" and record["outcome"] == "completed"
    assert record["connected_at"] - record["queued_at"] >= 2.0  # waited out the max wait
    kinds = [e["kind"] for e in live.events(record["id"])]
    assert kinds.index("enter") < kinds.index("overflow") < kinds.index("connect")
    overflow = next(e for e in live.events(record["id"]) if e["kind"] == "overflow")
    assert (overflow["source"], overflow["target"]) == ("general", "billing")
