"""Who is calling: bearer tokens, the role each token name gives, and a small in-process
rate limit on failed attempts.

Token names come from the run dir's secrets (`Secrets.api_tokens`): `admin`, `supervisor`
and `agent:<agent id>`. Roles nest, `admin` ⊃ `supervisor` ⊃ `agent`, so a route names the
least role it needs. Tokens are compared in constant time: both sides are hashed first (so
lengths never differ) and every known token is compared, whichever matches.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ccserver.errors import CCServerError
from ccserver.logs import log

logger = logging.getLogger("ccserver.api")
AGENT_PREFIX = "agent:"


class Role(enum.IntEnum):
    AGENT = 1
    SUPERVISOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Principal:
    """The caller behind a valid token."""

    name: str  # the token name, e.g. `agent:1001`
    role: Role
    agent_id: str | None = None  # set for agent tokens only
    session: str | None = None  # a desk session's key (its PIN is proven); None: a token
    expires_at: float | None = None  # a desk session's end

    def may_act_for(self, agent_id: str) -> bool:
        """Supervisors act for every agent; an agent only for itself."""
        return self.role >= Role.SUPERVISOR or self.agent_id == agent_id

    @property
    def reader(self) -> str | None:
        """The agent an agent token reads for (its own calls only); None for supervisors."""
        return None if self.role >= Role.SUPERVISOR else self.agent_id


class ApiError(CCServerError):
    """A refusal by the HTTP layer itself, with the headers its status calls for
    (`WWW-Authenticate` on 401, `Retry-After` on 429)."""

    def __init__(
        self, message: str, *, slug: str, status: int, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message, slug=slug, status=status)
        self.headers = dict(headers or {})


def principal_for(name: str) -> Principal | None:
    """The principal a token name stands for, or None for a name we don't know."""
    if name == "admin":
        return Principal(name, Role.ADMIN)
    if name == "supervisor":
        return Principal(name, Role.SUPERVISOR)
    if name.startswith(AGENT_PREFIX) and len(name) > len(AGENT_PREFIX):
        return Principal(name, Role.AGENT, name[len(AGENT_PREFIX) :])
    return None


class TokenTable:
    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._entries: list[tuple[bytes, Principal]] = []
        for name, token in sorted(tokens.items()):
            principal = principal_for(name)
            if principal is None or not token:
                log(logger, "api.token_ignored", logging.WARNING, name=name)
                continue
            self._entries.append((_digest(token), principal))

    def find(self, token: str) -> Principal | None:
        presented = _digest(token)
        found: Principal | None = None
        for digest, principal in self._entries:  # no early exit: same time for every token
            if hmac.compare_digest(presented, digest):
                found = principal
        return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class RateLimiter:
    """At most `limit` failures per key in a sliding `window_s`; past that the key is
    refused until its oldest failure leaves the window. Keys are kept only while they have
    failures in the window, and at most `max_keys` of them (the stalest go first), so a
    flood of remotes can't grow it without bound."""

    def __init__(
        self,
        limit: int = 5,
        window_s: float = 60.0,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window_s, self.max_keys, self._clock = limit, window_s, max_keys, clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> int | None:
        """Whole seconds until `key` may try again, or None when it may now."""
        now = self._clock()
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        if len(times) < self.limit:
            return None
        return max(1, math.ceil(times[0] + self.window_s - now))

    def fail(self, key: str) -> None:
        times = self._failures.pop(key, None) or deque(maxlen=self.limit)
        times.append(self._clock())
        self._failures[key] = times  # re-inserted: dict order is staleness order
        while len(self._failures) > self.max_keys:
            del self._failures[next(iter(self._failures))]

    def check(self, key: str, what: str) -> None:
        """Raise 429 `rate-limited` while `key` is over its limit."""
        retry = self.retry_after(key)
        if retry is not None:
            log(logger, "api.rate_limited", logging.WARNING, key=key, retry_after_s=retry)
            raise ApiError(
                f"too many failed {what}; try again in {retry} s",
                slug="rate-limited",
                status=429,
                headers={"Retry-After": str(retry)},
            )
