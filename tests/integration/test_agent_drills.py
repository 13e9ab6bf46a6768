"""Drill 5: an agent's softphone vanishes (its SIPp process is killed -9) in the middle of a
call or while it rings; the caller is served by another agent, at their original place.

A phone that vanishes mid-ring is RONA: the ring times out, the agent rests, the call goes
back in its place. A phone that vanishes mid-call is noticed by Asterisk only through RTP
inactivity (the endpoint's `rtp_timeout`, `phones.rtp_timeout_s`): it hangs the agent's leg
up with cause 44, and the controller re-queues the caller in place and puts the agent
not-ready(phone-lost). The stack's RTP timeout is short here (healthy calls in these tests
talk for less than it, so phones that send no audio are not taken for gone).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ccserver.loadtest.sipp import Sipp
from ccserver.stack.procs import wait_until
from tests.integration.conftest import LiveStack, start_stack
from tests.integration.drill_log import read_log

pytestmark = pytest.mark.integration
RTP_TIMEOUT_S = 3
HEALTHY_TALK_MS = 1000  # well under the RTP timeout


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    tmp = tmp_path_factory.mktemp("agent-drills")
    yield from start_stack(
        tmp,
        {"doomed": ["1001"], "spare": ["1002"]},
        phones={"rtp_timeout_s": RTP_TIMEOUT_S},
        ring_timeout_s=4,
        rona_cooldown_s=120,
        ari_trace=str(tmp / "ari-trace.jsonl"),
    )


def kill_9(phone: Sipp) -> None:
    """The phone's process dies at once, as a crashed softphone or a pulled cable: no BYE,
    no CANCEL, no further packet. Found by its own statistics file (unique to this run)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cmdline.startswith("sipp ") and str(phone.stat_file) in cmdline:
            os.kill(int(proc.name), signal.SIGKILL)
            return
    raise AssertionError(f"no SIPp process for {phone.name}")


def set_state(live: LiveStack, agent: str, action: str, reason: str | None = None) -> None:
    body = {"action": action, **({"reason": reason} if reason else {})}
    status, answer = live.api("POST", f"/agents/{agent}/state", body)
    assert status == 200, answer


def leg_ends(live: LiveStack, phone: str) -> list[tuple[str, Any, Any]]:
    """How Asterisk reported the end of agent legs to `phone` (hang-up requests and
    destructions with their causes), from the controller's ARI trace."""
    trace = Path(str(live.config.controller.ari_trace))
    events = (json.loads(line) for line in trace.read_text().splitlines() if line.strip())
    return [
        (e["type"], e.get("cause"), e.get("cause_txt"))
        for e in events
        if e.get("type") in ("ChannelHangupRequest", "ChannelDestroyed")
        and str((e.get("channel") or {}).get("name", "")).startswith(f"PJSIP/{phone}-")
    ]


def answered_by(live: LiveStack, pool: str) -> list[str]:
    """One healthy call answered by `pool` alone: who took it."""
    run = live.next_run()
    phones = live.agents(pool, talk_ms=HEALTHY_TALK_MS).start()
    try:
        stats = live.caller(run, calls=1).start().wait(timeout=60)
    finally:
        phones.stop()
    assert (stats.successful, stats.failed) == (1, 0)
    (record,) = live.records(run, expected=1)
    return [x["agent"] for x in record["attempts"]]


def test_a_phone_vanishing_mid_call_requeues_the_caller_in_place_for_another_agent(
    live: LiveStack,
) -> None:
    # 1001 talks to caller A; B arrives while nobody else is ready; 1001's phone dies.
    # A goes back ahead of B; when 1002 is ready it takes A, then B.
    set_state(live, "1002", "not-ready", "break")
    doomed = live.agents("doomed", talk_ms=60000).start()
    spare = live.agents("spare", talk_ms=HEALTHY_TALK_MS).start()
    try:
        first_run, later_run = live.next_run(), live.next_run()
        first = live.caller(first_run, calls=1).start()
        assert wait_until(lambda: live.agent("1001")["state"] == "busy", 15)
        later = live.caller(later_run, calls=1).start()
        assert wait_until(lambda: live.stack.controller_health()["waiting"] == 1, 15)
        killed_at = time.time()
        kill_9(doomed)
        assert wait_until(lambda: live.agent("1001")["state"] == "not-ready", 3 * RTP_TIMEOUT_S)
        assert live.stack.controller_health()["waiting"] == 2  # A is back, B still waits
        set_state(live, "1002", "ready")
        stats = [first.wait(timeout=60), later.wait(timeout=60)]
    finally:
        doomed.stop()
        spare.stop()
    assert [(s.successful, s.failed) for s in stats] == [(1, 0), (1, 0)]
    (a,) = live.records(first_run, expected=1)
    (b,) = live.records(later_run, expected=1)
    assert [(x["agent"], x["result"]) for x in a["attempts"]] == [
        ("1001", "answered"),
        ("1002", "answered"),
    ]
    assert [x["agent"] for x in b["attempts"]] == ["1002"]
    assert a["connected_at"] < b["connected_at"]  # A kept its place ahead of B
    assert (a["outcome"], a["agent"]) == ("completed", "1002")
    events = live.events(a["id"])
    kinds = [e["kind"] for e in events]
    assert kinds.count("connect") == 2
    requeue = next(e for e in events if e["kind"] == "requeue")
    assert (requeue["reason"], requeue["agent"], requeue["why"]) == (
        "agent-vanished",
        "1001",
        "rtp-timeout",
    )
    assert kinds.index("connect") < kinds.index("requeue") < kinds.index("connect", 3)
    # What Asterisk said about the lost leg: cause 44 (requested channel unavailable).
    ends = leg_ends(live, "1001")
    # Noticed (the controller's own log line) within twice the endpoint's rtp_timeout: the
    # bound docs/emergency-plan.md states.
    lost = [
        line
        for line in read_log(live.config.run_dir / "log" / "controller.log")
        if line.event == "agent.phone_lost" and line.fields.get("agent") == "1001"
    ]
    noticed_s = lost[-1].at - killed_at
    print(f"\n1001's leg ended with {ends}; noticed {noticed_s:.1f} s after kill -9")
    assert 0 < noticed_s <= 2 * RTP_TIMEOUT_S
    assert ("ChannelDestroyed", 44) in [(kind, cause) for kind, cause, _ in ends]
    # The vanished agent is not left busy and is not rung: not-ready(phone-lost).
    view = live.agent("1001")
    assert (view["state"], view["reason"], view["call"]) == ("not-ready", "phone-lost", None)
    # Its phone back, the agent says ready and takes calls again.
    set_state(live, "1001", "ready")
    set_state(live, "1002", "not-ready", "break")
    assert answered_by(live, "doomed") == ["1001"]


def test_a_phone_vanishing_mid_ring_is_rona_and_another_agent_answers(live: LiveStack) -> None:
    set_state(live, "1002", "not-ready", "break")
    ringing = live.agents("doomed", talk_ms=0, answer=False).start()
    spare = live.agents("spare", talk_ms=HEALTHY_TALK_MS).start()
    try:
        run = live.next_run()
        caller = live.caller(run, calls=1).start()
        assert wait_until(lambda: live.agent("1001")["state"] == "reserved", 15)
        kill_9(ringing)
        set_state(live, "1002", "ready")  # free now, but the call is still offered to 1001
        stats = caller.wait(timeout=60)
    finally:
        ringing.stop()
        spare.stop()
    assert (stats.successful, stats.failed) == (1, 0)
    (record,) = live.records(run, expected=1)
    attempts = [(x["agent"], x["result"]) for x in record["attempts"]]
    print(f"\nmid-ring attempts: {attempts}")
    assert attempts == [("1001", "no-answer"), ("1002", "answered")]
    assert record["outcome"] == "completed"
    assert "rona" in [e["kind"] for e in live.events(record["id"])]
    view = live.agent("1001")  # rests, and is not rung again before the cool-down
    assert (view["state"], view["reason"], view["call"]) == ("not-ready", "RONA", None)
