"""Outbound calls over ARI: the follow-up (回访) of closed work orders and survey campaigns.

`dial_forever` is the dialer. Every `TICK_S` it turns newly closed orders into follow-up
targets (`OutboundBook.schedule_followups`) and, inside the allowed hours
(`outbound.hours`, in `ivr.timezone`), dials the targets that are due while every cap
holds:
- the campaign's own `max_concurrent` and `cps`, and the configured ones for all
  outbound calls together (`outbound.max_concurrent`, `outbound.cps`);
- licensed IVR channels: an outbound call holds one from dial to end (it is a channel the
  IVR talks on), and the dialer never takes the last `outbound.inbound_reserve` of the
  license's IVR channels (nor of `ivr.max_sessions`), which stay for callers.
Calls are spaced by 1/cps, never sent in a burst.

A customer who answers hears the target's outbound flow (`OutboundChannel` gives the
interpreter playback, keys and recording); what they keyed — the rating of a `survey`
node and the variables the flow set — is the target's result, written on the work order
for a follow-up. A try that ends unanswered (busy, no answer, rejected, failed) is retried
with back-off until the policy's attempts are spent, then the target is "unreachable".

Invariants: a call is in `center.outbound_calls` from its dial to its ChannelDestroyed
(or until recovery finds its channel gone), and holds exactly one IVR channel meanwhile;
its result is written once. Outbound calls never touch inbound calls or agents.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
import time
from dataclasses import dataclass, field

from ccserver.calls.callbacks import CUSTOMER_RESULTS
from ccserver.calls.center import CallCenter
from ccserver.calls.flow_media import FlowMedia
from ccserver.calls.model import OutboundCall, outbound_leg_id
from ccserver.errors import CCServerError
from ccserver.ivr.channel import QueueRequest, QueueResult
from ccserver.ivr.interpreter import run_flow
from ccserver.ivr.model import BUILTIN_VARIABLES
from ccserver.logs import log
from ccserver.metrics import instruments
from ccserver.records.outbound import OutboundBook, Policy, Target
from ccserver.telephony.ari import AriError, AriEvent

logger = logging.getLogger("ccserver.outbound")
TICK_S = 0.2
"""How often the dialer looks for due targets."""
SCHEDULE_EVERY_S = 1.0
"""How often newly closed work orders are turned into follow-ups."""


@dataclass
class Pacing:
    """When the next call may be placed, for all outbound calls (key None) and per
    campaign (the follow-ups' key is "follow-up"): 1/cps after the last one."""

    next_at: dict[object, float] = field(default_factory=dict)

    def wait(self, key: object, now: float) -> float:
        """Seconds until a call under `key` may be placed (0: now)."""
        return max(0.0, self.next_at.get(key, 0.0) - now)

    def dialled(self, key: object, cps: float, now: float) -> None:
        self.next_at[key] = now + 1.0 / cps


def follow_up_policy(center: CallCenter) -> Policy:
    cfg = center.config.outbound
    return Policy(cfg.follow_up_flow, cfg.max_concurrent, cfg.cps, cfg.attempts, cfg.retry_s)


def kind_of(campaign: int | None) -> str:
    return "follow-up" if campaign is None else "campaign"


def in_hours(center: CallCenter, now: float) -> bool:
    local = dt.datetime.fromtimestamp(now, center.config.ivr.zone())
    minute = local.hour * 60 + local.minute
    return any(h.covers(local.isoweekday(), minute) for h in center.config.outbound.hours)


def room(center: CallCenter) -> int:
    """How many more outbound calls may be up now (all campaigns together)."""
    cfg, ledger = center.config.outbound, center.acd.ledger
    channels = min(int(ledger.usage()["ivr_channels"]), center.config.ivr.max_sessions)
    free = channels - cfg.inbound_reserve - ledger.ivr_in_use
    return min(cfg.max_concurrent - len(center.outbound_calls), free)


async def dial_forever(center: CallCenter, book: OutboundBook) -> None:
    """The dialer (see the module docstring); a history store that fails is logged and
    tried again at the next tick."""
    interrupted = await asyncio.to_thread(book.interrupted, time.time())
    if interrupted:
        log(logger, "outbound.interrupted", logging.WARNING, calls=interrupted)
    for campaign, policy in (await asyncio.to_thread(book.policies)).items():
        if policy.flow not in center.outbound_flows:  # its numbers wait for the flow
            log(logger, "outbound.flow_missing", logging.ERROR, campaign=campaign, flow=policy.flow)
    pacing, scheduled_at = Pacing(), 0.0
    while True:
        now = time.time()
        try:
            if now - scheduled_at >= SCHEDULE_EVERY_S:
                scheduled_at = now
                await _schedule(center, book, now)
            if in_hours(center, now) and room(center) > 0:
                await dial_due(center, book, pacing, now)
        except (CCServerError, sqlite3.Error) as exc:
            log(logger, "outbound.failed", logging.WARNING, error=repr(exc)[:200])
        except Exception as exc:  # a bug must not stop every follow-up for good: say it, go on
            logger.exception("outbound.bug", extra={"fields": {"error": repr(exc)[:200]}})
        await asyncio.sleep(TICK_S)


async def _schedule(center: CallCenter, book: OutboundBook, now: float) -> None:
    cfg = center.config.outbound
    targets = await asyncio.to_thread(
        book.schedule_followups, now, delay_s=cfg.follow_up_delay_s, enabled=cfg.follow_up
    )
    for target in targets:
        log(logger, "outbound.follow_up", order=target.work_order, number=target.number)


async def dial_due(center: CallCenter, book: OutboundBook, pacing: Pacing, now: float) -> None:
    """Dial the due targets that every cap allows, spacing them by the cps caps: a call
    due within this tick waits for its moment, a later one for a later tick."""
    policies = await asyncio.to_thread(book.policies)
    due = await asyncio.to_thread(book.due, now, 50)
    global_cps = center.config.outbound.cps
    for target in due:
        key: object = "follow-up" if target.campaign is None else target.campaign
        follow_up = target.campaign is None
        policy = follow_up_policy(center) if follow_up else policies.get(target.campaign or 0)
        if policy is None or policy.flow not in center.outbound_flows:
            continue
        wait = max(pacing.wait(None, now), pacing.wait(key, now))
        if wait > TICK_S:
            continue
        if wait > 0:
            await asyncio.sleep(wait)
            now = time.time()
        up = sum(1 for c in center.outbound_calls.values() if c.campaign == target.campaign)
        if room(center) <= 0 or not in_hours(center, now):
            return
        if up >= policy.max_concurrent:
            continue
        if await dial(center, book, target, policy, now):
            pacing.dialled(None, global_cps, now)
            pacing.dialled(key, policy.cps, now)


async def dial(
    center: CallCenter, book: OutboundBook, target: Target, policy: Policy, now: float
) -> bool:
    """Place one call to the target (it holds an IVR channel until it ends); False when
    the target is no longer pending (its campaign was stopped meanwhile)."""
    if await asyncio.to_thread(book.dialing, target.id, now) is None:
        return False
    channel = outbound_leg_id()
    call = OutboundCall(
        channel=channel,
        target=target.id,
        campaign=target.campaign,
        number=target.number,
        flow=policy.flow,
        attempts=policy.attempts,
        retry_s=policy.retry_s,
        dialled_at=now,
    )
    center.outbound_calls[channel] = call
    center.acd.ledger.enter_ivr()
    instruments.OUTBOUND_ACTIVE.set(len(center.outbound_calls))
    center.media.listen(channel)
    cfg = center.config.outbound
    log(
        logger, "outbound.dial", target=target.id, number=target.number, kind=kind_of(call.campaign)
    )
    try:
        await center.ari.originate(
            channel,
            endpoint=cfg.endpoint.format(number=target.number),
            app=center.config.controller.app,
            app_args=f"outbound,{target.id}",
            timeout_s=cfg.ring_s,
            caller_id=center.config.hotline.numbers[0],
        )
    except AriError as exc:
        log(logger, "outbound.dial_failed", logging.ERROR, target=target.id, error=str(exc))
        async with center.transaction() as unit:
            unit.routing_unchanged()
            await ended(center, call, 0)
    return True


async def on_event(center: CallCenter, event: AriEvent) -> None:
    """An event on an outbound call's channel: the customer answered (the flow starts) or
    the channel ended."""
    channel = event.channel_id or ""
    call = center.outbound_calls.get(channel)
    if call is None:
        return
    if event.type == "StasisStart" and call.answered_at is None:
        call.answered_at = time.time()
        center.spawn(_converse(center, call), f"outbound-{channel}")
    elif event.type == "ChannelDestroyed":
        await ended(center, call, event.int_field("cause") or 0)


async def ended(center: CallCenter, call: OutboundCall, cause: int) -> None:
    """The call's channel is gone: free its IVR channel; an unanswered try is written
    here (an answered call's result is written by its conversation)."""
    if center.outbound_calls.pop(call.channel, None) is None:
        return
    center.acd.ledger.release_ivr()
    center.media.gone(call.channel)
    instruments.OUTBOUND_ACTIVE.set(len(center.outbound_calls))
    if call.answered_at is None:
        result = CUSTOMER_RESULTS.get(cause, "failed")
        instruments.OUTBOUND_CALLS.labels(kind_of(call.campaign), result).inc()
        center.spawn(_unreached(center, call, result), f"outbound-missed-{call.channel}")


async def lost(center: CallCenter, live: set[str]) -> None:
    """After a reconnection: calls whose channel Asterisk no longer has ended unseen."""
    for channel, call in list(center.outbound_calls.items()):
        if channel not in live:
            await ended(center, call, 0)


async def _unreached(center: CallCenter, call: OutboundCall, result: str) -> None:
    assert center.outbound is not None
    policy = Policy(call.flow, 0, 1.0, call.attempts, call.retry_s)
    target = await asyncio.to_thread(
        center.outbound.unreached, call.target, result, time.time(), policy
    )
    log(
        logger,
        "outbound.unreached",
        logging.WARNING if target.state == "done" else logging.INFO,
        target=call.target,
        number=call.number,
        result=result,
        tries=len(target.tries),
        outcome=target.result or "retry",
    )


async def _converse(center: CallCenter, call: OutboundCall) -> None:
    """The customer answered: run the flow, write what they keyed, hang up (also when
    the write fails: the customer is never left on a silent line)."""
    assert center.outbound is not None and center.lookups is not None
    instruments.OUTBOUND_CALLS.labels(kind_of(call.campaign), "answered").inc()
    try:
        record = await run_flow(
            center.outbound_flows[call.flow],
            OutboundChannel(center, call),
            prompts=center.prompts,
            lookup_client=center.lookups,
            notices=center.notices,
            config=center.config.ivr.model_copy(update={"survey": True}),  # asked for it
            default_queue=center.config.acd.default_queue,
            orders=center.orders,
        )
        answers = {k: v for k, v in record.variables.items() if k not in BUILTIN_VARIABLES}
        target = await asyncio.to_thread(
            center.outbound.answered, call.target, record.survey_score, answers, time.time()
        )
        log(
            logger,
            "outbound.answered",
            target=call.target,
            number=call.number,
            rating=target.rating if target.rating is not None else "-",
            outcome=record.outcome,
        )
    finally:
        try:
            await center.ari.hangup(call.channel)
        except AriError as exc:
            if exc.status != 404:  # 404: the customer hung up first
                log(logger, "outbound.hangup_failed", logging.ERROR, error=str(exc))


class OutboundChannel(FlowMedia):
    """`FlowChannel` for a customer the center called. The loader keeps queue, callback
    and transfer nodes out of outbound flows, so those methods are never called."""

    def __init__(self, center: CallCenter, call: OutboundCall) -> None:
        super().__init__(center.media, call.channel, center.recordings)
        self.caller = call.number
        self.dnis = center.config.hotline.numbers[0]

    def connecting(self, queue: str, priority: int) -> None:
        raise CCServerError("an outbound flow cannot queue", slug="flow-invalid")

    def self_served(self, node: str) -> None:
        return None

    async def queue(self, request: QueueRequest) -> QueueResult:
        raise CCServerError("an outbound flow cannot queue", slug="flow-invalid")

    async def callback(self, queue: str | None, number: str) -> None:
        raise CCServerError("an outbound flow cannot offer a callback", slug="flow-invalid")

    async def transfer(self, target: str) -> None:
        raise CCServerError("an outbound flow cannot transfer", slug="flow-invalid")

    async def hangup(self) -> None:
        return None  # the conversation hangs up once the result is written
