"""Outage notices in a real Redis: validated on the way in, audio made at once, scoped by
caller-number prefix, active between start and end, gone when ended or deleted."""

from __future__ import annotations

import datetime as dt

import pytest
from redis.asyncio import Redis

from ccserver.errors import CCServerError, InputError
from ccserver.ivr.notices import KEY, NoticeBoard
from ccserver.prompts import PromptError, Prompts

NOW = dt.datetime(2025, 7, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
HOUR = dt.timedelta(hours=1)


def posted(**fields: object) -> dict[str, object]:
    """A notice as the REST API receives it (JSON: times as ISO strings)."""
    body: dict[str, object] = {
        "text": "城南片区计划停电，预计十一点恢复。",
        "ends_at": (NOW + HOUR).isoformat(),
    }
    body.update(fields)
    return body


async def test_a_notice_is_stored_with_its_audio_and_heard_by_callers_in_scope(
    redis: Redis, prompts: Prompts
) -> None:
    board = NoticeBoard(redis, prompts)
    notice = await board.add(
        posted(text_en="Planned outage in the south.", scope=["139", "0755"]), now=NOW
    )
    assert notice.starts_at == NOW and notice.ends_at == NOW + HOUR
    assert prompts.path(notice.text, "zh").exists()  # generated at once: callers never wait
    assert prompts.path("Planned outage in the south.", "en").exists()
    assert await redis.hexists(KEY, notice.id)
    assert [n.id for n in await board.active_for("13912345678", NOW)] == [notice.id]
    assert [n.id for n in await board.active_for("075588887777", NOW)] == [notice.id]
    assert await board.active_for("13812345678", NOW) == []
    assert await board.active_count(NOW) == 1
    assert notice.to_dict()["starts_at"] == "2025-07-01T09:00:00+08:00"


async def test_scheduled_notices_start_later_and_ended_ones_disappear(
    redis: Redis, prompts: Prompts
) -> None:
    board = NoticeBoard(redis, prompts)
    later = await board.add(
        posted(starts_at=(NOW + HOUR).isoformat(), ends_at=(NOW + 2 * HOUR).isoformat()),
        now=NOW,
    )
    everyone = await board.add(posted(), now=NOW)
    assert [n.id for n in await board.active_for("1", NOW)] == [everyone.id]
    assert [n.id for n in await board.list(NOW)] == [everyone.id, later.id]
    assert [n.id for n in await board.active_for("1", NOW + HOUR)] == [later.id]
    assert await redis.hlen(KEY) == 1  # `everyone` ended at NOW + HOUR and was removed
    assert await board.active_count(NOW + 2 * HOUR) == 0


async def test_deleting_withdraws_a_notice_at_once(redis: Redis, prompts: Prompts) -> None:
    board = NoticeBoard(redis, prompts)
    notice = await board.add(posted(), now=NOW)
    await board.delete(notice.id)
    assert await board.active_for("1", NOW) == []
    with pytest.raises(CCServerError) as caught:
        await board.delete(notice.id)
    assert (caught.value.slug, caught.value.status) == ("notice-unknown", 404)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"text": ""}, "text: String should have at least 1 character"),
        ({"text": "   "}, "a notice needs words to speak"),
        ({"text": "停电\x00"}, "text: the text has a character that cannot be spoken (U+0000)"),
        ({"text_en": "\ud800 outage"}, "text_en: Input should be a valid string"),
        ({"ends_at": "2025-07-01T10:00:00"}, "ends_at: give the time with its offset"),
        ({"ends_at": (NOW - HOUR).isoformat()}, "ends_at: must be after starts_at"),
        (
            {"starts_at": (NOW - 2 * HOUR).isoformat(), "ends_at": (NOW - HOUR).isoformat()},
            "ends_at: already past",
        ),
        ({"scope": ["13a"]}, 'scope: "all" or a list of caller-number prefixes (digits)'),
        ({"scope": "al"}, 'scope: "all" or a list of caller-number prefixes (digits)'),
        ({"scope": []}, 'scope: give "all" or at least one caller-number prefix'),
        ({"colour": "red"}, "colour: unknown field"),
        ({"ends_at": None}, "ends_at: Input should be a valid datetime"),
    ],
)
async def test_invalid_notices_are_refused_with_the_field_named(
    redis: Redis, prompts: Prompts, fields: dict[str, object], message: str
) -> None:
    board = NoticeBoard(redis, prompts)
    with pytest.raises(InputError) as caught:
        await board.add(posted(**fields), now=NOW)
    assert message in caught.value.message
    assert caught.value.slug == "input-invalid"
    assert await redis.hlen(KEY) == 0


@pytest.mark.parametrize("text", ["停电\x00", "\x07", "\udc80"])
def test_a_prompt_espeak_cannot_take_is_refused_before_it_runs(prompts: Prompts, text: str) -> None:
    with pytest.raises(PromptError, match="cannot be spoken") as caught:
        prompts.path(text)
    assert caught.value.slug == "prompt-failed"


async def test_a_notice_without_an_end_is_refused(redis: Redis, prompts: Prompts) -> None:
    with pytest.raises(InputError, match="ends_at: required"):
        await NoticeBoard(redis, prompts).add({"text": "停电"}, now=NOW)
