"""Blind transfer of a connected call to a queue or to one agent, keeping its place.

The agent who transfers is done with the call (wrap-up as after any call); the caller goes
back to the holding bridge and into the target queue with the call's *original* arrival,
so a transferred caller is served before callers who rang after them — they do not start
again at the back. A transfer to an agent uses that agent's direct queue (`Acd.direct_queue`),
so it waits for the agent like any call would, with RONA and announcements as usual.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ccserver import waiting
from ccserver.acd import AcdError
from ccserver.errors import InputError
from ccserver.logs import log

if TYPE_CHECKING:
    from ccserver.calls import CallCenter

logger = logging.getLogger("ccserver.transfers")


async def transfer(
    center: CallCenter, call_id: str, *, queue: str | None, agent: str | None, by: str
) -> dict[str, Any]:
    if (queue is None) == (agent is None):
        raise InputError("give exactly one of queue and agent")
    async with center.lock:
        call = center.calls.get(call_id)
        if call is None:
            raise AcdError(f"no live call {call_id!r}", slug="call-unknown", status=404)
        if by.startswith("agent:") and by.removeprefix("agent:") != call.agent:
            raise AcdError(
                "an agent may transfer only their own call", slug="forbidden", status=403
            )
        if call.state != "connected" or call.callback is not None:
            raise AcdError(f"call {call_id} is {call.state}, not talking to an agent")
        target = (
            center.acd.queue_config(queue).name if queue else center.acd.direct_queue(agent or "")
        )
        now = time.time()
        source_agent, leg = call.agent, call.agent_channel
        center.acd.router.complete(call.id, now)
        center.legs.pop(leg or "", None)
        call.state, call.agent, call.agent_channel, call.connected_at = "waiting", None, None, None
        await center.destroy_bridge(f"call-{call.id}")
        if leg:
            await center.hangup(leg)
        await center.hold(call.id)
        await center.event(call, "transfer", source=source_agent, target=target, by=by)
        await center.enqueue(call, target)
        center.agent_changed(source_agent or "")
        log(logger, "call.transferred", call=call.id, source=source_agent, target=target, by=by)
        center.wake(call)
        session = center.sessions.get(call.id)
        if session is None or session.done():  # a plain call's session ended at connect
            center.sessions[call.id] = center.spawn(
                waiting.resume(center, call), f"session-{call.id}"
            )
        await center.dispatch()
        await center.persist()
        return call.record()
