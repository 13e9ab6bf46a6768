"""A caller and an agent talking: the bridge when the agent answers, the recording, and
every way a talk or a call ends.

- `agent_answered`: the agent's leg entered Stasis (they picked up); caller and agent meet
  in the call's own mixing bridge, recorded when the queue says so. A bridge that cannot be
  made is undone so the caller waits again, in place.
- `finish`: the call is over (outcome, who hung up); every leg of it is hung up, its
  bridge destroyed, the agent goes to wrap-up (the router's timer), the record is closed.
- `caller_gone`: the caller's channel left; the outcome depends on the state it left in.
- `agent_vanished`: the agent's leg of a talk is gone while the caller is still here.
- `to_survey`: the agent hung up first on a call a flow runs; the flow goes on.
"""

from __future__ import annotations

import logging
import time

from ccserver.calls.center import CallCenter
from ccserver.calls.model import (
    CALLBACK_STATES,
    HOLDING_BRIDGE,
    TALKING_STATES,
    Call,
    CallState,
    Outcome,
    recording_name,
)
from ccserver.calls.routing import enqueue
from ccserver.logs import log
from ccserver.metrics import instruments
from ccserver.telephony.ari import AriError

logger = logging.getLogger("ccserver.calls")
BRIDGE_FAILED = "bridge-failed"
"""The result of an attempt whose agent answered but could not be bridged to the caller (a
leg gone meanwhile, an overloaded Asterisk): not the agent's fault, so not a RONA."""
CALLER_GONE: dict[CallState, tuple[Outcome, str]] = {
    CallState.CONNECTED: (Outcome.COMPLETED, "caller"),
    CallState.CONSULTING: (Outcome.COMPLETED, "caller"),
    CallState.SURVEY: (Outcome.COMPLETED, "agent"),
    CallState.IVR: (Outcome.IVR_ABANDONED, "caller"),
    CallState.TRANSFERRED: (Outcome.TRANSFERRED, "ivr"),
}
"""A caller's hang-up in each state: the call's outcome, and who ended it (any other state:
abandoned, by the caller)."""


async def late_answer(center: CallCenter, call: Call, leg: str) -> None:
    """A leg answered after its call moved on (the caller left, the offer was withdrawn):
    it is hung up and forgotten."""
    log(logger, "call.late_answer", logging.WARNING, call=call.id, leg=leg)
    await center.drop_leg(leg)


async def agent_answered(center: CallCenter, call: Call, leg: str) -> None:
    """The agent picked up the call they were rung for: caller and agent are bridged."""
    if call.state != CallState.RINGING or call.agent_channel != leg:
        await late_answer(center, call, leg)
        return
    bridge = call.bridge
    try:
        await center.media.stop(call.id)
        await center.ari.create_bridge(bridge)
        await center.ari.remove_from_bridge(HOLDING_BRIDGE, call.id)
        await center.ari.add_to_bridge(bridge, call.id, leg)
    except AriError as exc:
        log(logger, "call.bridge_failed", logging.ERROR, call=call.id, error=str(exc))
        call.attempts[-1]["result"] = BRIDGE_FAILED
        await _unbridge(center, call)
        await center.ari.hangup(leg)
        return  # the agent leg's end withdraws the offer; a caller gone ends the call
    await connected(center, call, bridge)


async def _unbridge(center: CallCenter, call: Call) -> None:
    """Undo a connection that failed half-way, so the caller waits again as before: the
    call's bridge goes (left behind, it would refuse every later attempt with 409), and the
    caller is back in the holding bridge with its music. A caller who is gone is not held
    again: its own end event closes the call."""
    await drop_bridge(center, call)
    await center.hold(call.id)


async def drop_bridge(center: CallCenter, call: Call) -> None:
    """Destroy the call's talk bridge. Its id stays taken in Asterisk until the last
    channel has left it (an agent leg being hung up can take longer than the next agent
    takes to answer), so the call's next bridge gets the next generation's id."""
    await center.ari.destroy_bridge(call.bridge)
    call.bridge_generation += 1


async def connected(center: CallCenter, call: Call, bridge: str) -> None:
    """Caller (or customer) and agent are in `bridge`: the router, the record and the
    recording."""
    now = time.time()
    center.move(call, CallState.CONNECTED)
    call.connected_at = now
    call.attempts[-1]["result"] = "answered"
    center.acd.router.answer(call.id, now)
    instruments.answered(
        call.queue or "",
        wait_s=call.wait_s or 0.0,
        ring_s=now - call.attempts[-1]["at"],
        ewt_s=call.ewt_quoted_s,
        callback=call.callback is not None,
    )
    await record_if_asked(center, call, bridge)
    log(logger, "call.connected", call=call.id, agent=call.agent, wait_s=call.wait_s)
    center.wake(call)
    await center.journal.save_call(call)
    await center.journal.event(
        call, "connect", agent=call.agent, wait_s=call.wait_s, **(call.decision or {})
    )


async def record_if_asked(center: CallCenter, call: Call, bridge: str) -> None:
    """Record the call's bridge when its queue asks for it; the file goes in the record."""
    if call.queue is None or not center.acd.queue_config(call.queue).record:
        return
    name = recording_name(call.id)
    try:
        await center.ari.record_bridge(bridge, name)
    except AriError as exc:
        log(logger, "call.record_failed", logging.WARNING, call=call.id, error=str(exc))
        return
    call.recording = str(center.recordings / f"{name}.wav")


def end_talk(center: CallCenter, call: Call, now: float, *, wrap_up_s: float | None = None) -> None:
    """An agent's talk on the call is over (hang-up, transfer): its time and the wrap-up
    the queue grants go to the metrics, and the router completes it (the agent to wrap-up,
    for `wrap_up_s` when given, else the queue's)."""
    if call.queue:
        talk_s = None if call.connected_at is None else now - call.connected_at
        instruments.talk(call.queue, talk_s, center.acd.queue_config(call.queue).wrap_up_s)
    center.acd.router.complete(call.id, now, wrap_up_s=wrap_up_s)
    call.held = False


async def finish(center: CallCenter, call: Call, outcome: Outcome, *, hangup_by: str) -> None:
    """The call is over: every channel of it hung up, its bridge gone, the router told,
    the record closed, the call forgotten."""
    previous = call.state
    now = time.time()
    center.move(call, CallState.ENDED)
    call.outcome, call.hangup_by, call.ended_at = outcome, hangup_by, now
    if call.id in center.acd.router.calls():
        if previous in TALKING_STATES:
            end_talk(center, call, now)
        else:
            center.acd.router.remove(call.id, now)
    if previous in (CallState.RINGING, CallState.CALLBACK_RINGING) and call.attempts:
        call.attempts[-1]["result"] = "caller-gone"
    await center.ari.hangup(call.id)
    for leg in (
        call.agent_channel,
        (call.callback or {}).get("customer_channel"),
        (call.consult or {}).get("leg"),
    ):
        if leg:
            await center.drop_leg(leg)
    await drop_bridge(center, call)
    log(
        logger,
        "call.ended",
        call=call.id,
        outcome=outcome.value,
        hangup_by=hangup_by,
        agent=call.agent,
        wait_s=call.wait_s,
    )
    kind = "abandon" if outcome == Outcome.ABANDONED else "complete"
    await center.journal.save_ended(call)
    await center.journal.event(
        call, kind, outcome=outcome.value, hangup_by=hangup_by, wait_s=call.wait_s
    )
    center.forget(call)


async def caller_gone(center: CallCenter, call: Call, cause: int) -> None:
    """The caller's channel left: the call ends with the outcome of the state it was in."""
    if call.state == CallState.ENDED or call.state in CALLBACK_STATES:
        return  # a callback's caller hung up on purpose; the call lives on
    outcome, hangup_by = CALLER_GONE.get(call.state, (Outcome.ABANDONED, "caller"))
    if call.state == CallState.IVR and call.queue is not None:  # see LiveChannel.connecting
        outcome, hangup_by = Outcome.ABANDONED, "caller"
    elif call.state == CallState.IVR and call.handled_by == "ivr":  # LiveChannel.self_served
        outcome = Outcome.SELF_SERVICE
    elif call.state == CallState.IVR and call.hangup_by == "ivr":
        outcome = Outcome.IVR_ENDED  # the flow ended the call before serving the caller
    await finish(center, call, outcome, hangup_by=call.hangup_by or hangup_by)
    log(logger, "call.caller_hangup", call=call.id, cause=cause)


async def agent_vanished(
    center: CallCenter, call: Call, why: str, *, phone_lost: bool = True
) -> None:
    """The agent's leg of a talk is gone while the caller is still here: the call goes
    back to its queue at its original place (arrival kept) and the event is recorded.
    With `phone_lost` we know the phone died (`why` says how), so the agent is put
    not-ready(phone-lost) rather than left busy or offered the next call on a dead phone;
    after a restart we only know the leg is gone (the agent may have hung up while we were
    away), so they go through wrap-up as after any call. The caller's holding and session
    are the caller's business (live: back to the music; recovery: resync)."""
    now = time.time()
    agent = call.agent
    end_talk(center, call, now, wrap_up_s=0.0 if phone_lost else None)
    if phone_lost and agent:
        center.acd.phone_lost(agent, now)
    center.legs.pop(call.agent_channel or "", None)
    await drop_bridge(center, call)
    center.move(call, CallState.WAITING)
    call.agent, call.agent_channel, call.connected_at = None, None, None
    log(logger, "call.agent_vanished", logging.WARNING, call=call.id, agent=agent, why=why)
    await center.journal.event(call, "requeue", reason="agent-vanished", agent=agent, why=why)
    await enqueue(center, call, call.queue or center.config.acd.default_queue)


async def to_survey(center: CallCenter, call: Call) -> None:
    """The agent hung up first on a call a flow runs: the caller leaves the bridge and goes
    back to the flow (the survey); the talk is over for the router."""
    end_talk(center, call, time.time())
    center.legs.pop(call.agent_channel or "", None)
    center.move(call, CallState.SURVEY)
    call.hangup_by = "agent"
    await drop_bridge(center, call)
    center.wake(call)
    await center.journal.save_call(call)
    await center.journal.event(call, "agent_hangup")
