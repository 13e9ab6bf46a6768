"""AMI client on panoramisk, with the keep-alive watchdog panoramisk lacks.

panoramisk reconnects when the TCP connection drops, but a half-open connection (Asterisk
frozen, a NAT dropping state) looks alive forever. The watchdog sends `Ping` every
`interval` seconds and aborts the transport when no answer comes within `timeout`, which
makes panoramisk reconnect. The link state is kept in `up` for health checks and metrics.

Events are handed on as plain dicts (`AmiEvent`), parsed by `parse_message` so that
recorded transcripts of a real Asterisk replay through exactly the code that runs live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from panoramisk import Manager
from panoramisk.message import Message

from ccserver.logs import log

logger = logging.getLogger("ccserver.ami")
WATCHED_EVENTS = ("FullyBooted", "ContactStatus", "DeviceStateChange", "PeerStatus", "Reload")


@dataclass(frozen=True)
class AmiEvent:
    name: str
    fields: dict[str, str]


def parse_message(message: Message) -> AmiEvent | None:
    """Turn a panoramisk Message into an AmiEvent; None for responses and junk."""
    name = message.get("Event")
    if not isinstance(name, str) or not name:
        return None
    fields = {str(k): str(v) for k, v in message.items() if isinstance(v, str)}
    return AmiEvent(name, fields)


class AmiClient:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        user: str,
        secret: str,
        on_event: Callable[[AmiEvent], None],
        ping_interval_s: float = 5.0,
        ping_timeout_s: float = 3.0,
    ) -> None:
        self._on_event = on_event
        self._interval = ping_interval_s
        self._timeout = ping_timeout_s
        self.up = False
        self.reconnects = 0
        self._manager = Manager(
            host=host,
            port=port,
            username=user,
            secret=secret,
            ping_delay=3600,  # panoramisk's own ping never checks answers; ours does
            reconnect_timeout=1,
            on_login=self._logged_in,
            on_disconnect=self._disconnected,
            forgetable_actions=("ping", "login"),
        )
        for pattern in WATCHED_EVENTS:
            self._manager.register_event(pattern, self._event)
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._manager.loop = asyncio.get_running_loop()
        self._manager.connect()
        self._watchdog = asyncio.create_task(self._watch(), name="ami-watchdog")

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        # Keep panoramisk from reconnecting once we are shutting down.
        self._manager.connection_lost = lambda exc: None
        self._manager.close()
        self.up = False

    def _logged_in(self, manager: Manager) -> None:
        self.up = True
        log(logger, "ami.link_up", reconnects=self.reconnects)

    def _disconnected(self, manager: Manager, exc: Exception | None) -> None:
        if self.up:
            log(logger, "ami.link_down", logging.WARNING, error=repr(exc)[:200])
        self.up = False
        self.reconnects += 1

    def _event(self, manager: Manager, message: Message) -> None:
        event = parse_message(message)
        if event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            logger.exception("ami.event_failed", extra={"fields": {"event": event.name}})

    async def action(self, fields: dict[str, str], timeout: float | None = None) -> Any:
        """Send one action and wait for its response."""
        future = self._manager.send_action(fields)
        return await asyncio.wait_for(future, timeout or self._timeout)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if not self.up or self._manager.protocol is None:
                continue
            try:
                await self.action({"Action": "Ping"})
            except (TimeoutError, ConnectionError, AttributeError) as exc:
                log(logger, "ami.ping_timeout", logging.WARNING, error=repr(exc)[:100])
                self.up = False
                transport = getattr(self._manager.protocol, "transport", None)
                if transport is not None:
                    transport.abort()  # panoramisk sees connection_lost and reconnects
