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

from ccserver.calls import callbacks, queueing, routing
from ccserver.calls.center import CallCenter
from ccserver.calls.flow_media import FlowMedia
from ccserver.calls.media import ChannelGone
from ccserver.calls.model import CALLBACK_STATES, WAITING_STATES, Call, CallState
from ccserver.ivr.channel import CallerGone, QueueRequest, QueueResult
from ccserver.ivr.interpreter import run_flow
from ccserver.metrics import instruments
from ccserver.telephony.ari import AriError

TRANSFER_CONTEXT = "from-callers"


class LiveChannel(FlowMedia):
    """`FlowChannel` for one live call."""

    def __init__(self, center: CallCenter, call: Call) -> None:
        super().__init__(center.media, call.id, center.recordings)
        self.center = center
        self.call = call
        self.caller = call.caller
        self.dnis = call.dnis
        self.done = False  # the flow asked to end the call
        self.in_ivr = False
        self.left = False  # the caller hung up (their StasisEnd may still be on its way)

    def _left(self) -> CallerGone:
        self.left = True
        return super()._left()

    def enter_ivr(self) -> None:
        if not self.in_ivr:
            self.in_ivr = True
            self.center.acd.ledger.enter_ivr()

    def leave_ivr(self) -> None:
        if self.in_ivr:
            self.in_ivr = False
            self.center.acd.ledger.release_ivr()

    def self_served(self, node: str) -> None:
        self.call.handled_by = "ivr"

    def connecting(self, queue: str, priority: int) -> None:
        self.call.queue, self.call.priority = queue, priority
        self.call.handled_by = None  # asked for an agent after all

    async def queue(self, request: QueueRequest) -> QueueResult:
        """Wait in `request.queue` and talk; back when the talk or the wait is over."""
        call = self.call
        call.ivr_route = request.route  # the route so far, for the agent's screen pop
        self.leave_ivr()
        try:
            if not await queueing.join(self.center, call, request.queue, priority=request.priority):
                raise CallerGone(self.call_id)
            wakeup = self.center.wakeup(call)
            while True:
                await queueing.wait(self.center, call)
                while call.state == CallState.CONNECTED:
                    wakeup.clear()
                    if call.state == CallState.CONNECTED:
                        await wakeup.wait()
                if call.state not in WAITING_STATES:  # not transferred back into a queue
                    break
        except ChannelGone:
            raise self._left() from None
        finally:
            self.enter_ivr()
        if call.state == CallState.SURVEY:
            return QueueResult("agent-hangup", call.agent)
        if call.state in CALLBACK_STATES:
            self.done = True
            return QueueResult("callback", None)
        raise CallerGone(self.call_id)

    async def callback(self, queue: str | None, number: str) -> None:
        center, call = self.center, self.call
        async with center.transaction(persist="now"):
            if call.state != CallState.IVR:  # the caller left before the key was read
                raise self._left()
            call.callback = callbacks.new_callback(number)
            call.handled_by = None  # an agent serves this caller
            center.move(call, CallState.CALLBACK)  # the caller's hang-up leaves the call alive
            await routing.enqueue(center, call, queue or center.config.acd.default_queue)
            await center.journal.event(call, "callback", number=number)

    async def transfer(self, target: str) -> None:
        """Blind transfer: the caller leaves Stasis for `target` in the callers' dialplan."""
        async with self.center.transaction() as unit:
            unit.routing_unchanged()  # the call is in no queue
            if self.call.state not in (CallState.IVR, CallState.SURVEY):  # the caller left
                raise self._left()
            self.center.move(self.call, CallState.TRANSFERRED)
            self.call.handled_by = "ivr"  # handed on by the flow: not lost here
        await self.center.journal.event(self.call, "transfer", target=target)
        try:
            await self.center.ari.continue_in_dialplan(self.call_id, TRANSFER_CONTEXT, target)
        except AriError as exc:
            if exc.status == 404:
                raise self._left() from None
            raise
        self.done = True

    async def hangup(self) -> None:
        self.done = True


async def run(center: CallCenter, call: Call) -> None:
    """The IVR part of a session: run the number's flow, then end or keep the call."""
    flow = center.flows[call.dnis]
    assert center.lookups is not None, "a center with flows is made with a lookup session"
    channel = LiveChannel(center, call)
    channel.enter_ivr()  # before any await: the session checked there was room
    async with center.transaction() as unit:
        unit.routing_unchanged()  # the call is in no queue yet
        if call.state == CallState.ARRIVING:
            center.move(call, CallState.IVR)
            call.flow = flow.flow
    began = call.state == CallState.IVR
    if not began:  # the caller left before the flow began
        channel.leave_ivr()
        return
    instruments.IVR_SESSIONS.inc()
    try:
        record = await run_flow(
            flow,
            channel,
            prompts=center.prompts,
            lookup_client=center.lookups,
            notices=center.notices,
            config=center.config.ivr,
            default_queue=center.config.acd.default_queue,
            orders=center.orders,
        )
    finally:
        channel.leave_ivr()
    call.ivr_route = record.to_dict()
    call.survey_score = record.survey_score
    if call.handled_by == "ivr":  # a self-service node finished, and no agent was asked for
        instruments.IVR_SELF_SERVICE.inc()
    if call.state == CallState.ENDED:
        # The caller hung up during the flow, and the call was closed (and written) while
        # the flow was still unwinding: write it again with the route it took.
        await center.journal.save_ended(call)
    elif record.callback is not None and call.state in CALLBACK_STATES:
        await center.ari.hangup(call.id)  # the call waits for its callback without the caller
    elif channel.left:
        pass  # the caller's StasisEnd closes the call, with the route set above
    elif call.state in (CallState.IVR, CallState.SURVEY):
        call.hangup_by = "ivr" if call.state == CallState.IVR else call.hangup_by
        await center.journal.save_call(call)
        await center.ari.hangup(call.id)  # its StasisEnd closes the call
