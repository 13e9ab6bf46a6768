"""A supervisor listens to, whisps to and barges into a live call on the real stack, and
what each phone hears is measured, not assumed.

The caller, the agent and the supervisor are each SIPp for signalling with a Python RTP
phone for media (`rtp_phone.RtpPhone`), each sending its own tone: caller 1000 Hz, agent
600 Hz, supervisor 1400 Hz. Listen: the supervisor hears 1000 and 600, nobody hears 1400.
Whisper: the agent hears 1400, the caller does not. Barge: both do. The monitored call is
never dropped: it ends when the agent hangs up, completed, with SIPp counting no failure.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from ccserver import tls
from ccserver.stack.procs import wait_until
from tests.integration.conftest import LiveStack, start_stack
from tests.integration.rtp_phone import RtpPhone

pytestmark = pytest.mark.integration

AGENT, SUPERVISOR_PHONE, OTHER_PHONE = "1001", "1009", "1008"
CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ = 1000.0, 600.0, 1400.0
HEARD, UNHEARD = 0.15, 0.03  # share of the energy near a tone: present / absent
ACD = {
    "queues": [{"name": "general", "skills": {"general": 1}, "wrap_up_s": 0.0, "record": True}],
    "agents": [
        {"id": AGENT, "skills": {"general": 1}, "phone": AGENT, "auto_login": True},
        {"id": "1002", "skills": {"general": 1}, "phone": OTHER_PHONE},
    ],
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from start_stack(
        tmp_path_factory.mktemp("supervisor"),
        {"agent": [AGENT], "supervisor": [SUPERVISOR_PHONE], "other": [OTHER_PHONE]},
        acd=ACD,
        supervision={"phones": [SUPERVISOR_PHONE], "beep_agents": [AGENT]},
    )


def shares(phone: RtpPhone, *tones: float, settle_s: float = 1.2) -> dict[float, float]:
    """The share of each tone in what `phone` heard in the last half second, after
    `settle_s` for the change to reach it."""
    time.sleep(settle_s)
    heard = phone.heard(time.time() - 0.5)
    return {hz: round(heard.share_at(hz), 3) for hz in tones}


def talking_call(live: LiveStack) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def connected() -> bool:
        _, calls = live.api("GET", "/calls", token="supervisor")
        found[:] = [c for c in calls if c["state"] == "connected"]
        return bool(found)

    assert wait_until(connected, timeout=20), "the caller never reached the agent"
    return found[0]


def audit_actions(live: LiveStack) -> list[dict[str, Any]]:
    path = live.config.run_dir / "log" / "api-audit.jsonl"
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in entries if "action" in e]


def recording_head(live: LiveStack, call_id: str) -> bytes:
    """The first bytes of the call's recording, read as a supervisor with a range request
    (once Asterisk has closed the file)."""
    url = tls.controller_url(live.config, f"/api/v1/calls/{call_id}/recording")
    token = live.secrets().api_tokens["supervisor"]
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {token}", "Range": "bytes=0-43"}
    )
    found: list[bytes] = []

    def read() -> bool:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                assert (response.status, response.headers["Content-Type"]) == (206, "audio/wav")
                found[:] = [response.read()]
        except urllib.error.HTTPError:
            return False
        return True

    assert wait_until(read, timeout=10), "no recording"
    return found[0]


def test_listen_whisper_and_barge_are_heard_where_they_should_be(live: LiveStack) -> None:
    caller_rtp, agent_rtp, supervisor_rtp = (
        RtpPhone(tone_hz=hz).start() for hz in (CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ)
    )
    agent_phone = live.phone_at("agent", agent_rtp.port, hangup_ms=30_000).start()
    supervisor_phone = live.phone_at("supervisor", supervisor_rtp.port).start()
    caller = live.call_in(caller_rtp.port, "95598").start()
    try:
        call = talking_call(live)
        status, session = live.api(
            "POST",
            "/monitors",
            {"agent": AGENT, "phone": SUPERVISOR_PHONE, "mode": "listen"},
            token="supervisor",
        )
        assert status == 201, session
        assert (session["call"], session["agent"]) == (call["id"], AGENT)

        def answered() -> bool:
            _, sessions = live.api("GET", "/monitors", token="supervisor")
            return any(s["id"] == session["id"] and s["answered_at"] for s in sessions)

        assert wait_until(answered, timeout=10), "the supervisor's phone never answered"
        heard = {
            "listen": {
                "supervisor": shares(supervisor_rtp, CALLER_HZ, AGENT_HZ),
                "agent": shares(agent_rtp, SUPERVISOR_HZ, settle_s=0),
                "caller": shares(caller_rtp, SUPERVISOR_HZ, settle_s=0),
            }
        }
        for mode in ("whisper", "barge"):
            status, switched = live.api(
                "POST", f"/monitors/{session['id']}/mode", {"mode": mode}, token="supervisor"
            )
            assert (status, switched["mode"]) == (200, mode), switched
            heard[mode] = {
                "agent": shares(agent_rtp, SUPERVISOR_HZ, CALLER_HZ, settle_s=1.5),
                "caller": shares(caller_rtp, SUPERVISOR_HZ, AGENT_HZ, settle_s=0),
            }
        status, _ = live.api("DELETE", f"/monitors/{session['id']}", token="supervisor")
        assert status == 200
        supervisor_stats = supervisor_phone.wait(timeout=10)  # it got the BYE
        after = shares(caller_rtp, AGENT_HZ, SUPERVISOR_HZ, settle_s=1.5)
        stats = caller.wait(timeout=60)  # the agent hangs up at 30 s
    finally:
        for process in (caller, agent_phone, supervisor_phone):
            process.stop()
        for rtp in (caller_rtp, agent_rtp, supervisor_rtp):
            rtp.stop()
    print(json.dumps(heard))
    listen = heard["listen"]
    assert min(listen["supervisor"].values()) > HEARD, heard  # both sides
    assert listen["agent"][SUPERVISOR_HZ] < UNHEARD and listen["caller"][SUPERVISOR_HZ] < UNHEARD
    assert heard["whisper"]["agent"][SUPERVISOR_HZ] > HEARD, heard
    assert heard["whisper"]["agent"][CALLER_HZ] > HEARD, heard  # the talk goes on
    assert heard["whisper"]["caller"][SUPERVISOR_HZ] < UNHEARD, heard
    assert heard["barge"]["agent"][SUPERVISOR_HZ] > HEARD, heard
    assert heard["barge"]["caller"][SUPERVISOR_HZ] > HEARD, heard
    assert heard["barge"]["caller"][AGENT_HZ] > HEARD, heard
    assert after[AGENT_HZ] > HEARD and after[SUPERVISOR_HZ] < UNHEARD, after
    assert (supervisor_stats.successful, supervisor_stats.failed) == (1, 0)
    assert (stats.successful, stats.failed) == (1, 0), caller.errors()
    _, record = live.api("GET", f"/calls/{call['id']}", token="supervisor")
    assert (record["outcome"], record["hangup_by"]) == ("completed", "agent")
    assert recording_head(live, call["id"])[:4] == b"RIFF"  # the talk, recorded
    actions = [
        (a["action"], a.get("mode"), a.get("why"))
        for a in audit_actions(live)
        if a.get("session") == session["id"]
    ]
    assert ("recording.play", "supervisor") in {
        (a["action"], a["token"]) for a in audit_actions(live) if a.get("call") == call["id"]
    }
    assert actions == [
        ("monitor.start", "listen", None),
        ("monitor.switch", "whisper", None),
        ("monitor.switch", "barge", None),
        ("monitor.stop", "barge", "stopped"),
    ]
    assert {a["token"] for a in audit_actions(live) if a.get("session") == session["id"]} == {
        "supervisor"
    }


def test_an_agent_may_not_monitor_and_a_session_needs_a_talking_agent(live: LiveStack) -> None:
    body = {"agent": AGENT, "phone": SUPERVISOR_PHONE}
    status, error = live.api("POST", "/monitors", body, token=f"agent:{AGENT}")
    assert (status, error["error"]) == (403, "forbidden")
    status, error = live.api("POST", "/monitors", body, token="supervisor")
    assert (status, error["error"]) == (409, "not-talking")
    status, error = live.api("POST", "/monitors", {**body, "phone": "999"}, token="supervisor")
    assert (status, error["error"]) == (404, "phone-unknown")
    status, error = live.api("DELETE", "/monitors/nope", token="supervisor")
    assert (status, error["error"]) == (404, "monitor-unknown")


def test_a_supervisor_s_desk_phone_listens_by_feature_code_until_the_call_ends(
    live: LiveStack,
) -> None:
    caller_rtp, agent_rtp = (RtpPhone(tone_hz=hz).start() for hz in (CALLER_HZ, AGENT_HZ))
    agent_phone = live.phone_at("agent", agent_rtp.port, hangup_ms=12_000).start()
    caller = live.call_in(caller_rtp.port, "95598").start()
    try:
        call = talking_call(live)
        # The supervisor's phone dials *21<agent> and stays until the talk ends; another
        # phone is refused (and hung up after the refusal).
        live.press(OTHER_PHONE, f"*21{AGENT}", [], timeout=30)
        live.press(SUPERVISOR_PHONE, f"*21{AGENT}", [], timeout=30)
        stats = caller.wait(timeout=30)
    finally:
        caller.stop()
        agent_phone.stop()
        caller_rtp.stop()
        agent_rtp.stop()
    assert (stats.successful, stats.failed) == (1, 0), caller.errors()
    by_phone = [a for a in audit_actions(live) if a.get("call") == call["id"]]
    assert [(a["action"], a["token"], a.get("why")) for a in by_phone] == [
        ("monitor.start", f"phone:{SUPERVISOR_PHONE}", None),
        ("monitor.stop", f"phone:{SUPERVISOR_PHONE}", "talk-ended"),
    ]
    _, sessions = live.api("GET", "/monitors", token="supervisor")
    assert sessions == []
