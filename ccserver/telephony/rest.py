"""The ARI REST operations call control uses, each written once: channels, bridges,
playbacks, recordings, transfers.

`Ari` is the one thing this needs from a transport (`AriClient.request`, or a scripted
Asterisk in tests). Every operation takes ids, never builds them: the ids of our own legs
and bridges are made by `ccserver.calls.model`, so recovery finds what the live code made.

The helpers that clean up (`hangup`, `destroy_bridge`) treat 404 as done (the thing is
already gone, which is what was wanted) and log other failures instead of raising: a
clean-up that fails must not stop the rest of a call's ending. Everything else raises
`AriError` for the caller to decide.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ccserver.logs import log
from ccserver.telephony.ari import AriError

logger = logging.getLogger("ccserver.ari")


class Ari(Protocol):
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any: ...


class AriRest:
    """Typed ARI operations over one `Ari` transport."""

    def __init__(self, ari: Ari) -> None:
        self.ari = ari

    # --- channels ------------------------------------------------------------------------
    async def answer(self, channel: str) -> None:
        await self.ari.request("POST", f"/channels/{channel}/answer")

    async def hangup(self, channel: str) -> None:
        """Hang up `channel`; already gone is fine, another failure is logged."""
        try:
            await self.ari.request("DELETE", f"/channels/{channel}")
        except AriError as exc:
            if exc.status != 404:
                log(logger, "ari.hangup_failed", logging.WARNING, channel=channel, error=str(exc))

    async def originate(
        self,
        channel: str,
        *,
        endpoint: str,
        app: str,
        app_args: str,
        timeout_s: float,
        caller_id: str,
        variables: dict[str, str] | None = None,
    ) -> None:
        """Dial `endpoint` as a channel with our id; it enters Stasis(`app`, `app_args`)
        when answered, and ends with a ChannelDestroyed (and its cause) when not."""
        await self.ari.request(
            "POST",
            f"/channels/{channel}",
            params={
                "endpoint": endpoint,
                "app": app,
                "appArgs": app_args,
                "timeout": int(timeout_s),
                "callerId": caller_id,
            },
            body={"variables": variables} if variables else None,
        )

    async def snoop(
        self, channel: str, snoop: str, *, whisper: str, app: str, app_args: str
    ) -> None:
        """A snoop channel `snoop` on `channel` that hears both its directions and sends
        what it is given `whisper` (none, out: to the channel's device, both: also into
        what the channel sends); it enters Stasis(`app`, `app_args`) at once and ends when
        `channel` does."""
        params: dict[str, str | int] = {
            "spy": "both",
            "app": app,
            "appArgs": app_args,
            "snoopId": snoop,
        }
        if whisper != "none":
            params["whisper"] = whisper
        await self.ari.request("POST", f"/channels/{channel}/snoop", params=params)

    async def continue_in_dialplan(self, channel: str, context: str, extension: str) -> None:
        """The channel leaves Stasis for `extension` in `context` (a blind transfer)."""
        await self.ari.request(
            "POST",
            f"/channels/{channel}/continue",
            params={"context": context, "extension": extension, "priority": 1},
        )

    async def transfer_progress(self, channel: str, state: str) -> None:
        """Tell a phone that sent REFER how its transfer went (NOTIFY)."""
        await self.ari.request(
            "POST", f"/channels/{channel}/transfer_progress", params={"states": state}
        )

    async def channels(self) -> list[dict[str, Any]]:
        found = await self.ari.request("GET", "/channels") or []
        return [c for c in found if isinstance(c, dict) and "id" in c]

    async def endpoints(self, technology: str) -> list[dict[str, Any]]:
        """The technology's endpoints, each with `resource` and `state` (online, offline,
        unknown)."""
        found = await self.ari.request("GET", f"/endpoints/{technology}") or []
        return [e for e in found if isinstance(e, dict) and "resource" in e]

    # --- bridges -------------------------------------------------------------------------
    async def create_bridge(self, bridge: str, kind: str = "mixing") -> None:
        await self.ari.request("POST", "/bridges", params={"type": kind, "bridgeId": bridge})

    async def destroy_bridge(self, bridge: str) -> None:
        """Destroy `bridge`; already gone is fine, another failure is logged."""
        try:
            await self.ari.request("DELETE", f"/bridges/{bridge}")
        except AriError as exc:
            if exc.status != 404:
                log(
                    logger,
                    "ari.bridge_destroy_failed",
                    logging.WARNING,
                    bridge=bridge,
                    error=str(exc),
                )

    async def add_to_bridge(self, bridge: str, *channels: str) -> None:
        await self.ari.request(
            "POST", f"/bridges/{bridge}/addChannel", params={"channel": ",".join(channels)}
        )

    async def remove_from_bridge(self, bridge: str, channel: str) -> None:
        await self.ari.request(
            "POST", f"/bridges/{bridge}/removeChannel", params={"channel": channel}
        )

    async def start_moh(self, bridge: str, moh_class: str) -> None:
        await self.ari.request("POST", f"/bridges/{bridge}/moh", params={"mohClass": moh_class})

    async def record_bridge(self, bridge: str, name: str) -> None:
        """Record everything said in `bridge` to `<name>.wav` in Asterisk's recording dir."""
        await self.ari.request(
            "POST",
            f"/bridges/{bridge}/record",
            params={"name": name, "format": "wav", "ifExists": "overwrite"},
        )

    async def bridges(self) -> list[dict[str, Any]]:
        found = await self.ari.request("GET", "/bridges") or []
        return [b for b in found if isinstance(b, dict) and "id" in b]

    # --- media ---------------------------------------------------------------------------
    async def play(self, channel: str, playback: str, media: list[str]) -> None:
        await self.ari.request(
            "POST", f"/channels/{channel}/play/{playback}", params={"media": ",".join(media)}
        )

    async def stop_playback(self, playback: str) -> None:
        await self.ari.request("DELETE", f"/playbacks/{playback}")

    async def record_channel(self, channel: str, name: str, max_s: float) -> None:
        """Record what the channel says to `<name>.wav`, until # or 3 s of silence or
        `max_s`, after a beep."""
        await self.ari.request(
            "POST",
            f"/channels/{channel}/record",
            params={
                "name": name,
                "format": "wav",
                "maxDurationSeconds": max(1, int(max_s)),
                "maxSilenceSeconds": 3,
                "terminateOn": "#",
                "ifExists": "overwrite",
                "beep": "true",
            },
        )
