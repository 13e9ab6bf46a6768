"""KPI reports: the history store's rows in, one row of numbers per group out.

Pure computations (no I/O, no clock): `report_cli` reads the rows and prints the result.
The rows have the shapes of `History`'s read helpers — a call is its columns plus the
parsed `record`, an event has its parsed `fields`.

Every call is counted once, by how it was served, in this order:

- **ivr**: self-service served the caller (`handled_by == "ivr"`: a node the flow marks
  `self_service` finished, or the flow handed the call on);
- **callback**: the caller asked to be called back and an agent reached them;
- **answered**: an agent talked with the caller on the line, at least once (a call that
  was answered, transferred and then abandoned in the second queue is answered);
- **lost**: none of these — the call loss (IVR abandons included: callers who left the
  IVR before any self-service node finished).

So offered = ivr_handled + answered + callbacks_done + call_loss, in every group. A call
belongs to the band, hour or day of its *arrival*, to its last queue and to the last agent
who talked with it; agent state time (occupancy) is cut at the clock's boundaries instead.
docs/reports.md defines each column.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal
from zoneinfo import ZoneInfo

from ccserver.config import ReportsConfig

GroupBy = Literal["band", "hour", "day", "queue", "agent"]
GROUP_BY: tuple[GroupBy, ...] = ("band", "hour", "day", "queue", "agent")
TOTAL = "(total)"
NO_GROUP = "(none)"
"""The group of calls without a queue or agent; parenthesised labels can't be the name of
a queue, a band or an agent, nor a date."""

SEGMENT_ENDS = frozenset({"transfer", "agent_hangup", "complete", "abandon"})
"""Events that end a caller's talk with an agent (a `connect` starts one)."""
OCCUPIED_STATES = frozenset({"busy", "wrap-up"})
LOGGED_OUT = "logged-out"
WRAP_UP = "wrap-up"
WRAP_MATCH_BEFORE_S = 1.0
WRAP_MATCH_AFTER_S = 5.0
"""A wrap-up state change this close to the end of a talk is that talk's wrap-up (the
controller notes the agent's state and the call's event a few milliseconds apart)."""

Served = Literal["ivr", "callback", "answered", "lost"]


@dataclass(frozen=True)
class Rows:
    """What a report reads from the history store."""

    calls: Sequence[Mapping[str, Any]]
    """Calls that arrived in the period (others are ignored)."""
    events: Sequence[Mapping[str, Any]]
    """The events of those calls."""
    agent_events: Sequence[Mapping[str, Any]]
    """Each agent's last state change before the period and every change after it."""
    arrivals: Sequence[Mapping[str, Any]]
    """`call_id`, `caller`, `arrived_at` and `disposition` of the calls from the period's
    start to the end of the FCR window of its last call: where repeat calls are looked for."""
    order_links: Mapping[str, frozenset[int]] = field(default_factory=dict)
    """The work orders each call is linked to (by call id): two contacts linked to one
    order are about the same matter."""
    qa_scores: Sequence[Mapping[str, Any]] = ()
    """`call_id`, `total` and `max_points` of the quality scores of the period's calls."""


@dataclass(frozen=True)
class Segment:
    """A stretch of the caller talking with one agent."""

    agent: str | None
    start: float
    end: float


@dataclass(frozen=True)
class CallFacts:
    """What the KPIs need to know of one call, derived once from its record and events."""

    call_id: str
    caller: str
    arrived_at: float
    ended_at: float | None
    queue: str | None
    served: Served
    ivr_abandoned: bool
    """Lost in the IVR: the caller left before any self-service node finished."""
    queued: bool
    first_wait_s: float | None
    """Answered calls: the wait until the first agent answered."""
    abandon_wait_s: float | None
    """Calls abandoned in a queue: the wait until the caller hung up."""
    callback: bool
    transfers: int
    segments: tuple[Segment, ...]
    survey_score: float | None
    disposition: str | None = None
    """The agent's wrap-up code (the desk's), when one was given."""

    @property
    def agent(self) -> str | None:
        """The last agent who talked with the caller."""
        return self.segments[-1].agent if self.segments else None


def call_facts(call: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> CallFacts:
    """The call's facts from its row and its events. Events are preferred to the record's
    columns where a transfer rewrites the record: it keeps only the last connection, so
    the first answer's wait and the earlier talks are in the events alone."""
    record: Mapping[str, Any] = call.get("record") or {}
    ordered = sorted(events, key=lambda e: (e["at"], e.get("id", 0)))
    segments = _segments(call, ordered)
    callback = record.get("callback")
    callback_done = isinstance(callback, Mapping) and _any_answered(callback.get("attempts"))
    served: Served
    if call.get("handled_by") == "ivr":
        served = "ivr"
    elif callback_done:
        served = "callback"
    elif segments or _any_answered(record.get("attempts")):
        served = "answered"
    else:
        served = "lost"
    queued_at, wait_s = _number(call.get("queued_at")), _number(call.get("wait_s"))
    first_wait = abandon_wait = None
    if served == "answered":
        first_wait = next(
            (float(e["fields"]["wait_s"]) for e in ordered if _is_first_answer(e)), wait_s
        )
    ended_at = _number(call.get("ended_at"))
    if served == "lost" and queued_at is not None and call.get("outcome") == "abandoned":
        abandon_wait = wait_s if wait_s is not None else (ended_at or queued_at) - queued_at
    kinds = [e["kind"] for e in ordered]
    agent_transfers = sum(1 for e in ordered if e["kind"] == "transfer" and "mode" in e["fields"])
    return CallFacts(
        call_id=str(call["call_id"]),
        caller=str(call.get("caller") or ""),
        arrived_at=float(call["arrived_at"]),
        ended_at=ended_at,
        queue=call.get("queue"),
        served=served,
        ivr_abandoned=served == "lost" and call.get("outcome") == "ivr-abandoned",
        queued=queued_at is not None,
        first_wait_s=first_wait,
        abandon_wait_s=abandon_wait,
        callback=callback is not None,
        transfers=max(agent_transfers - kinds.count("transfer_cancelled"), 0),
        segments=segments,
        survey_score=_number(call.get("survey_score")),
        disposition=record.get("disposition"),
    )


def _segments(call: Mapping[str, Any], ordered: Sequence[Mapping[str, Any]]) -> tuple[Segment, ...]:
    """The caller's talks with agents: from each `connect` to the next event that ends it,
    else to the end of the call. Without events, the record's one connection."""
    found: list[Segment] = []
    opened: tuple[str | None, float] | None = None
    for event in ordered:
        if event["kind"] == "connect":
            if opened is not None:
                found.append(Segment(opened[0], opened[1], event["at"]))
            opened = (event.get("agent"), event["at"])
        elif event["kind"] in SEGMENT_ENDS and opened is not None:
            found.append(Segment(opened[0], opened[1], event["at"]))
            opened = None
    connected, ended = _number(call.get("connected_at")), _number(call.get("ended_at"))
    if opened is not None and ended is not None:
        found.append(Segment(opened[0], opened[1], max(ended, opened[1])))
    if not found and connected is not None and ended is not None:
        found.append(Segment(call.get("agent"), connected, ended))
    return tuple(found)


def _is_first_answer(event: Mapping[str, Any]) -> bool:
    # The `connect` that completes a transfer carries no wait; the first answer does.
    return event["kind"] == "connect" and event["fields"].get("wait_s") is not None


def _any_answered(attempts: object) -> bool:
    return isinstance(attempts, list) and any(
        isinstance(a, Mapping) and a.get("result") == "answered" for a in attempts
    )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


class AgentStates:
    """Each agent's state changes in time order. A state lasts until the agent's next
    change; before an agent's first known change its state is unknown (not counted)."""

    def __init__(self, rows: Sequence[Mapping[str, Any]]) -> None:
        changes: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
        for row in rows:
            changes[str(row["agent"])].append(
                (float(row["at"]), int(row.get("id", 0)), row["state"])
            )
        self._changes = {agent: sorted(items) for agent, items in changes.items()}
        self._times = {agent: [c[0] for c in items] for agent, items in self._changes.items()}

    @property
    def agents(self) -> list[str]:
        return sorted(self._changes)

    def intervals(self, agent: str, start: float, end: float) -> Iterator[tuple[float, float, str]]:
        """(from, to, state) of the agent within [start, end)."""
        changes = self._changes.get(agent, [])
        for i, (at, _, state) in enumerate(changes):
            until = changes[i + 1][0] if i + 1 < len(changes) else end
            low, high = max(at, start), min(until, end)
            if high > low:
                yield low, high, state

    def wrap_up_after(self, agent: str, talk_end: float) -> float | None:
        """The wrap-up the agent went into when a talk ended at `talk_end`: until the next
        change to another state. None when not recorded (or still running)."""
        changes, times = self._changes.get(agent, []), self._times.get(agent, [])
        i = bisect.bisect_left(times, talk_end - WRAP_MATCH_BEFORE_S)
        while i < len(changes) and changes[i][0] <= talk_end + WRAP_MATCH_AFTER_S:
            if changes[i][2] == WRAP_UP:
                began = changes[i][0]
                after = (c for c in changes[i + 1 :] if c[2] != WRAP_UP)
                return next((c[0] - began for c in after), None)
            i += 1
        return None


class Clock:
    """The report's time groups in its zone: the key of an instant and the next instant
    where the key may change."""

    def __init__(self, by: GroupBy, zone: ZoneInfo, minute_bands: Sequence[str]) -> None:
        self.by, self.zone, self.minute_bands = by, zone, minute_bands
        if by == "band":
            marks = [m for m in range(1440) if minute_bands[m] != minute_bands[m - 1]]
        else:
            marks = list(range(0, 1440, 60)) if by == "hour" else []
        self._marks = marks or [0]

    def key(self, at: float) -> str:
        local = dt.datetime.fromtimestamp(at, self.zone)
        if self.by == "band":
            return self.minute_bands[local.hour * 60 + local.minute]
        return local.strftime("%Y-%m-%d %H:00" if self.by == "hour" else "%Y-%m-%d")

    def next_boundary(self, at: float) -> float:
        day = dt.datetime.fromtimestamp(at, self.zone).date()
        for offset in range(3):  # a mark tomorrow at the latest; 3 days for clock changes
            midnight = dt.datetime.combine(day + dt.timedelta(days=offset), dt.time(), self.zone)
            for mark in self._marks:
                candidate = (midnight + dt.timedelta(minutes=mark)).timestamp()
                if candidate > at:
                    return candidate
        return at + 86400.0

    def keys(self, start: float, end: float) -> list[str]:
        """Every hour or day of [start, end), in order."""
        found: dict[str, None] = {}
        at = start
        while at < end:
            found[self.key(at)] = None
            at = self.next_boundary(at)
        return list(found)

    def split(self, start: float, end: float) -> Iterator[tuple[str, float]]:
        """[start, end) cut at the boundaries: (key, seconds) of each piece."""
        at = start
        while at < end:
            cut = min(self.next_boundary(at), end)
            yield self.key(at), cut - at
            at = cut


@dataclass(frozen=True)
class Row:
    """One group's KPIs; None where a ratio or mean has nothing to divide by."""

    group: str
    offered: int
    ivr_handled: int
    ivr_abandoned: int
    agent_handled: int
    manual_share: float | None
    queued: int
    answered: int
    answer_rate: float | None
    abandoned: int
    short_abandoned: int
    abandon_rate: float | None
    callbacks: int
    callbacks_done: int
    call_loss: int
    loss_rate: float | None
    service_level: float | None
    asa_s: float | None
    aht_s: float | None
    occupancy: float | None
    transfers: int
    fcr: float | None
    fcr_same: float | None
    csat: float | None
    csat_n: int
    qa: float | None
    qa_n: int

    def as_dict(self, by: GroupBy) -> dict[str, str | int | float | None]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {by: values.pop("group"), **values}


COLUMNS = tuple(f.name for f in fields(Row))[1:]


@dataclass
class _Tally:
    offered: int = 0
    ivr: int = 0
    ivr_abandoned: int = 0
    queued: int = 0
    answered: int = 0
    answered_in_time: int = 0
    wait_total: float = 0.0
    abandoned: int = 0
    short_abandoned: int = 0
    callbacks: int = 0
    callbacks_done: int = 0
    handle_total: float = 0.0
    handle_n: int = 0
    transfers: int = 0
    fcr_base: int = 0
    fcr_repeats: int = 0
    fcr_same_base: int = 0
    fcr_same_repeats: int = 0
    csat_total: float = 0.0
    csat_n: int = 0
    qa_total: float = 0.0
    qa_n: int = 0
    occupied_s: float = 0.0
    logged_in_s: float = 0.0

    def add(
        self,
        call: CallFacts,
        settings: ReportsConfig,
        handle_s: float | None,
        repeated: bool,
        repeated_same: bool,
        matter: bool,
        qa_shares: Sequence[float],
    ) -> None:
        """Count one call; `matter`: what it was about is known (a disposition, or a work
        order linked to it), so "the same matter" can be judged; `qa_shares`: its quality
        scores, each as a share of the form's maximum."""
        self.offered += 1
        self.ivr += call.served == "ivr"
        self.ivr_abandoned += call.ivr_abandoned
        self.queued += call.queued
        self.callbacks += call.callback
        self.callbacks_done += call.served == "callback"
        self.transfers += call.transfers
        if call.served == "answered":
            self.answered += 1
            wait = call.first_wait_s or 0.0  # always known: a call is queued before answered
            self.wait_total += wait
            self.answered_in_time += wait <= settings.service_level_s
            if call.caller:
                self.fcr_base += 1
                self.fcr_repeats += repeated
            if call.caller and matter:
                self.fcr_same_base += 1
                self.fcr_same_repeats += repeated_same
        if call.abandon_wait_s is not None:
            if call.abandon_wait_s < settings.short_abandon_s:
                self.short_abandoned += 1
            else:
                self.abandoned += 1
        if handle_s is not None:
            self.handle_total += handle_s
            self.handle_n += 1
        if call.survey_score is not None:
            self.csat_total += call.survey_score
            self.csat_n += 1
        self.qa_total += sum(qa_shares)
        self.qa_n += len(qa_shares)

    def row(self, group: str, settings: ReportsConfig, occupancy: bool) -> Row:
        agent_handled = self.answered + self.callbacks_done
        loss = self.offered - self.ivr - agent_handled
        base = {
            "answered": self.answered,
            "offered": self.queued,
            "offered-minus-short": self.queued - self.short_abandoned,
        }[settings.service_level_definition]
        return Row(
            group=group,
            offered=self.offered,
            ivr_handled=self.ivr,
            ivr_abandoned=self.ivr_abandoned,
            agent_handled=agent_handled,
            manual_share=_ratio(agent_handled, self.offered),
            queued=self.queued,
            answered=self.answered,
            answer_rate=_ratio(self.answered, self.queued),
            abandoned=self.abandoned,
            short_abandoned=self.short_abandoned,
            abandon_rate=_ratio(self.abandoned, self.queued),
            callbacks=self.callbacks,
            callbacks_done=self.callbacks_done,
            call_loss=loss,
            loss_rate=_ratio(loss, self.offered),
            service_level=_ratio(self.answered_in_time, base),
            asa_s=_mean(self.wait_total, self.answered),
            aht_s=_mean(self.handle_total, self.handle_n),
            occupancy=_ratio(self.occupied_s, self.logged_in_s) if occupancy else None,
            transfers=self.transfers,
            fcr=_ratio(self.fcr_base - self.fcr_repeats, self.fcr_base),
            fcr_same=_ratio(self.fcr_same_base - self.fcr_same_repeats, self.fcr_same_base),
            csat=None if self.csat_n == 0 else round(self.csat_total / self.csat_n, 2),
            csat_n=self.csat_n,
            qa=_ratio(self.qa_total, self.qa_n),
            qa_n=self.qa_n,
        )


def _ratio(part: float, whole: float) -> float | None:
    return None if whole <= 0 else round(part / whole, 4)


def _mean(total: float, n: int) -> float | None:
    return None if n == 0 else round(total / n, 2)


@dataclass(frozen=True)
class Report:
    by: GroupBy
    rows: tuple[Row, ...]
    total: Row


def build(
    rows: Rows,
    *,
    by: GroupBy,
    start: float,
    end: float,
    observed_until: float,
    settings: ReportsConfig,
    zone: ZoneInfo,
) -> Report:
    """The report of the calls that arrived in [start, end). Agent states count up to
    `observed_until` (the end, or now when the period is not over)."""
    events: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for event in rows.events:
        events[str(event["call_id"])].append(event)
    calls = [
        call_facts(c, events.get(str(c["call_id"]), []))
        for c in rows.calls
        if start <= float(c["arrived_at"]) < end
    ]
    states = AgentStates(rows.agent_events)
    links = rows.order_links
    window_s = settings.fcr_window_h * 3600.0
    repeated, repeated_same = _repeated(calls, rows.arrivals, window_s, links)
    qa: dict[str, list[float]] = defaultdict(list)
    for score in rows.qa_scores:
        if score["max_points"]:
            qa[str(score["call_id"])].append(float(score["total"]) / float(score["max_points"]))
    clock = Clock(by, zone, settings.minute_bands()) if by in ("band", "hour", "day") else None
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    total = _Tally()
    for call in calls:
        handle = _handle_s(call, states)
        for tally in (tallies[_group(call, by, clock)], total):
            tally.add(
                call,
                settings,
                handle,
                call.call_id in repeated,
                call.call_id in repeated_same,
                bool(call.disposition or links.get(call.call_id)),
                qa.get(call.call_id, ()),
            )
    for agent in states.agents:
        for low, high, state in states.intervals(agent, start, min(end, observed_until)):
            if state == LOGGED_OUT:
                continue
            if clock is not None:
                pieces = list(clock.split(low, high))
            else:  # by agent: the agent's own row; by queue: the total only
                pieces = [(agent, high - low)] if by == "agent" else []
            for key, seconds in [*pieces, (TOTAL, high - low)]:
                tally = total if key == TOTAL else tallies[key]
                tally.logged_in_s += seconds
                tally.occupied_s += seconds if state in OCCUPIED_STATES else 0.0
    if by == "band":
        keys = list(settings.bands)
    elif clock is not None:
        keys = clock.keys(start, end)
    else:
        keys = sorted(k for k in tallies if k != NO_GROUP)
        keys += [NO_GROUP] if NO_GROUP in tallies else []
    with_occupancy = by != "queue"
    return Report(
        by=by,
        rows=tuple(
            tallies[k].row(k, settings, with_occupancy and k != NO_GROUP)
            for k in keys
            if clock is not None or tallies[k].offered or tallies[k].logged_in_s
        ),
        total=total.row(TOTAL, settings, occupancy=True),
    )


def _group(call: CallFacts, by: GroupBy, clock: Clock | None) -> str:
    if clock is not None:
        return clock.key(call.arrived_at)
    return (call.queue if by == "queue" else call.agent) or NO_GROUP


def _handle_s(call: CallFacts, states: AgentStates) -> float | None:
    """Talk with every agent, plus each one's wrap-up where the agent's states show it."""
    if call.served not in ("answered", "callback") or not call.segments:
        return None
    total = 0.0
    for segment in call.segments:
        total += segment.end - segment.start
        if segment.agent is not None:
            total += states.wrap_up_after(segment.agent, segment.end) or 0.0
    return total


def _repeated(
    calls: Sequence[CallFacts],
    arrivals: Sequence[Mapping[str, Any]],
    window_s: float,
    links: Mapping[str, frozenset[int]],
) -> tuple[set[str], set[str]]:
    """Answered calls whose number called again within the window from their end, and
    those of them whose later call (one within the window) was about "the same matter":
    it had the same disposition, or is linked to a work order the call is linked to."""
    by_caller: dict[str, list[tuple[float, str | None, frozenset[int]]]] = defaultdict(list)
    for row in arrivals:
        if row.get("caller"):
            orders = links.get(str(row.get("call_id")), frozenset())
            later = (float(row["arrived_at"]), row.get("disposition"), orders)
            by_caller[str(row["caller"])].append(later)
    for later_calls in by_caller.values():
        later_calls.sort(key=lambda item: item[0])
    found, same = set(), set()
    for call in calls:
        later_calls = by_caller.get(call.caller, [])
        if call.served != "answered" or not later_calls:
            continue
        times = [at for at, _, _ in later_calls]
        end = call.ended_at if call.ended_at is not None else call.arrived_at
        first = bisect.bisect_right(times, call.arrived_at)
        last = bisect.bisect_right(times, end + window_s)
        if first < last:
            found.add(call.call_id)
            codes = {code for _, code, _ in later_calls[first:last]}
            orders = links.get(call.call_id, frozenset())
            if (call.disposition is not None and call.disposition in codes) or any(
                orders & linked for _, _, linked in later_calls[first:last]
            ):
                same.add(call.call_id)
    return found, same
