"""What a roster problem is and what a roster is: shift templates and their variants,
labour rules, agents, the period, the requirement per interval and skill, and the
result (`Roster`). The solver is `roster.py`; the files are `roster_io.py`."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

DAY_MIN = 24 * 60


@dataclass(frozen=True)
class Template:
    """A kind of shift: start times, length (lunch included), a lunch that starts inside
    `lunch_window` (minutes after the shift's start), and whether it is a night shift."""

    name: str
    starts: tuple[int, ...]  # minutes after midnight
    length_min: int
    lunch_min: int = 0
    lunch_window: tuple[int, int] = (0, 0)
    night: bool = False


@dataclass(frozen=True)
class Variant:
    """One way to work a template: a start time and a lunch position."""

    template: str
    start: int  # minutes after the day's midnight
    end: int  # may pass midnight (> 1440)
    lunch: tuple[int, int] | None
    night: bool

    @property
    def paid_min(self) -> int:
        lunch = 0 if self.lunch is None else self.lunch[1] - self.lunch[0]
        return self.end - self.start - lunch

    def intervals(self, interval_min: int) -> list[int]:
        """The intervals worked (lunch excluded), as offsets from the day's midnight."""
        out = []
        for begin in range(self.start, self.end, interval_min):
            if self.lunch is None or not self.lunch[0] <= begin < self.lunch[1]:
                out.append(begin // interval_min)
        return out


@dataclass(frozen=True)
class Rules:
    max_hours_day: float = 10.0
    max_hours_week: float = 44.0
    min_rest_h: float = 11.0
    max_days_in_7: int = 6
    max_consecutive_days: int = 6
    max_night_shifts_week: int = 3
    contract_slack_h: float = 8.0


@dataclass(frozen=True)
class AgentSpec:
    id: str
    skills: tuple[str, ...]
    contract_hours_week: float
    team: str = ""
    unavailable: frozenset[dt.date] = frozenset()
    preferred_days_off: frozenset[int] = frozenset()  # Monday = 0
    preferred_templates: frozenset[str] = frozenset()  # empty: no preference


@dataclass(frozen=True)
class RosterInput:
    start: dt.date
    days: int
    interval_min: int
    templates: tuple[Template, ...]
    rules: Rules
    agents: tuple[AgentSpec, ...]

    def day(self, index: int) -> dt.date:
        return self.start + dt.timedelta(days=index)

    def weeks(self) -> list[range]:
        """The period's 7-day blocks (the last may be shorter)."""
        return [range(w, min(w + 7, self.days)) for w in range(0, self.days, 7)]


Requirement = Mapping[tuple[int, str], int]
"""Agents required per (interval index from the period's start, skill)."""


@dataclass(frozen=True)
class Shift:
    """An agent at work on a day: their skills are all on offer (a multi-skilled agent's
    time is shared among the skills where each interval needs it)."""

    agent: str
    day: int
    skills: tuple[str, ...]
    variant: Variant


@dataclass(frozen=True)
class Roster:
    status: str  # "optimal", "feasible", "infeasible", "unknown"
    shifts: tuple[Shift, ...]
    under: int  # agent-intervals short of the requirement
    over: int  # agent-intervals beyond it
    preference_violations: int
    solve_s: float
    covered: Mapping[tuple[int, str], int] = field(default_factory=dict)
    """Agents on each (interval, skill), multi-skilled ones shared where they were needed."""
    binding: tuple[str, ...] = ()  # when infeasible: the rules that bind together


def variants(templates: Iterable[Template], interval_min: int) -> list[Variant]:
    """Every template × start × lunch position (lunches start on interval boundaries)."""
    out = []
    for t in templates:
        for start in t.starts:
            if t.lunch_min == 0:
                out.append(Variant(t.name, start, start + t.length_min, None, t.night))
                continue
            first, last = t.lunch_window
            for offset in range(first, last + 1, interval_min):
                lunch = (start + offset, start + offset + t.lunch_min)
                out.append(Variant(t.name, start, start + t.length_min, lunch, t.night))
    return out


def week_bounds(spec: RosterInput, agent: AgentSpec, week: range) -> tuple[int, int]:
    """The least and most paid minutes of `agent` in `week`. A contract's week is 5 working
    days: days away (leave) or a shorter last block lower the least in proportion; the most
    is the weekly maximum or the contract, whichever is lower (pro rata for a short block)."""
    rules = spec.rules
    present = sum(1 for d in week if spec.day(d) not in agent.unavailable)
    scale = min(present, 5 * len(week) / 7) / 5
    most = min(rules.max_hours_week, agent.contract_hours_week) * 60 * len(week) / 7
    least = max(0.0, agent.contract_hours_week - rules.contract_slack_h) * 60 * scale
    return math.ceil(least), math.floor(most)


def clashes(first: Variant, second: Variant, rest_h: float) -> bool:
    """Working `first` one day and `second` the next leaves less than `rest_h` between."""
    return DAY_MIN + second.start - first.end < rest_h * 60
