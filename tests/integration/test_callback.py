"""A callback keeps the caller's place: the caller presses 1 after the queue's max wait,
hangs up, and is called back when their turn comes — the agent's phone first, then the
customer's — before a caller who came later and stayed on the line. A callback offered by
an IVR flow (number 95511 here) is kept from the key press on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ccserver.loadtest import sipp
from ccserver.stack.procs import wait_until
from tests.integration.conftest import LiveStack, free_port, start_stack

pytestmark = pytest.mark.integration
CUSTOMER_PORT = free_port()
CALLBACK_FLOW = """\
flow: callback-first
numbers: ["95511"]
language: zh
start: offer
nodes:
  offer:
    kind: callback_offer
    prompt: {text: 需要回电请按1}
    queue: general
    confirm_prompt: {text: 好的，我们会按您的来电号码尽快给您回电，请您挂机等候，感谢您的来电。}
    next: agent
  agent:
    kind: queue
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    acd = {
        "queues": [
            {
                "name": "general",
                "skills": {"general": 1},
                "wrap_up_s": 0.0,
                "max_wait_s": 3.0,
                "on_max_wait": "callback",
            }
        ],
        "announce_every_s": 0.0,
        "callback_endpoint": f"PJSIP/callers/sip:{{number}}@127.0.0.1:{CUSTOMER_PORT}",
    }
    tmp = tmp_path_factory.mktemp("callback")
    (tmp / "flows").mkdir()
    (tmp / "flows" / "callback.yaml").write_text(CALLBACK_FLOW, encoding="utf-8")
    yield from start_stack(
        tmp,
        {"answer": ["1001"]},
        acd=acd,
        hotline=["95598", "95511"],
        ivr={"flows_dir": str(tmp / "flows")},
    )


def test_a_callback_keeps_its_place_and_dials_the_agent_first(live: LiveStack) -> None:
    first, second, third = live.next_run(), live.next_run(), live.next_run()
    agent = live.agents("answer", talk_ms=8000).start()
    customer = sipp.agents(
        live.work, port=CUSTOMER_PORT, media_port=free_port(), talk_ms=2000, name="customer"
    ).start()
    try:
        busy = live.caller(first, calls=1).start()  # keeps the only agent busy for 8 s
        assert wait_until(lambda: live.agent("1001")["state"] == "busy", 15)
        # Waits, hears the offer after 3 s of queue, presses 1, confirms the number with 1.
        asks = live.caller_keys(second, [6000, "1", 1200, "1"]).start()
        assert wait_until(lambda: live.stack.controller_health()["waiting"] == 1, 15)
        later = live.caller(third, calls=1).start()  # came later, stays on the line
        results = [p.wait(timeout=90) for p in (busy, asks, later)]
    finally:
        agent.stop()
        customer.stop()
    assert [(r.successful, r.failed) for r in results] == [(1, 0)] * 3
    (asked,) = live.records(second, expected=1, timeout=30)
    (stayed,) = live.records(third, expected=1, timeout=30)
    assert asked["outcome"] == "completed" and asked["agent"] == "1001"
    callback = asked["callback"]
    assert callback["number"] == asked["caller"]
    assert [a["result"] for a in callback["attempts"]] == ["answered"]
    # The agent's phone rang (and answered) before the customer was dialled.
    assert asked["attempts"][-1]["at"] < callback["attempts"][0]["at"]
    # Its place was kept: served before the caller who arrived after it and waited on.
    assert asked["arrived_at"] < stayed["arrived_at"]
    assert callback["attempts"][0]["at"] < stayed["attempts"][0]["at"]
    kinds = [e["kind"] for e in live.events(asked["id"])]
    assert kinds.index("callback") < kinds.index("callback_dial") < kinds.index("connect")


def test_an_ivr_callback_is_kept_when_the_caller_hangs_up_during_the_confirmation(
    live: LiveStack,
) -> None:
    # Presses 1 as the offer plays, and hangs up a second into the 5 s confirmation: the
    # callback was taken at the key press, so the caller's hang-up is not an abandon.
    run = live.next_run()
    agent = live.agents("answer", talk_ms=2000).start()
    customer = sipp.agents(
        live.work, port=CUSTOMER_PORT, media_port=free_port(), talk_ms=2000, name="customer"
    ).start()
    try:
        stats = live.caller_keys(run, [800, "1", 1000, sipp.HANG_UP], dial="95511").start()
        result = stats.wait(timeout=60)
        (record,) = live.records(run, expected=1, timeout=30)
    finally:
        agent.stop()
        customer.stop()
    assert (result.successful, result.failed) == (1, 0)
    assert (record["outcome"], record["agent"], record["queue"]) == ("completed", "1001", "general")
    assert [a["result"] for a in record["callback"]["attempts"]] == ["answered"]
    route = record["ivr_route"]
    assert (route["outcome"], route["callback"]) == (
        "callback",
        {"queue": "general", "number": record["caller"]},
    )
