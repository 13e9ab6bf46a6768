"""Callbacks that keep the caller's place.

A waiting caller who accepts the offer hangs up, but the call stays in the router with its
original arrival, so it moves up exactly as if the caller had stayed. When it reaches the
head, the router reserves an agent; the agent's phone rings first, and only once the agent
has answered is the customer dialled (`acd.callback_endpoint`), so no customer is ever
called back into a queue. A customer who does not answer is tried again after
`acd.callback_retry_s`, up to `acd.callback_attempts` times, still at the same place; each
try and its result is in the call record (`callback.attempts`) and the event stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING

from ccserver.logs import log
from ccserver.phrases import phrase
from ccserver.telephony.ari import AriError

if TYPE_CHECKING:
    from ccserver.calls import Call, CallCenter

logger = logging.getLogger("ccserver.callbacks")
ANOTHER_NUMBER_KEY = "2"
CUSTOMER_RING_S = 30


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
    async with center.lock:
        if call.state != "waiting":  # an agent took the call meanwhile
            return
        call.state = "callback"
        call.callback = {"number": number, "customer_channel": None, "attempts": []}
        log(logger, "call.callback_accepted", call=call.id, number=number)
        await center.store.save_call(call.record())
        await center.event(call, "callback", number=number)
        await center.persist()
    await say("callback_confirmed")
    await center.hangup(call.id)


async def agent_answered(center: CallCenter, call: Call) -> None:
    """The reserved agent answered: put them in the call's bridge and dial the customer."""
    assert call.callback is not None and call.agent_channel is not None
    bridge = f"call-{call.id}"
    leg = f"cb-{uuid.uuid4().hex}"
    call.state = "callback-dialing"
    call.callback["customer_channel"] = leg
    attempt = {"at": time.time(), "number": call.callback["number"], "result": "dialing"}
    call.callback["attempts"].append(attempt)
    center.legs[leg] = call.id
    await center.store.save_call(call.record())
    await center.event(call, "callback_dial", number=call.callback["number"], agent=call.agent)
    try:
        await center.ari.request("POST", "/bridges", params={"type": "mixing", "bridgeId": bridge})
        await center.ari.request(
            "POST", f"/bridges/{bridge}/addChannel", params={"channel": call.agent_channel}
        )
        endpoint = center.config.acd.callback_endpoint.format(number=call.callback["number"])
        await center.ari.request(
            "POST",
            f"/channels/{leg}",
            params={
                "endpoint": endpoint,
                "app": center.config.controller.app,
                "appArgs": f"callback,{call.id}",
                "timeout": CUSTOMER_RING_S,
                "callerId": call.dnis,
            },
        )
    except AriError as exc:
        log(logger, "call.callback_dial_failed", logging.ERROR, call=call.id, error=str(exc))
        center.legs.pop(leg, None)
        await customer_gone(center, call, 0)


async def customer_answered(center: CallCenter, channel: str, call_id: str) -> None:
    call = center.calls.get(call_id)
    callback = call.callback if call is not None else None
    if call is None or callback is None or callback.get("customer_channel") != channel:
        await center.hangup(channel)
        return
    callback["attempts"][-1]["result"] = "answered"
    bridge = f"call-{call.id}"
    try:
        await center.ari.request(
            "POST", f"/bridges/{bridge}/addChannel", params={"channel": channel}
        )
    except AriError as exc:
        log(logger, "call.bridge_failed", logging.ERROR, call=call.id, error=str(exc))
        await center.hangup(channel)
        return
    await center.connected(call, bridge)


async def customer_gone(center: CallCenter, call: Call, cause: int) -> None:
    """The customer's leg ended: a finished talk, or a try that did not reach them."""
    if call.state == "connected":
        await center.finish(call, "completed", hangup_by="caller")
        return
    assert call.callback is not None
    result = {17: "busy", 19: "no-answer", 21: "rejected"}.get(cause, f"cause-{cause}")
    call.callback["attempts"][-1]["result"] = result
    call.callback["customer_channel"] = None
    await _release_agent(center, call)
    tries = len(call.callback["attempts"])
    await center.event(call, "callback_failed", result=result, attempt=tries)
    log(logger, "call.callback_missed", logging.WARNING, call=call.id, result=result, attempt=tries)
    if tries >= center.config.acd.callback_attempts:
        await center.finish(call, "callback-failed", hangup_by="system")
        return
    call.state = "callback-wait"
    await center.store.save_call(call.record())
    center.spawn(_retry(center, call), f"callback-retry-{call.id}")


async def agent_left(center: CallCenter, call: Call) -> None:
    """The agent hung up while the customer was being dialled: try again with another."""
    leg = (call.callback or {}).get("customer_channel")
    if leg:
        center.legs.pop(leg, None)
        await center.hangup(leg)
        (call.callback or {})["attempts"][-1]["result"] = "agent-left"
    await _release_agent(center, call)
    await requeue(center, call)


async def requeue(center: CallCenter, call: Call) -> None:
    """Back in the queue at the call's original place."""
    call.state = "callback"
    await center.enqueue(call, call.queue or center.config.acd.default_queue)


async def _release_agent(center: CallCenter, call: Call) -> None:
    """Give the reserved agent back (ready, not RONA: the agent did nothing wrong)."""
    if call.agent_channel:
        center.legs.pop(call.agent_channel, None)
        await center.hangup(call.agent_channel)
    call.agent = call.agent_channel = None
    await center.destroy_bridge(f"call-{call.id}")
    if call.id in center.acd.router.calls():
        center.acd.router.remove(call.id, time.time())


async def _retry(center: CallCenter, call: Call) -> None:
    await asyncio.sleep(center.config.acd.callback_retry_s)
    async with center.lock:
        if call.state == "callback-wait":
            await requeue(center, call)
            await center.dispatch()
            await center.persist()
