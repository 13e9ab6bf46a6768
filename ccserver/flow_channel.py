"""An IVR flow's view of a live call: `ccserver.ivr.channel.FlowChannel` over ARI.

The interpreter (`ccserver.ivr.interpreter`) knows nothing of Asterisk; this adapter gives
it playback and keys (through `Media`), the queue (the caller waits, is connected, and the
`queue` step returns when the agent hangs up first so the survey can run), a blind
transfer back into the dialplan, and a recording of the caller's voice (survey comments).

`hangup()` does not hang up at once: it tells the session the flow is done, and the
session ends the call. A callback the flow took (`callback()`) waits in its queue from the
moment the caller pressed the key, so it never passes through "abandoned", even when the
caller hangs up during the confirmation; the session then only hangs up the caller's line.

IVR channels are a licensed quantity: `in_ivr` counts this call in the seat ledger (against
the license's IVR channels and `ivr.max_sessions`) while the flow itself is talking to the
caller, not while the caller waits in a queue or talks to an agent.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from ccserver import metrics, waiting
from ccserver.calls import CALLBACK_STATES, WAITING_STATES
from ccserver.ivr.channel import CallerGone, QueueRequest, QueueResult
from ccserver.media import ChannelGone
from ccserver.telephony.ari import AriError

if TYPE_CHECKING:
    from ccserver.calls import Call, CallCenter

TRANSFER_CONTEXT = "from-callers"


class LiveChannel:
    def __init__(self, center: CallCenter, call: Call) -> None:
        self.center = center
        self.call = call
        self.call_id = call.id
        self.caller = call.caller
        self.dnis = call.dnis
        self.done = False  # the flow asked to end the call
        self.in_ivr = False
        self.left = False  # the caller hung up (their StasisEnd may still be on its way)

    def _left(self) -> CallerGone:
        self.left = True
        return CallerGone(self.call_id)

    def enter_ivr(self) -> None:
        if not self.in_ivr:
            self.in_ivr = True
            self.center.acd.ledger.enter_ivr()

    def leave_ivr(self) -> None:
        if self.in_ivr:
            self.in_ivr = False
            self.center.acd.ledger.release_ivr()

    async def play(self, media: list[str], *, interruptible: bool) -> str:
        try:
            return await self.center.media.play(self.call_id, media, interruptible=interruptible)
        except ChannelGone:
            raise self._left() from None

    async def read_digits(
        self,
        *,
        max_digits: int,
        timeout_s: float,
        inter_digit_s: float,
        terminator: str | None,
        first: str = "",
    ) -> str:
        try:
            return await self.center.media.read_digits(
                self.call_id,
                max_digits=max_digits,
                timeout_s=timeout_s,
                inter_digit_s=inter_digit_s,
                terminator=terminator,
                first=first,
            )
        except ChannelGone:
            raise self._left() from None

    def self_served(self, node: str) -> None:
        self.call.handled_by = "ivr"

    def connecting(self, queue: str, priority: int) -> None:
        self.call.queue, self.call.priority = queue, priority
        self.call.handled_by = None  # asked for an agent after all

    async def queue(self, request: QueueRequest) -> QueueResult:
        """Wait in `request.queue` and talk; back when the talk or the wait is over."""
        call = self.call
        self.leave_ivr()
        try:
            if not await waiting.join(self.center, call, request.queue, priority=request.priority):
                raise CallerGone(self.call_id)
            wakeup = self.center.wakeup(call)
            while True:
                await waiting.wait(self.center, call)
                while call.state == "connected":
                    wakeup.clear()
                    if call.state == "connected":
                        await wakeup.wait()
                if call.state not in WAITING_STATES:  # not transferred back into a queue
                    break
        except ChannelGone:
            raise self._left() from None
        finally:
            self.enter_ivr()
        if call.state == "survey":
            return QueueResult("agent-hangup", call.agent)
        if call.state.startswith("callback"):
            self.done = True
            return QueueResult("callback", None)
        raise CallerGone(self.call_id)

    async def callback(self, queue: str | None, number: str) -> None:
        center, call = self.center, self.call
        async with center.lock:
            if call.state != "ivr":  # the caller left before the key was read
                raise self._left()
            call.callback = {"number": number, "customer_channel": None, "attempts": []}
            call.handled_by = None  # an agent serves this caller
            call.state = "callback"  # from here the caller's hang-up leaves the call alive
            await center.enqueue(call, queue or center.config.acd.default_queue)
            await center.event(call, "callback", number=number)
            await center.dispatch()
            await center.persist()

    async def transfer(self, target: str) -> None:
        """Blind transfer: the caller leaves Stasis for `target` in the callers' dialplan."""
        self.call.state = "transferred"
        self.call.handled_by = "ivr"  # handed on by the flow: not lost here
        await self.center.event(self.call, "transfer", target=target)
        try:
            await self.center.ari.request(
                "POST",
                f"/channels/{self.call_id}/continue",
                params={"context": TRANSFER_CONTEXT, "extension": target, "priority": 1},
            )
        except AriError as exc:
            if exc.status == 404:
                raise self._left() from None
            raise
        self.done = True

    async def record(self, max_s: float) -> str | None:
        name = f"comment-{self.call_id}-{uuid.uuid4().hex[:6]}"
        try:
            recorded = await self.center.media.record(self.call_id, name, max_s)
        except ChannelGone:
            raise self._left() from None
        return str(self.center.recordings / f"{name}.wav") if recorded else None

    async def hangup(self) -> None:
        self.done = True


async def run(center: CallCenter, call: Call) -> None:
    """The IVR part of a session: run the number's flow, then end or keep the call."""
    from ccserver.ivr.interpreter import run_flow

    flow = center.flows[call.dnis]
    assert center.http is not None, "the controller opens the lookup session at start"
    channel = LiveChannel(center, call)
    call.state, call.flow = "ivr", flow.flow
    channel.enter_ivr()
    metrics.IVR_SESSIONS.inc()
    try:
        record = await run_flow(
            flow,
            channel,
            prompts=center.prompts,
            lookup_client=center.http,
            notices=center.notices,
            config=center.config.ivr,
            default_queue=center.config.acd.default_queue,
        )
    finally:
        channel.leave_ivr()
    call.ivr_route = record.to_dict()
    call.survey_score = record.survey_score
    if call.handled_by == "ivr":  # a self-service node finished, and no agent was asked for
        metrics.IVR_SELF_SERVICE.inc()
    if call.state == "ended":
        # The caller hung up during the flow, and the call was closed (and written) while
        # the flow was still unwinding: write it again with the route it took.
        await center.save_ended(call)
    elif record.callback is not None and call.state in CALLBACK_STATES:
        await center.hangup(call.id)  # the call waits for its callback without the caller
    elif channel.left:
        pass  # the caller's StasisEnd closes the call, with the route set above
    elif call.state in ("ivr", "survey"):
        call.hangup_by = "ivr" if call.state == "ivr" else call.hangup_by
        await center.store.save_call(call.record())
        await center.hangup(call.id)  # its StasisEnd closes the call
