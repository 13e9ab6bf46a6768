"""The Redis outage drill (issue 11): Redis restarted, then killed (`kill -9`), under SIPp
load. While it is down calls keep arriving and being served (the controller buffers its
writes); once it is back every call of the run has its final record in Redis, the events
stream has every event the history has, the ACD state in Redis is the controller's, SIPp saw
no failed call, and /metrics showed the outage and the recovery. And the append-only file:
what Redis had acknowledged before a `kill -9` is what a restarted Redis finds. (Redis
appends each write to the file before it replies, and fsyncs the file once a second: a
killed Redis loses nothing it acknowledged, a power cut may lose the last second or two.
No drill cuts power, so none claims more than the first.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from ccserver.stack.procs import wait_until
from ccserver.store import ACD_KEY, CALL_KEY, EVENTS_KEY
from tests.integration.conftest import LiveStack, start_stack

pytestmark = pytest.mark.integration

AGENTS = ["1001", "1002", "1003", "1004", "1005"]
TALK_MS = 5_000
CALLERS = 10
DOWN_S = 6.0  # how long Redis stays down: several arrivals and answers fall in it


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from start_stack(tmp_path_factory.mktemp("redis-outage"), {"answer": AGENTS})


def _graceful(live: LiveStack) -> None:
    assert live.stack.redis.stop(timeout=10.0)


def _kill_9(live: LiveStack) -> None:
    pid = live.stack.redis.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # pid() reaps the stack's own exited children as it looks: no zombie left
    assert wait_until(lambda: live.stack.redis.pid() is None, 10)


def test_a_redis_restart_under_load_loses_no_call_record_or_event(live: LiveStack) -> None:
    _drill(live, _graceful, "restart")


def test_a_redis_kill_9_under_load_loses_no_call_record_or_event(live: LiveStack) -> None:
    _drill(live, _kill_9, "kill -9")


def test_the_queue_written_before_a_kill_9_is_what_the_restarted_redis_finds(
    live: LiveStack, tmp_path: Path
) -> None:
    """Callers waiting (every agent on a break): once Redis holds the queue (the controller
    wrote it, Redis acknowledged it), Redis is killed, and a copy of its directory is read
    by a redis-server of the test's own: what Redis restores from the AOF, before the
    controller could write anything again."""
    for agent in AGENTS:
        _set_state(live, agent, "not-ready", "training")
    run = live.next_run()
    phones = live.agents("answer", talk_ms=1000).start()
    try:
        callers = live.caller(run, calls=3, rate=5, limit=3).start()
        health = live.stack.controller_health
        assert wait_until(lambda: health()["waiting"] == 3, 30)
        waiting = {r["id"]: r for r in live.records(run, expected=0, timeout=0)}
        assert [r["state"] for r in waiting.values()] == ["waiting"] * 3
        assert wait_until(lambda: _queue_in_redis(live) == set(waiting), 10)
        _kill_9(live)
        restored = _read_aof_copy(live.config.run_dir / "redis", tmp_path / "copy")
        live.stack.up()
        for agent in AGENTS:
            _set_state(live, agent, "ready")
        stats = callers.wait(timeout=120)
    finally:
        phones.stop()
    assert (stats.successful, stats.failed) == (3, 0)
    assert {i: json.loads(restored["records"][i]) for i in waiting} == waiting
    acd = restored["acd"]["acd"]
    queued = {c["id"] for c in acd["router"]["calls"] if c["state"] == "waiting"}
    assert queued == set(waiting)
    on_break = {a["id"]: (a["state"], a["reason"]) for a in acd["router"]["agents"]}
    assert on_break == {agent: ("not-ready", "training") for agent in AGENTS}
    records = live.records(run, expected=3, timeout=30)
    assert [r["outcome"] for r in records] == ["completed"] * 3


def _drill(live: LiveStack, take_down: Callable[[LiveStack], None], how: str) -> None:
    health = live.stack.controller_health
    before = _store_metrics(live)
    run = live.next_run()
    phones = live.agents("answer", talk_ms=TALK_MS).start()
    seen_down: dict[str, float] = {}
    try:
        callers = live.caller(run, calls=CALLERS, rate=1, limit=CALLERS).start()
        assert wait_until(lambda: health()["calls"] >= 2, 30)
        take_down(live)
        down_at = time.time()
        # The controller notices (a failed write or ping) and says so in /metrics.
        assert wait_until(lambda: _store_metrics(live)["degraded"] == 1, 20)
        while time.time() < down_at + DOWN_S:
            sample = _store_metrics(live)
            seen_down = {k: max(v, seen_down.get(k, v)) for k, v in sample.items()}
            time.sleep(0.5)
        live.stack.up()  # Redis again, from its AOF
        up_at = time.time()
        assert wait_until(lambda: not health()["store"]["degraded"], 60)
        recovered_s = time.time() - up_at
        stats = callers.wait(timeout=180)
    finally:
        phones.stop()
    assert (stats.successful, stats.failed) == (CALLERS, 0)
    after = _store_metrics(live)

    # /metrics: down and degraded while Redis was away, writes buffered; all back after.
    assert seen_down["redis_up"] == 0 and seen_down["degraded"] == 1
    assert seen_down["buffered"] > 0
    assert (after["redis_up"], after["degraded"], after["buffered"]) == (1, 0, 0)
    assert after["dropped"] == before["dropped"] == 0
    assert after["replayed"] > before["replayed"] and after["failures"] > before["failures"]

    # Every call has its final record, calls arrived and were answered during the outage.
    records = live.records(run, expected=CALLERS, timeout=60)
    assert len(records) == CALLERS
    assert [(r["state"], r["outcome"]) for r in records] == [("ended", "completed")] * CALLERS
    arrived_down = [r for r in records if down_at <= r["arrived_at"] <= up_at]
    answered_down = [r for r in records if down_at <= (r["connected_at"] or 0) <= up_at]
    assert arrived_down and answered_down

    # The stream has each call's events, in order, exactly as the history recorded them.
    client = live.stack.redis_client()
    stream: dict[str, list[str]] = {}
    for _, fields in client.xrange(EVENTS_KEY):
        stream.setdefault(fields["call"], []).append(fields["kind"])
    for record in records:
        status, detail = live.api("GET", f"/calls/{record['id']}", token="supervisor")
        assert status == 200, detail
        assert stream.get(record["id"]) == [e["kind"] for e in detail["events"]], record["id"]

    # The ACD state in Redis is the controller's: agents, their counts, nobody waiting.
    assert wait_until(lambda: health()["calls"] == 0, 30)
    assert wait_until(lambda: _acd_agents(client) == _api_agents(live), 10), (
        _acd_agents(client),
        _api_agents(live),
    )
    saved = json.loads(client.get(ACD_KEY) or "{}")
    assert saved["acd"]["router"]["calls"] == []
    print(
        f"redis {how}: down {up_at - down_at:.1f} s, {len(arrived_down)} calls arrived and "
        f"{len(answered_down)} answered meanwhile, up to {seen_down['buffered']:.0f} writes "
        f"buffered, {after['replayed'] - before['replayed']:.0f} replayed, store recovered "
        f"{recovered_s:.2f} s after Redis was back"
    )


def _store_metrics(live: LiveStack) -> dict[str, float]:
    samples = live.metrics()

    def total(prefix: str) -> float:
        return sum(v for name, v in samples.items() if name.startswith(prefix))

    return {
        "redis_up": samples["ccserver_redis_up"],
        "degraded": samples["ccserver_store_degraded"],
        "buffered": total("ccserver_store_buffered_writes{"),
        "dropped": total("ccserver_store_dropped_total{"),
        "replayed": samples["ccserver_store_replayed_total"],
        "failures": samples["ccserver_store_write_failures_total"],
    }


def _acd_agents(client: redis.Redis) -> dict[str, tuple[Any, ...]]:
    saved = json.loads(client.get(ACD_KEY) or "{}")
    agents = saved["acd"]["router"]["agents"]
    return {a["id"]: (a["state"], a["reason"], a["calls_taken"], a["call"]) for a in agents}


def _api_agents(live: LiveStack) -> dict[str, tuple[Any, ...]]:
    status, agents = live.api("GET", "/agents")
    assert status == 200, agents
    return {a["id"]: (a["state"], a["reason"], a["calls_taken"], a["call"]) for a in agents}


def _set_state(live: LiveStack, agent: str, action: str, reason: str | None = None) -> None:
    body = {"action": action, **({"reason": reason} if reason else {})}
    status, answer = live.api("POST", f"/agents/{agent}/state", body)
    assert status == 200, answer


def _queue_in_redis(live: LiveStack) -> set[str]:
    """The calls waiting in the ACD state the controller last wrote to Redis."""
    state = json.loads(live.stack.redis_client().get(ACD_KEY) or "{}")
    calls = ((state.get("acd") or {}).get("router") or {}).get("calls") or []
    return {c["id"] for c in calls if c["state"] == "waiting"}


def _read_aof_copy(redis_dir: Path, copy: Path) -> dict[str, Any]:
    """What a redis-server started on (a copy of) `redis_dir` restores: the call records and
    the ACD state."""
    shutil.copytree(redis_dir, copy, ignore=shutil.ignore_patterns("*.conf"))
    socket = copy / "copy.sock"
    argv = ["redis-server", "--port", "0", "--unixsocket", str(socket), "--dir", str(copy)]
    argv += ["--appendonly", "yes", "--save", ""]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(unix_socket_path=str(socket), decode_responses=True)

        def loaded() -> bool:
            try:
                return client.info("persistence")["loading"] == 0
            except redis.RedisError:
                return False

        assert wait_until(loaded, 20), "the copy of Redis did not load its AOF"
        keys = [k for k in client.scan_iter(CALL_KEY.format(id="*"))]
        records = {k.removeprefix(CALL_KEY.format(id="")): client.get(k) for k in keys}
        acd = json.loads(client.get(ACD_KEY) or "{}")
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return {"records": records, "acd": acd}
