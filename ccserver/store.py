"""Redis: the record of every call and the stream of call events.

Keys: `ccserver:call:<id>` (the call record as JSON), `ccserver:calls` (call ids in arrival
order), `ccserver:acd` (the ACD state a restarted controller rebuilds its router from) and
the stream `ccserver:events` (queue and agent events). A Redis outage must never drop a
caller: writes that fail are logged and counted (`failed_writes`) and the call goes on.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ccserver.logs import log

logger = logging.getLogger("ccserver.store")
CALL_KEY = "ccserver:call:{id}"
CALLS_KEY = "ccserver:calls"
EVENTS_KEY = "ccserver:events"
ACD_KEY = "ccserver:acd"
EVENTS_MAXLEN = 100_000


class Store:
    def __init__(self, host: str, port: int) -> None:
        self.redis = aioredis.Redis(
            host=host,
            port=port,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            decode_responses=True,
        )
        self.failed_writes = 0

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except RedisError:
            return False

    async def save_call(self, record: dict[str, Any], *, new: bool = False) -> None:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(CALL_KEY.format(id=record["id"]), json.dumps(record))
                if new:
                    pipe.rpush(CALLS_KEY, record["id"])
                await pipe.execute()
        except RedisError as exc:
            self._failed("save_call", exc, call=record["id"])

    async def add_event(self, call_id: str, kind: str, **fields: Any) -> None:
        entry: dict[Any, Any] = {
            "call": call_id,
            "kind": kind,
            **{k: str(v) for k, v in fields.items()},
        }
        try:
            await self.redis.xadd(EVENTS_KEY, entry, maxlen=EVENTS_MAXLEN, approximate=True)
        except RedisError as exc:
            self._failed("add_event", exc, call=call_id)

    async def load_call(self, call_id: str) -> dict[str, Any] | None:
        """The saved record, or None (also when Redis can't be read: the caller matters
        more than the record)."""
        try:
            raw = await self.redis.get(CALL_KEY.format(id=call_id))
            record = json.loads(raw) if raw else None
        except (RedisError, ValueError) as exc:
            log(logger, "store.read_failed", logging.WARNING, call=call_id, error=repr(exc)[:200])
            return None
        return record if isinstance(record, dict) else None

    async def save_acd(self, state: dict[str, Any]) -> None:
        """The ACD state (router snapshot, seats, parked callbacks), written through."""
        try:
            await self.redis.set(ACD_KEY, json.dumps(state))
        except RedisError as exc:
            self._failed("save_acd", exc)

    async def load_acd(self) -> dict[str, Any] | None:
        """The saved ACD state; None when there is none (or it is unreadable). A Redis that
        cannot be reached raises RedisError: starting afresh then would lose every caller's
        place, so the caller retries instead."""
        raw = await self.redis.get(ACD_KEY)
        try:
            state = json.loads(raw) if raw else None
        except ValueError as exc:
            log(logger, "store.read_failed", logging.ERROR, key=ACD_KEY, error=repr(exc)[:200])
            return None
        return state if isinstance(state, dict) else None

    def _failed(self, what: str, exc: Exception, **fields: Any) -> None:
        self.failed_writes += 1
        log(logger, "store.write_failed", logging.WARNING, op=what, error=repr(exc)[:200], **fields)
