"""Desk sessions: a bearer token an agent gets by logging in at the desk page with its id
and PIN, kept in Redis so that a restarted controller still knows it.

Only a hash of each token is stored (`ccserver:session:<sha256>`, with the agent and the
expiry), and Redis expires the key itself: a session lasts `desk.session_ttl_s` and is
gone at once when the desk logs out. A session stands for the agent role of one agent,
whose PIN it has proven.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Awaitable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ccserver.api.auth import AGENT_PREFIX, Principal, Role
from ccserver.errors import CCServerError

KEY = "ccserver:session:{digest}"
T = TypeVar("T")


class Sessions:
    def __init__(self, redis: aioredis.Redis, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    async def open(self, agent_id: str) -> tuple[str, float]:
        """A new session of the agent: its token and expiry (epoch seconds)."""
        token = secrets.token_urlsafe(32)
        expires_at = time.time() + self.ttl_s
        body = json.dumps({"agent": agent_id, "expires_at": expires_at})
        await self._do(self.redis.set(_key(token), body, ex=self.ttl_s))
        return token, expires_at

    async def find(self, token: str) -> Principal | None:
        raw = await self._do(self.redis.get(_key(token)))
        if raw is None:
            return None
        data = json.loads(raw)
        agent = str(data["agent"])
        return Principal(
            AGENT_PREFIX + agent,
            Role.AGENT,
            agent,
            session=_digest(token),
            expires_at=float(data["expires_at"]),
        )

    async def close(self, principal: Principal) -> None:
        if principal.session is not None:
            await self._do(self.redis.delete(KEY.format(digest=principal.session)))

    @staticmethod
    async def _do(pending: Awaitable[T]) -> T:
        try:
            return await pending
        except (RedisError, OSError):
            raise CCServerError(
                "desk sessions are kept in Redis, which does not answer; try again shortly",
                slug="sessions-unavailable",
                status=503,
            ) from None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _key(token: str) -> str:
    return KEY.format(digest=_digest(token))
