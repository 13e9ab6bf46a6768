"""The call center: the registry of live calls and of the legs we originated, the one unit of
work that changes them (`transaction`), the route table ARI events go through, and the
background tasks that belong to calls.

Invariants:
- Call and agent state change only inside `transaction()`; a call's state only through
  `move()`, which checks the transition table (`model.TRANSITIONS`). Leaving a
  transaction asks the router for assignments and writes the state through, so no change
  can leave a caller waiting beside a ready agent.
- This module knows no feature: what happens when a caller arrives, an agent answers or a
  leg ends is in the `Routes` the center is made with (`stasis.ROUTES`).
- Every dependency is given to `__init__`; nothing is set on the center from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from ccserver.acd import Acd, PinGuard
from ccserver.audit import AuditLog
from ccserver.calls.board import Wallboard
from ccserver.calls.desk import DeskFeed
from ccserver.calls.journal import Journal
from ccserver.calls.media import Media
from ccserver.calls.model import (
    CALLBACK_STATES,
    HOLDING_BRIDGE,
    TRANSITIONS,
    WAITING_STATES,
    Call,
    CallState,
    Leg,
    LegRole,
    Monitor,
    OutboundCall,
)
from ccserver.config import Config
from ccserver.errors import CCServerError
from ccserver.ivr.channel import OrderDesk
from ccserver.ivr.model import Flow
from ccserver.ivr.notices import NoticeBoard
from ccserver.logs import log
from ccserver.metrics import instruments
from ccserver.prompts import Prompts
from ccserver.records.outbound import OutboundBook
from ccserver.telephony.ari import AriError, AriEvent
from ccserver.telephony.rest import AriRest

logger = logging.getLogger("ccserver.calls")
PERSIST_COALESCE_S = 0.05
DESK_COALESCE_S = 0.02
"""How long the desks' look at the agents may wait for the commits after it: one look
costs about 3.5 µs per logged-in agent (0.6 ms for 180), so under load the commits of
20 ms share one."""
"""How long a change may wait to be written with the ones after it (`persist="soon"`)."""
Persist = Literal["now", "soon"]
_IN_TRANSACTION: contextvars.ContextVar[CallCenter | None] = contextvars.ContextVar(
    "ccserver_transaction", default=None
)


class Unit:
    """An open transaction, as its body sees it."""

    def __init__(self) -> None:
        self.commits = True

    def routing_unchanged(self) -> None:
        """Nothing the router or the ACD snapshot holds has changed (a call entering or
        leaving the IVR, a phone whose agent keeps their state): skip the dispatch and the
        write-through on the way out."""
        self.commits = False


class CallStateError(CCServerError):
    """A call-state move the transition table does not allow, or one made outside a
    transaction: a bug. Raised when the center is strict (tests), else logged and counted."""

    slug = "call-state-error"
    status = 500


EventHandler = Callable[["CallCenter", AriEvent], Awaitable[None]]
AnswerHandler = Callable[["CallCenter", Call, str], Awaitable[None]]
LegGoneHandler = Callable[["CallCenter", Call, str, int], Awaitable[None]]
CallerGoneHandler = Callable[["CallCenter", Call, int], Awaitable[None]]


@dataclass(frozen=True)
class Routes:
    """Who handles each ARI event that changes a call (`stasis.ROUTES` is the table)."""

    entries: Mapping[str, EventHandler]
    """StasisStart of a channel that is not a leg of ours, by its first Stasis argument
    (`inbound,<dnis>` from the hotline dialplan, `feature,<code>` from an agent's phone,
    `supervise,<code>` from a supervisor's)."""
    answered: Mapping[LegRole, AnswerHandler]
    """StasisStart of a leg we originated (it answered), by the leg's role."""
    leg_gone: Mapping[LegRole, LegGoneHandler]
    """A leg we originated ended (ChannelDestroyed with its cause), by the leg's role."""
    caller_gone: CallerGoneHandler
    """A call's own channel left (StasisEnd, or ChannelDestroyed with its cause)."""
    transfer_requested: EventHandler
    """A phone asked for a transfer (ChannelTransfer: a SIP REFER on an agent leg)."""
    monitor_event: EventHandler
    """StasisStart, StasisEnd or ChannelDestroyed of a supervisor's monitor session's
    channel (its phone's leg, its snoop on an agent's leg)."""
    outbound_event: EventHandler
    """StasisStart (answered), StasisEnd or ChannelDestroyed of an outbound call's channel
    (a follow-up or a campaign call to a customer)."""
    dispatch: Callable[[CallCenter], Awaitable[None]]
    """Ring agents for every assignment the router can make now; run as every transaction
    ends."""


class CallCenter:
    """The live calls and legs, their unit of work, and the services features use."""

    def __init__(
        self,
        *,
        config: Config,
        ari: AriRest,
        journal: Journal,
        prompts: Prompts,
        acd: Acd,
        routes: Routes,
        flows: Mapping[str, Flow] | None = None,
        notices: NoticeBoard | None = None,
        pins: Mapping[str, str] | None = None,
        lookups: aiohttp.ClientSession | None = None,
        desk: DeskFeed | None = None,
        audit: AuditLog | None = None,
        board: Wallboard | None = None,
        orders: OrderDesk | None = None,
        outbound: OutboundBook | None = None,
        outbound_flows: Mapping[str, Flow] | None = None,
    ) -> None:
        """`flows`: dialled number -> IVR flow; `notices`: the outage notice board (needs
        Redis); `pins`: agent id -> PIN; `lookups`: the HTTP session the flows' lookups
        use (needed when there are flows); `desk`: the agents' desk events, told of every
        commit; `audit`: where actions on others' calls are written (monitor sessions);
        `board`: the supervisors' wallboard, told of every commit as the desks are;
        `orders`: the work orders as the IVR flows open and read them; `outbound`: the
        outbound calls to place (follow-ups, campaigns) and their results, and
        `outbound_flows` what they play, by flow name."""
        self.config = config
        self.ari = ari
        self.journal = journal
        self.prompts = prompts
        self.acd = acd
        self.routes = routes
        self.flows: Mapping[str, Flow] = flows or {}
        self.notices = notices
        self.pins: Mapping[str, str] = pins or {}
        self.lookups = lookups
        self.desk = desk
        self.audit = audit
        self.board = board
        self.orders = orders
        self.outbound = outbound
        self.outbound_flows: Mapping[str, Flow] = outbound_flows or {}
        self.media = Media(ari)
        self.strict = config.controller.strict_states
        self.calls: dict[str, Call] = {}
        self.legs: dict[str, Leg] = {}  # channel id of a leg we originated -> its call, role
        self.monitors: dict[str, Monitor] = {}  # supervisors' sessions by id
        self.monitor_channels: dict[str, str] = {}  # a session's channel -> the session
        self.outbound_calls: dict[str, OutboundCall] = {}  # by channel
        self.sessions: dict[str, asyncio.Task[Any]] = {}  # call id -> the task talking to it
        self.rona_at: dict[str, float] = {}  # agent -> when their phone last rang out
        self.pin_guard = PinGuard(config.acd.pin_attempts)  # wrong PINs by phone or token
        self.recordings = config.run_dir / "asterisk" / "spool" / "recording"
        self._started = False
        self._lock = asyncio.Lock()
        self._persist_pending: asyncio.Task[None] | None = None
        self._observing: asyncio.Task[None] | None = None
        self._wakeups: dict[str, asyncio.Event] = {}
        self._music_stopped = False  # the holding bridge emptied: its music must restart
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- the unit of work ----------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def transaction(self, *, persist: Persist = "soon") -> AsyncIterator[Unit]:
        """Hold the center while changing calls or agents; when the body is done, ring
        agents for whatever the change made possible, then write the ACD state through to
        Redis. A body that raises commits nothing more: a refused request changed nothing,
        and a failed resync must not route on a state it did not reconcile.

        `persist="soon"` (coalesced within `PERSIST_COALESCE_S`) is right after an ARI
        event, a phone's state change or a timer: Asterisk's channels show the change
        too, and a controller killed inside the window reconciles with them on restart.
        `persist="now"` is right when nothing in Asterisk would tell a successor: an
        agent's own action (login, ready…), a callback parked or retried, a transfer or
        overflow, a recovery. A body that changed nothing the router sees says so
        (`Unit.routing_unchanged`). Transactions do not nest."""
        if _IN_TRANSACTION.get() is self:
            raise RuntimeError("a transaction of the call center is already open here")
        async with self._lock:
            token = _IN_TRANSACTION.set(self)
            unit = Unit()
            try:
                yield unit
                if unit.commits:
                    await self._commit(persist)
            finally:
                _IN_TRANSACTION.reset(token)

    async def _commit(self, persist: Persist) -> None:
        await self.routes.dispatch(self)
        watched = self.desk is not None or self.board is not None
        if watched and (self._observing is None or self._observing.done()):
            self._observing = self.spawn(self._observe_later(), "desk-observe")
        if persist == "now":
            await self.persist()
        else:
            self.persist_soon()

    def move(self, call: Call, to: CallState) -> None:
        """The one way a call's state changes. A move the table does not allow, or one
        made outside a transaction, is a bug: raised when strict (tests), else made anyway
        (the caller must not be stranded by our bug), logged and counted
        (`ccserver_call_state_errors_total`)."""
        was = call.state
        problem = None
        if to not in TRANSITIONS[was]:
            problem = "not-in-table"
        elif _IN_TRANSACTION.get() is not self:
            problem = "outside-transaction"
        if problem is not None:
            instruments.CALL_STATE_ERRORS.labels(was.value, to.value).inc()
            log(
                logger,
                "call.state_error",
                logging.ERROR,
                call=call.id,
                from_state=was.value,
                to_state=to.value,
                problem=problem,
            )
            if self.strict:
                raise CallStateError(f"call {call.id}: {was} -> {to}: {problem}")
        call.state = to
        log(logger, "call.state", call=call.id, from_state=was.value, to_state=to.value)

    @property
    def started(self) -> bool:
        """The ACD state was loaded (at the first connection to Asterisk)."""
        return self._started

    def loaded(self) -> None:
        """Recovery has loaded (or freshly started) the ACD state: persist from now on."""
        self._started = True

    # --- ARI events ----------------------------------------------------------------------
    async def on_event(self, event: AriEvent) -> None:
        """Every Stasis event: media first (playbacks, keys), then the call's route."""
        self.media.on_event(event)
        if event.type == "ChannelLeftBridge":
            self._holding_left(event)
        if event.type not in ("StasisStart", "StasisEnd", "ChannelDestroyed", "ChannelTransfer"):
            return
        async with self.transaction():
            await self._route(event)

    async def _route(self, event: AriEvent) -> None:
        channel = event.channel_id or ""
        if channel in self.monitor_channels and event.type != "ChannelTransfer":
            await self.routes.monitor_event(self, event)
        elif channel in self.outbound_calls and event.type != "ChannelTransfer":
            await self.routes.outbound_event(self, event)
        elif event.type == "ChannelTransfer":
            await self.routes.transfer_requested(self, event)
        elif event.type == "StasisStart":
            await self._stasis_start(event, channel)
        elif event.type == "StasisEnd":
            # A caller's channel came from the dialplan: when it hangs up it leaves Stasis
            # and goes back there to die, so ARI sends StasisEnd but no ChannelDestroyed.
            # Our own legs are ours to the end: ChannelDestroyed has the cause.
            self.media.gone(channel)
            if channel in self.calls:
                await self.routes.caller_gone(self, self.calls[channel], 0)
        else:  # ChannelDestroyed
            cause = event.int_field("cause") or 0
            self.media.gone(channel)
            if channel in self.calls:
                await self.routes.caller_gone(self, self.calls[channel], cause)
            elif channel in self.legs:
                leg = self.legs.pop(channel)
                call = self.calls.get(leg.call)
                if call is not None:
                    await self.routes.leg_gone[leg.role](self, call, channel, cause)

    async def _stasis_start(self, event: AriEvent, channel: str) -> None:
        if not channel:  # a malformed event: nothing to answer, hang up or register
            log(logger, "call.stasis_without_channel", logging.WARNING, args=",".join(event.args))
            return
        args = event.args
        kind = args[0] if args else ""
        leg = self.legs.get(channel)
        if kind in ("agent", "callback"):
            call = self.calls.get(leg.call) if leg is not None else None
            if leg is None or call is None:
                log(logger, "call.late_answer", logging.WARNING, leg=channel, args=",".join(args))
                await self.drop_leg(channel)
                return
            await self.routes.answered[leg.role](self, call, channel)
        elif kind in self.routes.entries:
            await self.routes.entries[kind](self, event)
        else:
            log(
                logger,
                "call.unknown_stasis_entry",
                logging.WARNING,
                channel=channel,
                args=",".join(args),
            )
            await self.ari.hangup(channel)

    def _holding_left(self, event: AriEvent) -> None:
        """Asterisk stops a bridge's music when its last caller leaves (and drops the
        announcer channel that played it): the next caller held would hear silence. So the
        music starts again with the next caller held, or at once when a caller of ours
        should be in the holding bridge already (held while this event was on its way)."""
        bridge = event.data.get("bridge") or {}
        if bridge.get("id") != HOLDING_BRIDGE:
            return
        if any(channel in self.calls for channel in bridge.get("channels") or []):
            return  # callers remain (the other channel listed is the music's announcer)
        self._music_stopped = True
        if any(c.state in WAITING_STATES or c.held for c in self.calls.values()):
            self.spawn(self._restart_music(), "holding-music")

    async def _restart_music(self) -> None:
        if self._music_stopped:
            self._music_stopped = False
            try:
                await self.ari.start_moh(HOLDING_BRIDGE, self.config.controller.moh_class)
            except AriError as exc:
                self._music_stopped = True
                log(logger, "call.music_failed", logging.WARNING, error=str(exc))

    # --- tasks ---------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """A background task that is cancelled at `close()` and logs when it fails. It
        runs outside any transaction of its creator (it opens its own)."""
        context = contextvars.copy_context()
        context.run(_IN_TRANSACTION.set, None)
        task = asyncio.create_task(coro, name=name, context=context)
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

    @property
    def tasks(self) -> frozenset[asyncio.Task[Any]]:
        return frozenset(self._tasks)

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def wake(self, call: Call) -> None:
        """Tell the call's session that its state changed."""
        self._wakeups.setdefault(call.id, asyncio.Event()).set()

    def wakeup(self, call: Call) -> asyncio.Event:
        return self._wakeups.setdefault(call.id, asyncio.Event())

    def forget(self, call: Call) -> None:
        """An ended call leaves the registry (its session, if any, sees `ENDED` and stops)."""
        self.wake(call)
        self.calls.pop(call.id, None)
        self._wakeups.pop(call.id, None)
        self.sessions.pop(call.id, None)

    async def _observe_later(self) -> None:
        """Let the desks and the wallboard see what the commits of the last moment changed
        (`DeskFeed`, `Wallboard`)."""
        await asyncio.sleep(DESK_COALESCE_S)
        async with self._lock:
            now = time.time()
            if self.desk is not None:
                self.desk.observe(self.calls, self.acd, now)
            if self.board is not None:
                self.board.observe(self.calls, self.acd, now)

    # --- writing state through -----------------------------------------------------------
    def persist_soon(self) -> None:
        """Persist within `PERSIST_COALESCE_S`. Under load events come every few
        milliseconds and each full snapshot costs the controller more than the event
        itself, so they are coalesced; a reservation is still written as its phone rings
        (`routing.dispatch`)."""
        if self._persist_pending is None or self._persist_pending.done():
            self._persist_pending = self.spawn(self._persist_later(), "acd-persist")

    async def _persist_later(self) -> None:
        await asyncio.sleep(PERSIST_COALESCE_S)
        async with self._lock:
            await self.persist()

    async def persist(self) -> None:
        """Write the ACD state (and the callbacks waiting for a retry, which the router
        does not hold) through to Redis, once the state was loaded."""
        if self._started:
            parked = [c.id for c in self.calls.values() if c.state == CallState.CALLBACK_WAIT]
            await self.journal.save_acd(self.acd, parked)

    # --- shared steps --------------------------------------------------------------------
    async def hold(self, channel: str) -> bool:
        """Put a caller in the holding bridge (music); False when the caller is gone."""
        try:
            await self.ari.add_to_bridge(HOLDING_BRIDGE, channel)
        except AriError as exc:
            if exc.status == 404:
                return False
            log(logger, "call.hold_failed", logging.WARNING, call=channel, error=str(exc))
        await self._restart_music()
        return True

    async def drop_leg(self, leg: str) -> None:
        """Forget a leg of ours, then hang it up: its end event finds no leg and changes
        nothing (whoever drops it has already decided what the call does next)."""
        self.legs.pop(leg, None)
        await self.ari.hangup(leg)

    async def say(self, channel: str, text: str, *, interruptible: bool = False) -> str:
        """Speak `text` to a channel in the center's language (generated once, then
        cached); returns the key that interrupted it, or ""."""
        language = self.config.acd.language
        sound = await asyncio.to_thread(self.prompts.sound, text, language)
        return await self.media.play(channel, [sound], interruptible=interruptible)

    def summary(self) -> dict[str, Any]:
        live = [c for c in self.calls.values() if c.state != CallState.ENDED]
        return {
            "calls": len(live),
            "waiting": sum(1 for c in live if c.state == CallState.WAITING),
            "callbacks": sum(1 for c in live if c.state in CALLBACK_STATES),
            "agents": self.acd.counts(),
        }
