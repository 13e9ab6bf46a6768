"""Outage notices: what callers hear before the menu while a fault or planned outage lasts.

A supervisor posts a notice (text, optional English text, scope, start and end); flows
play it with a `play` node that has `notice: true`, after a `branch` on `notice_active`.
Notices live in Redis (one hash, `ccserver:notices`, notice id → JSON), so every
controller sees a new notice at once and none is lost on a restart. The audio is generated
when the notice is added — a caller never waits for espeak-ng — and a notice whose audio
cannot be made is refused rather than stored silent.

Scope is "all" or a list of caller-number prefixes (an outage in one district reaches the
callers whose numbers start with that district's prefixes).
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import logging
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator
from redis.asyncio import Redis

from ccserver.errors import CCServerError, InputError
from ccserver.logs import log
from ccserver.prompts import Prompts, unspeakable

logger = logging.getLogger("ccserver.ivr")

KEY = "ccserver:notices"
Prefix = Annotated[str, Field(pattern=r"^[0-9]{1,20}$")]


class NoticeUnknown(CCServerError):
    slug = "notice-unknown"
    status = 404


class NoticeInput(BaseModel):
    """A notice as posted (`POST /api/v1/notices`); `starts_at` defaults to now."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1, max_length=500)
    text_en: str | None = Field(default=None, min_length=1, max_length=500)
    scope: Literal["all"] | list[Prefix] = Field(default="all")
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime

    @model_validator(mode="after")
    def _spoken(self) -> NoticeInput:
        if not self.text.strip() or (self.text_en is not None and not self.text_en.strip()):
            raise ValueError("a notice needs words to speak, not only spaces")
        for name, text in (("text", self.text), ("text_en", self.text_en)):
            problem = unspeakable(text or "")
            if problem is not None:
                raise ValueError(f"{name}: {problem}")
        if isinstance(self.scope, list) and not self.scope:
            raise ValueError('scope: give "all" or at least one caller-number prefix')
        return self


class Notice(BaseModel):
    """A stored notice. Active from `starts_at` (included) to `ends_at` (excluded)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    text: str
    text_en: str | None = None
    scope: Literal["all"] | list[str]
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    created_at: AwareDatetime

    def is_active(self, now: dt.datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def reaches(self, caller: str) -> bool:
        return self.scope == "all" or any(caller.startswith(p) for p in self.scope)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, times in ISO 8601 with their offset."""
        return self.model_dump(mode="json")


def _input_error(exc: ValidationError) -> InputError:
    lines = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "notice"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if field == "scope" and err["type"] != "value_error":
            msg = '"all" or a list of caller-number prefixes (digits), e.g. ["0755", "139"]'
        elif err["type"] == "timezone_aware":
            msg = "give the time with its offset, e.g. 2025-07-01T08:00:00+08:00"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field (text, text_en, scope, starts_at, ends_at)"
        elif err["type"] == "missing":
            msg = "required"
        lines.append(f"{field}: {msg}")
    return InputError("; ".join(dict.fromkeys(lines)))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class NoticeBoard:
    """The notices, in Redis under `key` (a hash: id → notice JSON)."""

    def __init__(self, redis: Redis, prompts: Prompts, *, key: str = KEY) -> None:
        self.redis, self.prompts, self.key = redis, prompts, key

    async def add(self, data: Mapping[str, Any], *, now: dt.datetime | None = None) -> Notice:
        """Validate a posted notice, generate its audio, store it; InputError says exactly
        which field is wrong. Callers arriving afterwards hear it at once."""
        now = now or _now()
        try:
            given = NoticeInput.model_validate(dict(data))
        except ValidationError as exc:
            raise _input_error(exc) from None
        starts_at = given.starts_at or now
        if given.ends_at <= starts_at:
            raise InputError("ends_at: must be after starts_at")
        if given.ends_at <= now:
            raise InputError("ends_at: already past; a notice must end in the future")
        notice = Notice(
            id=uuid.uuid4().hex[:12],
            text=given.text.strip(),
            text_en=given.text_en.strip() if given.text_en else None,
            scope=given.scope,
            starts_at=starts_at,
            ends_at=given.ends_at,
            created_at=now,
        )
        await asyncio.to_thread(self.prompts.sound, notice.text, "zh")
        if notice.text_en:
            await asyncio.to_thread(self.prompts.sound, notice.text_en, "en")
        await self.redis.hset(self.key, notice.id, notice.model_dump_json())
        scope = notice.scope if notice.scope == "all" else ",".join(notice.scope)
        log(logger, "notice.added", notice=notice.id, scope=scope, ends_at=notice.ends_at)
        return notice

    async def list(self, now: dt.datetime | None = None) -> builtins.list[Notice]:
        """Notices not yet ended (active or scheduled), by start time. Ended ones are
        removed from Redis as they are found: nobody will hear them again."""
        now = now or _now()
        stored: dict[Any, Any] = await self.redis.hgetall(self.key)
        notices, ended = [], []
        for field, value in stored.items():
            notice = Notice.model_validate_json(value)
            if notice.ends_at <= now:
                ended.append(field)
            else:
                notices.append(notice)
        if ended:
            await self.redis.hdel(self.key, *ended)
        return sorted(notices, key=lambda n: (n.starts_at, n.created_at))

    async def delete(self, notice_id: str) -> None:
        """Withdraw a notice at once; NoticeUnknown (404) when there is no such notice."""
        removed = await self.redis.hdel(self.key, notice_id)
        if not removed:
            raise NoticeUnknown(f"no notice {notice_id!r} (GET /api/v1/notices lists them)")
        log(logger, "notice.deleted", notice=notice_id)

    async def active_for(self, caller: str, now: dt.datetime) -> builtins.list[Notice]:
        """The notices a caller from `caller` hears now, oldest first."""
        return [n for n in await self.list(now) if n.is_active(now) and n.reaches(caller)]

    async def active_count(self, now: dt.datetime) -> int:
        return sum(1 for n in await self.list(now) if n.is_active(now))
