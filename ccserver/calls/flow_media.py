"""The media half of an IVR flow's channel (`ccserver.ivr.channel.FlowChannel`) over ARI:
playback, keys and recording of one channel, a channel that left being the interpreter's
`CallerGone`. `ivr_channel.LiveChannel` (a caller) and `outbound.OutboundChannel` (a
customer the center called) add what differs between them.
"""

from __future__ import annotations

from pathlib import Path

from ccserver.calls.media import ChannelGone, Media
from ccserver.calls.model import comment_name
from ccserver.ivr.channel import CallerGone


class FlowMedia:
    """Playback, keys and recording of the channel `call_id` for a flow."""

    def __init__(self, media: Media, call_id: str, recordings: Path) -> None:
        self.media = media
        self.call_id = call_id
        self.recordings = recordings  # Asterisk's recording directory

    def _left(self) -> CallerGone:
        """The channel left; a subclass that must remember it extends this."""
        return CallerGone(self.call_id)

    async def play(self, media: list[str], *, interruptible: bool) -> str:
        try:
            return await self.media.play(self.call_id, media, interruptible=interruptible)
        except ChannelGone:
            raise self._left() from None

    async def read_digits(
        self,
        *,
        max_digits: int,
        timeout_s: float,
        inter_digit_s: float,
        terminator: str | None,
        first: str = "",
    ) -> str:
        try:
            return await self.media.read_digits(
                self.call_id,
                max_digits=max_digits,
                timeout_s=timeout_s,
                inter_digit_s=inter_digit_s,
                terminator=terminator,
                first=first,
            )
        except ChannelGone:
            raise self._left() from None

    async def record(self, max_s: float) -> str | None:
        """Record the channel's voice (a survey comment); the file's path, or None."""
        name = comment_name(self.call_id)
        try:
            recorded = await self.media.record(self.call_id, name, max_s)
        except ChannelGone:
            raise self._left() from None
        return str(self.recordings / f"{name}.wav") if recorded else None
