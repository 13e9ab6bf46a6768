"""What an agent does to its own call from the desk: hold and take off hold, and close it
with a disposition code and a note in wrap-up.

Invariants:
- Only the agent on the call (or a supervisor) may hold it: `by` is the API's token name,
  and `agent:<id>` must be the call's agent; any agent who talked on it may dispose of it
  (the agent who transferred it as well as the one who took it; the last code stands).
- A held caller is in the holding bridge and hears music, the agent stays alone in the
  call's bridge; `Call.held` says so, and the talk ending (`talk.end_talk`) clears it.
- A disposition is one of the codes of the call's queue (`QueueConfig.dispositions`); it
  goes to the live record and to the history, where the reports' "same matter" FCR reads it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ccserver.acd import AcdError
from ccserver.calls.center import CallCenter
from ccserver.calls.model import HOLDING_BRIDGE, Call, CallState
from ccserver.errors import InputError
from ccserver.logs import log
from ccserver.telephony.ari import AriError

logger = logging.getLogger("ccserver.desk")
NOTE_MAX = 2000


def _check_agent(call: Call, by: str, *, talked: bool = False) -> None:
    """Refuse an agent token that is not on the call (`talked`: that never talked on it)."""
    if not by.startswith("agent:"):
        return
    agent = by.removeprefix("agent:")
    if agent == call.agent:
        return
    if talked and any(
        a.get("agent") == agent and a.get("result") == "answered" for a in call.attempts
    ):
        return
    raise AcdError(f"call {call.id} is not this agent's call", slug="forbidden", status=403)


async def hold(center: CallCenter, call_id: str, *, on: bool, by: str) -> dict[str, Any]:
    """Put the caller of a connected call on hold (`on`) or back with the agent."""
    async with center.transaction(persist="now"):
        call = center.calls.get(call_id)
        if call is None:
            raise AcdError(f"no live call {call_id!r}", slug="call-unknown", status=404)
        _check_agent(call, by)
        if call.state != CallState.CONNECTED:
            raise AcdError(f"call {call_id} is {call.state}, not talking to an agent")
        if call.held == on:
            return call.to_record()
        bridge = call.bridge
        try:
            if on:
                await center.ari.remove_from_bridge(bridge, call.id)
                await center.hold(call.id)
            else:
                await center.ari.remove_from_bridge(HOLDING_BRIDGE, call.id)
                await center.ari.add_to_bridge(bridge, call.id)
        except AriError as exc:  # the caller is gone: its end event closes the call
            log(logger, "call.hold_failed", logging.WARNING, call=call.id, error=str(exc))
            raise AcdError(
                f"call {call_id} could not be {'held' if on else 'taken off hold'}",
                slug="call-gone",
                status=409,
            ) from None
        call.held = on
        log(logger, "call.held" if on else "call.unheld", call=call.id, by=by)
        await center.journal.event(call, "hold" if on else "unhold", by=by)
        await center.journal.save_call(call)
        return call.to_record()


async def dispose(
    center: CallCenter, call_id: str, *, code: str, note: str | None, by: str
) -> dict[str, Any]:
    """Record the agent's disposition code (and note) on a call it talked on, live or
    ended; a later one replaces it."""
    if note is not None and len(note) > NOTE_MAX:
        raise InputError(f"the note is longer than {NOTE_MAX} characters")
    async with center.transaction(persist="now") as unit:
        unit.routing_unchanged()
        call = center.calls.get(call_id)
        if call is None:
            call = await _ended_call(center, call_id)
        _check_agent(call, by, talked=True)
        codes = center.acd.queue_config(call.queue).dispositions if call.queue else []
        if code not in codes:
            raise InputError(
                f"disposition {code!r} is not one of queue {call.queue}'s: {', '.join(codes)}"
            )
        call.disposition, call.note = code, note or None
        log(logger, "call.disposition", call=call.id, code=code, by=by)
        await center.journal.event(call, "disposition", code=code, by=by)
        if call.state == CallState.ENDED:
            await center.journal.save_ended(call)
        else:
            await center.journal.save_call(call)
        return call.to_record()


async def _ended_call(center: CallCenter, call_id: str) -> Call:
    """An ended call from Redis, else from the history."""
    record = await center.journal.load_call(call_id)
    history = center.journal.history
    if record is None and history is not None:
        await history.flush()
        saved = await asyncio.to_thread(history.call, call_id)
        record = None if saved is None else saved.get("record")
    if record is None:
        raise AcdError(f"no call {call_id!r}", slug="call-unknown", status=404)
    return Call.from_record(record)
