"""A caller waiting in a queue: on hold, told their position and expected wait, and moved on
at the queue's max wait.

`join` holds the caller and gives the call to the router; `wait` then runs until the call
leaves the waiting states (routing connects it; a hang-up ends it), announcing position and
expected wait on entry and every `acd.announce_every_s`; at the queue's `max_wait_s` it
either overflows the call to another queue (its original arrival kept, so it is not sent to
the back) or offers a callback that keeps its place (`callbacks.accept`).

A caller who waits again after a talk (a transfer, a vanished agent) or after a restart
gets a waiting session of its own (`keep_waiting`, `resume`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

from ccserver.calls import callbacks
from ccserver.calls.center import CallCenter
from ccserver.calls.media import ChannelGone
from ccserver.calls.model import WAITING_STATES, Call, CallState
from ccserver.calls.phrases import phrase, position_text
from ccserver.calls.routing import enqueue
from ccserver.logs import log

logger = logging.getLogger("ccserver.calls")
CALLBACK_KEY = "1"
OFFER_WINDOW_S = 6.0


async def join(center: CallCenter, call: Call, queue: str, *, priority: int | None = None) -> bool:
    """Hold the caller (music) and give the call to the router; False if the caller left.

    The hold request runs while the router picks an agent, so a ready agent's phone rings
    without waiting for the music to start (the ring delay the benchmark measures). It is
    awaited before the transaction ends: the agent's answer, handled in a transaction of its
    own, always finds the caller in the holding bridge. A caller who left meanwhile is
    closed by their StasisEnd, as from any waiting state."""
    async with center.transaction():
        if call.state not in (CallState.ARRIVING, CallState.IVR):
            return False
        holding = asyncio.create_task(center.hold(call.id))
        center.move(call, CallState.WAITING)
        try:
            await enqueue(center, call, queue, priority=priority, ring_first=True)
        finally:
            held = await holding
    return held


async def wait(center: CallCenter, call: Call, *, announce_now: bool = True) -> None:
    """Until the call leaves the waiting states: announcements and the max-wait deadline."""
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
        if call.state == CallState.WAITING and now >= next_announce:
            await announce(center, call)
            next_announce = time.time() + every
            continue
        if call.state == CallState.WAITING and now >= deadline:
            deadline = await _max_wait(center, call)
            continue
        timeout = min(next_announce, deadline) - now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), None if math.isinf(timeout) else timeout)


async def resume(center: CallCenter, call: Call) -> None:
    """The waiting part of a session, for a caller who waits again without one."""
    try:
        await wait(center, call, announce_now=False)
    except ChannelGone:
        return


def keep_waiting(center: CallCenter, call: Call) -> None:
    """The caller waits again: wake its session, or start one (a plain call's session ended
    when it was connected)."""
    center.wake(call)
    session = center.sessions.get(call.id)
    if session is None or session.done():
        center.sessions[call.id] = center.spawn(resume(center, call), f"session-{call.id}")


def _deadline(center: CallCenter, call: Call, now: float) -> float:
    spec = center.acd.queue_config(call.queue or center.config.acd.default_queue)
    return now + spec.max_wait_s if spec.max_wait_s > 0 else math.inf


async def announce(center: CallCenter, call: Call) -> None:
    """Position and expected wait, to a caller still waiting (not one being rung for)."""
    router, queue = center.acd.router, call.queue or ""
    if call.id not in router.calls():
        return
    position = router.position(call.id)
    if position == 0:  # no longer waiting (ringing an agent)
        return
    ewt = router.expected_wait(queue, call.priority) * position / (router.waiting(queue) + 1)
    language = center.config.acd.language
    call.announcements += 1
    await center.journal.event(call, "announce", position=position, ewt_s=round(ewt, 1))
    await center.say(call.id, position_text(position - 1, ewt, language))


async def _max_wait(center: CallCenter, call: Call) -> float:
    """The queue's max wait is reached: overflow, or offer a callback once. Returns the
    next deadline."""
    spec = center.acd.queue_config(call.queue or "")
    language = center.config.acd.language
    if spec.on_max_wait == "overflow" and spec.overflow_to:
        async with center.transaction(persist="now"):
            if call.state != CallState.WAITING:
                return math.inf
            center.acd.router.remove(call.id, time.time())
            call.overflowed_from.append(spec.name)
            await center.journal.event(call, "overflow", source=spec.name, target=spec.overflow_to)
            await enqueue(center, call, spec.overflow_to)
        log(logger, "call.overflow", call=call.id, source=spec.name, target=spec.overflow_to)
        await center.say(call.id, phrase("overflow", language))
        return _deadline(center, call, time.time())
    center.media.flush(call.id)
    key = await center.say(call.id, phrase("callback_offer", language), interruptible=True)
    if key != CALLBACK_KEY:
        key = await center.media.read_digits(
            call.id, max_digits=1, timeout_s=OFFER_WINDOW_S, terminator=None
        )
    if key == CALLBACK_KEY and call.state == CallState.WAITING:
        await callbacks.accept(center, call)
    return math.inf
