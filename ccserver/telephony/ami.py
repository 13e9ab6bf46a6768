"""AMI client on panoramisk, with the keep-alive watchdog panoramisk lacks.

panoramisk reconnects when the TCP connection drops, but a half-open connection (Asterisk
frozen, a NAT dropping state) looks alive forever. The watchdog sends `Ping` every
`interval` seconds and aborts the transport when no answer comes within `timeout`, which
makes panoramisk reconnect. The link state is kept in `up` for health checks and metrics.
panoramisk retries at a fixed delay; we set that delay before each retry so that AMI backs
off like ARI does (1 s doubling to 32 s, back to 1 s once logged in).

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
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from ccserver.logs import log
from ccserver.telephony.ari import BACKOFF_MAX_S, BACKOFF_START_S

logger = logging.getLogger("ccserver.ami")
WATCHED_EVENTS = ("FullyBooted", "ContactStatus", "DeviceStateChange", "PeerStatus", "Reload")


@dataclass(frozen=True)
class AmiEvent:
    name: str
    fields: dict[str, str]


class GuardedProtocol(AMIProtocol):  # type: ignore[misc]  # panoramisk has no types
    """panoramisk's protocol, minus one way to crash on bad input: a header sent twice
    comes out of its parser as a list, and a list `Event`, `ActionID` or `CommandID` makes
    its dispatch raise inside `data_received`, where asyncio answers by dropping the whole
    AMI connection (and every event buffered with it). Such a message is dropped alone,
    with a logged rejection."""

    def handle_message(self, message: Message) -> None:
        for header in ("Event", "ActionID", "CommandID"):
            if isinstance(message.get(header), list):
                log(
                    logger,
                    "ami.message_rejected",
                    logging.WARNING,
                    reason="repeated-header",
                    header=header,
                )
                return
        super().handle_message(message)


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
            protocol_factory=GuardedProtocol,
        )
        # panoramisk schedules its retry with `reconnect_timeout` in these two callbacks.
        self._retry_s = BACKOFF_START_S
        self._panoramisk_made = self._manager.connection_made
        self._panoramisk_lost = self._manager.connection_lost
        self._manager.connection_made = self._connection_made
        self._manager.connection_lost = self._connection_lost
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

    def _connection_made(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self._next_retry(future.exception())
        self._panoramisk_made(future)

    def _connection_lost(self, exc: Exception | None) -> None:
        self._next_retry(exc)
        self._panoramisk_lost(exc)

    def _next_retry(self, exc: BaseException | None) -> None:
        delay = self._retry_s
        self._manager.reconnect_timeout = delay
        self._retry_s = min(delay * 2, BACKOFF_MAX_S)
        log(logger, "ami.reconnecting", retry_in_s=delay, error=repr(exc)[:200])

    def _logged_in(self, manager: Manager) -> None:
        self._retry_s = BACKOFF_START_S
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
