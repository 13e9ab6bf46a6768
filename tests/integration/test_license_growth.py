"""The growth drill from the source documents, on the real stack: a center licensed for 71
seats grows to 180 licensed channels (160 agent seats + 20 IVR channels) by installing a
new license while calls are in progress — no restart, no failed call — then the same with
a grace policy. Licenses are signed with a throw-away key the stack's config trusts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ccserver.licensing import Grace
from ccserver.stack.procs import wait_until
from tests.integration.conftest import LiveStack, install_license, start_stack

pytestmark = pytest.mark.integration
FLOWS = Path(__file__).resolve().parents[2] / "ivr_flows"
QUEUES = ["general", "billing", "repair", "business", "complaints"]
SEATS_FIRST, SEATS_GROWN, IVR_GROWN = 71, 160, 20
AGENTS = [str(5001 + i) for i in range(SEATS_GROWN + 20)]  # more people than seats
PHONES = {agent: str(int(agent) - 2000) for agent in AGENTS}  # agent 5001 sits at 3001


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    acd = {
        "queues": [{"name": q, "skills": {"general": 1}, "wrap_up_s": 0.0} for q in QUEUES],
        "entry": {"95599": "general"},
        "announce_every_s": 0.0,
        "agents": [
            {"id": a, "skills": {"general": 5}, "phone": PHONES[a], "auto_login": False}
            for a in AGENTS
        ],
    }
    # No lookups here; max_sessions above the license, so the license is what binds.
    ivr = {"flows_dir": str(FLOWS), "billing_url": "http://127.0.0.1:9", "max_sessions": 50}
    yield from start_stack(
        tmp_path_factory.mktemp("license"),
        {"answer": sorted(PHONES.values())},
        acd=acd,
        hotline=["95598", "95599"],
        ivr=ivr,
    )


def _install(live: LiveStack, seats: int, ivr_channels: int, **extra: object) -> dict:
    install_license(
        live.config, live.work.parent / "keys", seats=seats, ivr_channels=ivr_channels, **extra
    )
    status, usage = live.api("POST", "/license/reload")
    assert status == 200, usage
    assert (usage["seats"], usage["ivr_channels"]) == (seats, ivr_channels)
    return usage


def _login(live: LiveStack, agent: str) -> tuple[int, dict]:
    return live.api("POST", f"/agents/{agent}/state", {"action": "login"}, token="supervisor")


def _log_everyone_out(live: LiveStack) -> None:
    for agent in AGENTS:
        if live.agent(agent)["state"] != "logged-out":
            status, body = live.api(
                "POST", f"/agents/{agent}/state", {"action": "logout"}, token="supervisor"
            )
            assert status == 200, body


def test_71_seats_grow_to_160_seats_and_20_ivr_channels_while_calls_go_on(
    live: LiveStack,
) -> None:
    _install(live, SEATS_FIRST, 10)
    assert all(_login(live, a)[0] == 200 for a in AGENTS[:SEATS_FIRST])
    status, refused = _login(live, AGENTS[SEATS_FIRST])
    assert (status, refused["error"]) == (409, "license-seats-exhausted")
    # The 72nd at a softphone: *11, agent number and PIN; refused by voice, still out.
    agent = AGENTS[SEATS_FIRST]
    pin = live.secrets().agent_pins[agent]
    live.press(PHONES[agent], "*11", [2500, agent + "#", 2500, pin + "#", 4000])
    assert live.agent(agent)["state"] == "logged-out"

    run = live.next_run()
    phones = live.agents("answer", talk_ms=8000).start()
    try:
        caller = live.caller(run, calls=20, rate=10, service="95599").start()
        assert wait_until(lambda: live.stack.controller_health()["calls"] >= 10, 20)
        usage = _install(live, SEATS_GROWN, IVR_GROWN)  # with calls in progress
        assert usage["seats_in_use"] == SEATS_FIRST
        assert all(_login(live, a)[0] == 200 for a in AGENTS[SEATS_FIRST:SEATS_GROWN])
        status, refused = _login(live, AGENTS[SEATS_GROWN])
        assert (status, refused["error"]) == (409, "license-seats-exhausted")
        stats = caller.wait(timeout=90)
        assert (stats.successful, stats.failed) == (20, 0)

        # 21 callers into the IVR at once: 20 channels, the 21st straight to an agent.
        run = live.next_run()
        ivr_callers = live.caller(run, calls=21, rate=21, limit=21, abandon_after_ms=8000)
        ivr_callers.start()
        peak = 0
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            peak = max(peak, live.api("GET", "/license", token="supervisor")[1]["ivr_in_use"])
            time.sleep(0.2)
        stats = ivr_callers.wait(timeout=90)
    finally:
        phones.stop()
    assert peak == IVR_GROWN
    assert (stats.successful, stats.failed) == (21, 0)
    records = live.records(run, expected=21, timeout=30)
    full = [r for r in records if any(e["kind"] == "ivr_full" for e in live.events(r["id"]))]
    assert len(full) == 1 and full[0]["queue"] == "general"
    status, usage = live.api("GET", "/license", token="supervisor")
    assert usage["seats_in_use"] == SEATS_GROWN
    assert usage["refusals"]["license-seats-exhausted"] == 3
    assert usage["refusals"]["license-ivr-full"] == 1
    metrics = live.metrics()
    assert metrics["ccserver_license_seats"] == SEATS_GROWN
    assert metrics["ccserver_license_seats_in_use"] == SEATS_GROWN
    assert metrics["ccserver_license_ivr_channels"] == IVR_GROWN
    assert metrics['ccserver_license_refusals_total{reason="license-seats-exhausted"}'] == 3
    _log_everyone_out(live)


def test_grace_lets_a_peak_overshoot_the_seats_for_a_while(live: LiveStack) -> None:
    _install(live, SEATS_GROWN, IVR_GROWN, grace=Grace(extra_seats_pct=10, max_minutes=30))
    assert all(_login(live, a)[0] == 200 for a in AGENTS[:SEATS_GROWN])
    extra = AGENTS[SEATS_GROWN : SEATS_GROWN + 16]  # 10 % of 160
    assert all(_login(live, a)[0] == 200 for a in extra)
    status, refused = _login(live, AGENTS[SEATS_GROWN + 16])
    assert (status, refused["error"]) == (409, "license-seats-exhausted")
    status, usage = live.api("GET", "/license", token="supervisor")
    assert (usage["grace_seats"], usage["grace_in_use"]) == (16, 16)
    until = datetime.fromtimestamp(usage["grace_until"], UTC)
    assert timedelta(minutes=29) < until - datetime.now(UTC) <= timedelta(minutes=30)
    # A smaller license does not log anyone out; it only refuses the next login.
    _install(live, SEATS_FIRST, 10)
    status, usage = live.api("GET", "/license", token="supervisor")
    assert usage["seats_in_use"] == SEATS_GROWN + 16
    status, refused = _login(live, AGENTS[-1])
    assert (status, refused["error"]) == (409, "license-seats-exhausted")
    _log_everyone_out(live)
