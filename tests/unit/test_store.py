"""The store's outage mode against a real redis-server that the tests stop, kill, freeze and
start again: writes during an outage are buffered (never waiting on Redis), replayed in
order once it answers, bounded by caps that count what they drop, and shown in /metrics.

Each test has its own redis-server on a unix socket in its tmp dir (no TCP port to race
for), with AOF on as the stack's, so a restart finds what was written before it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from ccserver.metrics import collector
from ccserver.store import ACD_KEY, CALL_KEY, CALLS_KEY, EVENTS_KEY, Store, StoreStats


class RedisProc:
    """One redis-server of a test's own, which the test can stop, kill, freeze and restart."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.socket = workdir / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = ["redis-server", "--port", "0", "--unixsocket", str(self.socket)]
        argv += ["--unixsocketperm", "700", "--save", "", "--dir", str(self.workdir)]
        argv += ["--appendonly", "yes", "--appendfsync", "everysec"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"redis-server did not start (exit {self.proc.poll()})")
            time.sleep(0.02)

    def _answers(self) -> bool:
        import redis

        try:
            client = redis.Redis(unix_socket_path=str(self.socket))
            with client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=10)
        self.socket.unlink(missing_ok=True)  # a killed Redis leaves its socket file

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


@pytest.fixture
def redis_proc(tmp_path: Path) -> Iterator[RedisProc]:
    server = RedisProc(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.thaw()
        server.stop(signal.SIGKILL)


@pytest.fixture
async def store(redis_proc: RedisProc) -> AsyncIterator[Store]:
    store = Store(unix_socket=str(redis_proc.socket))
    yield store
    await store.close()


@pytest.fixture
async def reader(redis_proc: RedisProc) -> AsyncIterator[Redis]:
    """A client of the tests' own, to see what Redis holds."""
    client = Redis(unix_socket_path=str(redis_proc.socket), decode_responses=True)
    yield client
    await client.aclose()


async def _until(check: Any, timeout: float = 30.0) -> bool:
    """Poll `check()` (sync or async) until true; the bound is generous (a shared box)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return True
        await asyncio.sleep(0.05)
    return False


async def _record(reader: Redis, call_id: str) -> dict[str, Any] | None:
    raw = await reader.get(CALL_KEY.format(id=call_id))
    return json.loads(raw) if raw else None


async def _kinds(reader: Redis) -> list[str]:
    return [fields["kind"] for _, fields in await reader.xrange(EVENTS_KEY)]


async def test_healthy_writes_are_in_redis_when_they_return(store: Store, reader: Redis) -> None:
    await store.save_call({"id": "c1", "state": "waiting"}, new=True)
    await store.add_event("c1", "enter", queue="general", wait_s=None)
    await store.save_acd({"acd": {"agents": 1}})
    assert await _record(reader, "c1") == {"id": "c1", "state": "waiting"}
    assert await reader.lrange(CALLS_KEY, 0, -1) == ["c1"]
    assert await _kinds(reader) == ["enter"]
    assert json.loads(await reader.get(ACD_KEY)) == {"acd": {"agents": 1}}
    assert store.stats() == StoreStats(False, 0.0, 0, 0, 0, 0, 0, 0, 0)


async def test_an_outage_is_buffered_and_replayed_in_order_when_redis_returns(
    store: Store, reader: Redis, redis_proc: RedisProc, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ccserver.store")
    await store.save_call({"id": "c0", "state": "connected"}, new=True)
    redis_proc.stop()
    await store.save_call({"id": "c1", "state": "waiting"}, new=True)  # fails: degraded now
    assert store.degraded
    await store.save_call({"id": "c2", "state": "waiting"}, new=True)
    for n in range(20):
        await store.add_event("c1", "tick", n=n)
    await store.save_call({"id": "c1", "state": "ringing"})
    await store.save_call({"id": "c0", "state": "ended"})
    await store.save_call({"id": "c1", "state": "ended"})
    await store.save_acd({"acd": "first"})
    await store.save_acd({"acd": "latest"})
    stats = store.stats()
    assert (stats.buffered_calls, stats.buffered_acd, stats.buffered_events) == (3, 1, 20)
    assert stats.failed_writes == 1 and stats.degraded_s > 0
    assert await store.load_call("c1") == {"id": "c1", "state": "ended"}  # the buffered one

    redis_proc.start()
    assert await _until(lambda: not store.degraded)
    assert await reader.lrange(CALLS_KEY, 0, -1) == ["c0", "c1", "c2"]
    states = [(await _record(reader, c) or {}).get("state") for c in ("c0", "c1", "c2")]
    assert states == ["ended", "ended", "waiting"]
    entries = await reader.xrange(EVENTS_KEY)
    assert [int(fields["n"]) for _, fields in entries] == list(range(20))
    assert json.loads(await reader.get(ACD_KEY)) == {"acd": "latest"}
    stats = store.stats()
    assert (stats.buffered, stats.replayed, stats.dropped_calls, stats.dropped_events) == (
        0,
        3 + 1 + 20,
        0,
        0,
    )
    assert {"store.degraded", "store.recovered"} <= set(caplog.messages)
    await store.save_call({"id": "c3"}, new=True)  # straight to Redis again
    assert await reader.lrange(CALLS_KEY, -1, -1) == ["c3"] and not store.degraded


async def test_a_record_written_after_recovery_is_never_overwritten_by_the_replay(
    store: Store, reader: Redis, redis_proc: RedisProc
) -> None:
    redis_proc.stop()
    await store.save_call({"id": "c1", "state": "waiting"}, new=True)
    redis_proc.start()
    # Until the replay is done, a newer write joins the buffer (behind the older one) ...
    await store.save_call({"id": "c1", "state": "connected"})
    assert store.stats().buffered_calls == 1
    assert await _until(lambda: not store.degraded)
    # ... and once it is done, writes go straight to Redis: the newest state wins either way.
    await store.save_call({"id": "c1", "state": "ended"})
    assert (await _record(reader, "c1") or {})["state"] == "ended"
    assert await reader.lrange(CALLS_KEY, 0, -1) == ["c1"]


async def test_an_older_write_reaching_the_buffer_late_does_not_replace_a_newer_one(
    store: Store, reader: Redis, redis_proc: RedisProc
) -> None:
    """A write that was queued behind the one that failed lands in the buffer after writes
    issued later; its sequence number, not its arrival, decides."""
    redis_proc.stop()
    await store.save_call({"id": "c1", "state": "waiting"}, new=True)
    store._buffer_call(0, "c1", json.dumps({"id": "c1", "state": "stale"}), False)
    store._buffer_event(0, {"call": "c1", "kind": "early"})
    await store.add_event("c1", "late")
    assert [entry["kind"] for _, entry in store._events] == ["early", "late"]
    redis_proc.start()
    assert await _until(lambda: not store.degraded)
    assert (await _record(reader, "c1") or {})["state"] == "waiting"
    assert await _kinds(reader) == ["early", "late"]


async def test_writes_never_wait_on_a_frozen_redis_once_degraded(
    store: Store, redis_proc: RedisProc
) -> None:
    """SIGSTOP: the socket stays open and nothing answers. The first write waits out the
    socket timeout; the next hundred go to the buffer without touching the network (each
    of them would wait seconds otherwise)."""
    redis_proc.freeze()
    started = time.monotonic()
    await store.save_call({"id": "c1"}, new=True)
    first_s = time.monotonic() - started
    started = time.monotonic()
    for n in range(100):
        await store.add_event("c1", "tick", n=n)
    rest_s = time.monotonic() - started
    print(f"frozen Redis: first write {first_s:.2f} s, next 100 writes {rest_s * 1000:.1f} ms")
    assert store.degraded and store.stats().buffered_events == 100
    assert rest_s < first_s  # the hundred together took less than the one that tried
    redis_proc.thaw()
    assert await _until(lambda: not store.degraded)


async def test_a_failed_ping_degrades_before_any_write_and_a_good_one_ends_it(
    store: Store, reader: Redis, redis_proc: RedisProc
) -> None:
    redis_proc.stop(signal.SIGKILL)
    assert not await store.ping()
    assert store.degraded and store.stats().failed_writes == 0
    await store.add_event("c1", "enter")
    assert store.stats().buffered_events == 1
    redis_proc.start()
    assert await _until(store.ping)
    assert await _until(lambda: not store.degraded)
    assert await _kinds(reader) == ["enter"]


async def test_the_caps_keep_the_first_writes_and_count_the_rest(
    redis_proc: RedisProc, reader: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(unix_socket=str(redis_proc.socket), calls_max=3, events_max=5)
    try:
        redis_proc.stop()
        for n in range(5):
            await store.save_call({"id": f"c{n}", "state": "waiting"}, new=True)
            await store.add_event(f"c{n}", "enter")
            await store.add_event(f"c{n}", "abandon")
        await store.save_call({"id": "c0", "state": "ended"})  # a buffered call: replaced
        stats = store.stats()
        assert (stats.buffered_calls, stats.buffered_events) == (3, 5)
        assert (stats.dropped_calls, stats.dropped_events) == (2, 5)
        assert caplog.messages.count("store.buffer_full") == 2  # the first of each kind
        redis_proc.start()
        assert await _until(lambda: not store.degraded)
        assert await reader.lrange(CALLS_KEY, 0, -1) == ["c0", "c1", "c2"]
        assert (await _record(reader, "c0") or {})["state"] == "ended"
        assert len(await reader.xrange(EVENTS_KEY)) == 5
        assert store.stats().dropped_calls == 2  # still counted after the recovery
    finally:
        await store.close()


async def test_a_long_outage_is_retried_with_backoff_and_replayed_in_batches_in_order(
    store: Store, reader: Redis, redis_proc: RedisProc, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ccserver.store")
    redis_proc.stop()
    for n in range(1200):  # more than two replay batches
        await store.add_event("c1", "tick", n=n)
    assert await _until(lambda: caplog.messages.count("store.replay_failed") >= 2)
    redis_proc.start()
    assert await _until(lambda: not store.degraded, timeout=60)
    numbers = [int(fields["n"]) for _, fields in await reader.xrange(EVENTS_KEY)]
    assert numbers == list(range(1200))
    stats = store.stats()
    assert (stats.buffered, stats.replayed) == (0, 1200)
    assert stats.failed_writes >= 3  # the write that failed, then each replay attempt
    failed = [r for r in caplog.records if r.msg == "store.replay_failed"]
    retries = [getattr(r, "fields", {})["retry_in_s"] for r in failed]
    assert retries[:2] == [1.0, 2.0]


async def test_close_writes_the_buffer_when_redis_is_back_and_says_what_it_lost_if_not(
    redis_proc: RedisProc, reader: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(unix_socket=str(redis_proc.socket))
    redis_proc.stop()
    await store.save_call({"id": "c1"}, new=True)
    redis_proc.start()
    await store.close()  # before the replay's first retry: close writes it
    assert await reader.lrange(CALLS_KEY, 0, -1) == ["c1"]

    lost = Store(unix_socket=str(redis_proc.socket))
    redis_proc.stop()
    await lost.add_event("c2", "enter")
    await lost.close()
    assert "store.closed_with_buffered" in caplog.messages


async def test_the_store_metrics_show_the_outage(store: Store, redis_proc: RedisProc) -> None:
    redis_proc.stop()
    await store.save_call({"id": "c1"}, new=True)
    await store.add_event("c1", "enter")
    down = _samples(store)
    assert down["ccserver_store_degraded"] == 1
    assert down['ccserver_store_buffered_writes{kind="call"}'] == 1
    assert down['ccserver_store_buffered_writes{kind="event"}'] == 1
    assert down['ccserver_store_buffered_writes{kind="acd"}'] == 0
    assert down["ccserver_store_write_failures_total"] == 1
    assert down['ccserver_store_dropped_total{kind="event"}'] == 0
    redis_proc.start()
    assert await _until(lambda: not store.degraded)
    up = _samples(store)
    assert up["ccserver_store_degraded"] == 0
    assert up['ccserver_store_buffered_writes{kind="call"}'] == 0
    assert up["ccserver_store_replayed_total"] == 2


def _samples(store: Store) -> dict[str, float]:
    class Only(Collector):
        def collect(self) -> Iterator[Any]:
            yield from collector.store_families(store.stats())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Only())
    samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples
