"""Agents' lives on the real stack: feature codes typed on a phone (RFC 2833 by SIPp), the
REST API, skill routing across queues, relaxation, and wrap-up holding the agent."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ccserver.stack.procs import wait_until
from tests.integration.conftest import LiveStack, start_stack

pytestmark = pytest.mark.integration

ACD = {
    "queues": [
        {"name": "general", "skills": {"general": 1}, "wrap_up_s": 0.0},
        {
            "name": "billing",
            "skills": {"billing": 5},
            "wrap_up_s": 3.0,
            "relaxation": [{"after_s": 4.0, "add": [{"general": 3}]}],
        },
    ],
    "entry": {"95599": "billing"},
    "announce_every_s": 0.0,
    "agents": [
        {"id": "1001", "skills": {"general": 5}, "phone": "2001"},
        {"id": "1002", "skills": {"billing": 8, "general": 2}, "phone": "2002", "auto_login": True},
        {"id": "1003", "skills": {"general": 3, "billing": 3}, "phone": "2003", "auto_login": True},
    ],
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from start_stack(
        tmp_path_factory.mktemp("agents"),
        {"answer": ["2001", "2002", "2003"]},
        acd=ACD,
        hotline=["95598", "95599"],
    )


def test_feature_codes_log_in_pause_resume_and_log_out_by_keypad(live: LiveStack) -> None:
    pin = live.secrets().agent_pins["1001"]
    assert live.agent("1001")["state"] == "logged-out"
    # *11, then the agent number and the PIN, each ended by #, typed after the prompts.
    live.press("2001", "*11", [2500, "1001#", 2500, pin + "#", 1000])
    agent = live.agent("1001")
    assert (agent["state"], agent["phone"]) == ("ready", "2001")
    live.press("2001", "*13", [2500, "1", 1000])
    agent = live.agent("1001")
    assert (agent["state"], agent["reason"]) == ("not-ready", "break")
    live.press("2001", "*14", [1500])
    assert wait_until(lambda: live.agent("1001")["state"] == "ready", 5)
    live.press("2001", "*12", [1500])
    assert live.agent("1001")["state"] == "logged-out"
    kinds = [e["kind"] for e in _agent_events(live, "1001")]
    assert kinds == ["agent-login", "agent-not-ready", "agent-ready", "agent-logout"]


def test_a_wrong_pin_is_refused_and_the_agent_stays_logged_out(live: LiveStack) -> None:
    wrong = f"{(int(live.secrets().agent_pins['1001']) + 1) % 10**6:06d}"
    live.press("2001", "*111001*" + wrong, [1500])  # agent and PIN dialled at once
    assert live.agent("1001")["state"] == "logged-out"


def test_the_api_changes_agent_states_with_roles_enforced(live: LiveStack) -> None:
    status, body = live.api("POST", "/agents/1001/state", {"action": "login"}, token="agent:1002")
    assert (status, body["error"]) == (403, "forbidden")
    status, body = live.api("POST", "/agents/1001/state", {"action": "login", "phone": "2001"})
    assert (status, body["state"]) == (200, "ready")
    status, body = live.api("POST", "/agents/1001/state", {"action": "login", "phone": "2001"})
    assert (status, body["error"]) == (409, "agent-logged-in")
    status, body = live.api(
        "POST", "/agents/1001/state", {"action": "not-ready", "reason": "meeting"}
    )
    assert (status, body["state"], body["reason"]) == (200, "not-ready", "meeting")
    status, body = live.api("POST", "/agents/1001/state", {"action": "logout"})
    assert (status, body["state"]) == (200, "logged-out")


def test_skill_routing_gives_billing_calls_to_the_billing_agent(live: LiveStack) -> None:
    records = live.place_calls(2, talk_ms=500, rate=1, limit=1, service="95599")
    assert [r["queue"] for r in records] == ["billing", "billing"]
    assert [r["agent"] for r in records] == ["1002", "1002"]  # 1003's billing 3 is below 5
    assert records[0]["decision"]["group"] == 0 and records[0]["decision"]["step"] == 0
    general = live.place_calls(1, talk_ms=500, service="95598")
    assert general[0]["queue"] == "general" and general[0]["agent"] == "1003"


def test_wrap_up_holds_the_agent_for_the_queues_time(live: LiveStack) -> None:
    assert wait_until(lambda: live.agent("1002")["state"] == "ready", 10)
    (record,) = live.place_calls(1, talk_ms=500, service="95599")
    assert record["agent"] == "1002"
    view = live.agent("1002")
    # The controller's own clock: wrap-up runs from the end of the call for billing's 3 s.
    assert view["state"] == "wrap-up"
    assert view["wrap_until"] == pytest.approx(record["ended_at"] + 3.0, abs=0.25)
    assert wait_until(lambda: live.agent("1002")["state"] == "ready", 10)
    assert time.time() >= view["wrap_until"]  # seen ready only once the wrap-up was over


def test_relaxation_gives_a_waiting_call_to_a_lower_level_agent_after_t(live: LiveStack) -> None:
    assert wait_until(lambda: live.agent("1002")["state"] == "ready", 10)
    status, _ = live.api("POST", "/agents/1002/state", {"action": "not-ready", "reason": "break"})
    assert status == 200
    try:
        (record,) = live.place_calls(1, talk_ms=500, service="95599")
    finally:
        live.api("POST", "/agents/1002/state", {"action": "ready"})
    assert record["agent"] == "1003"
    assert record["decision"]["step"] == 1 and record["decision"]["group"] == 1
    assert record["wait_s"] >= 4.0


def _agent_events(live: LiveStack, agent_id: str) -> list[dict[str, str]]:
    entries = live.stack.redis_client().xrange("ccserver:events")
    return [f for _, f in entries if f.get("call") == f"agent:{agent_id}"]


def test_a_blind_transfer_to_another_agent_keeps_the_original_arrival(live: LiveStack) -> None:
    for agent_id in ("1002", "1003"):
        assert wait_until(lambda a=agent_id: live.agent(a)["state"] == "ready", 10)
    run = live.next_run()
    phones = live.agents("answer", talk_ms=6000).start()
    try:
        caller = live.caller(run, calls=1).start()
        assert wait_until(lambda: len(_talking(live)) == 1, 15)
        (call,) = _talking(live)
        other = "1002" if call["agent"] == "1003" else "1003"
        status, moved = live.api(
            "POST", f"/calls/{call['id']}/transfer", {"agent": other}, token=f"agent:{other}"
        )
        assert (status, moved["error"]) == (403, "forbidden")  # not the agent on the call
        status, moved = live.api(
            "POST",
            f"/calls/{call['id']}/transfer",
            {"agent": other},
            token=f"agent:{call['agent']}",
        )
        assert status == 200, moved
        stats = caller.wait(timeout=60)
    finally:
        phones.stop()
    assert (stats.successful, stats.failed) == (1, 0)
    (record,) = live.records(run, expected=1)
    assert record["agent"] == other and record["outcome"] == "completed"
    assert record["arrived_at"] == call["arrived_at"] and record["queue"] == f"direct-{other}"
    assert [a["result"] for a in record["attempts"]] == ["answered", "answered"]
    kinds = [e["kind"] for e in live.events(record["id"])]
    assert kinds.count("connect") == 2 and "transfer" in kinds


def _talking(live: LiveStack) -> list[dict[str, object]]:
    status, calls = live.api("GET", "/calls", token="supervisor")
    assert status == 200
    return [c for c in calls if c["state"] == "connected"]
