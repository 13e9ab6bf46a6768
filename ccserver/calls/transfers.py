"""Transfers of a connected call to a queue or to one agent, keeping the caller's place.

Both kinds send the caller back into a queue with the call's *original* arrival, so a
transferred caller is served before callers who rang after them: they do not start again
at the back. A transfer to an agent uses that agent's direct queue (`Acd.direct_queue`), so
it waits for the agent like any call would, with RONA and announcements as usual.

- **Blind**: the transferring agent is done at once (hung up, wrap-up as after any call);
  the caller hears music until the target answers.
- **Attended** (consult): the caller is put on hold while the transferring agent stays in
  the call's bridge; the target's phone rings and, when answered, the two agents talk. The
  transferring agent hanging up completes the transfer (the caller joins the target). The
  target hanging up or not answering cancels it: the caller goes back to the queue it was
  in before, still at its original arrival, and the transferring agent is told so. For the
  router the transferring agent is done when the consult starts (wrap-up runs; the phone,
  still busy, keeps them from being offered a call until it is free).

The agent's phone may also ask by itself: agent legs run with
`PJSIP_TRANSFER_HANDLING()=ari-only`, so a SIP REFER from the phone reaches us as a
`ChannelTransfer` event instead of being carried out by Asterisk. A blind REFER whose target
is a queue's name or an agent's id becomes a blind transfer here; anything else is declined
(the phone shows the transfer failed and the call goes on). A REFER with Replaces (the
phone's own attended transfer) names a second call the controller does not own, so it is
declined too: attended transfers go through the API.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ccserver.acd import AcdError
from ccserver.calls.center import CallCenter
from ccserver.calls.model import (
    HOLDING_BRIDGE,
    Call,
    CallState,
    Leg,
    LegRole,
    cause_result,
)
from ccserver.calls.phrases import phrase
from ccserver.calls.queueing import keep_waiting
from ccserver.calls.routing import enqueue, rona
from ccserver.calls.talk import (
    agent_answered,
    drop_bridge,
    end_talk,
    late_answer,
    record_if_asked,
)
from ccserver.errors import InputError
from ccserver.logs import log
from ccserver.telephony.ari import AriError, AriEvent

logger = logging.getLogger("ccserver.transfers")


async def transfer(
    center: CallCenter,
    call_id: str,
    *,
    queue: str | None,
    agent: str | None,
    by: str,
    attended: bool = False,
) -> dict[str, Any]:
    """Transfer a connected call to `queue` or to `agent` (exactly one); returns its record."""
    if (queue is None) == (agent is None):
        raise InputError("give exactly one of queue and agent")
    async with center.transaction(persist="now"):
        call = await _transfer(center, call_id, queue=queue, agent=agent, by=by, attended=attended)
    return call.to_record()  # as the transaction left it: a ready target is ringing


async def move(
    center: CallCenter, call_id: str, *, queue: str | None, head: bool, by: str
) -> dict[str, Any]:
    """A supervisor moves a waiting caller to `queue` (None: it stays in its queue) and,
    with `head`, ahead of every caller waiting there (a priority above theirs); it keeps
    its original arrival. Returns the call; raises call-unknown (404), queue-unknown (404),
    invalid-state (409: the caller is not waiting, e.g. an agent's phone rings for it)."""
    async with center.transaction(persist="now"):
        call = center.calls.get(call_id)
        if call is None:
            raise AcdError(f"no live call {call_id!r}", slug="call-unknown", status=404)
        if call.state != CallState.WAITING or call.callback is not None:
            raise AcdError(f"call {call_id} is {call.state}, not waiting in a queue")
        source = call.queue or ""
        target = center.acd.queue_config(queue).name if queue else source
        priority = None
        if head:
            router = center.acd.router
            others = (router.call(c) for c in router.calls() if c != call.id)
            ahead = [v.priority for v in others if v.queue == target and v.state == "waiting"]
            priority = max([center.acd.queue_config(target).priority, *ahead]) + 1
        center.acd.router.remove(call.id, time.time())
        await enqueue(center, call, target, priority=priority)
        await center.journal.event(
            call, "move", source=source, target=target, head=head or None, by=by
        )
        log(logger, "call.moved", call=call.id, source=source, target=target, head=head, by=by)
        keep_waiting(center, call)
    return call.to_record()


async def _transfer(
    center: CallCenter,
    call_id: str,
    *,
    queue: str | None,
    agent: str | None,
    by: str,
    attended: bool,
) -> Call:
    call = center.calls.get(call_id)
    if call is None:
        raise AcdError(f"no live call {call_id!r}", slug="call-unknown", status=404)
    if by.startswith("agent:") and by.removeprefix("agent:") != call.agent:
        raise AcdError("an agent may transfer only their own call", slug="forbidden", status=403)
    if call.state != CallState.CONNECTED or call.callback is not None:
        raise AcdError(f"call {call_id} is {call.state}, not talking to an agent")
    target = center.acd.queue_config(queue).name if queue else center.acd.direct_queue(agent or "")
    now = time.time()
    source_agent, leg, bridge = call.agent, call.agent_channel, call.bridge
    end_talk(center, call, now)
    center.move(call, CallState.WAITING)
    call.agent, call.agent_channel, call.connected_at = None, None, None
    if attended and leg:
        call.consult = {"agent": source_agent, "leg": leg, "from_queue": call.queue, "by": by}
        center.legs[leg] = Leg(call.id, LegRole.CONSULT_SOURCE)
        try:
            await center.ari.remove_from_bridge(bridge, call.id)
        except AriError as exc:  # the caller is gone: its end event closes the call
            log(logger, "call.consult_hold_failed", logging.WARNING, call=call.id, error=str(exc))
    else:
        await drop_bridge(center, call)
        if leg:
            await center.drop_leg(leg)
    await center.hold(call.id)
    mode = "attended" if call.consult else "blind"
    await center.journal.event(
        call, "transfer", source=source_agent, target=target, by=by, mode=mode
    )
    await enqueue(center, call, target)
    log(logger, "call.transferred", call=call.id, source=source_agent, target=target, mode=mode)
    keep_waiting(center, call)
    return call


async def target_answered(center: CallCenter, call: Call, leg: str) -> None:
    """The consulted agent answered: they meet the transferring agent in the call's bridge
    while the caller stays on hold. A transfer whose transferring agent has already hung up
    is a blind one: the target meets the caller."""
    if call.consult is None:
        await agent_answered(center, call, leg)
        return
    if call.state != CallState.RINGING or call.agent_channel != leg:
        await late_answer(center, call, leg)
        return
    try:
        await center.ari.add_to_bridge(call.bridge, leg)
    except AriError as exc:
        log(logger, "call.consult_bridge_failed", logging.ERROR, call=call.id, error=str(exc))
        await center.ari.hangup(leg)  # its end event cancels the consult
        return
    now = time.time()
    center.move(call, CallState.CONSULTING)
    call.connected_at = now
    call.attempts[-1]["result"] = "answered"
    center.acd.router.answer(call.id, now)
    log(logger, "call.consulting", call=call.id, source=(call.consult or {}).get("agent"))
    center.wake(call)
    await center.journal.save_call(call)
    await center.journal.event(
        call, "consult", agent=call.agent, source=(call.consult or {}).get("agent")
    )


async def target_gone(center: CallCenter, call: Call, leg: str, cause: int) -> bool:
    """The consulted agent's leg ended: in the consult or while ringing, the transfer is
    cancelled. False once the transfer completed (the target is the call's agent now)."""
    if call.agent_channel != leg:
        return True
    if call.state == CallState.CONSULTING:
        await cancel_consult(center, call, "declined", call.agent)
    elif call.state == CallState.RINGING and call.consult is not None:
        target = call.agent
        await rona(center, call, cause_result(cause))
        await cancel_consult(center, call, "no-answer", target)
    else:
        return False
    return True


async def source_gone(center: CallCenter, call: Call, leg: str, cause: int) -> None:
    """The transferring agent hung up. During the consult that completes the transfer: the
    caller joins the target. Before the target answered it is a blind transfer from now on."""
    if (call.consult or {}).get("leg") != leg:
        return
    consult, call.consult = call.consult or {}, None
    if call.state != CallState.CONSULTING:
        log(logger, "call.consult_abandoned", call=call.id, source=consult.get("agent"))
        await center.journal.save_call(call)
        return
    bridge = call.bridge
    try:
        await center.ari.remove_from_bridge(HOLDING_BRIDGE, call.id)
        await center.ari.add_to_bridge(bridge, call.id)
    except AriError as exc:  # the caller is gone: its end event closes the call
        log(logger, "call.transfer_join_failed", logging.WARNING, call=call.id, error=str(exc))
        return
    center.move(call, CallState.CONNECTED)
    await record_if_asked(center, call, bridge)
    log(logger, "call.transfer_completed", call=call.id, agent=call.agent)
    center.wake(call)
    await center.journal.save_call(call)
    await center.journal.event(
        call, "connect", agent=call.agent, transfer_from=consult.get("agent")
    )


async def cancel_consult(center: CallCenter, call: Call, why: str, target: str | None) -> None:
    """The target agent declined (hung up in the consult, or never answered): the caller
    goes back to the queue it was in before, at its original arrival; the transferring agent
    leaves the call's bridge, is told, and is hung up."""
    consult, call.consult = call.consult or {}, None
    await drop_bridge(center, call)
    now = time.time()
    if call.state == CallState.CONSULTING:
        end_talk(center, call, now)
    elif call.id in center.acd.router.calls():
        center.acd.router.remove(call.id, now)
    if call.agent_channel:
        await center.drop_leg(call.agent_channel)
    if call.state != CallState.WAITING:
        center.move(call, CallState.WAITING)
    call.agent, call.agent_channel, call.connected_at = None, None, None
    back = consult.get("from_queue") or center.config.acd.default_queue
    await center.journal.event(call, "transfer_cancelled", target=target, reason=why, queue=back)
    log(logger, "call.transfer_cancelled", call=call.id, target=target, reason=why)
    await enqueue(center, call, back)
    keep_waiting(center, call)
    source_leg = consult.get("leg")
    if source_leg:
        center.legs.pop(source_leg, None)
        center.spawn(_tell_and_hang_up(center, source_leg), f"consult-failed-{call.id}")


async def _tell_and_hang_up(center: CallCenter, leg: str) -> None:
    try:
        await center.say(leg, phrase("consult_failed", center.config.acd.language))
    finally:
        await center.ari.hangup(leg)


async def on_refer(center: CallCenter, event: AriEvent) -> None:
    """A phone sent REFER on an agent leg (`ChannelTransfer`, ari-only transfer handling):
    carry out a blind transfer to the queue or agent it names, else decline it. Called
    under the center's lock. Asterisk reports the progress we give it back as more events
    of this type, with a `state`: only the request itself (`state` "invalid", meaning none
    yet) is acted on."""
    if event.data.get("state", "invalid") != "invalid":
        return
    refer_to = event.data.get("refer_to") or {}
    referred_by = event.data.get("referred_by") or {}
    source = referred_by.get("source_channel") or {}
    leg = str(source.get("id", "")) if isinstance(source, dict) else ""
    wanted = refer_to.get("requested_destination") or {} if isinstance(refer_to, dict) else {}
    destination = str(wanted.get("destination") or "") if isinstance(wanted, dict) else ""
    known = center.legs.get(leg)
    call = center.calls.get(known.call) if known is not None else None
    if call is None or call.agent_channel != leg or call.state != CallState.CONNECTED:
        return await _refer_declined(center, leg, "not-on-a-call", destination)
    if wanted.get("protocol_id"):  # Replaces: the phone's own attended transfer
        return await _refer_declined(center, leg, "attended-refer", destination)
    names = {q.name for q in center.config.acd.queues}
    queue = destination if destination in names else None
    agent = destination if queue is None and destination in center.acd.agents else None
    if queue is None and agent is None:
        return await _refer_declined(center, leg, "unknown-target", destination)
    await _progress(center, leg, "channel_answered")  # the phone gets NOTIFY 200, then BYE
    try:
        await _transfer(
            center, call.id, queue=queue, agent=agent, by=f"agent:{call.agent}", attended=False
        )
    except AcdError as exc:  # e.g. the target agent is logged out: the call goes on
        log(logger, "call.refer_failed", logging.WARNING, call=call.id, error=str(exc))


async def _refer_declined(center: CallCenter, leg: str, reason: str, destination: str) -> None:
    log(logger, "call.refer_declined", logging.WARNING, leg=leg, reason=reason, to=destination)
    await _progress(center, leg, "channel_declined")


async def _progress(center: CallCenter, leg: str, state: str) -> None:
    try:
        await center.ari.transfer_progress(leg, state)
    except AriError as exc:
        log(logger, "call.refer_progress_failed", logging.WARNING, leg=leg, error=str(exc))
