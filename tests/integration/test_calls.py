"""Real calls through the real stack: SIPp callers → Asterisk → controller → SIPp agents."""

from __future__ import annotations

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
    waiter = max(records, key=lambda r: r["wait_s"])
    others = [r for r in records if r is not waiter]
    first_done = min(others, key=lambda r: r["ended_at"])
    # The five others were answered at once: before any talk had ended.
    assert all(r["connected_at"] < first_done["ended_at"] for r in others), waits
    assert waiter["outcome"] == "completed"
    assert waiter["agent"] == first_done["agent"]  # the first agent to free up took it
    assert waiter["connected_at"] >= first_done["ended_at"]


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
