"""Real calls through the real stack: SIPp callers → Asterisk → controller → SIPp agents."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import LiveStack, start_stack

pytestmark = pytest.mark.integration
AGENTS = ["1001", "1002", "1003", "1004", "1005"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from start_stack(tmp_path_factory.mktemp("calls"), {"answer": AGENTS})


def test_twenty_calls_are_each_bridged_to_an_agent_and_completed(live: LiveStack) -> None:
    records = live.place_calls(20, talk_ms=2000, rate=5, limit=10, timeout=120)
    assert len(records) == 20
    run = records[0]["caller"].split("-")[0]
    assert sorted(r["caller"] for r in records) == sorted(f"{run}-{n}" for n in range(1, 21))
    for record in records:
        assert record["outcome"] == "completed"
        assert record["hangup_by"] == "agent"
        assert record["agent"] in AGENTS
        assert record["attempts"][-1] == {**record["attempts"][-1], "result": "answered"}
        assert record["connected_at"] >= record["queued_at"] >= record["arrived_at"]
        kinds = [e["kind"] for e in live.events(record["id"])]
        assert kinds[0] == "arrived" and kinds[-1] == "complete" and "connect" in kinds
        assert kinds.index("enter") < kinds.index("connect")
    # Longest-idle routing spreads 20 calls over all five agents.
    assert set(Counter(r["agent"] for r in records)) == set(AGENTS)
    # The ops room sees the same twenty calls (the first test: the counters start at 0).
    metrics = live.metrics()
    for name in ("calls_offered_total", "calls_answered_total", "queue_wait_seconds_count"):
        assert metrics[f'ccserver_{name}{{queue="general"}}'] == 20, name
    assert metrics['ccserver_talk_seconds_count{queue="general"}'] == 20
    assert metrics['ccserver_queue_wait_seconds_bucket{le="20.0",queue="general"}'] == 20
    assert metrics['ccserver_agents{queue="general",state="ready"}'] == len(AGENTS)
    assert metrics['ccserver_calls_waiting{queue="general"}'] == 0
    assert (metrics["ccserver_ari_up"], metrics["ccserver_ami_up"]) == (1, 1)
    assert metrics["ccserver_redis_up"] == 1
    assert metrics['ccserver_ari_request_seconds_count{method="POST"}'] > 0


def test_a_call_waits_while_every_agent_talks_and_connects_when_one_frees(
    live: LiveStack,
) -> None:
    # Six callers at once for five agents: the last one in must wait for a free agent.
    records = live.place_calls(6, talk_ms=4000, rate=50, limit=6)
    waits = sorted(r["wait_s"] for r in records)
    assert waits[-1] >= 3.0, waits  # waited roughly one talk time for an agent to free up
    assert all(w < 1.5 for w in waits[:-1]), waits
    waiter = max(records, key=lambda r: r["wait_s"])
    first_done = min((r for r in records if r is not waiter), key=lambda r: r["ended_at"])
    assert waiter["outcome"] == "completed"
    assert waiter["agent"] == first_done["agent"]  # the first agent to free up took it
    assert waiter["connected_at"] >= first_done["ended_at"]


def test_the_dialplan_holds_calls_while_the_controller_is_away(live: LiveStack) -> None:
    run = live.next_run()
    live.stack.controller.stop()
    agents = live.agents("answer", talk_ms=1000).start()
    try:
        callers = live.caller(run, calls=1).start()
        time.sleep(3)  # the call meets the fallback: apology, hold, retry
        live.stack.up()  # the controller returns; the retry enters Stasis
        stats = callers.wait(timeout=60)
    finally:
        agents.stop()
    assert (stats.successful, stats.failed) == (1, 0)
    (record,) = live.records(run, expected=1)
    assert record["outcome"] == "completed"
    assert record["agent"] in AGENTS


def test_nothing_listens_beyond_loopback(live: LiveStack) -> None:
    pids = {p.pid() for p in (live.stack.redis, live.stack.asterisk, live.stack.controller)}
    listening = _sockets_of(pids - {None})  # type: ignore[arg-type]
    assert listening, "found no sockets at all: the check itself is broken"
    configured = {
        live.config.asterisk.sip_port,
        live.config.asterisk.http_port,
        live.config.asterisk.ami_port,
        live.config.redis.port,
        live.config.controller.http_port,
    }
    tcp_listeners = {(ip, port) for proto, ip, port in listening if proto == "tcp"}
    assert {port for _, port in tcp_listeners} >= configured - {live.config.asterisk.sip_port}
    assert all(ip == "127.0.0.1" for ip, _ in tcp_listeners), tcp_listeners
    # UDP on a configured port is bound to loopback. (pjproject's DNS resolver also holds
    # client sockets on ephemeral ports for its queries; they serve nothing.)
    udp_configured = {
        (ip, port) for proto, ip, port in listening if proto == "udp" and port in configured
    }
    assert udp_configured == {("127.0.0.1", live.config.asterisk.sip_port)}


def _sockets_of(pids: set[int]) -> set[tuple[str, str, int]]:
    """(proto, ip, port) of listening TCP and bound UDP sockets owned by `pids` (IPv4+6)."""
    inodes: set[str] = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for proto, name in (("tcp", "tcp"), ("tcp", "tcp6"), ("udp", "udp"), ("udp", "udp6")):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[9] not in inodes or (proto == "tcp" and cols[3] != "0A"):
                continue
            hex_ip, hex_port = cols[1].split(":")
            found.add((proto, _ip(hex_ip), int(hex_port, 16)))
    return found


def _ip(hex_ip: str) -> str:
    if len(hex_ip) == 8:
        return ".".join(str(b) for b in reversed(bytes.fromhex(hex_ip)))
    return "ipv6:" + hex_ip


def test_callers_waiting_and_talking_survive_a_controller_kill(live: LiveStack) -> None:
    """kill -9 of the controller: talks go on, waiting callers keep their order, nobody is
    dropped. (The restart rebuilds from Asterisk's own view: GET /channels and /bridges.)"""
    run = live.next_run()
    agents = live.agents("answer", talk_ms=5000).start()
    try:
        # Eight callers for five agents: five talk, three wait, in arrival order.
        callers = live.caller(run, calls=8, rate=8, limit=8).start()
        time.sleep(2.5)
        pid = live.stack.controller.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        time.sleep(1.0)
        started = time.monotonic()
        live.stack.up()  # starts the controller again; returns once ARI and AMI are up
        restart_s = time.monotonic() - started
        stats = callers.wait(timeout=90)
    finally:
        agents.stop()
    assert (stats.successful, stats.failed) == (8, 0)
    records = live.records(run, expected=8)
    assert [r["outcome"] for r in records] == ["completed"] * 8
    talkers = [r for r in records if r["connected_at"] < r["arrived_at"] + 2.5]
    waiters = sorted((r for r in records if r not in talkers), key=lambda r: r["arrived_at"])
    assert len(talkers) == 5 and len(waiters) == 3
    # The waiting callers were connected in the order they arrived.
    assert [r["connected_at"] for r in waiters] == sorted(r["connected_at"] for r in waiters)
    assert restart_s < 10, restart_s
