"""Redis: the record of every call and the stream of call events.

Keys: `ccserver:call:<id>` (the call record as JSON), `ccserver:calls` (call ids in arrival
order), `ccserver:acd` (the ACD state a restarted controller rebuilds its router from) and
the stream `ccserver:events` (queue and agent events).

A Redis outage must never drop a caller, nor hold one up: a write that fails puts the store
in a *degraded* mode where writes go to a bounded buffer in memory instead of Redis, at
once, without touching the network — the latest record of each call, the latest ACD state
and the events in order. A background task retries (0.5 s doubling to 8 s, or at once when a
health check finds Redis answering again), replays the buffer in order and leaves degraded
mode only when the buffer is empty, so a replayed record can never land after a newer one:
while degraded, nothing but the replay writes to Redis. The buffer has caps; what they drop
is counted (`dropped_*`) and logged, never silent. `/healthz` and `/metrics` show the mode
(`stats()`), and docs/observability.md says what ops do about it.

Healthy writes go straight to Redis (one at a time, under a lock: a later write can never
overtake an earlier one that is failing), so a record is readable as soon as its save
returns.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from ccserver.logs import log

logger = logging.getLogger("ccserver.store")
CALL_KEY = "ccserver:call:{id}"
CALLS_KEY = "ccserver:calls"
EVENTS_KEY = "ccserver:events"
ACD_KEY = "ccserver:acd"
EVENTS_MAXLEN = 100_000
# Caps of the outage buffer, about 40 MB at most (measured: ~0.6 KB of Python objects an
# event, ~1 KB a record): 50 000 events are hours of a busy center (150 calls at once,
# ~5 events/s), and 10 000 calls far more than one box carries at once.
CALLS_BUFFER_MAX = 10_000
EVENTS_BUFFER_MAX = 50_000
REPLAY_BATCH = 500  # writes per MULTI/EXEC while replaying
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 8.0
CLOSE_FLUSH_S = 5.0


@dataclass
class _Pending:
    """A call's latest record waiting for Redis; `new` until its id is pushed to the list."""

    seq: int
    payload: str
    new: bool


@dataclass(frozen=True)
class StoreStats:
    """What `/healthz` and `/metrics` show of the store."""

    degraded: bool
    degraded_s: float  # how long the current outage has lasted (0 when healthy)
    buffered_calls: int
    buffered_acd: int
    buffered_events: int
    failed_writes: int
    replayed: int
    dropped_calls: int
    dropped_events: int

    @property
    def buffered(self) -> int:
        return self.buffered_calls + self.buffered_acd + self.buffered_events


class Store:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        *,
        unix_socket: str | None = None,
        calls_max: int = CALLS_BUFFER_MAX,
        events_max: int = EVENTS_BUFFER_MAX,
    ) -> None:
        # One retry, on a connection error only: a connection left over from before a Redis
        # restart fails once, then the retry reconnects. redis-py's default (10 retries with
        # backoff, timeouts too) would hold a caller's coroutine for half a minute on a frozen
        # Redis; this way the one write that finds it frozen waits 4 s (two 2 s connection
        # attempts) and every write after it goes to the buffer.
        self.redis = aioredis.Redis(
            host=host,
            port=port,
            unix_socket_path=unix_socket,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            decode_responses=True,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self.calls_max, self.events_max = calls_max, events_max
        self.failed_writes = 0  # write attempts Redis did not take (direct or replay)
        self.replayed = 0
        self.dropped_calls = 0
        self.dropped_events = 0
        self._seq = 0
        self._lock = asyncio.Lock()
        self._degraded_at: float | None = None  # monotonic time the outage began
        self._calls: dict[str, _Pending] = {}  # insertion order = order of the ids' pushes
        self._acd: tuple[int, str] | None = None
        self._events: list[tuple[int, dict[Any, Any]]] = []  # sorted by seq
        self._wake = asyncio.Event()
        self._replayer: asyncio.Task[None] | None = None

    @property
    def degraded(self) -> bool:
        return self._degraded_at is not None

    def stats(self) -> StoreStats:
        return StoreStats(
            degraded=self.degraded,
            degraded_s=0.0 if self._degraded_at is None else time.monotonic() - self._degraded_at,
            buffered_calls=len(self._calls),
            buffered_acd=int(self._acd is not None),
            buffered_events=len(self._events),
            failed_writes=self.failed_writes,
            replayed=self.replayed,
            dropped_calls=self.dropped_calls,
            dropped_events=self.dropped_events,
        )

    async def close(self) -> None:
        """Stop the replay task; one last bounded try to write what is buffered (a stop
        during an outage loses the buffer, and says how much)."""
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
        if self._buffered():
            try:
                await asyncio.wait_for(self._drain(), CLOSE_FLUSH_S)
            except (RedisError, TimeoutError) as exc:
                log(
                    logger,
                    "store.closed_with_buffered",
                    logging.ERROR,
                    **self._counts(),
                    error=repr(exc)[:200],
                )
        await self.redis.aclose()

    async def ping(self) -> bool:
        """Does Redis answer? A failed ping puts the store in degraded mode (so writes stop
        waiting on a Redis that is gone); a good one wakes the replay at once."""
        try:
            ok = bool(await self.redis.ping())
        except RedisError as exc:
            self._degrade("ping", exc)
            return False
        if ok and self.degraded:
            self._wake.set()
        return ok

    # --- writes --------------------------------------------------------------------------
    async def save_call(self, record: dict[str, Any], *, new: bool = False) -> None:
        seq, call_id, payload = self._next(), str(record["id"]), json.dumps(record)

        def write(pipe: Pipeline) -> None:
            pipe.set(CALL_KEY.format(id=call_id), payload)
            if new:
                pipe.rpush(CALLS_KEY, call_id)

        if not await self._direct("save_call", write, call=call_id):
            self._buffer_call(seq, call_id, payload, new)

    async def add_event(self, call_id: str, kind: str, **fields: Any) -> None:
        seq = self._next()
        entry: dict[Any, Any] = {
            "call": call_id,
            "kind": kind,
            **{k: str(v) for k, v in fields.items()},
        }

        def write(pipe: Pipeline) -> None:
            pipe.xadd(EVENTS_KEY, entry, maxlen=EVENTS_MAXLEN, approximate=True)

        if not await self._direct("add_event", write, call=call_id):
            self._buffer_event(seq, entry)

    async def save_acd(self, state: dict[str, Any]) -> None:
        """The ACD state (router snapshot, seats, parked callbacks), written through."""
        seq, payload = self._next(), json.dumps(state)

        def write(pipe: Pipeline) -> None:
            pipe.set(ACD_KEY, payload)

        if not await self._direct("save_acd", write) and (self._acd is None or self._acd[0] < seq):
            self._acd = (seq, payload)

    # --- reads ---------------------------------------------------------------------------
    async def load_call(self, call_id: str) -> dict[str, Any] | None:
        """The saved record (a buffered one first: it is newer than Redis's), or None (also
        when Redis can't be read: the caller matters more than the record)."""
        pending = self._calls.get(call_id)
        try:
            if pending is not None:
                raw: str | bytes | None = pending.payload
            else:
                raw = await self.redis.get(CALL_KEY.format(id=call_id))
            record = json.loads(raw) if raw else None
        except (RedisError, ValueError) as exc:
            log(logger, "store.read_failed", logging.WARNING, call=call_id, error=repr(exc)[:200])
            return None
        return record if isinstance(record, dict) else None

    async def load_acd(self) -> dict[str, Any] | None:
        """The saved ACD state; None when there is none (or it is unreadable). A Redis that
        cannot be reached raises RedisError: starting afresh then would lose every caller's
        place, so the caller retries instead."""
        raw = self._acd[1] if self._acd is not None else await self.redis.get(ACD_KEY)
        try:
            state = json.loads(raw) if raw else None
        except ValueError as exc:
            log(logger, "store.read_failed", logging.ERROR, key=ACD_KEY, error=repr(exc)[:200])
            return None
        return state if isinstance(state, dict) else None

    # --- the outage buffer ---------------------------------------------------------------
    def _next(self) -> int:
        self._seq += 1
        return self._seq

    async def _direct(self, what: str, write: Callable[[Pipeline], None], **fields: Any) -> bool:
        """Write to Redis unless degraded; False when the write is for the buffer. The check
        is repeated under the lock: a write queued behind one that failed must not try."""
        if self.degraded:
            return False
        async with self._lock:
            if self.degraded:
                return False
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    write(pipe)
                    await pipe.execute()
            except RedisError as exc:
                self.failed_writes += 1
                log(
                    logger,
                    "store.write_failed",
                    logging.WARNING,
                    op=what,
                    error=repr(exc)[:200],
                    **fields,
                )
                self._degrade(what, exc)
                return False
        return True

    def _buffer_call(self, seq: int, call_id: str, payload: str, new: bool) -> None:
        held = self._calls.get(call_id)
        if held is not None:
            # A new object (the replay compares identities); the id keeps its place in the
            # push order. An older write queued behind a failing one must not win.
            newer = (seq, payload) if held.seq < seq else (held.seq, held.payload)
            self._calls[call_id] = _Pending(*newer, new=held.new or new)
        elif len(self._calls) >= self.calls_max:
            self.dropped_calls += 1
            self._dropped("call", call=call_id)
        else:
            self._calls[call_id] = _Pending(seq, payload, new)

    def _buffer_event(self, seq: int, entry: dict[Any, Any]) -> None:
        if len(self._events) >= self.events_max:
            self.dropped_events += 1
            self._dropped("event", call=entry["call"])
        else:
            bisect.insort(self._events, (seq, entry), key=lambda item: item[0])

    def _dropped(self, kind: str, **fields: Any) -> None:
        dropped = self.dropped_calls if kind == "call" else self.dropped_events
        if dropped == 1 or dropped % 1000 == 0:  # the first and then every thousandth
            log(logger, "store.buffer_full", logging.ERROR, kind=kind, dropped=dropped, **fields)

    def _degrade(self, what: str, exc: Exception) -> None:
        if self.degraded:
            return
        self._degraded_at = time.monotonic()
        log(logger, "store.degraded", logging.WARNING, op=what, error=repr(exc)[:200])
        self._replayer = asyncio.get_running_loop().create_task(self._replay())

    def _buffered(self) -> bool:
        return bool(self._calls or self._events or self._acd is not None)

    def _counts(self) -> dict[str, int]:
        stats = self.stats()
        return {
            "calls": stats.buffered_calls,
            "acd": stats.buffered_acd,
            "events": stats.buffered_events,
        }

    async def _replay(self) -> None:
        """Retry with backoff until Redis takes the whole buffer; then leave degraded mode
        (in the same step as finding the buffer empty, so no write slips in between)."""
        delay, attempts, replayed_before = RETRY_FIRST_S, 0, self.replayed
        while True:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            attempts += 1
            try:
                if not self._buffered():
                    await self.redis.ping()
                await self._drain()
            except RedisError as exc:
                self.failed_writes += int(self._buffered())
                log(
                    logger,
                    "store.replay_failed",
                    logging.WARNING,
                    attempt=attempts,
                    retry_in_s=min(delay * 2, RETRY_MAX_S),
                    **self._counts(),
                    error=repr(exc)[:200],
                )
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if not self._buffered():
                break
        outage = time.monotonic() - (self._degraded_at or time.monotonic())
        self._degraded_at, self._replayer = None, None
        log(
            logger,
            "store.recovered",
            outage_s=round(outage, 3),
            attempts=attempts,
            replayed=self.replayed - replayed_before,
            dropped_calls=self.dropped_calls,
            dropped_events=self.dropped_events,
        )

    async def _drain(self) -> None:
        """Write the buffer to Redis in batches, oldest first; forget each write only once
        Redis has it, and only if no newer version of it arrived meanwhile."""
        while self._buffered():
            calls = list(itertools.islice(self._calls.items(), REPLAY_BATCH))
            acd = self._acd
            events = self._events[:REPLAY_BATCH]
            async with self._lock, self.redis.pipeline(transaction=True) as pipe:
                for call_id, pending in calls:
                    pipe.set(CALL_KEY.format(id=call_id), pending.payload)
                    if pending.new:
                        pipe.rpush(CALLS_KEY, call_id)
                if acd is not None:
                    pipe.set(ACD_KEY, acd[1])
                for _, entry in events:
                    pipe.xadd(EVENTS_KEY, entry, maxlen=EVENTS_MAXLEN, approximate=True)
                await pipe.execute()
            for call_id, pending in calls:
                held = self._calls[call_id]
                if held is pending:
                    del self._calls[call_id]
                elif pending.new:
                    held.new = False  # the id is in the list now; the newer record follows
            if self._acd is acd:
                self._acd = None
            written = {seq for seq, _ in events}
            self._events = [item for item in self._events if item[0] not in written]
            self.replayed += len(calls) + len(events) + int(acd is not None)
