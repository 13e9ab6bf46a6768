"""The REST API's view of the running center: `ccserver.api.backend.ApiBackend` over a
`CallCenter` (agents, queues, calls, transfers, the license, notices)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ccserver import seats
from ccserver.acd import AcdError
from ccserver.calls import agents, transfers
from ccserver.calls.center import CallCenter
from ccserver.calls.model import CallState
from ccserver.ivr.notices import NoticeBoard
from ccserver.logs import log

logger = logging.getLogger("ccserver.api")


class CenterBackend:
    """The REST API's view of the running center (`ccserver.api.backend.ApiBackend`)."""

    def __init__(self, center: CallCenter) -> None:
        self.center = center

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

    def license(self) -> dict[str, Any]:
        return self.center.acd.ledger.usage()

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

    async def call(self, call_id: str) -> dict[str, Any]:
        live = self.center.calls.get(call_id)
        history = self.center.journal.history
        if history is not None:
            await history.flush()
        record = live.to_record() if live is not None else None
        if record is None and history is not None:
            saved = await asyncio.to_thread(history.call, call_id)
            record = (saved or {}).get("record") or saved
        if record is None:
            raise AcdError(f"no call {call_id!r}", slug="call-unknown", status=404)
        events = await asyncio.to_thread(history.events, call_id) if history is not None else []
        return {**record, "events": events}
