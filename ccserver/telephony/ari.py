"""ARI client on aiohttp: REST requests and the Stasis event websocket.

ARI keeps no event backlog: events sent while the websocket is down are gone. So the
client reconnects with backoff (1 s doubling to 32 s), reports the link state, and calls
`on_connected` after every (re)connection so that the controller can resync with
`GET /channels` and `GET /bridges`. Events reach `on_event` already parsed and checked
(`parse_event`): anything malformed is logged and dropped, never raised into the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ccserver import metrics
from ccserver.errors import CCServerError
from ccserver.logs import log

logger = logging.getLogger("ccserver.ari")
BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 32.0


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


def parse_event(raw: str | bytes) -> AriEvent | None:
    """Parse one websocket message; None (and a log line) when it isn't a usable event."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        log(logger, "ari.event_rejected", logging.WARNING, reason="not-json", error=str(exc)[:200])
        return None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        log(logger, "ari.event_rejected", logging.WARNING, reason="no-type")
        return None
    event_type: str = data["type"]
    if "channel" in data and not isinstance(data["channel"], dict):
        log(logger, "ari.event_rejected", logging.WARNING, reason="bad-channel", type=event_type)
        return None
    return AriEvent(event_type, data)


EventHandler = Callable[[AriEvent], Awaitable[None]]
ConnectedHandler = Callable[[], Awaitable[None]]


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
    ) -> None:
        self.base = f"http://{host}:{port}/ari"
        self.app = app
        self._auth = aiohttp.BasicAuth(user, password)
        self._on_event = on_event
        self._on_connected = on_connected
        self._trace_file = trace_file
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.reconnects = 0

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            auth=self._auth, timeout=aiohttp.ClientTimeout(total=10)
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
            metrics.ARI_REQUEST.labels(method).observe(elapsed_ms / 1000)
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
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
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
            log(logger, "ari.link_up", app=self.app, reconnects=self.reconnects)
            self.connected.set()
            await self._on_connected()
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self._trace(message.data)
                    event = parse_event(message.data)
                    if event is not None:
                        await self._dispatch(event)
                elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                    break
        log(logger, "ari.link_down", logging.WARNING, error="websocket closed")

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
