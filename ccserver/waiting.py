"""A caller's session: greeting, queue entry, and everything said while waiting.

One task per inbound call. It answers, plays the greeting, puts the call in its queue and
then waits for the call's state to change (the routing in `calls.py` connects it) while it
announces position and expected wait on entry and every `acd.announce_every_s`, and at the
queue's `max_wait_s` either overflows the call to another queue (its original arrival kept,
so it is not sent to the back) or offers a callback that keeps its place.

A restarted controller gives every caller it finds waiting a new session that starts at the
waiting part (`resume`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

from ccserver import callbacks
from ccserver.calls import WAITING_STATES, Call, CallCenter
from ccserver.logs import log
from ccserver.media import ChannelGone
from ccserver.phrases import phrase, position_text
from ccserver.telephony.ari import AriError

logger = logging.getLogger("ccserver.waiting")
CALLBACK_KEY = "1"
OFFER_WINDOW_S = 6.0


async def session(center: CallCenter, call: Call) -> None:
    from ccserver import flow_channel

    try:
        await center.ari.request("POST", f"/channels/{call.id}/answer")
        queue = center.config.acd.entry.get(call.dnis, center.config.acd.default_queue)
        if call.dnis in center.flows:
            ledger = center.acd.ledger
            if ledger.ivr_in_use < center.config.ivr.max_sessions and ledger.ivr_room():
                await flow_channel.run(center, call)  # counts itself in before any await
                return
            # Beyond the IVR channels we may run: a word, then straight to a person.
            sessions = ledger.ivr_in_use
            log(logger, "ivr.full", logging.WARNING, call=call.id, sessions=sessions)
            await center.event(call, "ivr_full", sessions=sessions)
            await center.say(call.id, phrase("ivr_full", center.config.acd.language))
            queue = center.config.acd.default_queue
        else:
            greeting = center.config.controller.greeting
            if greeting:
                try:
                    await center.media.play(call.id, [f"sound:{greeting}"])
                except AriError as exc:  # a missing sound must not keep a caller from us
                    log(
                        logger,
                        "call.greeting_failed",
                        logging.WARNING,
                        call=call.id,
                        error=str(exc),
                    )
        if await join(center, call, queue):
            await wait(center, call)
    except ChannelGone:
        return
    except AriError as exc:
        if exc.status != 404:  # 404: the caller left; their StasisEnd closes the call
            raise


async def resume(center: CallCenter, call: Call) -> None:
    """The waiting part of a session, for a caller adopted after a restart."""
    try:
        await wait(center, call, announce_now=False)
    except ChannelGone:
        return


async def join(center: CallCenter, call: Call, queue: str, *, priority: int | None = None) -> bool:
    """Hold the caller (music) and give the call to the router; False if the caller left.

    The hold request runs while the router picks an agent, so a ready agent's phone rings
    without waiting for the music to start (the ring delay the benchmark measures). It is
    awaited before the lock is let go: the agent's answer, handled under the same lock,
    always finds the caller in the holding bridge. A caller who left meanwhile is closed by
    their StasisEnd, as from any waiting state."""
    async with center.lock:
        if call.state not in ("arriving", "ivr"):
            return False
        holding = asyncio.create_task(center.hold(call.id))
        call.state = "waiting"
        try:
            await center.enqueue(call, queue, priority=priority, ring_first=True)
            center.persist_soon()
        finally:
            held = await holding
    return held


async def wait(center: CallCenter, call: Call, *, announce_now: bool = True) -> None:
    every = center.config.acd.announce_every_s
    now = time.time()
    next_announce = now if announce_now and every > 0 else (now + every if every > 0 else math.inf)
    deadline = _deadline(center, call, now)
    wakeup = center.wakeup(call)
    while True:
        wakeup.clear()
        if call.state not in WAITING_STATES:
            return
        now = time.time()
        if call.state == "waiting" and now >= next_announce:
            await announce(center, call)
            next_announce = time.time() + every
            continue
        if call.state == "waiting" and now >= deadline:
            deadline = await _max_wait(center, call)
            continue
        timeout = min(next_announce, deadline) - now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), None if math.isinf(timeout) else timeout)


def _deadline(center: CallCenter, call: Call, now: float) -> float:
    spec = center.acd.queue_config(call.queue or center.config.acd.default_queue)
    return now + spec.max_wait_s if spec.max_wait_s > 0 else math.inf


async def announce(center: CallCenter, call: Call) -> None:
    router, queue = center.acd.router, call.queue or ""
    if call.id not in router.calls():
        return
    position = router.position(call.id)
    if position == 0:  # no longer waiting (ringing an agent)
        return
    ewt = router.expected_wait(queue, call.priority) * position / (router.waiting(queue) + 1)
    language = center.config.acd.language
    call.announcements += 1
    await center.event(call, "announce", position=position, ewt_s=round(ewt, 1))
    await center.say(call.id, position_text(position - 1, ewt, language))


async def _max_wait(center: CallCenter, call: Call) -> float:
    """The queue's max wait is reached: overflow, or offer a callback once. Returns the
    next deadline."""
    spec = center.acd.queue_config(call.queue or "")
    language = center.config.acd.language
    if spec.on_max_wait == "overflow" and spec.overflow_to:
        async with center.lock:
            if call.state != "waiting":
                return math.inf
            now = time.time()
            center.acd.router.remove(call.id, now)
            call.overflowed_from.append(spec.name)
            await center.event(call, "overflow", source=spec.name, target=spec.overflow_to)
            await center.enqueue(call, spec.overflow_to)
            await center.dispatch()
            await center.persist()
        log(logger, "call.overflow", call=call.id, source=spec.name, target=spec.overflow_to)
        await center.say(call.id, phrase("overflow", language))
        return _deadline(center, call, time.time())
    center.media.flush(call.id)
    key = await center.say(call.id, phrase("callback_offer", language), interruptible=True)
    if key != CALLBACK_KEY:
        key = await center.media.read_digits(
            call.id, max_digits=1, timeout_s=OFFER_WINDOW_S, terminator=None
        )
    if key == CALLBACK_KEY and call.state == "waiting":
        await callbacks.accept(center, call)
    return math.inf
