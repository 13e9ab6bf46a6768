"""Routing: calls into queues, the router's assignments onto agents' phones, and back when a
phone does not answer.

- `enqueue` gives a call to the router at its original arrival (an overflowed, transferred
  or restored call keeps its place).
- `dispatch` (run as every transaction ends) asks the router for every assignment possible
  now and rings each chosen agent with a preset channel id and the ring timeout, while the
  reservations are written through. The leg's role says what its answer means: a call
  waiting in a queue, the target of an attended transfer, or a callback's agent.
- `rona`: the agent's phone rang out, was busy or failed; the agent goes not-ready(RONA)
  for `controller.rona_cooldown_s` and the call goes back in its place.
- `tick_forever`: the router's timers (relaxation, wrap-up ends, RONA memory) and the RONA
  cool-downs, at least once a second.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ccserver.acd import AcdError
from ccserver.calls.center import CallCenter
from ccserver.calls.model import Call, CallState, Leg, LegRole, agent_leg_id
from ccserver.logs import log
from ccserver.metrics import instruments
from ccserver.telephony.ari import AriError

logger = logging.getLogger("ccserver.calls")
AGENT_LEG_VARIABLES = {"PJSIP_TRANSFER_HANDLING()": "ari-only"}
"""A phone's REFER reaches us (`ChannelTransfer`) rather than Asterisk's own transfer."""


async def enqueue(
    center: CallCenter,
    call: Call,
    queue: str,
    *,
    priority: int | None = None,
    ring_first: bool = False,
) -> None:
    """Give the call to the router in `queue`, keeping its original arrival. With
    `ring_first` (a new caller) a ready agent's phone is rung before the record and the
    `enter` event are written, not after: nothing reads them in between, and the caller
    hears the agent sooner."""
    now = time.time()
    acd = center.acd
    call.ewt_quoted_s = round(
        acd.enqueue(call.id, queue, now, priority=priority, arrival=call.arrived_at), 3
    )
    call.queue = queue
    call.priority = acd.router.call(call.id).priority
    call.queued_at = call.queued_at or now
    position = acd.router.position(call.id)
    log(
        logger, "call.queued", call=call.id, queue=queue, position=position, ewt_s=call.ewt_quoted_s
    )
    if ring_first:
        await dispatch(center)
    await center.journal.save_call(call)
    await center.journal.event(
        call, "enter", queue=queue, position=position, ewt_s=call.ewt_quoted_s
    )


async def dispatch(center: CallCenter) -> None:
    """Ask the router for every assignment possible now; ring each chosen agent while the
    state is written through."""
    with instruments.ROUTING.time():
        assignments = center.acd.dispatch(time.time())
    if not assignments:
        return
    rings = []
    for a in assignments:
        call = center.calls.get(a.call)
        if call is None:  # the router knows a call we lost: give it back
            log(logger, "call.unknown_assignment", logging.ERROR, call=a.call, agent=a.agent)
            center.acd.router.remove(a.call, time.time())
            continue
        leg = agent_leg_id()
        if call.state == CallState.CALLBACK:
            role, state = LegRole.CALLBACK_AGENT, CallState.CALLBACK_RINGING
        else:
            role = LegRole.CONSULT_TARGET if call.consult else LegRole.AGENT
            state = CallState.RINGING
        center.move(call, state)
        call.agent, call.agent_channel = a.agent, leg
        call.decision = {
            "strategy": a.strategy,
            "step": a.step,
            "group": a.group,
            "level": a.level,
            "waited_s": round(a.waited_s, 3),
        }
        call.attempts.append({"agent": a.agent, "at": time.time(), "result": "ringing"})
        center.legs[leg] = Leg(call.id, role)
        rings.append((call, a.agent, leg))
    # The phones ring while the reservations are written, not after: a controller killed
    # in between leaves a ringing leg its successor does not know, which recovery hangs up
    # with the call still waiting in its place, as with any withdrawn offer.
    records = [center.journal.save_call(call) for call, _, _ in rings]
    await asyncio.gather(
        *records, center.persist(), *(_ring(center, call, agent, leg) for call, agent, leg in rings)
    )


async def _ring(center: CallCenter, call: Call, agent_id: str, leg: str) -> None:
    phone = center.acd.agents[agent_id].phone
    log(logger, "call.ringing", call=call.id, agent=agent_id, phone=phone, leg=leg)
    center.wake(call)
    try:
        await center.ari.originate(
            leg,
            endpoint=f"PJSIP/{phone}",
            app=center.config.controller.app,
            app_args=f"agent,{call.id}",
            timeout_s=center.config.controller.ring_timeout_s,
            caller_id=call.caller or call.dnis,
            variables=AGENT_LEG_VARIABLES,
        )
    except AriError as exc:
        log(
            logger,
            "call.originate_failed",
            logging.ERROR,
            call=call.id,
            agent=agent_id,
            error=str(exc),
        )
        center.legs.pop(leg, None)
        if call.agent_channel == leg:
            await rona(center, call, "originate-failed")


async def rona(center: CallCenter, call: Call, result: str) -> None:
    """The agent's phone rang out, was busy or failed: the agent goes not-ready(RONA), the
    call back in its place."""
    agent = call.agent or ""
    call.attempts[-1]["result"] = result
    back = CallState.CALLBACK if call.state == CallState.CALLBACK_RINGING else CallState.WAITING
    center.move(call, back)
    call.agent = call.agent_channel = None
    center.acd.router.reject(call.id, agent, time.time())
    center.rona_at[agent] = time.time()
    log(logger, "call.rona", logging.WARNING, call=call.id, agent=agent, result=result)
    center.wake(call)
    await center.journal.save_call(call)
    await center.journal.event(call, "rona", agent=agent, result=result)


async def withdraw(center: CallCenter, call: Call, reason: str) -> None:
    """The offer ends without fault of the agent (`reason`: they answered and the bridge
    failed, or the controller restarted while the phone rang): the agent is ready again
    with their idle time kept, the call back in its place."""
    agent, now = call.agent, time.time()
    queue = call.queue or center.config.acd.default_queue
    center.acd.router.remove(call.id, now)
    # Back in the router at its arrival, without a new `enter`: the call was offered once.
    center.acd.enqueue(call.id, queue, now, priority=call.priority, arrival=call.arrived_at)
    center.move(call, CallState.WAITING)
    call.agent = call.agent_channel = None
    log(logger, "call.offer_withdrawn", logging.WARNING, call=call.id, agent=agent, why=reason)
    center.wake(call)
    await center.journal.save_call(call)
    await center.journal.event(call, "requeue", reason=reason, agent=agent)


async def tick_forever(center: CallCenter) -> None:
    """Router timers (relaxation, wrap-up ends, RONA memory) and RONA cool-downs."""
    while True:
        now = time.time()
        due = center.acd.router.next_timer()
        wait = 1.0 if due is None else min(1.0, max(0.05, due - now))
        await asyncio.sleep(wait)
        async with center.transaction():
            _rona_cooldowns(center, time.time())


def _rona_cooldowns(center: CallCenter, now: float) -> None:
    cooldown = center.config.controller.rona_cooldown_s
    for agent_id, at in list(center.rona_at.items()):
        if now < at + cooldown:
            continue
        del center.rona_at[agent_id]
        view = center.acd.agent_view(agent_id)
        if view["state"] == "not-ready" and view["reason"] == "RONA":
            try:
                center.acd.set_ready(agent_id, now)
            except AcdError:
                continue
            log(logger, "agent.ready", agent=agent_id, after="rona-cooldown")
