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
from typing import TYPE_CHECKING, Any

from ccserver import waiting
from ccserver.acd import AcdError
from ccserver.errors import InputError
from ccserver.logs import log
from ccserver.telephony.ari import AriError, AriEvent

if TYPE_CHECKING:
    from ccserver.calls import Call, CallCenter

logger = logging.getLogger("ccserver.transfers")

CONSULT_FAILED = {
    "zh": "转接未成功，来电已回到原队列。",
    "en": "The transfer did not go through. The caller is back in their queue.",
}


async def transfer(
    center: CallCenter,
    call_id: str,
    *,
    queue: str | None,
    agent: str | None,
    by: str,
    attended: bool = False,
) -> dict[str, Any]:
    if (queue is None) == (agent is None):
        raise InputError("give exactly one of queue and agent")
    async with center.lock:
        return await _transfer(center, call_id, queue=queue, agent=agent, by=by, attended=attended)


async def _transfer(
    center: CallCenter,
    call_id: str,
    *,
    queue: str | None,
    agent: str | None,
    by: str,
    attended: bool,
) -> dict[str, Any]:
    from ccserver.calls import CALL_BRIDGE_PREFIX

    call = center.calls.get(call_id)
    if call is None:
        raise AcdError(f"no live call {call_id!r}", slug="call-unknown", status=404)
    if by.startswith("agent:") and by.removeprefix("agent:") != call.agent:
        raise AcdError("an agent may transfer only their own call", slug="forbidden", status=403)
    if call.state != "connected" or call.callback is not None:
        raise AcdError(f"call {call_id} is {call.state}, not talking to an agent")
    target = center.acd.queue_config(queue).name if queue else center.acd.direct_queue(agent or "")
    now = time.time()
    source_agent, leg, bridge = call.agent, call.agent_channel, CALL_BRIDGE_PREFIX + call.id
    center.talk_ended(call, now)
    center.acd.router.complete(call.id, now)
    call.state, call.agent, call.agent_channel, call.connected_at = "waiting", None, None, None
    if attended and leg:
        call.consult = {"agent": source_agent, "leg": leg, "from_queue": call.queue, "by": by}
        try:
            await center.ari.request(
                "POST", f"/bridges/{bridge}/removeChannel", params={"channel": call.id}
            )
        except AriError as exc:  # the caller is gone: its end event closes the call
            log(logger, "call.consult_hold_failed", logging.WARNING, call=call.id, error=str(exc))
    else:
        center.legs.pop(leg or "", None)
        await center.destroy_bridge(bridge)
        if leg:
            await center.hangup(leg)
    await center.hold(call.id)
    mode = "attended" if call.consult else "blind"
    await center.event(call, "transfer", source=source_agent, target=target, by=by, mode=mode)
    await center.enqueue(call, target)
    log(logger, "call.transferred", call=call.id, source=source_agent, target=target, mode=mode)
    keep_waiting(center, call)
    await center.dispatch()
    await center.persist()
    return call.record()


async def target_answered(center: CallCenter, call: Call, leg: str) -> None:
    """The consulted agent answered: they meet the transferring agent in the call's bridge
    while the caller stays on hold."""
    from ccserver.calls import CALL_BRIDGE_PREFIX

    try:
        await center.ari.request(
            "POST",
            f"/bridges/{CALL_BRIDGE_PREFIX + call.id}/addChannel",
            params={"channel": leg},
        )
    except AriError as exc:
        log(logger, "call.consult_bridge_failed", logging.ERROR, call=call.id, error=str(exc))
        await center.hangup(leg)  # its end event cancels the consult
        return
    now = time.time()
    call.state, call.connected_at = "consulting", now
    call.attempts[-1]["result"] = "answered"
    center.acd.router.answer(call.id, now)
    log(logger, "call.consulting", call=call.id, source=(call.consult or {}).get("agent"))
    center.wake(call)
    await center.store.save_call(call.record())
    await center.event(call, "consult", agent=call.agent, source=(call.consult or {}).get("agent"))


async def source_gone(center: CallCenter, call: Call) -> None:
    """The transferring agent hung up. During the consult that completes the transfer: the
    caller joins the target. Before the target answered it is a blind transfer from now on."""
    from ccserver.calls import CALL_BRIDGE_PREFIX, HOLDING_BRIDGE

    consult, call.consult = call.consult or {}, None
    if call.state != "consulting":
        log(logger, "call.consult_abandoned", call=call.id, source=consult.get("agent"))
        await center.store.save_call(call.record())
        return
    bridge = CALL_BRIDGE_PREFIX + call.id
    try:
        await center.ari.request(
            "POST", f"/bridges/{HOLDING_BRIDGE}/removeChannel", params={"channel": call.id}
        )
        await center.ari.request(
            "POST", f"/bridges/{bridge}/addChannel", params={"channel": call.id}
        )
    except AriError as exc:  # the caller is gone: its end event closes the call
        log(logger, "call.transfer_join_failed", logging.WARNING, call=call.id, error=str(exc))
        return
    call.state = "connected"
    if call.queue is not None and center.acd.queue_config(call.queue).record:
        await center.record(call, bridge)
    log(logger, "call.transfer_completed", call=call.id, agent=call.agent)
    center.wake(call)
    await center.store.save_call(call.record())
    await center.event(call, "connect", agent=call.agent, transfer_from=consult.get("agent"))


async def cancel_consult(center: CallCenter, call: Call, why: str, target: str | None) -> None:
    """The target agent declined (hung up in the consult, or never answered): the caller
    goes back to the queue it was in before, at its original arrival; the transferring agent
    leaves the call's bridge, is told, and is hung up."""
    from ccserver.calls import CALL_BRIDGE_PREFIX

    consult, call.consult = call.consult or {}, None
    await center.destroy_bridge(CALL_BRIDGE_PREFIX + call.id)
    now = time.time()
    if call.state == "consulting":
        center.talk_ended(call, now)
        center.acd.router.complete(call.id, now)
    elif call.id in center.acd.router.calls():
        center.acd.router.remove(call.id, now)
    if call.agent_channel:
        center.legs.pop(call.agent_channel, None)
        await center.hangup(call.agent_channel)
    call.state, call.agent, call.agent_channel, call.connected_at = "waiting", None, None, None
    back = consult.get("from_queue") or center.config.acd.default_queue
    await center.event(call, "transfer_cancelled", target=target, reason=why, queue=back)
    log(logger, "call.transfer_cancelled", call=call.id, target=target, reason=why)
    await center.enqueue(call, back)
    keep_waiting(center, call)
    source_leg = consult.get("leg")
    if source_leg:
        center.legs.pop(source_leg, None)
        center.spawn(_tell_and_hang_up(center, source_leg), f"consult-failed-{call.id}")


def keep_waiting(center: CallCenter, call: Call) -> None:
    """The caller waits again: wake its session, or start one (a plain call's session
    ended when it was connected)."""
    center.wake(call)
    session = center.sessions.get(call.id)
    if session is None or session.done():
        center.sessions[call.id] = center.spawn(waiting.resume(center, call), f"session-{call.id}")


async def _tell_and_hang_up(center: CallCenter, leg: str) -> None:
    try:
        await center.say(leg, CONSULT_FAILED[center.config.acd.language])
    finally:
        await center.hangup(leg)


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
    call = center.calls.get(center.legs.get(leg, ""))
    if call is None or call.agent_channel != leg or call.state != "connected":
        return await _refer_declined(center, leg, "not-on-a-call", destination)
    if wanted.get("protocol_id"):  # Replaces: the phone's own attended transfer
        return await _refer_declined(center, leg, "attended-refer", destination)
    names = {q.name for q in center.config.acd.queues}
    queue = destination if destination in names else None
    agent = destination if queue is None and destination in center.acd.seats else None
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
        await center.ari.request(
            "POST", f"/channels/{leg}/transfer_progress", params={"states": state}
        )
    except AriError as exc:
        log(logger, "call.refer_progress_failed", logging.WARNING, leg=leg, error=str(exc))
