"""Callbacks that keep the caller's place.

A waiting caller who accepts the offer hangs up, but the call stays in the router with its
original arrival, so it moves up exactly as if the caller had stayed. When it reaches the
head, the router reserves an agent; the agent's phone rings first, and only once the agent
has answered is the customer dialled (`acd.callback_endpoint`), so no customer is ever
called back into a queue. A customer who does not answer is tried again after
`acd.callback_retry_s`, up to `acd.callback_attempts` times, still at the same place; each
try and its result is in the call record (`callback.attempts`) and the event stream.

States: callback (waiting in the queue) → callback-ringing (the agent's phone) →
callback-dialing (the customer's) → connected; a missed customer → callback-wait → callback.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ccserver.calls.center import CallCenter
from ccserver.calls.model import (
    Call,
    CallState,
    Leg,
    LegRole,
    Outcome,
    cause_result,
    customer_leg_id,
)
from ccserver.calls.phrases import phrase
from ccserver.calls.routing import enqueue, rona
from ccserver.calls.talk import connected, drop_bridge, finish, late_answer
from ccserver.logs import log
from ccserver.telephony.ari import AriError

logger = logging.getLogger("ccserver.callbacks")
ANOTHER_NUMBER_KEY = "2"
CUSTOMER_RING_S = 30
CUSTOMER_RESULTS = {17: "busy", 19: "no-answer", 21: "rejected"}
"""A try that did not reach the customer, by the cause its leg ended with."""


def new_callback(number: str) -> dict[str, object]:
    """The `callback` part of a call record: the number, the leg dialling it, the tries."""
    return {"number": number, "customer_channel": None, "attempts": []}


async def accept(center: CallCenter, call: Call) -> None:
    """The caller pressed 1: confirm the number, keep the place, say goodbye."""
    language = center.config.acd.language

    async def say(key: str) -> str:
        return await center.say(call.id, phrase(key, language), interruptible=True)

    number = call.caller
    key = await say("callback_number") or await center.media.read_digits(
        call.id, max_digits=1, timeout_s=5.0, terminator=None
    )
    if key == ANOTHER_NUMBER_KEY:
        await say("callback_enter")
        typed = await center.media.read_digits(call.id, max_digits=20, timeout_s=10.0)
        if len(typed) >= 3:
            number = typed
    async with center.transaction(persist="now"):
        if call.state != CallState.WAITING:  # an agent took the call meanwhile
            return
        center.move(call, CallState.CALLBACK)
        call.callback = new_callback(number)
        log(logger, "call.callback_accepted", call=call.id, number=number)
        await center.journal.save_call(call)
        await center.journal.event(call, "callback", number=number)
    await say("callback_confirmed")
    await center.ari.hangup(call.id)


async def agent_answered(center: CallCenter, call: Call, leg: str) -> None:
    """The reserved agent answered: put them in the call's bridge and dial the customer."""
    if call.state != CallState.CALLBACK_RINGING or call.agent_channel != leg:
        await late_answer(center, call, leg)
        return
    assert call.callback is not None
    bridge = call.bridge
    customer = customer_leg_id()
    center.move(call, CallState.CALLBACK_DIALING)
    call.callback["customer_channel"] = customer
    attempt = {"at": time.time(), "number": call.callback["number"], "result": "dialing"}
    call.callback["attempts"].append(attempt)
    center.legs[customer] = Leg(call.id, LegRole.CUSTOMER)
    await center.journal.save_call(call)
    await center.journal.event(
        call, "callback_dial", number=call.callback["number"], agent=call.agent
    )
    try:
        await center.ari.create_bridge(bridge)
        await center.ari.add_to_bridge(bridge, leg)
        await center.ari.originate(
            customer,
            endpoint=center.config.acd.callback_endpoint.format(number=call.callback["number"]),
            app=center.config.controller.app,
            app_args=f"callback,{call.id}",
            timeout_s=CUSTOMER_RING_S,
            caller_id=call.dnis,
        )
    except AriError as exc:
        log(logger, "call.callback_dial_failed", logging.ERROR, call=call.id, error=str(exc))
        center.legs.pop(customer, None)
        await customer_gone(center, call, customer, 0)


async def customer_answered(center: CallCenter, call: Call, channel: str) -> None:
    """The customer picked up: they join the agent in the call's bridge."""
    callback = call.callback
    if callback is None or callback.get("customer_channel") != channel:
        await center.drop_leg(channel)
        return
    callback["attempts"][-1]["result"] = "answered"
    bridge = call.bridge
    try:
        await center.ari.add_to_bridge(bridge, channel)
    except AriError as exc:
        log(logger, "call.bridge_failed", logging.ERROR, call=call.id, error=str(exc))
        await center.ari.hangup(channel)
        return
    await connected(center, call, bridge)


async def customer_gone(center: CallCenter, call: Call, leg: str, cause: int) -> None:
    """The customer's leg ended: a finished talk, or a try that did not reach them."""
    if call.callback is None or call.callback.get("customer_channel") != leg:
        return  # an earlier try's leg
    if call.state == CallState.CONNECTED:
        await finish(center, call, Outcome.COMPLETED, hangup_by="caller")
        return
    result = CUSTOMER_RESULTS.get(cause, f"cause-{cause}")
    call.callback["attempts"][-1]["result"] = result
    call.callback["customer_channel"] = None
    await _release_agent(center, call)
    tries = len(call.callback["attempts"])
    await center.journal.event(call, "callback_failed", result=result, attempt=tries)
    log(logger, "call.callback_missed", logging.WARNING, call=call.id, result=result, attempt=tries)
    if tries >= center.config.acd.callback_attempts:
        await finish(center, call, Outcome.CALLBACK_FAILED, hangup_by="system")
        return
    center.move(call, CallState.CALLBACK_WAIT)
    await center.journal.save_call(call)
    center.spawn(_retry(center, call), f"callback-retry-{call.id}")


async def agent_leg_gone(center: CallCenter, call: Call, leg: str, cause: int) -> bool:
    """The reserved agent's leg ended before the talk: RONA while it rang, a fresh try with
    another agent while the customer was being dialled. False when the talk had begun
    (the caller's agent-leg handling applies)."""
    if call.agent_channel != leg:
        return True
    if call.state == CallState.CALLBACK_RINGING:
        await rona(center, call, cause_result(cause))
    elif call.state == CallState.CALLBACK_DIALING:
        await agent_left(center, call)
    else:
        return False
    return True


async def agent_left(center: CallCenter, call: Call) -> None:
    """The agent hung up while the customer was being dialled (or a restart lost the
    attempt): try again with another agent, at the same place."""
    leg = (call.callback or {}).get("customer_channel")
    if leg:
        await center.drop_leg(leg)
        (call.callback or {})["attempts"][-1]["result"] = "agent-left"
    await _release_agent(center, call)
    await requeue(center, call)


async def requeue(center: CallCenter, call: Call) -> None:
    """Back in the queue at the call's original place."""
    center.move(call, CallState.CALLBACK)
    await enqueue(center, call, call.queue or center.config.acd.default_queue)


async def _release_agent(center: CallCenter, call: Call) -> None:
    """Give the reserved agent back (ready, not RONA: the agent did nothing wrong)."""
    if call.agent_channel:
        await center.drop_leg(call.agent_channel)
    call.agent = call.agent_channel = None
    await drop_bridge(center, call)
    if call.id in center.acd.router.calls():
        center.acd.router.remove(call.id, time.time())


async def _retry(center: CallCenter, call: Call) -> None:
    await asyncio.sleep(center.config.acd.callback_retry_s)
    async with center.transaction(persist="now"):
        if call.state == CallState.CALLBACK_WAIT:
            await requeue(center, call)
