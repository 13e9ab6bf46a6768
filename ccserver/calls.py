"""The call lifecycle: from Stasis entry to a caller and an agent talking, and back.

1. A hotline call enters Stasis (`inbound,<dnis>`): a session task answers, plays the
   greeting and puts the call in its queue (`acd.entry` by number, else the default queue):
   the router gets it with its priority and original arrival, the caller waits in the shared
   holding bridge (music on hold). While waiting, the session announces position and
   expected wait, and at the queue's max wait overflows the call or offers a callback
   (`waiting.py`).
2. Whenever something changes, `_dispatch` asks the router for assignments, writes the state
   through to Redis, then originates each agent leg (`agent,<call>`) with a preset channel id
   and the ring timeout. The agent leg entering Stasis means the agent answered: caller and
   agent meet in a mixing bridge of their own (recorded when the queue says so).
3. The agent leg dying before it answered (busy 17, no answer 19, anything else) is RONA:
   the router puts the agent not-ready("RONA") and the call back in its place.
4. Either side hanging up ends the call: the other side is hung up, the bridge destroyed,
   the agent goes to wrap-up (the router's timer), and the record is closed.

All state changes run under one lock, so events, timers and dialogues never interleave
half-way. The ACD state (router + seats) is written to Redis before an agent's phone is
rung and after every change (`_persist`); call records and queue events follow each step.
Recovery after a restart or a lost websocket lives in `recovery.py`; callbacks in
`callbacks.py`; agent actions (feature codes, REST) in `desk.py`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from ccserver import metrics
from ccserver.acd import Acd, AcdError, PinGuard
from ccserver.config import Config
from ccserver.history import History
from ccserver.ivr.model import Flow
from ccserver.ivr.notices import NoticeBoard
from ccserver.logs import log
from ccserver.media import Ari, Media
from ccserver.prompts import Prompts
from ccserver.store import Store
from ccserver.telephony.ari import AriError, AriEvent, created_at

logger = logging.getLogger("ccserver.calls")
HOLDING_BRIDGE = "ccserver-holding"
AGENT_LEG_PREFIX = "agent-"
CUSTOMER_LEG_PREFIX = "cb-"
CALL_BRIDGE_PREFIX = "call-"
AGENT_LEG_VARIABLES = {"variables": {"PJSIP_TRANSFER_HANDLING()": "ari-only"}}
"""A phone's REFER reaches us (`ChannelTransfer`) rather than Asterisk's own transfer."""
HANGUP_CAUSES = {16: "normal", 17: "busy", 18: "no-response", 19: "no-answer", 21: "rejected"}
VANISHED_CAUSES = {44: "rtp-timeout"}
"""Causes of an agent leg lost in a talk without the agent hanging up: 44 is what Asterisk
sets when the phone sent no audio for the endpoint's `rtp_timeout` (res_pjsip_sdp_rtp;
seen in ChannelDestroyed by tests/integration/test_agent_drills.py)."""
WAITING_STATES = ("waiting", "ringing")
PERSIST_COALESCE_S = 0.05
"""How long a change may wait to be written with the ones after it (`persist_soon`)."""
CALLER_GONE = {
    "connected": ("completed", "caller"),
    "consulting": ("completed", "caller"),
    "survey": ("completed", "agent"),
    "ivr": ("ivr-abandoned", "caller"),
    "transferred": ("transferred", "ivr"),
}
"""A caller's hang-up in each state: the call's outcome, and who ended it."""
CALLBACK_STATES = ("callback", "callback-ringing", "callback-dialing", "callback-wait")


@dataclass
class Call:
    id: str  # the caller's channel id (kept for a callback, whose caller has hung up)
    caller: str
    dnis: str
    arrived_at: float
    state: str = "arriving"  # arriving, waiting, ringing, connected, consulting, ...
    queue: str | None = None
    priority: int = 0
    queued_at: float | None = None
    ewt_quoted_s: float | None = None
    agent: str | None = None
    agent_channel: str | None = None
    connected_at: float | None = None
    ended_at: float | None = None
    outcome: str | None = None
    """completed, abandoned, transferred, self-service (a self-service node of the IVR
    finished), ivr-abandoned (the caller left the IVR before that), ivr-ended (the flow
    ended the call before that), callback-failed."""
    hangup_by: str | None = None
    decision: dict[str, Any] | None = None  # the router's reason for the connected agent
    attempts: list[dict[str, Any]] = field(default_factory=list)
    overflowed_from: list[str] = field(default_factory=list)
    announcements: int = 0
    recording: str | None = None
    callback: dict[str, Any] | None = None  # number, customer_channel, attempts
    flow: str | None = None  # the IVR flow that ran the call, if any
    ivr_route: dict[str, Any] | None = None  # what happened in it (FlowRecord)
    survey_score: int | None = None
    handled_by: str | None = None  # "ivr" once a self-service node served the caller
    consult: dict[str, Any] | None = None  # an attended transfer: agent, leg, from_queue

    @property
    def wait_s(self) -> float | None:
        if self.queued_at is None:
            return None
        end = self.connected_at or self.ended_at
        return None if end is None else round(end - self.queued_at, 3)

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        data["wait_s"] = self.wait_s
        return data


class CallCenter:
    def __init__(self, config: Config, ari: Ari, store: Store, prompts: Prompts) -> None:
        self.config = config
        self.ari = ari
        self.store = store
        self.prompts = prompts
        self.media = Media(ari)
        self.acd = Acd(config)
        self.calls: dict[str, Call] = {}
        self.legs: dict[str, str] = {}  # agent or customer leg channel id -> call id
        self.lock = asyncio.Lock()
        self.started = False  # the ACD state was loaded (first connection to Asterisk)
        self._persist_pending: asyncio.Task[None] | None = None
        self._wakeups: dict[str, asyncio.Event] = {}
        self.sessions: dict[str, asyncio.Task[Any]] = {}  # call id -> its session task
        self._tasks: set[asyncio.Task[Any]] = set()
        self._rona_at: dict[str, float] = {}
        self._ticker: asyncio.Task[None] | None = None
        self.pins: dict[str, str] = {}  # agent id -> PIN, from the run dir's secrets
        self.history: History | None = None
        self.flows: dict[str, Flow] = {}  # dialled number -> IVR flow
        self.notices: NoticeBoard | None = None
        self.http: aiohttp.ClientSession | None = None  # the flows' lookups
        self.recordings = config.run_dir / "asterisk" / "spool" / "recording"
        self.pin_guard = PinGuard(config.acd.pin_attempts)
        self._agent_states: dict[str, tuple[str, str | None]] = {}  # as last put in history

    # --- entry points --------------------------------------------------------------------
    async def on_event(self, event: AriEvent) -> None:
        self.media.on_event(event)
        handler = {
            "StasisStart": self._stasis_start,
            "ChannelDestroyed": self._channel_destroyed,
            "StasisEnd": self._stasis_end,
            "ChannelTransfer": self._channel_transfer,
        }.get(event.type)
        if handler is None:
            return
        async with self.lock:
            await handler(event)
            await self.dispatch()
            self.persist_soon()

    def start_ticker(self) -> None:
        self._ticker = self.spawn(self._tick_forever(), "acd-ticker")

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """A background task that is cancelled at shutdown and logs when it fails."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log(
                logger,
                "task.failed",
                logging.ERROR,
                task=task.get_name(),
                error=repr(task.exception())[:300],
            )

    def summary(self) -> dict[str, Any]:
        live = [c for c in self.calls.values() if c.state != "ended"]
        return {
            "calls": len(live),
            "waiting": sum(1 for c in live if c.state == "waiting"),
            "callbacks": sum(1 for c in live if c.state in CALLBACK_STATES),
            "agents": self.acd.counts(),
        }

    # --- events --------------------------------------------------------------------------
    async def _stasis_start(self, event: AriEvent) -> None:
        channel_id = event.channel_id
        if channel_id is None:
            return
        args = event.args
        kind, arg = (args[0] if args else ""), (args[1] if len(args) > 1 else "")
        if kind == "inbound":
            await self._inbound(event, channel_id, arg)
        elif kind == "agent" and arg:
            await self._agent_answered(channel_id, arg)
        elif kind == "callback" and arg:
            from ccserver.callbacks import customer_answered

            await customer_answered(self, channel_id, arg)
        elif kind == "feature":
            from ccserver.desk import feature_call

            phone = str(event.channel.get("name", "")).removeprefix("PJSIP/").rsplit("-", 1)[0]
            self.media.listen(channel_id)
            self.spawn(feature_call(self, channel_id, arg, phone), f"feature-{channel_id}")
        else:
            log(
                logger,
                "call.unknown_stasis_entry",
                logging.WARNING,
                channel=channel_id,
                args=",".join(args),
            )
            await self.hangup(channel_id)

    async def _inbound(self, event: AriEvent, channel_id: str, dnis: str) -> None:
        if channel_id in self.calls:
            # Adopted by the resync of a new ARI link (`GET /channels` saw it in our app)
            # before this StasisStart, queued on the same link, was read: one call, not two.
            log(logger, "call.already_adopted", call=channel_id)
            return
        caller = event.channel.get("caller", {})
        number = caller.get("number", "") if isinstance(caller, dict) else ""
        arrived = min(created_at(event.channel), time.time())
        call = Call(id=channel_id, caller=str(number), dnis=dnis, arrived_at=arrived)
        self.calls[call.id] = call
        self.media.listen(call.id)
        log(logger, "call.arrived", call=call.id, caller=call.caller, dnis=dnis)
        await self.store.save_call(call.record(), new=True)
        await self.event(call, "arrived", caller=call.caller, dnis=dnis)
        from ccserver.waiting import session

        self.sessions[call.id] = self.spawn(session(self, call), f"session-{call.id}")

    async def _agent_answered(self, leg: str, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is not None and call.state == "callback-ringing" and call.agent_channel == leg:
            from ccserver.callbacks import agent_answered

            await agent_answered(self, call)
            return
        if call is None or call.state != "ringing" or call.agent_channel != leg:
            log(logger, "call.late_answer", logging.WARNING, call=call_id, leg=leg)
            self.legs.pop(leg, None)
            await self.hangup(leg)
            return
        if call.consult is not None:
            from ccserver.transfers import target_answered

            await target_answered(self, call, leg)
            return
        bridge = CALL_BRIDGE_PREFIX + call.id
        try:
            await self.media.stop(call.id)
            await self.ari.request(
                "POST", "/bridges", params={"type": "mixing", "bridgeId": bridge}
            )
            await self.ari.request(
                "POST", f"/bridges/{HOLDING_BRIDGE}/removeChannel", params={"channel": call.id}
            )
            await self.ari.request(
                "POST", f"/bridges/{bridge}/addChannel", params={"channel": f"{call.id},{leg}"}
            )
        except AriError as exc:
            log(logger, "call.bridge_failed", logging.ERROR, call=call.id, error=str(exc))
            await self._unbridge(call, bridge)
            await self.hangup(leg)
            return  # the agent leg's end requeues the caller; a caller gone ends the call
        await self.connected(call, bridge)

    async def _unbridge(self, call: Call, bridge: str) -> None:
        """Undo a connection that failed half-way, so the caller waits again as before: the
        call's bridge goes (left behind, it would refuse every later attempt with 409), and
        the caller is back in the holding bridge with its music. A caller who is gone is
        not held again: its own end event closes the call."""
        await self.destroy_bridge(bridge)
        await self.hold(call.id)

    async def connected(self, call: Call, bridge: str) -> None:
        """Caller and agent are in `bridge`: the router, the record and the recording."""
        now = time.time()
        call.state, call.connected_at = "connected", now
        call.attempts[-1]["result"] = "answered"
        self.acd.router.answer(call.id, now)
        metrics.answered(
            call.queue or "",
            wait_s=call.wait_s or 0.0,
            ring_s=now - call.attempts[-1]["at"],
            ewt_s=call.ewt_quoted_s,
            callback=call.callback is not None,
        )
        if call.queue is not None and self.acd.queue_config(call.queue).record:
            await self.record(call, bridge)
        log(logger, "call.connected", call=call.id, agent=call.agent, wait_s=call.wait_s)
        self.wake(call)
        await self.store.save_call(call.record())
        await self.event(
            call, "connect", agent=call.agent, wait_s=call.wait_s, **(call.decision or {})
        )

    async def record(self, call: Call, bridge: str) -> None:
        """Record the call's bridge (the queue asks for it); the file goes in the record."""
        name = f"call-{call.id}"
        try:
            await self.ari.request(
                "POST",
                f"/bridges/{bridge}/record",
                params={"name": name, "format": "wav", "ifExists": "overwrite"},
            )
        except AriError as exc:
            log(logger, "call.record_failed", logging.WARNING, call=call.id, error=str(exc))
            return
        call.recording = str(self.recordings / f"{name}.wav")

    async def _channel_destroyed(self, event: AriEvent) -> None:
        channel_id = event.channel_id or ""
        cause = event.int_field("cause") or 0
        self.media.gone(channel_id)
        if channel_id in self.calls:
            await self.caller_gone(self.calls[channel_id], cause)
        elif channel_id in self.legs:
            await self._leg_gone(channel_id, cause)

    async def _channel_transfer(self, event: AriEvent) -> None:
        from ccserver.transfers import on_refer

        await on_refer(self, event)

    async def _stasis_end(self, event: AriEvent) -> None:
        # A caller's channel came from the dialplan: when it hangs up it leaves Stasis
        # and goes back there to die, so ARI sends StasisEnd but no ChannelDestroyed.
        # Our own legs (agents, callbacks) are ours to the end: ChannelDestroyed has the cause.
        channel_id = event.channel_id or ""
        self.media.gone(channel_id)
        call = self.calls.get(channel_id)
        if call is not None:
            await self.caller_gone(call, 0)

    async def caller_gone(self, call: Call, cause: int) -> None:
        if call.state in ("ended", *CALLBACK_STATES):
            return  # a callback's caller hung up on purpose; the call lives on
        outcome, hangup_by = CALLER_GONE.get(call.state, ("abandoned", "caller"))
        if call.state == "ivr" and call.queue is not None:  # see FlowChannel.connecting
            outcome, hangup_by = "abandoned", "caller"
        elif call.state == "ivr" and call.handled_by == "ivr":  # see FlowChannel.self_served
            outcome = "self-service"
        elif call.state == "ivr" and call.hangup_by == "ivr":
            outcome = "ivr-ended"  # the flow ended the call before serving the caller
        await self.finish(call, outcome, hangup_by=call.hangup_by or hangup_by)
        log(logger, "call.caller_hangup", call=call.id, cause=cause)

    async def _leg_gone(self, leg: str, cause: int) -> None:
        call = self.calls.get(self.legs.pop(leg, ""))
        if call is None:
            return
        if call.callback is not None and leg == call.callback.get("customer_channel"):
            from ccserver.callbacks import customer_gone

            await customer_gone(self, call, cause)
            return
        from ccserver import transfers

        if call.consult is not None and leg == call.consult.get("leg"):
            await transfers.source_gone(self, call)
            return
        if call.agent_channel != leg:
            return
        if call.state == "consulting":
            await transfers.cancel_consult(self, call, "declined", call.agent)
        elif call.state == "connected" and cause in VANISHED_CAUSES:
            await self.agent_vanished(call, VANISHED_CAUSES[cause])
            if await self.hold(call.id):
                transfers.keep_waiting(self, call)
        elif call.state == "ringing" and call.consult is not None:
            target = call.agent
            await self.rona(call, HANGUP_CAUSES.get(cause, f"cause-{cause}"))
            await transfers.cancel_consult(self, call, "no-answer", target)
        elif call.state == "connected" and call.flow is not None and call.callback is None:
            await self._to_survey(call)
        elif call.state == "connected":
            await self.finish(call, "completed", hangup_by="agent")
        elif call.state in ("ringing", "callback-ringing"):
            await self.rona(call, HANGUP_CAUSES.get(cause, f"cause-{cause}"))
        elif call.state == "callback-dialing":
            from ccserver.callbacks import agent_left

            await agent_left(self, call)

    async def _to_survey(self, call: Call) -> None:
        """The agent hung up first on a call a flow runs: the caller leaves the bridge and
        goes back to the flow (the survey); the talk is over for the router."""
        self.talk_ended(call, time.time())
        self.acd.router.complete(call.id, time.time())
        self.legs.pop(call.agent_channel or "", None)
        call.state, call.hangup_by = "survey", "agent"
        await self.destroy_bridge(CALL_BRIDGE_PREFIX + call.id)
        self.wake(call)
        await self.store.save_call(call.record())
        await self.event(call, "agent_hangup")

    async def agent_vanished(self, call: Call, why: str, *, phone_lost: bool = True) -> None:
        """The agent's leg of a talk is gone while the caller is still here: the call goes
        back to its queue at its original place (arrival kept) and the event is recorded.
        With `phone_lost` we know the phone died (`why` says how), so the agent is put
        not-ready(phone-lost) rather than left busy or offered the next call on a dead phone;
        after a restart we only know the leg is gone (the agent may have hung up while we
        were away), so they go through wrap-up as after any call. The caller's holding and
        session are the caller's business (live: back to the music; recovery: resync)."""
        now = time.time()
        agent = call.agent
        self.talk_ended(call, now)
        self.acd.router.complete(call.id, now, wrap_up_s=0.0 if phone_lost else None)
        if phone_lost and agent:
            self.acd.phone_lost(agent, now)
        self.legs.pop(call.agent_channel or "", None)
        await self.destroy_bridge(CALL_BRIDGE_PREFIX + call.id)
        call.state, call.agent, call.agent_channel, call.connected_at = "waiting", None, None, None
        log(logger, "call.agent_vanished", logging.WARNING, call=call.id, agent=agent, why=why)
        await self.event(call, "requeue", reason="agent-vanished", agent=agent, why=why)
        await self.enqueue(call, call.queue or self.config.acd.default_queue)

    async def rona(self, call: Call, result: str) -> None:
        """The agent's phone rang out, was busy or failed: the agent goes not-ready(RONA),
        the call back in its place."""
        agent = call.agent or ""
        call.attempts[-1]["result"] = result
        call.state = "callback" if call.state == "callback-ringing" else "waiting"
        call.agent = call.agent_channel = None
        self.acd.router.reject(call.id, agent, time.time())
        self._rona_at[agent] = time.time()
        log(logger, "call.rona", logging.WARNING, call=call.id, agent=agent, result=result)
        self.wake(call)
        await self.store.save_call(call.record())
        await self.event(call, "rona", agent=agent, result=result)

    # --- routing -------------------------------------------------------------------------
    async def enqueue(
        self, call: Call, queue: str, *, priority: int | None = None, ring_first: bool = False
    ) -> None:
        """Give the call to the router in `queue`, keeping its original arrival (so an
        overflowed, transferred or restored call keeps its place). With `ring_first` (a new
        caller) a ready agent's phone is rung before the record and the `enter` event are
        written, not after: nothing reads them in between, and the caller hears the agent
        sooner."""
        now = time.time()
        call.ewt_quoted_s = round(
            self.acd.enqueue(call.id, queue, now, priority=priority, arrival=call.arrived_at), 3
        )
        call.queue = queue
        call.priority = self.acd.router.call(call.id).priority
        call.queued_at = call.queued_at or now
        position = self.acd.router.position(call.id)
        log(
            logger,
            "call.queued",
            call=call.id,
            queue=queue,
            position=position,
            ewt_s=call.ewt_quoted_s,
        )
        if ring_first:
            await self.dispatch()
        await self.store.save_call(call.record())
        await self.event(call, "enter", queue=queue, position=position, ewt_s=call.ewt_quoted_s)

    async def dispatch(self) -> None:
        """Ask the router for every assignment possible now; ring each chosen agent while
        the state is written through."""
        with metrics.ROUTING.time():
            assignments = self.acd.dispatch(time.time())
        if not assignments:
            return
        rings = []
        for a in assignments:
            call = self.calls.get(a.call)
            if call is None:  # the router knows a call we lost: give it back
                log(logger, "call.unknown_assignment", logging.ERROR, call=a.call, agent=a.agent)
                self.acd.router.remove(a.call, time.time())
                continue
            leg = f"{AGENT_LEG_PREFIX}{uuid.uuid4().hex}"
            call.state = "callback-ringing" if call.state == "callback" else "ringing"
            call.agent, call.agent_channel = a.agent, leg
            call.decision = {
                "strategy": a.strategy,
                "step": a.step,
                "group": a.group,
                "level": a.level,
                "waited_s": round(a.waited_s, 3),
            }
            call.attempts.append({"agent": a.agent, "at": time.time(), "result": "ringing"})
            self.legs[leg] = call.id
            rings.append((call, a.agent, leg))
        # The phones ring while the reservations are written, not after: a controller
        # killed in between leaves a ringing leg its successor does not know, which recovery
        # hangs up with the call still waiting in its place, as with any withdrawn offer.
        records = [self.store.save_call(call.record()) for call, _, _ in rings]
        await asyncio.gather(
            *records, self.persist(), *(self._ring(call, agent, leg) for call, agent, leg in rings)
        )

    async def _ring(self, call: Call, agent_id: str, leg: str) -> None:
        phone = self.acd.seats[agent_id].phone
        log(logger, "call.ringing", call=call.id, agent=agent_id, phone=phone, leg=leg)
        self.wake(call)
        try:
            await self.ari.request(
                "POST",
                f"/channels/{leg}",
                params={
                    "endpoint": f"PJSIP/{phone}",
                    "app": self.config.controller.app,
                    "appArgs": f"agent,{call.id}",
                    "timeout": self.config.controller.ring_timeout_s,
                    "callerId": call.caller or call.dnis,
                },
                body=AGENT_LEG_VARIABLES,
            )
        except AriError as exc:
            log(
                logger,
                "call.originate_failed",
                logging.ERROR,
                call=call.id,
                agent=agent_id,
                error=str(exc),
            )
            self.legs.pop(leg, None)
            if call.agent_channel == leg:
                await self.rona(call, "originate-failed")

    async def _tick_forever(self) -> None:
        """Router timers (relaxation, wrap-up ends, RONA memory) and RONA cool-downs."""
        while True:
            now = time.time()
            due = self.acd.router.next_timer()
            wait = 1.0 if due is None else min(1.0, max(0.05, due - now))
            await asyncio.sleep(wait)
            async with self.lock:
                self._rona_cooldowns(time.time())
                await self.dispatch()
                self.persist_soon()

    def _rona_cooldowns(self, now: float) -> None:
        cooldown = self.config.controller.rona_cooldown_s
        for agent_id, at in list(self._rona_at.items()):
            if now < at + cooldown:
                continue
            del self._rona_at[agent_id]
            view = self.acd.agent_view(agent_id)
            if view["state"] == "not-ready" and view["reason"] == "RONA":
                try:
                    self.acd.set_ready(agent_id, now)
                except AcdError:
                    continue
                log(logger, "agent.ready", agent=agent_id, after="rona-cooldown")

    # --- ending --------------------------------------------------------------------------
    async def finish(self, call: Call, outcome: str, *, hangup_by: str) -> None:
        previous = call.state
        now = time.time()
        call.state, call.outcome, call.hangup_by, call.ended_at = "ended", outcome, hangup_by, now
        if call.id in self.acd.router.calls():
            if previous in ("connected", "consulting"):
                self.talk_ended(call, now)
                self.acd.router.complete(call.id, now)
            else:
                self.acd.router.remove(call.id, now)
        if previous in ("ringing", "callback-ringing") and call.attempts:
            call.attempts[-1]["result"] = "caller-gone"
        await self.hangup(call.id)
        for leg in (
            call.agent_channel,
            (call.callback or {}).get("customer_channel"),
            (call.consult or {}).get("leg"),
        ):
            if leg:
                self.legs.pop(leg, None)
                await self.hangup(leg)
        await self.destroy_bridge(CALL_BRIDGE_PREFIX + call.id)
        log(
            logger,
            "call.ended",
            call=call.id,
            outcome=outcome,
            hangup_by=hangup_by,
            agent=call.agent,
            wait_s=call.wait_s,
        )
        kind = "abandon" if outcome == "abandoned" else "complete"
        await self.save_ended(call)
        await self.event(call, kind, outcome=outcome, hangup_by=hangup_by, wait_s=call.wait_s)
        self.wake(call)
        self.calls.pop(call.id, None)
        self._wakeups.pop(call.id, None)
        self.sessions.pop(call.id, None)

    def talk_ended(self, call: Call, now: float) -> None:
        """An agent's talk on the call is over (hang-up, transfer): its time and the wrap-up
        the queue grants go to the metrics. Call before the router's `complete`."""
        if call.queue:
            talk_s = None if call.connected_at is None else now - call.connected_at
            metrics.talk(call.queue, talk_s, self.acd.queue_config(call.queue).wrap_up_s)

    async def hangup(self, channel_id: str) -> None:
        try:
            await self.ari.request("DELETE", f"/channels/{channel_id}")
        except AriError as exc:
            if exc.status != 404:  # 404: already gone, which is what we wanted
                log(
                    logger,
                    "call.hangup_failed",
                    logging.WARNING,
                    channel=channel_id,
                    error=str(exc),
                )

    async def destroy_bridge(self, bridge_id: str) -> None:
        try:
            await self.ari.request("DELETE", f"/bridges/{bridge_id}")
        except AriError as exc:
            if exc.status != 404:
                log(
                    logger,
                    "call.bridge_destroy_failed",
                    logging.WARNING,
                    bridge=bridge_id,
                    error=str(exc),
                )

    # --- shared helpers ------------------------------------------------------------------
    def persist_soon(self) -> None:
        """Persist within `PERSIST_COALESCE_S`: the ACD state after a call event, a phone's
        state change or a timer. Under load events come every few milliseconds and each
        full snapshot costs the controller more than the event itself, so they are
        coalesced; a reservation is still written as its phone rings (`dispatch`), and a
        controller killed inside the window is reconciled with Asterisk's channels on
        restart like any other change it did not live to save."""
        if self._persist_pending is None or self._persist_pending.done():
            self._persist_pending = self.spawn(self._persist_later(), "acd-persist")

    async def _persist_later(self) -> None:
        await asyncio.sleep(PERSIST_COALESCE_S)
        async with self.lock:
            await self.persist()

    async def save_ended(self, call: Call) -> None:
        """An ended call's record, to Redis and to the history store the reports read."""
        record = call.record()
        await self.store.save_call(record)
        if self.history is not None:
            self.history.save_call(record)

    async def persist(self) -> None:
        """Write the ACD state (and the callbacks waiting for a retry, which the router does
        not hold) through to Redis."""
        if self.started:
            parked = [c.id for c in self.calls.values() if c.state == "callback-wait"]
            await self.store.save_acd({"acd": self.acd.snapshot(), "parked": parked})
            self._note_agent_states()

    async def event(self, call: Call, kind: str, **fields: Any) -> None:
        """One queue event: to the Redis stream and to the history store."""
        clean = {k: v for k, v in fields.items() if v is not None}
        metrics.queue_event(
            kind,
            str(clean.get("queue", call.queue) or ""),
            clean,
            short_abandon_s=self.config.reports.short_abandon_s,
        )
        await self.store.add_event(call.id, kind, **clean)
        if self.history is not None:
            queue, agent = clean.pop("queue", call.queue), clean.pop("agent", call.agent)
            self.history.record_event(call.id, kind, queue=queue, agent=agent, **clean)

    async def hold(self, channel_id: str) -> bool:
        """Put a caller in the holding bridge (music); False when the caller is gone."""
        try:
            await self.ari.request(
                "POST", f"/bridges/{HOLDING_BRIDGE}/addChannel", params={"channel": channel_id}
            )
        except AriError as exc:
            if exc.status == 404:
                return False
            log(logger, "call.hold_failed", logging.WARNING, call=channel_id, error=str(exc))
        return True

    async def say(self, channel_id: str, text: str, *, interruptible: bool = False) -> str:
        """Speak `text` to a channel in the center's language (generated once, then cached);
        returns the key that interrupted it, or ""."""
        language = self.config.acd.language
        sound = await asyncio.to_thread(self.prompts.sound, text, language)
        return await self.media.play(channel_id, [sound], interruptible=interruptible)

    def _note_agent_states(self) -> None:
        """Put every agent whose state or reason changed since the last look into the
        history (occupancy, AHT and adherence reports read it). Runs with every `persist`,
        so changes the router makes on its own timers (wrap-up ending) are seen within the
        ticker's second, and no code path has to remember to report a change."""
        if self.history is None:
            return
        for agent_id in self.acd.seats:
            view = self.acd.agent_view(agent_id)
            now = (view["state"], view["reason"])
            if self._agent_states.get(agent_id, ("logged-out", None)) != now:
                self._agent_states[agent_id] = now
                self.history.agent_state(agent_id, view["state"], reason=view["reason"])

    def wake(self, call: Call) -> None:
        """Tell the call's session that its state changed."""
        self._wakeups.setdefault(call.id, asyncio.Event()).set()

    def wakeup(self, call: Call) -> asyncio.Event:
        return self._wakeups.setdefault(call.id, asyncio.Event())
