"""An inbound hotline call, from Stasis entry to a caller waiting in a queue.

`arrive` (the `inbound,<dnis>` route) registers the call and starts its session, one task
per call: it answers, then either runs the number's IVR flow (`ivr_channel.run`, while IVR
channels are free) or plays the greeting and puts the caller in the number's queue
(`acd.entry`, else the default queue), where `queueing.wait` keeps them company until an
agent answers or they hang up.
"""

from __future__ import annotations

import logging
import time

from ccserver.calls import ivr_channel, queueing
from ccserver.calls.center import CallCenter
from ccserver.calls.media import ChannelGone
from ccserver.calls.model import Call
from ccserver.calls.phrases import phrase
from ccserver.logs import log
from ccserver.telephony.ari import AriError, AriEvent, created_at

logger = logging.getLogger("ccserver.calls")


async def arrive(center: CallCenter, event: AriEvent) -> None:
    """A caller entered Stasis from the hotline dialplan (`inbound,<dnis>`)."""
    channel = event.channel_id or ""
    if channel in center.calls:
        # Adopted by the resync of a new ARI link (`GET /channels` saw it in our app)
        # before this StasisStart, queued on the same link, was read: one call, not two.
        log(logger, "call.already_adopted", call=channel)
        return
    args = event.args
    dnis = args[1] if len(args) > 1 else ""
    caller = event.channel.get("caller", {})
    number = caller.get("number", "") if isinstance(caller, dict) else ""
    arrived = min(created_at(event.channel), time.time())
    call = Call(id=channel, caller=str(number), dnis=dnis, arrived_at=arrived)
    center.calls[call.id] = call
    center.media.listen(call.id)
    log(logger, "call.arrived", call=call.id, caller=call.caller, dnis=dnis)
    await center.journal.save_call(call, new=True)
    await center.journal.event(call, "arrived", caller=call.caller, dnis=dnis)
    center.sessions[call.id] = center.spawn(serve(center, call), f"session-{call.id}")


async def serve(center: CallCenter, call: Call) -> None:
    """The caller's session: answer, then the flow or the greeting, then the queue."""
    try:
        await center.ari.answer(call.id)
        queue = entry_queue(center, call)
        if call.dnis in center.flows:
            ledger = center.acd.ledger
            if ledger.ivr_in_use < center.config.ivr.max_sessions and ledger.ivr_room():
                await ivr_channel.run(center, call)  # counts itself in before any await
                return
            # Beyond the IVR channels we may run: a word, then straight to a person.
            sessions = ledger.ivr_in_use
            log(logger, "ivr.full", logging.WARNING, call=call.id, sessions=sessions)
            await center.journal.event(call, "ivr_full", sessions=sessions)
            await center.say(call.id, phrase("ivr_full", center.config.acd.language))
            queue = center.config.acd.default_queue
        else:
            await _greet(center, call)
        if await queueing.join(center, call, queue):
            await queueing.wait(center, call)
    except ChannelGone:
        return
    except AriError as exc:
        if exc.status != 404:  # 404: the caller left; their StasisEnd closes the call
            raise


def entry_queue(center: CallCenter, call: Call) -> str:
    """The queue the dialled number leads to (`acd.entry`), else the default queue."""
    return center.config.acd.entry.get(call.dnis, center.config.acd.default_queue)


async def _greet(center: CallCenter, call: Call) -> None:
    greeting = center.config.controller.greeting
    if not greeting:
        return
    try:
        await center.media.play(call.id, [f"sound:{greeting}"])
    except AriError as exc:  # a missing sound must not keep a caller from us
        log(logger, "call.greeting_failed", logging.WARNING, call=call.id, error=str(exc))


async def enter_queue(center: CallCenter, call: Call) -> None:
    """Queue a call whose session never got that far (recovery): answer it first. Its
    channel may never have been answered (the controller died before the StasisStart was
    read): a bridge does not answer it, so without this the caller would talk to an agent
    over an unanswered line and be declined at the end."""
    queue = call.queue or entry_queue(center, call)
    try:
        await center.ari.answer(call.id)
    except AriError as exc:
        if exc.status == 404:  # the caller left; their StasisEnd closes the call
            return
        raise
    if await queueing.join(center, call, queue):
        await queueing.resume(center, call)
