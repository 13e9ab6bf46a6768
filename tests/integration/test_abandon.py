"""A caller who hangs up before an agent answers: the call is closed as abandoned, the
agent's ringing phone is released, and the agent is offered the next call at once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ccserver.stack.procs import wait_until
from tests.integration.conftest import LiveStack, start_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from start_stack(
        tmp_path_factory.mktemp("abandon"), {"answer": ["1001"]}, ring_timeout_s=20
    )


def test_a_caller_hanging_up_while_the_agent_rings_frees_the_agent(live: LiveStack) -> None:
    run = live.next_run()
    ringing = live.agents("answer", talk_ms=1000, answer=False).start()  # rings, never answers
    try:
        stats = live.caller(run, calls=1, abandon_after_ms=4000).start().wait(timeout=60)
    finally:
        ringing.stop()
    assert (stats.successful, stats.failed) == (1, 0)
    (record,) = live.records(run, expected=1)
    assert record["outcome"] == "abandoned" and record["hangup_by"] == "caller"
    assert [(a["agent"], a["result"]) for a in record["attempts"]] == [("1001", "caller-gone")]
    assert record["connected_at"] is None
    assert wait_until(
        lambda: (
            live.stack.controller_health()["agents"]["ready"] == 1
            and live.stack.controller_health()["waiting"] == 0
        ),
        5,
    )
    # Not treated as the agent's fault: the next caller reaches the same agent at once.
    (record,) = live.place_calls(1, talk_ms=500)
    assert [(a["agent"], a["result"]) for a in record["attempts"]] == [("1001", "answered")]


def test_a_caller_hanging_up_mid_talk_ends_the_call_and_frees_the_agent(live: LiveStack) -> None:
    run = live.next_run()
    talking = live.agents("answer", talk_ms=30000).start()  # the agent would talk on
    try:
        stats = live.caller(run, calls=1, abandon_after_ms=4000).start().wait(timeout=60)
    finally:
        talking.stop()
    assert (stats.successful, stats.failed) == (1, 0)
    (record,) = live.records(run, expected=1)
    assert record["outcome"] == "completed" and record["hangup_by"] == "caller"
    assert record["connected_at"] is not None
    assert record["ended_at"] - record["connected_at"] < 10
    assert wait_until(lambda: live.stack.controller_health()["agents"]["ready"] == 1, 5)
