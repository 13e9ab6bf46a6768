"""Coming back: after a restart, rebuild the ACD from Redis; after any (re)connection,
reconcile what we believe with what Asterisk has (`GET /channels`, `GET /bridges`).

ARI keeps no event backlog, so whatever happened while we were away is read from the
channels and bridges that exist now:
- a waiting caller still on the line keeps its place (the router state came back from
  Redis with the call's original arrival) and gets its waiting session back;
- a ringing offer is withdrawn (the agent's leg hung up, the agent ready again, not RONA:
  they did nothing wrong) and the call goes back in its place;
- a talking pair continues; the first hang-up closes it as usual;
- a talk whose agent leg vanished sends the caller back to the queue, in place;
- a call whose caller is gone is closed (abandoned, or completed if it was talking);
- a call whose record was closed after the ACD snapshot that still holds it (a power cut
  or a backup between the two writes) is only dropped from the router;
- a callback in progress starts over from its place; a callback waiting needs no channel;
- callers that arrived in our Stasis app unseen are adopted into their queue;
- stray agent legs, customer legs and call bridges (a live call's earlier ones too) are
  hung up or destroyed, and so are supervisors' monitor sessions after a restart (their
  phones' legs, snoops and bridges; the monitored calls go on);
- outbound calls: after a restart their channels are strays (the targets are due again,
  `OutboundBook.interrupted`); after a reconnection, a call whose channel is gone ended.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

from redis.exceptions import RedisError

from acd_core import RouterError
from ccserver.calls import callbacks, inbound, outbound, queueing, talk
from ccserver.calls.center import CallCenter
from ccserver.calls.model import (
    HOLDING_BRIDGE,
    TALKING_STATES,
    Call,
    CallState,
    Leg,
    LegRole,
    Outcome,
    call_of_bridge,
    is_monitor_bridge,
    is_our_leg,
)
from ccserver.calls.routing import withdraw
from ccserver.logs import log
from ccserver.metrics import instruments
from ccserver.telephony.ari import created_at

logger = logging.getLogger("ccserver.recovery")
REDIS_TRIES = 20


async def resync(center: CallCenter) -> None:
    """Load the state once, then reconcile it with Asterisk (after every ARI connection)."""
    async with center.transaction(persist="now"):
        started = time.monotonic()
        if not center.started:
            await _load(center)
            center.loaded()
        adopted = await _reconcile(center)
        elapsed = time.monotonic() - started
        instruments.RESYNC.observe(elapsed)
        log(
            logger,
            "calls.resynced",
            calls=len(center.calls),
            adopted=adopted,
            waiting=center.acd.router.waiting(),
            ms=round(elapsed * 1000, 1),
        )


async def _load(center: CallCenter) -> None:
    """The ACD state and the records of its calls, as Redis last had them."""
    saved = None
    for attempt in range(REDIS_TRIES):
        try:
            saved = await center.journal.load_acd()
            break
        except RedisError as exc:
            log(logger, "acd.load_retry", logging.WARNING, attempt=attempt, error=repr(exc)[:200])
            await asyncio.sleep(0.5)
    now = time.time()
    if saved is None:
        center.acd.start_fresh(now)
        log(logger, "acd.fresh_start", agents=center.acd.counts())
        return
    try:
        center.acd.restore(saved["acd"], now)
    except (RouterError, KeyError, TypeError, ValueError) as exc:
        log(logger, "acd.restore_failed", logging.ERROR, error=repr(exc)[:300])
        center.acd.reset()
        center.acd.start_fresh(now)
        return
    for call_id in [*center.acd.router.calls(), *saved.get("parked", [])]:
        record = await center.journal.load_call(call_id)
        center.calls[call_id] = _call_from(record, call_id, center)
        _align(center, center.calls[call_id], now)
    log(logger, "acd.restored", calls=len(center.calls), agents=center.acd.counts())


def _align(center: CallCenter, call: Call, now: float) -> None:
    """The call's record is written at once, the ACD snapshot within 50 ms after it: a
    Redis snapshot (a power cut, a backup) can hold an answer in the record that the
    router's snapshot has not seen yet. The record is newer: the router is told."""
    router = center.acd.router
    talking = call.state in TALKING_STATES and call.id in router.calls()
    if talking and router.call(call.id).state == "offered":
        router.answer(call.id, now)
        log(logger, "recovery.answer_aligned", call=call.id, agent=call.agent or "-")


def _call_from(record: dict[str, Any] | None, call_id: str, center: CallCenter) -> Call:
    if record is not None:
        return Call.from_record(record)
    view = center.acd.router.call(call_id)  # no record (Redis lost it): what the router knows
    return Call(
        id=call_id,
        caller="",
        dnis="",
        arrived_at=view.arrival,
        state=CallState.WAITING,
        queue=view.queue,
    )


async def _reconcile(center: CallCenter) -> int:
    bridges = {str(b["id"]): b for b in await center.ari.bridges()}
    if HOLDING_BRIDGE not in bridges:
        await center.ari.create_bridge(HOLDING_BRIDGE, "holding")
    await center.ari.start_moh(HOLDING_BRIDGE, center.config.controller.moh_class)
    holding = set((bridges.get(HOLDING_BRIDGE) or {}).get("channels", []))
    live = {c["id"]: c for c in await center.ari.channels()}
    for call in list(center.calls.values()):
        await _check_call(center, call, live, holding)
    adopted = 0
    for channel in live.values():
        if _is_our_inbound(center, channel) and channel["id"] not in center.calls:
            await _adopt(center, channel)
            adopted += 1
    for channel_id, channel in live.items():
        ours = is_our_leg(channel_id) or _is_supervisor_phone(center, channel)
        known = (center.legs, center.monitor_channels, center.outbound_calls)
        if ours and not any(channel_id in registry for registry in known):
            await center.ari.hangup(channel_id)
    await outbound.lost(center, set(live))
    monitoring = {m.bridge for m in center.monitors.values()}
    for bridge_id in bridges:
        call_id = call_of_bridge(bridge_id)
        owner = center.calls.get(call_id) if call_id is not None else None
        stale_talk = call_id is not None and (owner is None or owner.bridge != bridge_id)
        stale_monitor = is_monitor_bridge(bridge_id) and bridge_id not in monitoring
        if stale_talk or stale_monitor:
            await center.ari.destroy_bridge(bridge_id)
    await _phones(center)
    return adopted


async def _phones(center: CallCenter) -> None:
    """Whether each logged-in agent's phone is registered and in use now: the saved state
    may be older (a browser phone that re-registered just before a restart; a phone whose
    call ended while we were away, or in another Asterisk: a restored backup), and AMI
    tells only of later changes. A phone that is online but was seen unavailable, or seen
    busy and has no channel now, is taken as idle (a busy one says so at its next call)."""
    endpoints = {str(e["resource"]): e for e in await center.ari.endpoints("PJSIP")}
    now = time.time()
    for agent in center.acd.agents.values():
        endpoint = endpoints.get(agent.phone or "")
        if endpoint is None:
            continue
        if endpoint.get("state") == "offline":
            center.acd.device_state(endpoint["resource"], "UNAVAILABLE", now)
        elif agent.device == "unavailable" or (
            agent.device == "busy" and not endpoint.get("channel_ids")
        ):
            center.acd.device_state(endpoint["resource"], "NOT_INUSE", now)


async def _check_call(
    center: CallCenter, call: Call, live: dict[str, Any], holding: set[str]
) -> None:
    if call.state == CallState.ENDED:
        _ended_since_snapshot(center, call)
        return
    if call.state in (CallState.CALLBACK, CallState.CALLBACK_WAIT):
        if call.state == CallState.CALLBACK_WAIT:
            await callbacks.requeue(center, call)
        return
    if call.state in (CallState.CALLBACK_RINGING, CallState.CALLBACK_DIALING):
        await callbacks.agent_left(center, call)
        return
    customer = (call.callback or {}).get("customer_channel")
    party = customer if call.callback else call.id
    if party not in live:
        outcome = "completed" if call.state == CallState.CONNECTED else "abandoned"
        await talk.finish(center, call, Outcome(outcome), hangup_by="caller")
        return
    if call.state == CallState.CONNECTED:
        if call.agent_channel in live:
            role = LegRole.CALLBACK_AGENT if call.callback else LegRole.AGENT
            center.legs[call.agent_channel or ""] = Leg(call.id, role)
            if customer:
                center.legs[customer] = Leg(call.id, LegRole.CUSTOMER)
            return
        await talk.agent_vanished(center, call, "leg-gone-while-away", phone_lost=False)
    elif call.state == CallState.RINGING:
        # The offer is withdrawn, not made anew: the call was offered (entered) once.
        if call.agent_channel:
            await center.drop_leg(call.agent_channel)
            call.attempts[-1]["result"] = "interrupted"
        await withdraw(center, call, "controller-restart")
    elif call.state == CallState.ARRIVING:
        center.spawn(inbound.enter_queue(center, call), f"session-{call.id}")
        return
    if call.id not in holding:
        await center.hold(call.id)
    queueing.keep_waiting(center, call)


def _ended_since_snapshot(center: CallCenter, call: Call) -> None:
    """The call's record was closed after the ACD snapshot that still holds it: the two
    are written through one after the other, and a snapshot of Redis (a power cut, a
    backup) can fall between. The record is final; the router is told the call is over,
    as its end did (its agent to wrap-up after a talk)."""
    now = time.time()
    if call.id in center.acd.router.calls():
        if center.acd.router.call(call.id).state == "connected":
            center.acd.router.complete(call.id, now)
        else:
            center.acd.router.remove(call.id, now)
    log(logger, "recovery.ended_call_dropped", call=call.id, outcome=call.outcome or "-")
    center.forget(call)


async def _adopt(center: CallCenter, channel: dict[str, Any]) -> None:
    """A caller in our app we have no call for: it came while we were away."""
    record = await center.journal.load_call(channel["id"])
    if record is not None:
        restored = _call_from(record, channel["id"], center)
        call = dataclasses.replace(
            restored, state=CallState.ARRIVING, agent=None, agent_channel=None
        )
    else:
        caller = channel.get("caller") or {}
        dnis = str((channel.get("dialplan") or {}).get("app_data", "")).split(",")[-1]
        call = Call(
            id=channel["id"],
            caller=str(caller.get("number", "")),
            dnis=dnis,
            arrived_at=created_at(channel),
        )
        await center.journal.save_call(call, new=True)
    center.calls[call.id] = call
    center.media.listen(call.id)
    log(logger, "call.adopted", call=call.id)
    center.spawn(inbound.enter_queue(center, call), f"session-{call.id}")


def _is_our_inbound(center: CallCenter, channel: dict[str, Any]) -> bool:
    return _in_stasis_as(center, channel, "inbound")


def _is_supervisor_phone(center: CallCenter, channel: dict[str, Any]) -> bool:
    """A desk phone that dialled a monitor feature code (its session is not ours now)."""
    return _in_stasis_as(center, channel, "supervise")


def _in_stasis_as(center: CallCenter, channel: dict[str, Any], entry: str) -> bool:
    dialplan = channel.get("dialplan") or {}
    app_data = str(dialplan.get("app_data", ""))
    return dialplan.get("app_name") == "Stasis" and app_data.startswith(
        f"{center.config.controller.app},{entry}"
    )
