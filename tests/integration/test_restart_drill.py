"""The restart drill: `kill -9` the controller with callers waiting and talking, start it
again, and nobody notices — waiting callers keep their order and are connected, talks go
on and are recorded when they end, SIPp sees no failed call."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator

import pytest

from ccserver.stack.procs import wait_until
from tests.integration.conftest import LiveStack, start_stack

pytestmark = pytest.mark.integration

AGENTS = ["1001", "1002", "1003", "1004", "1005"]
TALK_MS = 12_000


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from start_stack(tmp_path_factory.mktemp("restart"), {"answer": AGENTS})


def test_kill_9_with_10_waiting_and_5_talking_loses_nobody(live: LiveStack) -> None:
    run = live.next_run()
    phones = live.agents("answer", talk_ms=TALK_MS).start()
    try:
        callers = live.caller(run, calls=15, rate=10, limit=15).start()
        health = live.stack.controller_health
        assert wait_until(lambda: health()["waiting"] == 10 and health()["calls"] == 15, 15)
        assert wait_until(lambda: health()["agents"].get("busy") == 5, 10)
        before = _records(live, run)
        pid = live.stack.controller.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        assert wait_until(lambda: live.stack.controller.pid() is None, 5)
        live.stack.up()  # starts the controller again; returns when it has ARI and AMI
        back = health()
        restarted_s = time.monotonic() - killed
        assert (back["calls"], back["waiting"], back["agents"].get("busy")) == (15, 10, 5)
        stats = callers.wait(timeout=120)
    finally:
        phones.stop()
    assert (stats.successful, stats.failed) == (15, 0)
    records = live.records(run, expected=15, timeout=30)
    assert [r["outcome"] for r in records] == ["completed"] * 15
    talking = [r for r in before if r["state"] == "connected"]
    waiting = sorted(
        (r for r in before if r["state"] == "waiting"), key=lambda r: (r["arrived_at"], r["id"])
    )
    assert len(talking) == 5 and len(waiting) == 10
    by_id = {r["id"]: r for r in records}
    for old in talking:  # the talks went on and were closed when the agent hung up
        new = by_id[old["id"]]
        assert new["connected_at"] == old["connected_at"] and new["hangup_by"] == "agent"
        assert new["ended_at"] - new["connected_at"] >= TALK_MS / 1000 - 0.5
    rung = [by_id[r["id"]]["attempts"][-1]["at"] for r in waiting]
    assert rung == sorted(rung), "waiting callers were served out of arrival order"
    resync = _resync_ms(live)
    print(f"restart drill: controller back in {restarted_s:.2f} s, resync took {resync} ms")
    assert resync is not None


def _records(live: LiveStack, run: str) -> list[dict[str, object]]:
    return [r for r in live.records(run, expected=0, timeout=0)]


def _resync_ms(live: LiveStack) -> float | None:
    """How long the restarted controller's resync took, from its own log line."""
    log = live.config.run_dir / "log" / "controller.log"
    found = None
    for line in log.read_text(encoding="utf-8").splitlines():
        if "event=calls.resynced" in line:
            fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
            found = float(json.loads(fields.get("ms", "null")) or 0)
    return found
