"""What each agent's desk shows, as a numbered stream of events per agent.

Within `DESK_COALESCE_S` (20 ms) of a unit of work committing, the center calls
`DeskFeed.observe` (under its lock; the commits of those 20 ms share one look): for each
agent the router knows it takes a `DeskView` (state and reason, the call the agent is on,
that call's state, whether it is held, the end of wrap-up) and turns what differs from the
last view into events (`changes`): `agent.state`, `call.offered` (with the screen pop),
`call.connected`, `call.consulting`, `call.held` / `call.unheld`, `call.transferred`,
`call.withdrawn`, `call.ended`, `wrapup.started` / `wrapup.extended` / `wrapup.ended`.
docs/api.md has the JSON schema of each.

Invariants:
- `seq` counts each agent's events 1, 2, 3 … with no gap, also across controller restarts:
  the feed starts from the last event in Redis and compares with the view it carried, so a
  change made while no controller ran still becomes an event.
- An event reaches a desk only after Redis holds it, so a desk that reconnects with
  `after=N` gets a snapshot (the view of the last event written), then every event after N,
  each exactly once.
- `observe` never awaits (it runs under the center's lock): it compares and queues;
  one writer task builds the screen pops, writes and hands out the events, in order.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from ccserver.acd import Acd
from ccserver.calls.model import Call, CallState
from ccserver.config import QueueConfig
from ccserver.history import History
from ccserver.ivr.notices import NoticeBoard
from ccserver.logs import log
from ccserver.records import Records

logger = logging.getLogger("ccserver.desk")
RINGING_STATES = frozenset({CallState.RINGING.value, CallState.CALLBACK_RINGING.value})
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 8.0
CONTACTS_MAX = 20


class DeskStreams(Protocol):
    """Where the events are kept (`ccserver.desk_streams.RedisDeskStreams`): one stream
    per agent, ids `<seq>-0`, trimmed to the latest events."""

    async def last(self, agents: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The newest event of each agent that has one."""
        ...

    async def append(self, agent: str, event: dict[str, Any]) -> None:
        """Raises ConnectionError while the store is away (the feed retries)."""
        ...

    async def between(self, agent: str, after: int, upto: int) -> list[dict[str, Any]]:
        """The agent's events with after < seq <= upto, oldest first."""
        ...


class DeskView(NamedTuple):
    """What an agent's desk shows of the agent and its call. A tuple: `observe` builds one
    per logged-in agent at every commit, so it must be cheap to make and to compare."""

    state: str = "logged-out"
    reason: str | None = None
    phone: str | None = None
    call: str | None = None  # the call the agent rings for or talks on
    call_state: str | None = None
    held: bool = False
    wrap_until: float | None = None
    last_call: str | None = None  # the call of the wrap-up, and of the disposition

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeskView:
        return cls(**{k: v for k, v in data.items() if k in cls._fields})


NO_VIEW = DeskView()


def changes(old: DeskView, new: DeskView, gone_state: str | None) -> list[str]:
    """The event types that take a desk from `old` to `new`, in order. `gone_state`: the
    state now of the call the agent left (None when it is no longer known: ended)."""
    types: list[str] = []
    if old.call != new.call:
        if old.call is not None:
            if gone_state is None or gone_state == CallState.ENDED:
                types.append("call.ended")
            elif old.call_state in RINGING_STATES:
                types.append("call.withdrawn")
            else:
                types.append("call.transferred")
        if new.call is not None:
            types.append("call.offered" if new.call_state in RINGING_STATES else "call.state")
    elif new.call is not None and old.call_state != new.call_state:
        if new.call_state == CallState.CONNECTED:
            types.append("call.connected")
        elif new.call_state == CallState.CONSULTING:
            types.append("call.consulting")
        else:
            types.append("call.state")
    if new.call is not None and old.call == new.call and old.held != new.held:
        types.append("call.held" if new.held else "call.unheld")
    if (old.state, old.reason, old.phone) != (new.state, new.reason, new.phone):
        types.append("agent.state")
        if new.state == "wrap-up":
            types.append("wrapup.started")
        elif old.state == "wrap-up":
            types.append("wrapup.ended")
    elif new.state == "wrap-up" and old.wrap_until != new.wrap_until:
        types.append("wrapup.extended")
    return types


BUILT_IN_VARIABLES = frozenset({"caller", "dnis", "call_id"})
"""Flow variables every call has; the pop shows what the caller entered or heard."""


def call_context(call: Call, queue: QueueConfig | None, now: float) -> dict[str, Any]:
    """The call as a desk shows it: who, where from, how long, what the IVR learned and why
    the router chose this agent; `queue` is the config of the call's queue."""
    route = call.ivr_route or {}
    variables = route.get("variables") or {}
    return {
        "id": call.id,
        "caller": call.caller,
        "dnis": call.dnis,
        "queue": call.queue,
        "state": call.state.value,
        "held": call.held,
        "arrived_at": call.arrived_at,
        "queued_at": call.queued_at,
        "waited_s": None if call.queued_at is None else round(now - call.queued_at, 1),
        "connected_at": call.connected_at,
        "ended_at": call.ended_at,
        "outcome": None if call.outcome is None else call.outcome.value,
        "ivr": {
            "flow": route.get("flow"),
            "path": route.get("route", []),
            "entered": [i for i in route.get("inputs", []) if i.get("result") == "ok"],
            "variables": {k: v for k, v in variables.items() if k not in BUILT_IN_VARIABLES},
        },
        "why": why_this_agent(call.decision, skill_groups(queue)),
        "decision": call.decision,
        "disposition": call.disposition,
        "note": call.note,
        "dispositions": [] if queue is None else list(queue.dispositions),
    }


def skill_groups(queue: QueueConfig | None) -> list[dict[str, int]]:
    """The queue's skill groups in the router's order: its own skills (group 0), then the
    groups its relaxation steps add."""
    if queue is None:
        return []
    return [queue.skills, *(group for step in queue.relaxation for group in step.add)]


def why_this_agent(decision: Mapping[str, Any] | None, groups: list[dict[str, int]]) -> str | None:
    """The router's reason in one line, e.g. "longest-idle: billing at level 7, widened at
    step 1; caller waited 61 s"."""
    if not decision:
        return None
    index = int(decision.get("group") or 0)
    skills = ", ".join(sorted(groups[index])) if index < len(groups) else f"group {index}"
    text = f"{decision.get('strategy')}: {skills} at level {decision.get('level')}"
    if decision.get("step"):
        text += f", widened at step {decision['step']}"
    if decision.get("waited_s") is not None:
        text += f"; caller waited {decision['waited_s']:.0f} s"
    return text


class DeskFeed:
    """The per-agent event streams of the desks (see the module docstring)."""

    def __init__(
        self,
        streams: DeskStreams,
        *,
        history: History | None,
        notices: NoticeBoard | None,
        history_days: int,
        queues: Mapping[str, QueueConfig],
        records: Records | None = None,
    ) -> None:
        """`queues`: the queues' config by name (their dispositions and skill groups);
        `records`: the work orders (the pop lists the caller's open ones) and the knowledge
        base (the pop suggests articles)."""
        self.streams = streams
        self.history = history
        self.records = records
        self.notices = notices
        self.history_days = history_days
        self.queues = queues
        self._views: dict[str, DeskView] = {}  # as last turned into events
        self._contexts: dict[str, dict[str, Any]] = {}  # agent -> its call as last seen
        self._seq: dict[str, int] = defaultdict(int)  # as last numbered
        self._written: dict[str, dict[str, Any]] = {}  # agent -> its last event in Redis
        self._latest: dict[str, dict[str, Any]] = {}  # agent -> its last event numbered
        self._pending: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._loaded = False

    async def load(self, agents: Iterable[str]) -> None:
        """Continue each agent's numbering from Redis (before the first `observe`)."""
        for agent, event in (await self.streams.last(agents)).items():
            self._seq[agent] = int(event["seq"])
            self._views[agent] = DeskView.from_dict(event.get("view") or {})
            if event.get("call"):
                self._contexts[agent] = event["call"]
            self._written[agent] = event
        self._loaded = True

    # --- inside the transaction ----------------------------------------------------------
    def observe(self, calls: Mapping[str, Call], acd: Acd, now: float) -> None:
        """Turn what changed since the last look into numbered events (no I/O)."""
        if not self._loaded:
            return
        logged_in = set(acd.router.agents())
        for agent in logged_in.union(self._views):
            old = self._views.get(agent, NO_VIEW)
            new = self._view(agent, agent in logged_in, calls, acd, old)
            if new == old:
                continue
            gone = calls.get(old.call) if old.call is not None else None
            types = changes(old, new, None if gone is None else gone.state.value)
            self._views[agent] = new
            for kind in types:
                context = self._context_for(agent, kind, old, new, calls, now)
                self._seq[agent] += 1
                event = {
                    "seq": self._seq[agent],
                    "type": kind,
                    "at": round(now, 3),
                    "agent": agent,
                    "view": new.to_dict(),
                    "call": context,
                }
                self._queue(event)
            if new.state == "logged-out":
                del self._views[agent]  # nothing more to watch until it logs in again

    def tell(self, agent: str, kind: str, now: float, **about: Any) -> None:
        """An event about something beside the agent's call (`order.escalated`: a work
        order the agent opened is being chased), numbered with the others; it repeats the
        view and call of the agent's last event, so the desk shows them on as they were."""
        if not self._loaded:
            return
        last = self._latest.get(agent) or self._written.get(agent) or {}
        self._seq[agent] += 1
        self._queue(
            {
                "seq": self._seq[agent],
                "type": kind,
                "at": round(now, 3),
                "agent": agent,
                "view": last.get("view") or NO_VIEW.to_dict(),
                "call": last.get("call"),
                **about,
            }
        )

    def _queue(self, event: dict[str, Any]) -> None:
        self._latest[event["agent"]] = event
        self._pending.put_nowait(event)

    def _view(
        self, agent: str, logged_in: bool, calls: Mapping[str, Call], acd: Acd, old: DeskView
    ) -> DeskView:
        if not logged_in:
            return DeskView(last_call=old.last_call)
        view = acd.router.agent(agent)
        call = calls.get(view.call) if view.call else None
        return DeskView(
            state=view.state,
            reason=view.reason,
            phone=acd.agents[agent].phone,
            call=view.call or None,
            call_state=None if call is None else call.state.value,
            held=False if call is None else call.held,
            wrap_until=view.wrap_until if view.state == "wrap-up" else None,
            last_call=view.call or old.last_call,
        )

    def _context_for(
        self,
        agent: str,
        kind: str,
        old: DeskView,
        new: DeskView,
        calls: Mapping[str, Call],
        now: float,
    ) -> dict[str, Any] | None:
        """The call an event is about: the one left for ended/withdrawn/transferred, else
        the agent's current (or wrap-up's) call; a call no longer live keeps its last
        context, marked ended."""
        leaving = kind in ("call.ended", "call.withdrawn", "call.transferred")
        call_id = old.call if leaving else (new.call or new.last_call)
        if call_id is None:
            return None
        call = calls.get(call_id)
        if call is not None:
            context = call_context(call, self.queues.get(call.queue or ""), now)
            self._contexts[agent] = context
            return context
        last = self._contexts.get(agent)
        if last is None or last.get("id") != call_id:
            return {"id": call_id, "state": CallState.ENDED.value}
        return {**last, "state": CallState.ENDED.value}

    # --- the writer ----------------------------------------------------------------------
    async def run(self, agents: Iterable[str]) -> None:
        """Load the numbering of `agents` (retrying while Redis is away: no event is made
        meanwhile, and the first look after it catches up), then write the queued events
        to Redis in order and hand each to the desks of its agent. Runs for the
        controller's life."""
        ids, delay = list(agents), RETRY_FIRST_S
        while not self._loaded:
            try:
                await self.load(ids)
            except Exception as exc:
                log(logger, "desk.load_retry", logging.WARNING, error=repr(exc)[:200])
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
        while True:
            event = await self._pending.get()
            if event["type"] == "call.offered" and event["call"] is not None:
                event["call"]["pop"] = await self.pop(event["call"])
            if await self._write(event):
                self._written[event["agent"]] = event
                for subscriber in self._subscribers.get(event["agent"], ()):
                    subscriber.put_nowait(event)

    async def _write(self, event: dict[str, Any]) -> bool:
        """Retry while Redis is away (the desks wait, the calls do not); False for an
        event Redis refuses for good, which is logged and never shown."""
        delay = RETRY_FIRST_S
        while True:
            try:
                await self.streams.append(event["agent"], event)
                return True
            except ConnectionError as exc:
                log(logger, "desk.write_retry", logging.WARNING, error=repr(exc)[:200])
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            except Exception as exc:
                log(
                    logger,
                    "desk.write_failed",
                    logging.ERROR,
                    agent=event["agent"],
                    seq=event["seq"],
                    error=repr(exc)[:200],
                )
                return False

    async def pop(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """The screen pop beyond the call itself: the caller's contacts of the last
        `history_days` days, the caller's open work orders, the articles of the knowledge
        base the call's tags suggest (its queue, IVR route and disposition) and the outage
        notices that reach the caller now."""
        caller = str(context.get("caller") or "")
        contacts: list[dict[str, Any]] = []
        notices: list[dict[str, Any]] = []
        orders: list[dict[str, Any]] = []
        articles: list[dict[str, Any]] = []
        if caller and self.history is not None:
            since = time.time() - self.history_days * 86400.0
            rows = await asyncio.to_thread(self.history.contacts, caller, since, limit=CONTACTS_MAX)
            contacts = [r for r in rows if r["call_id"] != context.get("id")]
        if self.records is not None:
            try:
                orders, articles = await asyncio.to_thread(self._records_for, caller, context)
            except Exception as exc:  # a pop without them beats no pop
                log(logger, "desk.records_failed", logging.WARNING, error=repr(exc)[:200])
        if caller and self.notices is not None:
            try:
                found = await self.notices.active_for(caller, dt.datetime.now(dt.UTC))
                notices = [n.to_dict() for n in found]
            except Exception as exc:  # a pop without notices beats no pop
                log(logger, "desk.notices_failed", logging.WARNING, error=repr(exc)[:200])
        return {"contacts": contacts, "notices": notices, "orders": orders, "articles": articles}

    def _records_for(
        self, caller: str, context: Mapping[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The caller's open work orders and the articles suggested for the call."""
        assert self.records is not None
        orders = (
            [o.to_dict() for o in self.records.orders.find(caller=caller, open_only=True)]
            if caller
            else []
        )
        ivr = context.get("ivr") or {}
        tags = [context.get("queue"), context.get("disposition"), *(ivr.get("path") or [])]
        suggested = self.records.knowledge.suggest(t for t in tags if isinstance(t, str))
        articles = [{"id": a.id, "title": a.title, "tags": list(a.tags)} for a in suggested]
        return orders, articles

    # --- the desks -----------------------------------------------------------------------
    async def stream(self, agent: str, after: int | None) -> AsyncIterator[dict[str, Any]]:
        """A desk's events: a `snapshot` (the view of the last event written, `seq` of that
        event), then the events after `after` up to it, then each new one as written."""
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers[agent].add(inbox)
        try:
            last = self._written.get(agent)
            head = 0 if last is None else int(last["seq"])
            view = NO_VIEW if last is None else DeskView.from_dict(last["view"])
            reset = after is not None and after > head
            yield {
                "type": "snapshot",
                "seq": head,
                "agent": agent,
                "view": view.to_dict(),
                "call": None if last is None else last.get("call"),
                "reset": reset,
            }
            sent = head
            if after is not None and not reset and after < head:
                for event in await self.streams.between(agent, after, head):
                    yield event
            while True:
                event = await inbox.get()
                if int(event["seq"]) > sent:
                    sent = int(event["seq"])
                    yield event
        finally:
            self._subscribers[agent].discard(inbox)

    def pending(self) -> int:
        """Events numbered but not yet written (for /healthz)."""
        return self._pending.qsize()
