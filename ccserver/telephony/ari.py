"""ARI client on aiohttp: REST requests and the Stasis event websocket.

ARI keeps no event backlog: events sent while the websocket is down are gone. So the
client reconnects with backoff (1 s doubling to 32 s), reports the link state, and calls
`on_connected` after every (re)connection so that the controller can resync with
`GET /channels` and `GET /bridges`; the link counts as up only once that resync is done
(a failed resync drops the link and retries, with the same backoff). Events reach
`on_event` already parsed and checked (`parse_event`): anything malformed is logged and
dropped, never raised into the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from ccserver.errors import CCServerError
from ccserver.logs import log

logger = logging.getLogger("ccserver.ari")
BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 32.0


class ResyncFailed(Exception):
    """The resync after a (re)connection failed: the link is dropped and retried with
    backoff, since routing on a state that was not reconciled could ring a busy agent or
    lose a caller."""


class AriError(CCServerError):
    """An ARI request failed; `status` is Asterisk's HTTP status (0: no answer at all)."""

    slug = "ari-request-failed"
    status = 502


@dataclass(frozen=True)
class AriEvent:
    """One Stasis event: its `type` and the whole JSON object (`data`)."""

    type: str
    data: dict[str, Any] = field(repr=False)

    @property
    def channel(self) -> dict[str, Any]:
        value = self.data.get("channel")
        return value if isinstance(value, dict) else {}

    @property
    def channel_id(self) -> str | None:
        value = self.channel.get("id")
        return value if isinstance(value, str) else None

    @property
    def args(self) -> list[str]:
        value = self.data.get("args")
        if isinstance(value, list) and all(isinstance(a, str) for a in value):
            return value
        return []

    def int_field(self, name: str) -> int | None:
        value = self.data.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None


def created_at(channel: dict[str, Any]) -> float:
    """When Asterisk created the channel (its `creationtime`, "2026-11-25T02:03:04.123+0000")
    in epoch seconds; now when it is missing or malformed. A caller's place in the queue
    counts from here: one held by the dialplan fallback while no controller was connected,
    or adopted after a restart, keeps the time they called."""
    try:
        stamp = datetime.strptime(str(channel.get("creationtime")), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return time.time()
    return stamp.timestamp()


_OBJECTS: dict[str, tuple[str, ...]] = {
    "channel": (),
    "bridge": (),
    "playback": (),
    "recording": (),
    "peer": (),
    "refer_to": ("requested_destination", "destination_channel", "connected_channel", "bridge"),
    "referred_by": ("source_channel", "connected_channel", "bridge"),
}
"""Fields ARI documents as objects (and their object members) that our handlers read:
one of another JSON type is a malformed event, refused here once rather than checked in
every handler."""


def _bad_object(data: dict[str, Any]) -> str | None:
    """The first of `_OBJECTS` that is there but not an object (null counts as absent,
    except for `channel`, which every channel event has)."""
    for name, members in _OBJECTS.items():
        value = data.get(name, {})
        if value is None and name != "channel":
            continue
        if not isinstance(value, dict):
            return name
        if any(value.get(m) is not None and not isinstance(value[m], dict) for m in members):
            return name
    return None


def parse_event(raw: str | bytes) -> AriEvent | None:
    """Parse one websocket message; None (and a log line) when it isn't a usable event."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        log(logger, "ari.event_rejected", logging.WARNING, reason="not-json", error=str(exc)[:200])
        return None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        log(logger, "ari.event_rejected", logging.WARNING, reason="no-type")
        return None
    event_type: str = data["type"]
    bad = _bad_object(data)
    if bad is None:
        # A channel id is how every handler finds its call: an empty or non-text one names
        # none.
        channel_id = data.get("channel", {}).get("id", "-")
        bad = None if isinstance(channel_id, str) and channel_id else "channel"
    if bad is not None:
        reason = "bad-channel" if bad == "channel" else "bad-object"
        log(
            logger,
            "ari.event_rejected",
            logging.WARNING,
            reason=reason,
            field=bad,
            type=event_type[:100],
        )
        return None
    return AriEvent(event_type, data)


EventHandler = Callable[[AriEvent], Awaitable[None]]
ConnectedHandler = Callable[[], Awaitable[None]]
RequestTimer = Callable[[str, float], None]
"""Told every REST request's method and duration in seconds (the controller's histogram)."""


class AriClient:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        user: str,
        password: str,
        app: str,
        on_event: EventHandler,
        on_connected: ConnectedHandler,
        trace_file: Path | None = None,
        on_request: RequestTimer | None = None,
    ) -> None:
        self.base = f"http://{host}:{port}/ari"
        self.app = app
        self._auth = aiohttp.encode_basic_auth(user, password)  # (BasicAuth is deprecated)
        self._on_event = on_event
        self._on_connected = on_connected
        self._trace_file = trace_file
        self._on_request = on_request
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.reconnects = 0

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            headers={"Authorization": self._auth}, timeout=aiohttp.ClientTimeout(total=10)
        )
        self._task = asyncio.create_task(self._run(), name="ari-websocket")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()
        self.connected.clear()

    # --- REST ------------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """One REST call; returns the decoded JSON (or None); raises AriError."""
        assert self._session is not None, "start() first"
        url = self.base + path
        started = time.monotonic()
        try:
            async with self._session.request(method, url, params=params, json=body) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    message = _error_message(text) or resp.reason or "error"
                    raise AriError(f"{method} {path}: {resp.status} {message}", status=resp.status)
                return json.loads(text) if text else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AriError(f"{method} {path}: no answer from Asterisk ({exc!r})", status=0) from exc
        finally:
            elapsed_ms = (time.monotonic() - started) * 1000
            if self._on_request is not None:
                self._on_request(method, elapsed_ms / 1000)
            if elapsed_ms > 500:
                log(
                    logger,
                    "ari.slow_request",
                    logging.WARNING,
                    method=method,
                    path=path,
                    ms=round(elapsed_ms),
                )

    # --- events ----------------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = BACKOFF_START_S
        while True:
            try:
                await self._listen()
                backoff = BACKOFF_START_S  # a clean session resets the backoff
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, TimeoutError, ResyncFailed) as exc:
                log(
                    logger,
                    "ari.link_down",
                    logging.WARNING,
                    error=repr(exc)[:200],
                    retry_in_s=backoff,
                )
            self.connected.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            self.reconnects += 1

    async def _listen(self) -> None:
        assert self._session is not None
        ws_url = self.base.replace("http://", "ws://", 1) + "/events"
        params = {"app": self.app, "subscribeAll": "false"}
        async with self._session.ws_connect(
            ws_url, params=params, heartbeat=10.0, timeout=aiohttp.ClientWSTimeout(ws_close=5)
        ) as ws:
            # The local port tells ops (and the link drills) which TCP connection is the
            # event link among the REST ones: `ss -tn sport = :<local_port>`.
            sockname = ws.get_extra_info("sockname") or ("", 0)
            log(
                logger,
                "ari.link_up",
                app=self.app,
                reconnects=self.reconnects,
                local_port=sockname[1],
            )
            try:
                await self._on_connected()
            except Exception as exc:  # an unsynced controller must not route: retry it all
                logger.exception("ari.resync_failed", extra={"fields": {"app": self.app}})
                raise ResyncFailed(repr(exc)[:200]) from exc
            # Up (health, `ccserver_ari_up`) means linked *and* reconciled: routing again.
            self.connected.set()
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self._trace(message.data)
                    event = parse_event(message.data)
                    if event is not None:
                        await self._dispatch(event)
                elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                    break
        log(
            logger,
            "ari.link_down",
            logging.WARNING,
            error="websocket closed",
            retry_in_s=BACKOFF_START_S,
        )

    async def _dispatch(self, event: AriEvent) -> None:
        try:
            await self._on_event(event)
        except Exception:  # one bad event must never stop the event loop
            logger.exception("ari.event_failed", extra={"fields": {"type": event.type}})

    def _trace(self, raw: str) -> None:
        if self._trace_file is not None:
            with open(self._trace_file, "a", encoding="utf-8") as out:
                out.write(raw.rstrip("\n") + "\n")


def _error_message(text: str) -> str | None:
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:200] or None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return None
