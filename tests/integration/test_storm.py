"""Drill 6: an outage storm. A notice is posted, then callers arrive in a burst at many
times the rate a small center handles; the system's limits decide what each caller gets.

The center: three agents in `general`; calls that wait there longer than its max wait
overflow to `backup` (a partner team of three). Callers hear the outage notice in the IVR,
unless the IVR is full (`ivr.max_sessions`): then they are told self-service is busy and go
straight to the queue. Every caller must end cleanly (answered by someone, SIPp sees no
failure), the REST API must keep answering during the burst, and Asterisk and the
controller must still be up afterwards.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ccserver.stack.procs import wait_until
from tests.integration.conftest import LiveStack, start_stack

pytestmark = pytest.mark.integration
MAIN, BACKUP = ["1001", "1002", "1003"], ["1004", "1005", "1006"]
CALLERS, RATE = 60, 12.0  # 60 callers in 5 s; the three main agents answer ~1 a second
MAX_WAIT_S = 3.0
IVR_SESSIONS = 10
HEALTHZ_P99_S = 0.25
"""/healthz during the storm: the bound docs/emergency-plan.md states."""
FLOW = """\
flow: storm
numbers: ["95598"]
language: zh
start: outage_check
nodes:
  outage_check:
    kind: branch
    cases:
      - when: {notice_active: true}
        goto: outage_notice
    otherwise: to_agent
  outage_notice:
    kind: play
    notice: true
    next: to_agent
  to_agent:
    kind: queue
    queue: general
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    tmp = tmp_path_factory.mktemp("storm")
    flows = tmp / "flows"
    flows.mkdir()
    (flows / "storm.yaml").write_text(FLOW, encoding="utf-8")
    acd = {
        "queues": [
            {
                "name": "general",
                "skills": {"general": 1},
                "wrap_up_s": 0.0,
                "max_wait_s": MAX_WAIT_S,
                "on_max_wait": "overflow",
                "overflow_to": "backup",
            },
            {"name": "backup", "skills": {"backup": 1}, "wrap_up_s": 0.0},
        ],
        "announce_every_s": 0.0,
        "agents": [
            {"id": a, "skills": {"general": 5}, "phone": a, "auto_login": True} for a in MAIN
        ]
        + [{"id": a, "skills": {"backup": 5}, "phone": a, "auto_login": True} for a in BACKUP],
    }
    ivr = {"flows_dir": str(flows), "max_sessions": IVR_SESSIONS}
    yield from start_stack(tmp, {"main": MAIN, "backup": BACKUP}, acd=acd, ivr=ivr)


class Probe(threading.Thread):
    """Asks /healthz and GET /api/v1/queues in turn, every 0.2 s, timing each answer."""

    def __init__(self, live: LiveStack) -> None:
        super().__init__(daemon=True)
        port = live.config.controller.http_port
        token = live.secrets().api_tokens["admin"]
        self.requests = [
            urllib.request.Request(f"http://127.0.0.1:{port}/healthz"),
            urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/queues",
                headers={"Authorization": f"Bearer {token}"},
            ),
        ]
        self.latencies: dict[str, list[float]] = {"healthz": [], "queues": []}
        self.failures: list[str] = []
        self.peak_waiting = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for name, request in zip(self.latencies, self.requests, strict=True):
                started = time.monotonic()
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        body = json.loads(response.read())
                except (OSError, ValueError) as exc:
                    self.failures.append(f"{name}: {exc!r}")
                    continue
                self.latencies[name].append(time.monotonic() - started)
                if name == "healthz":
                    self.peak_waiting = max(self.peak_waiting, int(body["waiting"]))
            self.stop.wait(0.2)


def test_an_outage_storm_overflows_the_excess_and_every_caller_ends_cleanly(
    live: LiveStack,
) -> None:
    ends = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    text = "城南片区线路故障，正在抢修，预计十四点恢复供电。"
    status, notice = live.api(
        "POST", "/notices", {"text": text, "scope": "all", "ends_at": ends}, token="supervisor"
    )
    assert status == 201, notice
    main = live.agents("main", talk_ms=2000).start()
    backup = live.agents("backup", talk_ms=1000).start()
    probe = Probe(live)
    probe.start()
    started = time.monotonic()
    try:
        run = live.next_run()
        stats = live.caller(run, calls=CALLERS, rate=RATE, limit=CALLERS).start().wait(90)
    finally:
        probe.stop.set()
        probe.join(timeout=15)
        main.stop()
        backup.stop()
    storm_s = time.monotonic() - started
    assert (stats.successful, stats.failed) == (CALLERS, 0), live.work
    records = live.records(run, expected=CALLERS, timeout=30)
    assert len(records) == CALLERS
    assert all(r["outcome"] == "completed" for r in records)

    # Who got what: the notice, or "self-service is busy"; main agents, or the overflow.
    events = {r["id"]: [e["kind"] for e in live.events(r["id"])] for r in records}
    heard = [r for r in records if "outage_notice" in ((r["ivr_route"] or {}).get("route") or [])]
    ivr_full = [r for r in records if "ivr_full" in events[r["id"]]]
    overflowed = [r for r in records if r["overflowed_from"] == ["general"]]
    by_main = [r for r in records if r["agent"] in MAIN]
    assert len(heard) + len(ivr_full) == CALLERS  # each caller got one or the other
    assert heard and ivr_full  # the IVR limit was reached, and the notice was heard
    assert overflowed and by_main
    for r in overflowed:  # the overflow queue took exactly the calls that waited too long
        assert r["agent"] in BACKUP and r["queue"] == "backup"
        assert "overflow" in events[r["id"]]
    assert len(by_main) + len(overflowed) == CALLERS

    # The API answered throughout; the stack is still up and idle.
    assert not probe.failures, probe.failures[:5]
    figures = {
        name: (len(values), statistics.median(values), max(values))
        for name, values in probe.latencies.items()
    }
    p99 = {name: _p99(values) for name, values in probe.latencies.items()}
    print(
        f"\nstorm: {CALLERS} callers at {RATE}/s, over in {storm_s:.1f} s; "
        f"notice heard {len(heard)}, IVR full {len(ivr_full)}, main agents {len(by_main)}, "
        f"overflowed {len(overflowed)}, peak waiting {probe.peak_waiting}"
    )
    for name, (count, median, worst) in figures.items():
        print(
            f"  {name}: {count} requests, median {median * 1000:.0f} ms, "
            f"p99 {p99[name] * 1000:.0f} ms, max {worst * 1000:.0f} ms"
        )
    for count, _, worst in figures.values():
        assert count > 0 and worst < 2.0
    assert p99["healthz"] <= HEALTHZ_P99_S  # the bound docs/emergency-plan.md states
    assert all(part.healthy for part in live.stack.status()), live.stack.status()
    assert wait_until(lambda: live.stack.controller_health()["calls"] == 0, 15)
    assert "0 active channels" in live.stack.asterisk_cli("core show channels count")


def _p99(values: list[float]) -> float:
    """The 99th percentile (inclusive method: a sample of fewer than 100 gives its top)."""
    return (
        statistics.quantiles(values, n=100, method="inclusive")[98]
        if len(values) > 1
        else values[0]
    )
