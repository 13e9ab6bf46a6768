"""What the supervisors' wallboard (`/wallboard/`) shows: each queue and each agent now,
and per queue the calls answered and abandoned today and in the last 30 minutes with their
service level.

- Live figures are read from the center at each look (`observe`, run by the center within
  `DESK_COALESCE_S` of a commit, as the desks' are): per queue the callers waiting and
  when the oldest of them entered the queue (the router's figures, as `GET /queues` gives
  them; the page ticks the wait), callers in the IVR, calls talking and the expected wait;
  per agent its state and reason, since when (this process saw the change; at start the
  history's last change), and its call's queue and start.
- Counts come from the queue events the journal records (`count`), the same the metrics
  count: a `connect` with a wait is an answer in its queue (and a call of its agent), an
  `abandon` with a wait an abandon, short below `reports.short_abandon_s`. Service level is
  answered within `reports.service_level_s` over the base `reports.service_level_definition`
  names, of the calls that have left the queue (answered or abandoned). Today is the day in
  `ivr.timezone`; at start today's events are read back from the history, so a restart loses
  none of them.

Invariants: `observe` never awaits, and builds nothing while no wallboard watches; a
watcher gets the whole board at once and again at every change (never a diff it could miss).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter, defaultdict, deque
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

from ccserver.acd import Acd
from ccserver.calls.model import TALKING_STATES, Call, CallState
from ccserver.config import Config
from ccserver.history import History

RECENT_S = 30 * 60.0
WAITING_LISTED = 50  # the longest-waiting callers the board lists (to move them)
ANSWERED, ABANDONED, SHORT = "answered", "abandoned", "short"


@dataclass
class _Tally:
    answered: int = 0
    in_time: int = 0
    abandoned: int = 0
    short: int = 0

    def add(self, kind: str, in_time: bool) -> None:
        if kind == ANSWERED:
            self.answered += 1
            self.in_time += in_time
        elif kind == ABANDONED:
            self.abandoned += 1
        else:
            self.short += 1

    def figures(self, definition: str) -> dict[str, Any]:
        base = {
            "answered": self.answered,
            "offered": self.answered + self.abandoned + self.short,
            "offered-minus-short": self.answered + self.abandoned,
        }[definition]
        return {
            "answered": self.answered,
            "abandoned": self.abandoned,
            "short_abandoned": self.short,
            "service_level": None if base == 0 else round(self.in_time / base, 4),
        }


class Wallboard:
    def __init__(self, config: Config, history: History | None) -> None:
        self.config = config
        self.history = history
        self.zone = config.ivr.zone()
        self._day: dt.date | None = None
        self._today: dict[str, _Tally] = defaultdict(_Tally)
        self._agent_calls: Counter[str] = Counter()  # calls answered today by agent
        self._recent: deque[tuple[float, str, str, bool]] = deque()  # at, queue, kind, in time
        self._since: dict[str, tuple[str, str | None, float]] = {}  # agent: state, reason, since
        self._watchers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._last: dict[str, Any] | None = None
        self.orders: list[dict[str, Any]] = []
        """The open work orders being chased, most urgent first (`calls.work_orders` keeps
        it); the banner shows them."""

    # --- counts --------------------------------------------------------------------------
    def load(self, now: float) -> None:
        """Today's answers and abandons, and each agent's last state change, from the
        history (before the first `observe`)."""
        self._roll(now)
        if self.history is None:
            return
        midnight = dt.datetime.combine(self._day or dt.date.today(), dt.time(), self.zone)
        for event in self.history.queue_events_since(midnight.timestamp()):
            self.count(event["kind"], event["queue"], event["agent"], event["fields"], event["at"])
        for change in self.history.last_agent_states():
            self._since[change["agent"]] = (change["state"], change["reason"], change["at"])

    def count(
        self, kind: str, queue: str | None, agent: str | None, fields: Mapping[str, Any], at: float
    ) -> None:
        """One queue event as the journal records it (only answers and abandons count)."""
        wait = fields.get("wait_s")
        if kind not in ("connect", "abandon") or wait is None or not queue:
            return
        self._roll(at)
        settings = self.config.reports
        if kind == "connect":
            what = ANSWERED
            if agent:
                self._agent_calls[agent] += 1
        else:
            what = SHORT if float(wait) < settings.short_abandon_s else ABANDONED
        in_time = what == ANSWERED and float(wait) <= settings.service_level_s
        self._today[queue].add(what, in_time)
        self._recent.append((at, queue, what, in_time))

    def _roll(self, now: float) -> None:
        """A new day in `ivr.timezone` starts today's counts afresh."""
        day = dt.datetime.fromtimestamp(now, self.zone).date()
        if day != self._day:
            self._day = day
            self._today.clear()
            self._agent_calls.clear()

    # --- the board -------------------------------------------------------------------------
    def observe(self, calls: Mapping[str, Call], acd: Acd, now: float) -> None:
        """Build the board and hand it to the watchers when it changed (no I/O)."""
        self._track_states(acd, now)
        if not self._watchers:
            return
        board = self.board(calls, acd, now)
        if board != self._last:
            self._last = board
            for watcher in self._watchers:
                watcher.put_nowait(board)

    def _track_states(self, acd: Acd, now: float) -> None:
        for agent in acd.agents:
            view = acd.agent_view(agent)
            known = self._since.get(agent)
            if known is None or known[:2] != (view["state"], view["reason"]):
                self._since[agent] = (view["state"], view["reason"], now)

    def board(self, calls: Mapping[str, Call], acd: Acd, now: float) -> dict[str, Any]:
        """The whole board now (times as epoch seconds; the page ticks them)."""
        self._roll(now)
        while self._recent and self._recent[0][0] < now - RECENT_S:
            self._recent.popleft()
        recent: dict[str, _Tally] = defaultdict(_Tally)
        for _, queue, what, in_time in self._recent:
            recent[queue].add(what, in_time)
        definition = self.config.reports.service_level_definition
        entry = self.config.acd.entry
        live = list(calls.values())
        queues = []
        for spec in self.config.acd.queues:
            view = acd.queue_view(spec.name, now)  # the figures GET /queues and /metrics give
            queues.append(
                {
                    "name": spec.name,
                    "waiting": view["waiting"],
                    "oldest_since": round(now - view["oldest_wait_s"], 3)
                    if view["waiting"]
                    else None,
                    "in_ivr": sum(
                        1
                        for c in live
                        if c.state == CallState.IVR and (c.queue or entry.get(c.dnis)) == spec.name
                    ),
                    "talking": sum(
                        1 for c in live if c.queue == spec.name and c.state in TALKING_STATES
                    ),
                    "ewt_s": view["ewt_s"],
                    "today": self._today[spec.name].figures(definition),
                    "last_30m": recent[spec.name].figures(definition),
                }
            )
        agents = []
        for agent_id in sorted(acd.agents):
            view = acd.agent_view(agent_id)
            call = calls.get(view["call"] or "")
            since = self._since.get(agent_id)
            agents.append(
                {
                    "id": agent_id,
                    "name": view["name"],
                    "state": view["state"],
                    "reason": view["reason"],
                    "since": None if since is None else round(since[2], 3),
                    "call": None
                    if call is None
                    else {
                        "id": call.id,
                        "queue": call.queue,
                        "state": call.state.value,
                        "since": call.connected_at or call.queued_at or call.arrived_at,
                    },
                    "calls_today": self._agent_calls[agent_id],
                }
            )
        return {
            "type": "board",
            "queues": queues,
            "agents": agents,
            "in_ivr": sum(1 for c in live if c.state == CallState.IVR),
            "waiting_calls": [
                {
                    "id": c.id,
                    "caller": c.caller,
                    "queue": c.queue,
                    "queued_at": c.queued_at,
                    "priority": c.priority,
                }
                for c in sorted(live, key=lambda c: c.queued_at or now)
                if c.state == CallState.WAITING
            ][:WAITING_LISTED],
            "thresholds": self.config.wallboard.model_dump(),
            "language": self.config.acd.language,
        }

    async def watch(
        self, calls: Mapping[str, Call], acd: Acd
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The board now, then again at every change."""
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._watchers.add(inbox)
        try:
            self._last = self.board(calls, acd, time.time())
            yield self._last
            while True:
                board = await inbox.get()
                while not inbox.empty():  # a slow watcher gets the newest board only
                    board = inbox.get_nowait()
                yield board
        finally:
            self._watchers.discard(inbox)
