"""Playback and keypad input for channels in Stasis, as awaitable calls.

ARI is event-driven: a playback is started by one request and reported finished by a
`PlaybackFinished` event; each key press is a `ChannelDtmfReceived` event. Dialogues (feature
codes, queue announcements, callback offers, IVR flows) read better as coroutines, so this
module turns those events back into awaits: `play()` returns when the prompt is over (or at
the first key when interruptible), `read_digits()` returns what was typed.

Digits typed while nobody is reading are buffered per channel, so a caller who types ahead
of a prompt loses nothing. When a channel leaves, everything waiting on it raises
`ChannelGone`, which ends that dialogue cleanly. A channel leaves at its hang-up request, not
at its StasisEnd: Asterisk stops the prompt of a caller who hung up and reports the playback
finished in between, and a dialogue woken by that as if the prompt had played out would go
on to its next step (an IVR would put a departed caller in a queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from ccserver.telephony.ari import AriError, AriEvent
from ccserver.telephony.rest import AriRest

TERMINATOR_GRACE_S = 1.5
"""How long after the last of `max_digits` keys the terminator may still come."""


class ChannelGone(Exception):
    """The channel hung up (or was never there); the dialogue on it is over."""


class Media:
    def __init__(self, rest: AriRest) -> None:
        self.rest = rest
        self._playbacks: dict[str, tuple[str, asyncio.Future[None]]] = {}
        self._digits: dict[str, asyncio.Queue[str]] = {}
        self._gone: set[str] = set()
        self._recordings: dict[str, tuple[str, asyncio.Future[bool]]] = {}

    # --- events (called by the controller for every ARI event) -----------------------------
    def on_event(self, event: AriEvent) -> None:
        if event.type == "PlaybackFinished":
            playback = event.data.get("playback")
            playback_id = str(playback.get("id")) if isinstance(playback, dict) else ""
            entry = self._playbacks.pop(playback_id, None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(None)
        elif event.type in ("RecordingFinished", "RecordingFailed"):
            recording = event.data.get("recording")
            name = str(recording.get("name")) if isinstance(recording, dict) else ""
            recorded = self._recordings.pop(name, None)
            if recorded is not None and not recorded[1].done():
                recorded[1].set_result(event.type == "RecordingFinished")
        elif event.type == "ChannelHangupRequest" and event.channel_id:
            self.gone(event.channel_id)  # every hang-up request Asterisk publishes is final
        elif event.type == "ChannelDtmfReceived" and event.channel_id:
            digit = str(event.data.get("digit", ""))
            if digit:
                self._queue(event.channel_id).put_nowait(digit)

    def listen(self, channel_id: str) -> None:
        """Start buffering this channel's key presses (a channel may be reused after gone)."""
        self._gone.discard(channel_id)
        self._queue(channel_id)

    def gone(self, channel_id: str) -> None:
        """The channel ended: wake everything waiting on it with ChannelGone."""
        self._gone.add(channel_id)
        for playback_id, (owner, future) in list(self._playbacks.items()):
            if owner == channel_id:
                del self._playbacks[playback_id]
                if not future.done():
                    future.set_exception(ChannelGone(channel_id))
        for name, (owner, done) in list(self._recordings.items()):
            if owner == channel_id:
                del self._recordings[name]
                if not done.done():
                    done.set_result(True)  # what was said before the hang-up is kept
        queue = self._digits.pop(channel_id, None)
        if queue is not None:
            queue.put_nowait("")  # a reader blocked in get() wakes and sees the channel gone
        if len(self._gone) > 10_000:  # only recent ids matter (a reader racing the hang-up)
            self._gone.clear()

    # --- dialogue primitives ---------------------------------------------------------------
    async def play(self, channel_id: str, media: list[str], *, interruptible: bool = False) -> str:
        """Play `media` (URIs) in order; return the key that interrupted it, or ""."""
        if not media:
            return ""
        self._check(channel_id)
        playback_id = f"pb-{uuid.uuid4().hex[:16]}"
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._playbacks[playback_id] = (channel_id, finished)
        try:
            await self.rest.play(channel_id, playback_id, media)
        except AriError as exc:
            self._playbacks.pop(playback_id, None)
            if exc.status == 404:
                raise ChannelGone(channel_id) from None
            raise
        if not interruptible:
            await finished
            return ""
        key: asyncio.Future[str] = asyncio.ensure_future(self._next_digit(channel_id))
        try:
            waits: set[asyncio.Future[Any]] = {finished, key}
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if key in done:
                digit = key.result()
                with contextlib.suppress(AriError):
                    await self.rest.stop_playback(playback_id)
                return digit
            finished.result()  # raises ChannelGone when the channel left
            return ""
        finally:
            key.cancel()
            self._playbacks.pop(playback_id, None)

    async def read_digits(
        self,
        channel_id: str,
        *,
        max_digits: int,
        timeout_s: float,
        inter_digit_s: float = 4.0,
        terminator: str | None = "#",
        first: str = "",
    ) -> str:
        """Collect up to `max_digits` keys (the terminator ends early and is not returned);
        `timeout_s` for the first key, `inter_digit_s` between keys. "" when nothing came.
        After `max_digits` keys the terminator the caller was asked for may still follow
        (within `TERMINATOR_GRACE_S`): it is taken here, not left to the next question."""
        digits = first
        if terminator and digits.endswith(terminator):
            return digits[: -len(terminator)]
        while len(digits) < max_digits:
            wait = timeout_s if not digits else inter_digit_s
            try:
                key = await asyncio.wait_for(self._next_digit(channel_id), wait)
            except TimeoutError:
                break
            if terminator and key == terminator:
                return digits
            digits += key
        if terminator and len(digits) >= max_digits:
            await self._take_terminator(
                channel_id, terminator, min(inter_digit_s, TERMINATOR_GRACE_S)
            )
        return digits

    async def _take_terminator(self, channel_id: str, terminator: str, grace_s: float) -> None:
        try:
            key = await asyncio.wait_for(self._next_digit(channel_id), grace_s)
        except TimeoutError:
            return
        if key != terminator:  # typed ahead for the next question: put it back in front
            queue = self._queue(channel_id)
            rest = [queue.get_nowait() for _ in range(queue.qsize())]
            for digit in (key, *rest):
                queue.put_nowait(digit)

    async def record(self, channel_id: str, name: str, max_s: float) -> bool:
        """Record the caller into Asterisk's recording dir as `<name>.wav`, until # or 3 s
        of silence or `max_s`; True when a recording was kept."""
        self._check(channel_id)
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._recordings[name] = (channel_id, done)
        try:
            await self.rest.record_channel(channel_id, name, max_s)
        except AriError as exc:
            self._recordings.pop(name, None)
            if exc.status == 404:
                raise ChannelGone(channel_id) from None
            raise
        return await done

    async def stop(self, channel_id: str) -> None:
        """Stop whatever is playing to the channel (before it joins an agent)."""
        for playback_id, (owner, _) in list(self._playbacks.items()):
            if owner == channel_id:
                with contextlib.suppress(AriError):
                    await self.rest.stop_playback(playback_id)

    def flush(self, channel_id: str) -> None:
        """Forget keys typed so far (before a question whose answer must be fresh)."""
        queue = self._digits.get(channel_id)
        while queue is not None and not queue.empty():
            queue.get_nowait()

    async def _next_digit(self, channel_id: str) -> str:
        self._check(channel_id)
        digit = await self._queue(channel_id).get()
        if not digit:
            raise ChannelGone(channel_id)
        return digit

    def _queue(self, channel_id: str) -> asyncio.Queue[str]:
        queue = self._digits.get(channel_id)
        if queue is None:
            queue = self._digits[channel_id] = asyncio.Queue()
        return queue

    def _check(self, channel_id: str) -> None:
        if channel_id in self._gone:
            raise ChannelGone(channel_id)
