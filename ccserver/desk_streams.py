"""Redis keeps each agent's desk events (`ccserver.calls.desk.DeskStreams`): the stream
`ccserver:desk:<agent>`, one entry per event with the id `<seq>-0` (so Redis itself refuses
an event numbered out of order) and the event as JSON, trimmed to about `KEEP` entries: a
desk away for longer than that many events starts again from a snapshot."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

KEY = "ccserver:desk:{agent}"
KEEP = 1000


class RedisDeskStreams:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def last(self, agents: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(agents)
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent in ids:
                pipe.xrevrange(KEY.format(agent=agent), count=1)
            answers = await pipe.execute()
        found = zip(ids, answers, strict=True)
        return {agent: _event(entries[0]) for agent, entries in found if entries}

    async def append(self, agent: str, event: dict[str, Any]) -> None:
        """Raises the builtin ConnectionError while Redis can't be reached (worth a retry);
        anything else is for good (e.g. an id not above the stream's newest)."""
        try:
            await self.redis.xadd(
                KEY.format(agent=agent),
                {"e": json.dumps(event, ensure_ascii=False)},
                id=f"{event['seq']}-0",
                maxlen=KEEP,
                approximate=True,
            )
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise ConnectionError(str(exc)) from exc

    async def between(self, agent: str, after: int, upto: int) -> list[dict[str, Any]]:
        entries = await self.redis.xrange(KEY.format(agent=agent), f"{after + 1}-0", f"{upto}-0")
        return [_event(entry) for entry in entries or []]


def _event(entry: Any) -> dict[str, Any]:
    """An event from a stream entry `(id, {"e": json})`."""
    fields = entry[1] or {}
    event: dict[str, Any] = json.loads(fields.get("e") or fields.get(b"e") or "{}")
    return event
