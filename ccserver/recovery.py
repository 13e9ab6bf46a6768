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
- a callback in progress starts over from its place; a callback waiting needs no channel;
- callers that arrived in our Stasis app unseen are adopted into their queue;
- stray agent legs, customer legs and call bridges are hung up or destroyed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.exceptions import RedisError

from acd_core import RouterError
from ccserver import callbacks, metrics, waiting
from ccserver.calls import (
    AGENT_LEG_PREFIX,
    CALL_BRIDGE_PREFIX,
    CUSTOMER_LEG_PREFIX,
    HOLDING_BRIDGE,
    Call,
    CallCenter,
)
from ccserver.logs import log
from ccserver.telephony.ari import AriError, created_at

logger = logging.getLogger("ccserver.recovery")
REDIS_TRIES = 20


async def resync(center: CallCenter) -> None:
    async with center.lock:
        started = time.monotonic()
        if not center.started:
            await _load(center)
            center.started = True
        adopted = await _reconcile(center)
        await center.dispatch()
        await center.persist()
        elapsed = time.monotonic() - started
        metrics.RESYNC.observe(elapsed)
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
            saved = await center.store.load_acd()
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
        center.acd = type(center.acd)(center.config, center.acd.ledger)
        center.acd.start_fresh(now)
        return
    for call_id in [*center.acd.router.calls(), *saved.get("parked", [])]:
        record = await center.store.load_call(call_id)
        center.calls[call_id] = _call_from(record, call_id, center)
    log(logger, "acd.restored", calls=len(center.calls), agents=center.acd.counts())


def _call_from(record: dict[str, Any] | None, call_id: str, center: CallCenter) -> Call:
    if record is not None:
        fields = {k: v for k, v in record.items() if k in Call.__dataclass_fields__}
        return Call(**fields)
    view = center.acd.router.call(call_id)  # no record (Redis lost it): what the router knows
    return Call(
        id=call_id, caller="", dnis="", arrived_at=view.arrival, state="waiting", queue=view.queue
    )


async def _reconcile(center: CallCenter) -> int:
    bridges = {
        b.get("id"): b
        for b in await center.ari.request("GET", "/bridges") or []
        if isinstance(b, dict)
    }
    if HOLDING_BRIDGE not in bridges:
        await center.ari.request(
            "POST", "/bridges", params={"type": "holding", "bridgeId": HOLDING_BRIDGE}
        )
    await center.ari.request(
        "POST",
        f"/bridges/{HOLDING_BRIDGE}/moh",
        params={"mohClass": center.config.controller.moh_class},
    )
    holding = set((bridges.get(HOLDING_BRIDGE) or {}).get("channels", []))
    channels = await center.ari.request("GET", "/channels") or []
    live = {c["id"]: c for c in channels if isinstance(c, dict) and "id" in c}
    for call in list(center.calls.values()):
        await _check_call(center, call, live, holding)
    adopted = 0
    for channel in live.values():
        if _is_our_inbound(center, channel) and channel["id"] not in center.calls:
            await _adopt(center, channel)
            adopted += 1
    for channel_id in live:
        ours = channel_id.startswith((AGENT_LEG_PREFIX, CUSTOMER_LEG_PREFIX))
        if ours and channel_id not in center.legs:
            await center.hangup(channel_id)
    for bridge_id in map(str, bridges):
        call_id = bridge_id.removeprefix(CALL_BRIDGE_PREFIX)
        if call_id != bridge_id and call_id not in center.calls:
            await center.destroy_bridge(bridge_id)
    return adopted


async def _check_call(
    center: CallCenter, call: Call, live: dict[str, Any], holding: set[str]
) -> None:
    now = time.time()
    if call.state in ("callback", "callback-wait"):
        if call.state == "callback-wait":
            await callbacks.requeue(center, call)
        return
    if call.state in ("callback-ringing", "callback-dialing"):
        await callbacks.agent_left(center, call)
        return
    party = (call.callback or {}).get("customer_channel") if call.callback else call.id
    if party not in live:
        outcome = "completed" if call.state == "connected" else "abandoned"
        await center.finish(call, outcome, hangup_by="caller")
        return
    if call.state == "connected":
        if call.agent_channel in live:
            center.legs[call.agent_channel or ""] = call.id
            return
        await center.agent_vanished(call, "leg-gone-while-away", phone_lost=False)
    elif call.state == "ringing":
        if call.agent_channel:
            center.legs.pop(call.agent_channel, None)
            await center.hangup(call.agent_channel)
            call.attempts[-1]["result"] = "interrupted"
        center.acd.router.remove(call.id, now)
        call.state, call.agent, call.agent_channel = "waiting", None, None
        await center.enqueue(call, call.queue or center.config.acd.default_queue)
    elif call.state == "arriving":
        center.spawn(_enter(center, call), f"session-{call.id}")
        return
    if call.id not in holding:
        await center.hold(call.id)
    session = center.sessions.get(call.id)
    if session is None or session.done():
        center.sessions[call.id] = center.spawn(waiting.resume(center, call), f"session-{call.id}")


async def _enter(center: CallCenter, call: Call) -> None:
    """Queue a call whose session never got that far. Its channel may never have been
    answered (the controller died before the StasisStart was read): a bridge does not answer
    it, so without this the caller would talk to an agent over an unanswered line and be
    declined at the end."""
    queue = call.queue or center.config.acd.entry.get(call.dnis, center.config.acd.default_queue)
    try:
        await center.ari.request("POST", f"/channels/{call.id}/answer")
    except AriError as exc:
        if exc.status == 404:  # the caller left; their StasisEnd closes the call
            return
        raise
    if await waiting.join(center, call, queue):
        await waiting.resume(center, call)


async def _adopt(center: CallCenter, channel: dict[str, Any]) -> None:
    """A caller in our app we have no call for: it came while we were away."""
    record = await center.store.load_call(channel["id"])
    if record is not None:
        call = _call_from(record, channel["id"], center)
        call.state = "arriving"
        call.agent = call.agent_channel = None
    else:
        caller = channel.get("caller") or {}
        dnis = str((channel.get("dialplan") or {}).get("app_data", "")).split(",")[-1]
        call = Call(
            id=channel["id"],
            caller=str(caller.get("number", "")),
            dnis=dnis,
            arrived_at=created_at(channel),
        )
        await center.store.save_call(call.record(), new=True)
    center.calls[call.id] = call
    center.media.listen(call.id)
    log(logger, "call.adopted", call=call.id)
    center.spawn(_enter(center, call), f"session-{call.id}")


def _is_our_inbound(center: CallCenter, channel: dict[str, Any]) -> bool:
    dialplan = channel.get("dialplan") or {}
    app_data = str(dialplan.get("app_data", ""))
    return dialplan.get("app_name") == "Stasis" and app_data.startswith(
        f"{center.config.controller.app},inbound"
    )
