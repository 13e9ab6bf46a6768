"""The REST API's view of the running center: `ccserver.api.backend.ApiBackend` over a
`CallCenter` (agents, queues, calls, transfers, the license, notices, the agents' desks)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from ccserver import seats
from ccserver.acd import AcdError
from ccserver.alerts import AlertBoard
from ccserver.calls import agent_desk, agents, monitor, transfers
from ccserver.calls.board import Wallboard
from ccserver.calls.center import CallCenter
from ccserver.calls.desk import DeskFeed, call_context
from ccserver.calls.model import Call, CallState, MonitorMode
from ccserver.config import SUPERVISOR_TOKENS, browser_phone, supervisor_phone
from ccserver.errors import CCServerError
from ccserver.ivr.notices import NoticeBoard
from ccserver.logs import log

logger = logging.getLogger("ccserver.api")
BANNER_EVERY_S = 2.0
"""How often a wallboard's banner (notices, alerts, work orders) is looked at again."""


class CenterBackend:
    """The REST API's view of the running center (`ccserver.api.backend.ApiBackend`)."""

    def __init__(
        self, center: CallCenter, *, sip_passwords: Mapping[str, str], alerts: AlertBoard
    ) -> None:
        """`sip_passwords`: phone id -> SIP password (the secrets'), for browser phones;
        `alerts`: what Alertmanager has delivered."""
        self.center = center
        self.sip_passwords = sip_passwords
        self.alert_board = alerts

    def alerts(self) -> list[dict[str, Any]]:
        return self.alert_board.firing()

    def agents(self) -> list[dict[str, Any]]:
        return [self.center.acd.agent_view(a) for a in sorted(self.center.acd.agents)]

    def agent(self, agent_id: str) -> dict[str, Any]:
        return self.center.acd.agent_view(agent_id)

    async def agent_action(
        self,
        agent_id: str,
        action: str,
        *,
        reason: str | None,
        phone: str | None,
        pin: str | None,
        seconds: float | None,
        by: str,
    ) -> dict[str, Any]:
        return await agents.agent_action(
            self.center,
            agent_id,
            action,
            reason=reason,
            phone=phone,
            pin=pin,
            seconds=seconds,
            by=by,
        )

    async def transfer(
        self, call_id: str, *, queue: str | None, agent: str | None, by: str, attended: bool
    ) -> dict[str, Any]:
        return await transfers.transfer(
            self.center, call_id, queue=queue, agent=agent, by=by, attended=attended
        )

    def monitors(self) -> list[dict[str, Any]]:
        return monitor.sessions(self.center)

    def supervisor_sip(self, by: str) -> dict[str, Any]:
        return self._sip_account(_supervisor_endpoint(by))

    def _sip_account(self, endpoint: str) -> dict[str, Any]:
        """The SIP account a page registers its browser phone with."""
        config = self.center.config
        bind = config.stack.bind
        return {
            "uri": f"sip:{endpoint}@{bind}",
            "ws": f"ws://{bind}:{config.asterisk.http_port}/ws",
            "user": endpoint,
            "password": self.sip_passwords[endpoint],
        }

    async def start_monitor(
        self, *, call: str | None, agent: str | None, phone: str, mode: str, by: str
    ) -> dict[str, Any]:
        if phone == "browser":
            phone = _supervisor_endpoint(by)
        return await monitor.start(
            self.center, call_id=call, agent=agent, mode=MonitorMode(mode), phone=phone, by=by
        )

    async def switch_monitor(self, session: str, *, mode: str, by: str) -> dict[str, Any]:
        return await monitor.switch(self.center, session, MonitorMode(mode), by=by)

    async def stop_monitor(self, session: str, *, by: str) -> None:
        await monitor.stop(self.center, session, by=by)

    async def move(self, call_id: str, *, queue: str | None, head: bool, by: str) -> dict[str, Any]:
        return await transfers.move(self.center, call_id, queue=queue, head=head, by=by)

    async def recording(self, call_id: str, *, by: str) -> Path:
        record = await self._record(call_id, None)
        name = record.get("recording")
        path = Path(str(name)) if name else None
        if path is None or path.parent != self.center.recordings or not path.is_file():
            raise CCServerError(
                f"call {call_id} has no recording", slug="recording-none", status=404
            )
        if self.center.audit is not None:
            self.center.audit.action("recording.play", who=by, call=call_id, file=path.name)
        return path

    def license(self) -> dict[str, Any]:
        return self.center.acd.ledger.usage()

    def outbound_flows(self) -> list[str]:
        return sorted(self.center.outbound_flows)

    def reload_license(self, *, by: str) -> dict[str, Any]:
        ledger = self.center.acd.ledger
        lic = seats.reload(ledger, self.center.config)
        log(logger, "license.reloaded", license=lic.id, seats=lic.seats, by=by)
        return ledger.usage()

    async def notices(self) -> list[dict[str, Any]]:
        return [n.to_dict() for n in await self._board().list()]

    async def add_notice(self, data: dict[str, Any], *, by: str) -> dict[str, Any]:
        notice = await self._board().add(data)
        log(logger, "notice.added", notice=notice.id, by=by)
        return notice.to_dict()

    async def delete_notice(self, notice_id: str, *, by: str) -> None:
        await self._board().delete(notice_id)
        log(logger, "notice.deleted", notice=notice_id, by=by)

    def _board(self) -> NoticeBoard:
        if self.center.notices is None:
            raise AcdError(
                "notices need the controller's Redis", slug="notices-unavailable", status=503
            )
        return self.center.notices

    def queues(self) -> list[dict[str, Any]]:
        now = time.time()
        return [self.center.acd.queue_view(q.name, now) for q in self.center.config.acd.queues]

    def queue(self, name: str) -> dict[str, Any]:
        return self.center.acd.queue_view(name, time.time())

    def calls(self) -> list[dict[str, Any]]:
        return [c.to_record() for c in self.center.calls.values() if c.state != CallState.ENDED]

    async def call(self, call_id: str, *, agent: str | None = None) -> dict[str, Any]:
        record = await self._record(call_id, agent)
        history = self.center.journal.history
        events = await asyncio.to_thread(history.events, call_id) if history is not None else []
        return {**record, "events": events}

    async def screen(self, call_id: str, *, agent: str | None = None) -> dict[str, Any]:
        call = Call.from_record(await self._record(call_id, agent))
        queue = self.center.acd.queue_config(call.queue) if call.queue else None
        context = call_context(call, queue, time.time())
        return {**context, "pop": await self._feed().pop(context)}

    async def _record(self, call_id: str, agent: str | None) -> dict[str, Any]:
        """The call's record, live or from the history; for an agent reader, only a call
        it was offered or talked on."""
        live = self.center.calls.get(call_id)
        history = self.center.journal.history
        if history is not None:
            await history.flush()  # what was queued before this read is in it
        record = live.to_record() if live is not None else None
        if record is None and history is not None:
            saved = await asyncio.to_thread(history.call, call_id)
            record = (saved or {}).get("record") or saved
        if record is None:
            raise AcdError(f"no call {call_id!r}", slug="call-unknown", status=404)
        offered = {a.get("agent") for a in record.get("attempts") or []}
        if agent is not None and agent != record.get("agent") and agent not in offered:
            raise AcdError(
                f"agent {agent} was never on call {call_id}", slug="forbidden", status=403
            )
        return record

    async def hold(self, call_id: str, *, on: bool, by: str) -> dict[str, Any]:
        return await agent_desk.hold(self.center, call_id, on=on, by=by)

    async def dispose(
        self, call_id: str, *, code: str, note: str | None, by: str
    ) -> dict[str, Any]:
        return await agent_desk.dispose(self.center, call_id, code=code, note=note, by=by)

    async def desk_login(
        self, agent_id: str, *, pin: str, device: str, phone: str | None
    ) -> dict[str, Any]:
        browser = device == "browser"
        target = browser_phone(agent_id) if browser else phone
        view = await agents.desk_login(
            self.center, agent_id, pin=pin, phone=target, by=f"desk:{agent_id}"
        )
        sip = self._sip_account(target) if browser and target is not None else None
        return {"agent": view, "sip": sip, "language": self.center.config.acd.language}

    def desk_events(self, agent_id: str, after: int | None) -> AsyncIterator[dict[str, Any]]:
        self.center.acd.agent(agent_id)  # agent-unknown (404) before the stream opens
        return self._feed().stream(agent_id, after)

    def board_events(self) -> AsyncIterator[dict[str, Any]]:
        if self.center.board is None:
            raise CCServerError(
                "this center has no wallboard", slug="board-unavailable", status=503
            )
        return self._board_stream(self.center.board)

    async def _board_stream(self, board: Wallboard) -> AsyncIterator[dict[str, Any]]:
        """The board at every change, with the banner looked at every `BANNER_EVERY_S`;
        a message is sent only when something in it changed."""
        boards = board.watch(self.center.calls, self.center.acd)
        current = await anext(boards)
        upcoming = asyncio.ensure_future(anext(boards))
        sent: dict[str, Any] | None = None
        try:
            while True:
                message = {**current, **await self._banner()}
                if message != sent:
                    sent = message
                    yield {**message, "at": round(time.time(), 3)}
                done, _ = await asyncio.wait({upcoming}, timeout=BANNER_EVERY_S)
                if upcoming in done:
                    current = upcoming.result()
                    upcoming = asyncio.ensure_future(anext(boards))
        finally:
            upcoming.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await upcoming
            await boards.aclose()

    async def _banner(self) -> dict[str, Any]:
        """What the wallboard's banner shows: the notices in force, the firing alerts and
        the work orders being chased."""
        notices: list[dict[str, Any]] = []
        if self.center.notices is not None:
            now = dt.datetime.now(dt.UTC)
            try:
                found = await self.center.notices.list(now)
                notices = [n.to_dict() for n in found if n.is_active(now)]
            except Exception as exc:  # the board without its banner beats no board
                log(logger, "board.notices_failed", logging.WARNING, error=repr(exc)[:200])
        orders = [] if self.center.board is None else self.center.board.orders
        return {"notices": notices, "alerts": self.alert_board.firing(), "orders": orders}

    def _feed(self) -> DeskFeed:
        if self.center.desk is None:
            raise AcdError(
                "the desk needs the controller's Redis", slug="desk-unavailable", status=503
            )
        return self.center.desk


def _supervisor_endpoint(token_name: str) -> str:
    """The browser phone of a supervisor-level token (desk sessions have none)."""
    if token_name not in SUPERVISOR_TOKENS:
        raise CCServerError(f"{token_name} has no browser phone", slug="phone-unknown", status=404)
    return supervisor_phone(token_name)
