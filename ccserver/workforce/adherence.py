"""Schedule adherence: a roster (CSV) beside what agents did (the history's
`agent_events`), for `ccserver report --adherence`.

For each rostered shift, with the agent's state known at every instant from their state
changes (logged-out before the first one):
- **late**: minutes from the shift's start to the first moment the agent is working
  (ready, reserved, busy, wrap-up, or not-ready for after-call work); a shift never worked
  is **absent** (all of it late);
- **early leave**: minutes from the last moment working in the shift to its end;
- **not ready**: minutes not-ready for any other reason inside the shift's working time
  (the lunch excluded), between the first and last working moments;
- **adherence**: the share of the shift's working time (lunch excluded) spent working.
A shift counts as **on time** when it is `grace_s` late or less.

Totals per agent and per team add the minutes; their adherence is minutes working over
minutes scheduled.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccserver.errors import InputError

WORKING_STATES = frozenset({"ready", "reserved", "busy", "wrap-up"})
WORKING_REASONS = frozenset({"after-call-work"})
GRACE_S = 60.0


@dataclass(frozen=True)
class PlannedShift:
    agent: str
    team: str
    start: float  # epoch seconds
    end: float
    lunch: tuple[float, float] | None = None


@dataclass
class Adherence:
    """Minutes per shift, agent or team (`shifts`: how many; `on_time`: of those)."""

    key: str
    shifts: int = 0
    on_time: int = 0
    absent: int = 0
    scheduled_min: float = 0.0
    working_min: float = 0.0
    late_min: float = 0.0
    early_leave_min: float = 0.0
    not_ready_min: float = 0.0

    @property
    def adherence(self) -> float | None:
        return None if not self.scheduled_min else self.working_min / self.scheduled_min

    def add(self, other: Adherence) -> None:
        self.shifts += other.shifts
        self.on_time += other.on_time
        self.absent += other.absent
        for name in (
            "scheduled_min",
            "working_min",
            "late_min",
            "early_leave_min",
            "not_ready_min",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, Any]:
        share = self.adherence
        return {
            "key": self.key,
            "shifts": self.shifts,
            "on_time": self.on_time,
            "absent": self.absent,
            "scheduled_min": round(self.scheduled_min, 1),
            "working_min": round(self.working_min, 1),
            "late_min": round(self.late_min, 1),
            "early_leave_min": round(self.early_leave_min, 1),
            "not_ready_min": round(self.not_ready_min, 1),
            "adherence": None if share is None else round(share, 4),
        }


def read_roster(path: Path, zone: dt.tzinfo) -> list[PlannedShift]:
    """The shifts of a roster CSV: columns agent, team, start, end, lunch_start, lunch_end
    (empty: no lunch), times in ISO 8601 local time of `zone`; other columns are ignored."""

    def epoch(text: str) -> float:
        return dt.datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()

    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    shifts = []
    for line, row in enumerate(rows, start=2):
        try:
            lunch = (
                (epoch(row["lunch_start"]), epoch(row["lunch_end"])) if row["lunch_start"] else None
            )
            shifts.append(
                PlannedShift(
                    row["agent"],
                    row.get("team") or "",
                    epoch(row["start"]),
                    epoch(row["end"]),
                    lunch,
                )
            )
        except (KeyError, TypeError, ValueError):
            raise InputError(
                f"{path}: line {line}: expected agent, team, start, end, lunch_start, lunch_end "
                "(ISO 8601 local times)"
            ) from None
    return shifts


class _Timeline:
    """One agent's state at any instant: (at, working, not-ready-other) steps."""

    def __init__(self, events: Iterable[Mapping[str, Any]]) -> None:
        self.at: list[float] = []
        self.kind: list[str] = []  # "working", "not-ready", "away"
        for event in sorted(events, key=lambda e: float(e["at"])):
            state, reason = str(event["state"]), event.get("reason")
            if state in WORKING_STATES or (state == "not-ready" and reason in WORKING_REASONS):
                kind = "working"
            elif state == "not-ready":
                kind = "not-ready"
            else:
                kind = "away"
            self.at.append(float(event["at"]))
            self.kind.append(kind)

    def pieces(self, start: float, end: float) -> list[tuple[float, float, str]]:
        """The [start, end) window cut where the state changes."""
        i = bisect.bisect_right(self.at, start) - 1
        kind = self.kind[i] if i >= 0 else "away"
        out, cursor = [], start
        for j in range(i + 1, len(self.at)):
            if self.at[j] >= end:
                break
            out.append((cursor, self.at[j], kind))
            cursor, kind = self.at[j], self.kind[j]
        out.append((cursor, end, kind))
        return [p for p in out if p[1] > p[0]]


def _minus_lunch(
    pieces: list[tuple[float, float, str]], lunch: tuple[float, float] | None
) -> list[tuple[float, float, str]]:
    if lunch is None:
        return pieces
    out = []
    for begin, end, kind in pieces:
        if end <= lunch[0] or begin >= lunch[1]:
            out.append((begin, end, kind))
            continue
        if begin < lunch[0]:
            out.append((begin, lunch[0], kind))
        if end > lunch[1]:
            out.append((lunch[1], end, kind))
    return out


def shift_adherence(
    shift: PlannedShift, timeline: _Timeline, grace_s: float = GRACE_S
) -> Adherence:
    pieces = _minus_lunch(timeline.pieces(shift.start, shift.end), shift.lunch)
    result = Adherence(key=shift.agent, shifts=1)
    result.scheduled_min = sum(e - b for b, e, _ in pieces) / 60
    working = [(b, e) for b, e, kind in pieces if kind == "working"]
    if not working:
        result.absent = 1
        result.late_min = result.scheduled_min
        return result
    first, last = working[0][0], working[-1][1]
    result.working_min = sum(e - b for b, e in working) / 60
    late_s = sum(e - b for b, e, _ in pieces if e <= first) + sum(
        first - b for b, e, _ in pieces if b < first < e
    )
    result.late_min = late_s / 60
    result.early_leave_min = sum(e - max(b, last) for b, e, _ in pieces if e > last) / 60
    result.not_ready_min = (
        sum(
            min(e, last) - max(b, first)
            for b, e, kind in pieces
            if kind == "not-ready" and e > first and b < last
        )
        / 60
    )
    result.on_time = 1 if late_s <= grace_s else 0
    return result


def adherence(
    shifts: Sequence[PlannedShift], events: Iterable[Mapping[str, Any]], grace_s: float = GRACE_S
) -> tuple[dict[str, Adherence], dict[str, Adherence]]:
    """Per agent and per team, from the roster's shifts and every agent's state changes."""
    by_agent_events: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        by_agent_events.setdefault(str(event["agent"]), []).append(event)
    agents: dict[str, Adherence] = {}
    teams: dict[str, Adherence] = {}
    for shift in shifts:
        result = shift_adherence(shift, _Timeline(by_agent_events.get(shift.agent, [])), grace_s)
        agents.setdefault(shift.agent, Adherence(key=shift.agent)).add(result)
        teams.setdefault(shift.team or "-", Adherence(key=shift.team or "-")).add(result)
    return agents, teams
