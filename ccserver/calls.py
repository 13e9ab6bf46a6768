"""The call lifecycle: from Stasis entry to a caller and an agent talking, and back.

1. A hotline call enters Stasis (`inbound,<dnis>`): answer, play the greeting.
2. Greeting done: the caller joins the shared holding bridge (music on hold) and the FIFO.
3. Whenever a call waits and an agent is ready: originate the agent's leg (`agent,<call>`)
   with a preset channel id and the ring timeout. The agent leg entering Stasis means the
   agent answered: caller and agent meet in a mixing bridge of their own.
4. The agent leg dying before it answered (busy 17, no answer 19, anything else) puts the
   agent not-ready for a cool-down and the call back at the head of the queue.
5. Either side hanging up ends the call (a caller's hang-up shows as StasisEnd, an agent
   leg's as ChannelDestroyed): the other side is hung up, the bridge destroyed,
   the agent ready again, and the record closed.

All handlers run under one lock, so events and timers never interleave half-way. Every
state change is written to Redis as it happens (`Store`). After a (re)connection `resync`
reconciles with `GET /channels` and `GET /bridges`: calls whose channels are gone are
closed, callers still waiting in our app are adopted back into the queue in arrival order,
talking pairs are adopted, and stray agent legs are hung up.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ccserver.agents import Agent, AgentState, Roster
from ccserver.config import Config
from ccserver.logs import log
from ccserver.store import Store
from ccserver.telephony.ari import AriError, AriEvent

logger = logging.getLogger("ccserver.calls")
HOLDING_BRIDGE = "ccserver-holding"
AGENT_LEG_PREFIX = "agent-"
CALL_BRIDGE_PREFIX = "call-"
HANGUP_CAUSES = {16: "normal", 17: "busy", 18: "no-response", 19: "no-answer", 21: "rejected"}


class Ari(Protocol):
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any: ...


@dataclass
class Call:
    id: str  # the caller's channel id
    caller: str
    dnis: str
    arrived_at: float
    state: str = "greeting"  # greeting, waiting, ringing, connected, ended
    queued_at: float | None = None
    agent: str | None = None
    agent_channel: str | None = None
    connected_at: float | None = None
    ended_at: float | None = None
    outcome: str | None = None  # completed, abandoned, failed
    hangup_by: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)

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
    def __init__(self, config: Config, ari: Ari, store: Store) -> None:
        self.config = config
        self.ari = ari
        self.store = store
        self.roster = Roster(config.agents.ids, time.time())
        self.calls: dict[str, Call] = {}
        self.queue: deque[str] = deque()
        self._legs: dict[str, str] = {}  # agent leg channel id -> call id
        self._playbacks: dict[str, str] = {}  # playback id -> call id
        self._lock = asyncio.Lock()
        self._timers: set[asyncio.Task[None]] = set()

    # --- entry points --------------------------------------------------------------------
    async def on_event(self, event: AriEvent) -> None:
        handler = {
            "StasisStart": self._stasis_start,
            "PlaybackFinished": self._playback_finished,
            "ChannelDestroyed": self._channel_destroyed,
            "StasisEnd": self._stasis_end,
        }.get(event.type)
        if handler is None:
            return
        async with self._lock:
            await handler(event)
            await self._dispatch()

    async def resync(self) -> None:
        async with self._lock:
            await self._resync()
            await self._dispatch()

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()

    def summary(self) -> dict[str, Any]:
        return {
            "calls": sum(1 for c in self.calls.values() if c.state != "ended"),
            "waiting": len(self.queue),
            "agents": self.roster.counts(),
        }

    # --- events --------------------------------------------------------------------------
    async def _stasis_start(self, event: AriEvent) -> None:
        channel_id = event.channel_id
        if channel_id is None:
            return
        args = event.args
        if args[:1] == ["inbound"]:
            await self._inbound(event, channel_id, args[1] if len(args) > 1 else "")
        elif args[:1] == ["agent"] and len(args) > 1:
            await self._agent_answered(channel_id, args[1])
        else:
            log(
                logger,
                "call.unknown_stasis_entry",
                logging.WARNING,
                channel=channel_id,
                args=",".join(args),
            )
            await self._hangup(channel_id)

    async def _inbound(self, event: AriEvent, channel_id: str, dnis: str) -> None:
        caller = event.channel.get("caller", {})
        number = caller.get("number", "") if isinstance(caller, dict) else ""
        call = Call(id=channel_id, caller=str(number), dnis=dnis, arrived_at=time.time())
        self.calls[call.id] = call
        log(logger, "call.arrived", call=call.id, caller=call.caller, dnis=dnis)
        await self.store.save_call(call.record(), new=True)
        await self.store.add_event(call.id, "arrived", caller=call.caller, dnis=dnis)
        try:
            await self.ari.request("POST", f"/channels/{call.id}/answer")
            playback = f"greet-{uuid.uuid4().hex[:12]}"
            self._playbacks[playback] = call.id
            await self.ari.request(
                "POST",
                f"/channels/{call.id}/play/{playback}",
                params={"media": f"sound:{self.config.controller.greeting}"},
            )
        except AriError as exc:
            # The caller may have hung up already (404); otherwise skip the greeting.
            log(logger, "call.greeting_failed", logging.WARNING, call=call.id, error=str(exc))
            if call.state == "greeting":
                await self._enqueue(call)

    async def _playback_finished(self, event: AriEvent) -> None:
        playback = event.data.get("playback")
        playback_id = playback.get("id") if isinstance(playback, dict) else None
        call_id = self._playbacks.pop(str(playback_id), None)
        call = self.calls.get(call_id or "")
        if call is not None and call.state == "greeting":
            await self._enqueue(call)

    async def _enqueue(self, call: Call) -> None:
        try:
            await self.ari.request(
                "POST", f"/bridges/{HOLDING_BRIDGE}/addChannel", params={"channel": call.id}
            )
        except AriError as exc:
            log(logger, "call.hold_failed", logging.WARNING, call=call.id, error=str(exc))
            if exc.status == 404:  # the caller is gone; its StasisEnd closes the call
                return
        call.state = "waiting"
        call.queued_at = call.queued_at or time.time()  # an adopted call keeps its own
        self.queue.append(call.id)
        log(logger, "call.queued", call=call.id, position=len(self.queue))
        await self.store.save_call(call.record())
        await self.store.add_event(call.id, "queued", position=len(self.queue))

    async def _agent_answered(self, leg: str, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is None or call.state != "ringing" or call.agent_channel != leg:
            log(logger, "call.late_answer", logging.WARNING, call=call_id, leg=leg)
            self._legs.pop(leg, None)
            await self._hangup(leg)
            return
        agent = self.roster.agents[call.agent or ""]
        bridge = CALL_BRIDGE_PREFIX + call.id
        try:
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
            await self._hangup(leg)
            return  # the end event of whichever side is gone finishes the clean-up
        call.state, call.connected_at = "connected", time.time()
        call.attempts[-1]["result"] = "answered"
        self.roster.busy(agent)
        log(logger, "call.connected", call=call.id, agent=agent.id, wait_s=call.wait_s)
        await self.store.save_call(call.record())
        await self.store.add_event(call.id, "connected", agent=agent.id, wait_s=call.wait_s)

    async def _channel_destroyed(self, event: AriEvent) -> None:
        channel_id = event.channel_id or ""
        cause = event.int_field("cause") or 0
        if channel_id in self.calls:
            await self._caller_gone(self.calls[channel_id], cause)
        elif channel_id in self._legs:
            await self._leg_gone(channel_id, cause)

    async def _stasis_end(self, event: AriEvent) -> None:
        # A caller's channel came from the dialplan: when it hangs up it leaves Stasis
        # and goes back there to die, so ARI sends StasisEnd but no ChannelDestroyed.
        # (We never send callers back to the dialplan ourselves, nor do bridge moves end
        # Stasis.) Agent legs are ours to the end: their ChannelDestroyed carries the cause.
        call = self.calls.get(event.channel_id or "")
        if call is not None:
            await self._caller_gone(call, 0)

    async def _caller_gone(self, call: Call, cause: int) -> None:
        if call.state == "ended":
            return
        if call.state == "connected":
            await self._finish(call, "completed", hangup_by="caller")
        else:
            await self._finish(call, "abandoned", hangup_by="caller")
        log(logger, "call.caller_hangup", call=call.id, cause=cause)

    async def _leg_gone(self, leg: str, cause: int) -> None:
        call = self.calls.get(self._legs.pop(leg, ""))
        if call is None or call.agent_channel != leg:
            return
        agent = self.roster.agents[call.agent or ""]
        if call.state == "connected":
            await self._finish(call, "completed", hangup_by="agent")
            return
        if call.state != "ringing":
            return
        # Busy, no answer or failure: the agent rests, the call goes back to the head.
        result = HANGUP_CAUSES.get(cause, f"cause-{cause}")
        call.attempts[-1]["result"] = result
        call.state, call.agent, call.agent_channel = "waiting", None, None
        self.queue.appendleft(call.id)
        self._rest(agent, f"rona-{result}")
        log(
            logger,
            "call.agent_failed",
            logging.WARNING,
            call=call.id,
            agent=agent.id,
            result=result,
        )
        await self.store.save_call(call.record())
        await self.store.add_event(call.id, "agent_failed", agent=agent.id, result=result)

    # --- routing -------------------------------------------------------------------------
    async def _dispatch(self) -> None:
        while self.queue:
            agent = self.roster.pick()
            if agent is None:
                return
            call = self.calls[self.queue.popleft()]
            await self._ring(call, agent)

    async def _ring(self, call: Call, agent: Agent) -> None:
        leg = f"{AGENT_LEG_PREFIX}{uuid.uuid4().hex}"
        call.state, call.agent, call.agent_channel = "ringing", agent.id, leg
        call.attempts.append({"agent": agent.id, "at": time.time(), "result": "ringing"})
        self.roster.ring(agent, call.id)
        self._legs[leg] = call.id
        log(logger, "call.ringing", call=call.id, agent=agent.id, leg=leg)
        await self.store.save_call(call.record())
        try:
            await self.ari.request(
                "POST",
                f"/channels/{leg}",
                params={
                    "endpoint": f"PJSIP/{agent.id}",
                    "app": self.config.controller.app,
                    "appArgs": f"agent,{call.id}",
                    "timeout": self.config.controller.ring_timeout_s,
                    "callerId": call.caller or call.dnis,
                },
            )
        except AriError as exc:
            log(
                logger,
                "call.originate_failed",
                logging.ERROR,
                call=call.id,
                agent=agent.id,
                error=str(exc),
            )
            await self._leg_gone(leg, 0)

    def _rest(self, agent: Agent, reason: str) -> None:
        self.roster.not_ready(agent, reason)
        task = asyncio.create_task(self._back_from_rest(agent.id))
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    async def _back_from_rest(self, agent_id: str) -> None:
        await asyncio.sleep(self.config.controller.rona_cooldown_s)
        async with self._lock:
            agent = self.roster.agents[agent_id]
            if agent.state is AgentState.NOT_READY:
                self.roster.ready(agent, time.time())
                log(logger, "agent.ready", agent=agent_id, after="rona-cooldown")
            await self._dispatch()

    # --- ending --------------------------------------------------------------------------
    async def _finish(self, call: Call, outcome: str, *, hangup_by: str) -> None:
        previous = call.state
        call.state, call.outcome, call.hangup_by, call.ended_at = (
            "ended",
            outcome,
            hangup_by,
            time.time(),
        )
        if call.id in self.queue:
            self.queue.remove(call.id)
        if previous == "greeting":  # no PlaybackFinished will come for a caller who left
            self._playbacks = {p: c for p, c in self._playbacks.items() if c != call.id}
        if previous == "ringing" and call.attempts:
            call.attempts[-1]["result"] = "caller-gone"
        await self._hangup(call.id)
        if call.agent_channel:
            self._legs.pop(call.agent_channel, None)
            await self._hangup(call.agent_channel)
        if previous == "connected":
            await self._destroy_bridge(CALL_BRIDGE_PREFIX + call.id)
        agent = self.roster.agents.get(call.agent or "")
        if agent is not None and agent.call_id == call.id:
            self.roster.ready(agent, time.time())
        log(
            logger,
            "call.ended",
            call=call.id,
            outcome=outcome,
            hangup_by=hangup_by,
            agent=call.agent,
            wait_s=call.wait_s,
        )
        await self.store.save_call(call.record())
        await self.store.add_event(call.id, "ended", outcome=outcome, hangup_by=hangup_by)
        self.calls.pop(call.id, None)

    async def _hangup(self, channel_id: str) -> None:
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

    async def _destroy_bridge(self, bridge_id: str) -> None:
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

    # --- resync --------------------------------------------------------------------------
    async def _resync(self) -> None:
        bridges = await self.ari.request("GET", "/bridges") or []
        by_id = {b.get("id"): b for b in bridges if isinstance(b, dict)}
        if HOLDING_BRIDGE not in by_id:
            await self.ari.request(
                "POST", "/bridges", params={"type": "holding", "bridgeId": HOLDING_BRIDGE}
            )
        await self.ari.request(
            "POST",
            f"/bridges/{HOLDING_BRIDGE}/moh",
            params={"mohClass": self.config.controller.moh_class},
        )
        channels = await self.ari.request("GET", "/channels") or []
        live = {c["id"]: c for c in channels if isinstance(c, dict) and "id" in c}
        for call in list(self.calls.values()):
            if call.id not in live:
                await self._caller_gone(call, 0)
            elif call.agent_channel and call.agent_channel not in live:
                await self._leg_gone(call.agent_channel, 0)
        adopted = 0
        for bridge_id, bridge in by_id.items():
            if isinstance(bridge_id, str) and bridge_id.startswith(CALL_BRIDGE_PREFIX):
                adopted += await self._adopt_talk(bridge_id, bridge, live)
        waiting = [
            await self._rebuild(channel)
            for channel in live.values()
            if self._is_our_inbound(channel) and channel["id"] not in self.calls
        ]
        for call in sorted(waiting, key=lambda c: (c.queued_at or c.arrived_at, c.id)):
            if call.attempts and call.attempts[-1]["result"] == "ringing":
                call.attempts[-1]["result"] = "interrupted"  # rang while we were away
            call.agent = call.agent_channel = None
            self.calls[call.id] = call
            log(logger, "call.adopted", call=call.id, state="waiting")
            await self._enqueue(call)
            adopted += 1
        for channel_id in live:
            if channel_id.startswith(AGENT_LEG_PREFIX) and channel_id not in self._legs:
                await self._hangup(channel_id)
        log(
            logger,
            "calls.resynced",
            channels=len(live),
            bridges=len(by_id),
            adopted=adopted,
            waiting=len(self.queue),
        )

    def _is_our_inbound(self, channel: dict[str, Any]) -> bool:
        dialplan = channel.get("dialplan") or {}
        app_data = str(dialplan.get("app_data", ""))
        return dialplan.get("app_name") == "Stasis" and app_data.startswith(
            f"{self.config.controller.app},inbound"
        )

    async def _rebuild(self, channel: dict[str, Any]) -> Call:
        """A call found in Asterisk after a restart: its saved record where Redis has one
        (arrival, queue entry, attempts survive), else what the channel itself says."""
        saved = await self.store.load_call(channel["id"])
        if saved is not None:
            fields = {k: v for k, v in saved.items() if k in Call.__dataclass_fields__}
            return Call(**{**fields, "state": "restored"})
        caller = channel.get("caller") or {}
        dnis = str((channel.get("dialplan") or {}).get("app_data", "")).split(",")[-1]
        return Call(
            id=channel["id"],
            caller=str(caller.get("number", "")),
            dnis=dnis,
            arrived_at=_epoch(channel.get("creationtime")),
        )

    async def _adopt_talk(
        self, bridge_id: str, bridge: dict[str, Any], live: dict[str, Any]
    ) -> int:
        call_id = bridge_id[len(CALL_BRIDGE_PREFIX) :]
        members = [c for c in bridge.get("channels", []) if c in live]
        legs = [c for c in members if c.startswith(AGENT_LEG_PREFIX)]
        if call_id in self.calls or call_id not in members or len(legs) != 1:
            if call_id not in self.calls and call_id not in members:
                for leg in legs:
                    await self._hangup(leg)
                await self._destroy_bridge(bridge_id)
            return 0
        leg = legs[0]
        agent_id = str(live[leg].get("name", "")).removeprefix("PJSIP/").split("-")[0]
        agent = self.roster.agents.get(agent_id)
        if agent is None or agent.state is not AgentState.READY:
            return 0
        call = await self._rebuild(live[call_id])
        call.state, call.agent, call.agent_channel = "connected", agent_id, leg
        call.connected_at = call.connected_at or time.time()
        self.calls[call_id] = call
        self._legs[leg] = call_id
        self.roster.ring(agent, call_id)
        self.roster.busy(agent)
        log(logger, "call.adopted", call=call_id, state="connected", agent=agent_id)
        return 1


def _epoch(stamp: object) -> float:
    """ARI's `creationtime` ("2026-11-25T02:03:04.123+0000") as epoch seconds."""
    try:
        return datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except ValueError:
        return time.time()
