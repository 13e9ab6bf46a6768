"""Reading a caller's keys (`ccserver.calls.media.Media.read_digits`) from DTMF events as
Asterisk sends them: the terminator the caller was asked for after a full entry is taken
by that entry, not left to the next question; anything else typed ahead stays buffered."""

from __future__ import annotations

import asyncio

from ccserver.calls.media import Media
from ccserver.telephony.ari import AriEvent

CHANNEL = "caller-1"


def press(media: Media, keys: str) -> None:
    for key in keys:
        media.on_event(AriEvent("ChannelDtmfReceived", {"channel": {"id": CHANNEL}, "digit": key}))


async def read(media: Media, max_digits: int = 4) -> str:
    return await media.read_digits(
        CHANNEL, max_digits=max_digits, timeout_s=1, inter_digit_s=0.2, terminator="#"
    )


def listening() -> Media:
    media = Media(rest=None)  # type: ignore[arg-type]  # reading keys sends no request
    media.listen(CHANNEL)
    return media


async def test_the_terminator_after_a_full_entry_is_taken_with_it() -> None:
    media = listening()
    press(media, "1234#5")
    assert await read(media) == "1234"
    assert await read(media, max_digits=1) == "5"  # the next question gets only its key


async def test_a_late_terminator_is_still_taken_and_other_keys_stay_in_order() -> None:
    media = listening()
    press(media, "1234")
    reading = asyncio.ensure_future(read(media))
    await asyncio.sleep(0.05)
    press(media, "#")  # after the fourth key, inside the grace
    assert await reading == "1234"
    press(media, "987678")  # no terminator: 7 and 8 are the next question's
    assert await read(media) == "9876"
    assert await read(media, max_digits=2) == "78"
