"""The roster's files: its input (YAML), the requirement (CSV), and what it writes — one CSV
of shifts, one iCalendar file per agent, and a coverage plot (required vs scheduled).

Input YAML:

    start: 2027-01-04          # the first day (a Monday is clearest: weeks are 7-day blocks)
    days: 28
    interval_min: 30
    rules: {max_hours_week: 40, min_rest_h: 11, max_consecutive_days: 6, ...}
    templates:
      - {name: day, starts: ["08:00", "09:00"], hours: 9, lunch_min: 60,
         lunch_window: ["03:00", "05:00"]}        # lunch starts 3–5 h into the shift
      - {name: night, starts: ["22:00"], hours: 8, night: true}
    agents:
      - {id: "1001", skills: [general, repair], contract_hours: 40, team: A,
         unavailable: [2027-01-12], days_off: [sat, sun], prefers: [day]}

Requirement CSV: `start,skill,required` — agents needed on the phones (already grossed up for
shrinkage, e.g. `ccserver staff`'s `scheduled`) per interval start and skill.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ccserver.errors import InputError
from ccserver.workforce.inputs import load_yaml
from ccserver.workforce.plots import png
from ccserver.workforce.roster_spec import (
    DAY_MIN,
    AgentSpec,
    Requirement,
    Roster,
    RosterInput,
    Rules,
    Shift,
    Template,
)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _minutes(text: str) -> int:
    hours, _, minutes = str(text).partition(":")
    if not hours.isdigit() or not minutes.isdigit() or int(minutes) >= 60:
        raise ValueError(f"{text!r} is not HH:MM")
    return int(hours) * 60 + int(minutes)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Template(_Strict):
    name: str
    starts: list[str] = Field(min_length=1)
    hours: float = Field(gt=0, le=16)
    lunch_min: int = Field(default=0, ge=0, le=120)
    lunch_window: tuple[str, str] = ("00:00", "00:00")
    night: bool = False

    @field_validator("starts")
    @classmethod
    def _clock(cls, starts: list[str]) -> list[str]:
        for start in starts:
            if _minutes(start) >= DAY_MIN:
                raise ValueError(f"start {start} is not a time of day")
        return starts


class _Agent(_Strict):
    id: str
    skills: list[str] = Field(min_length=1)
    contract_hours: float = Field(ge=0, le=80)
    team: str = ""
    unavailable: list[dt.date] = Field(default_factory=list)
    days_off: list[str] = Field(default_factory=list)
    prefers: list[str] = Field(default_factory=list)

    @field_validator("days_off")
    @classmethod
    def _weekdays(cls, days: list[str]) -> list[str]:
        bad = [d for d in days if d not in WEEKDAYS]
        if bad:
            raise ValueError(f"days off must be among {', '.join(WEEKDAYS)}, got {bad}")
        return days


class _Rules(_Strict):
    max_hours_day: float = Field(default=10.0, gt=0, le=24)
    max_hours_week: float = Field(default=44.0, gt=0, le=84)
    min_rest_h: float = Field(default=11.0, ge=0, le=24)
    max_days_in_7: int = Field(default=6, ge=1, le=7)
    max_consecutive_days: int = Field(default=6, ge=1, le=31)
    max_night_shifts_week: int = Field(default=3, ge=0, le=7)
    contract_slack_h: float = Field(default=8.0, ge=0)


class _Input(_Strict):
    start: dt.date
    days: int = Field(ge=1, le=62)
    interval_min: int = 30
    rules: _Rules = Field(default_factory=_Rules)
    templates: list[_Template] = Field(min_length=1)
    agents: list[_Agent] = Field(min_length=1)

    @field_validator("interval_min")
    @classmethod
    def _interval(cls, value: int) -> int:
        if value not in (15, 30, 60):
            raise ValueError("interval_min must be 15, 30 or 60")
        return value


def load_input(path: Path) -> RosterInput:
    """The roster's input file; every problem is an InputError naming the field."""
    data = load_yaml(path, _Input)
    names = {t.name for t in data.templates}
    for agent in data.agents:
        unknown = set(agent.prefers) - names
        if unknown:
            raise InputError(f"{path}: agent {agent.id} prefers unknown shifts {sorted(unknown)}")
    if len({a.id for a in data.agents}) != len(data.agents):
        raise InputError(f"{path}: agent ids must be unique")
    return RosterInput(
        start=data.start,
        days=data.days,
        interval_min=data.interval_min,
        rules=Rules(**data.rules.model_dump()),
        templates=tuple(
            Template(
                name=t.name,
                starts=tuple(_minutes(s) for s in t.starts),
                length_min=round(t.hours * 60),
                lunch_min=t.lunch_min,
                lunch_window=(_minutes(t.lunch_window[0]), _minutes(t.lunch_window[1])),
                night=t.night,
            )
            for t in data.templates
        ),
        agents=tuple(
            AgentSpec(
                id=a.id,
                skills=tuple(a.skills),
                contract_hours_week=a.contract_hours,
                team=a.team,
                unavailable=frozenset(a.unavailable),
                preferred_days_off=frozenset(WEEKDAYS.index(d) for d in a.days_off),
                preferred_templates=frozenset(a.prefers),
            )
            for a in data.agents
        ),
    )


def load_requirement(path: Path, spec: RosterInput) -> Requirement:
    """`start,skill,required` rows as agents per (interval index, skill) of the period."""
    start = dt.datetime.combine(spec.start, dt.time())
    out: dict[tuple[int, str], int] = {}
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    for line, row in enumerate(rows, start=2):
        try:
            when = dt.datetime.fromisoformat(row["start"])
            needed = int(float(row["required"]))
            skill = row["skill"]
        except (KeyError, TypeError, ValueError):
            raise InputError(
                f"{path}: line {line}: expected columns start (ISO 8601), skill, required"
            ) from None
        minutes = (when.replace(tzinfo=None) - start).total_seconds() / 60
        if needed < 0 or minutes % spec.interval_min:
            raise InputError(f"{path}: line {line}: not an interval start, or required < 0")
        if 0 <= minutes < spec.days * DAY_MIN:
            key = (int(minutes) // spec.interval_min, skill)
            out[key] = out.get(key, 0) + needed
    return out


def _clock(spec: RosterInput, day: int, minute: int) -> dt.datetime:
    return dt.datetime.combine(spec.start, dt.time()) + dt.timedelta(days=day, minutes=minute)


ROSTER_COLUMNS = (
    "agent",
    "team",
    "date",
    "skills",
    "shift",
    "start",
    "end",
    "lunch_start",
    "lunch_end",
    "paid_hours",
)
"""The roster CSV's columns; times are local ISO 8601, skills joined by `+`."""


def write_csv(roster: Roster, spec: RosterInput, path: Path) -> None:
    teams = {a.id: a.team for a in spec.agents}

    def at(day: int, minute: int | None) -> str:
        if minute is None:
            return ""
        return _clock(spec, day, minute).isoformat(timespec="minutes")

    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(ROSTER_COLUMNS)
        for s in roster.shifts:
            lunch = s.variant.lunch
            out.writerow(
                [
                    s.agent,
                    teams.get(s.agent, ""),
                    spec.day(s.day).isoformat(),
                    "+".join(s.skills),
                    s.variant.template,
                    at(s.day, s.variant.start),
                    at(s.day, s.variant.end),
                    at(s.day, None if lunch is None else lunch[0]),
                    at(s.day, None if lunch is None else lunch[1]),
                    round(s.variant.paid_min / 60, 2),
                ]
            )


def write_calendars(roster: Roster, spec: RosterInput, folder: Path) -> list[Path]:
    """One iCalendar file per agent (RFC 5545: floating local times, CRLF lines)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    by_agent: dict[str, list[Shift]] = {}
    for shift in roster.shifts:
        by_agent.setdefault(shift.agent, []).append(shift)
    written = []
    for agent in spec.agents:
        lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//ccserver//roster//EN"]
        for s in by_agent.get(agent.id, []):
            begin = _clock(spec, s.day, s.variant.start)
            end = _clock(spec, s.day, s.variant.end)
            lines += [
                "BEGIN:VEVENT",
                f"UID:{agent.id}-{begin:%Y%m%dT%H%M}@ccserver",
                f"DTSTAMP:{stamp}",
                f"DTSTART:{begin:%Y%m%dT%H%M%S}",
                f"DTEND:{end:%Y%m%dT%H%M%S}",
                f"SUMMARY:{s.variant.template} shift ({', '.join(s.skills)})",
                "END:VEVENT",
            ]
        lines.append("END:VCALENDAR")
        path = folder / f"{agent.id}.ics"
        path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
        written.append(path)
    return written


def plot_coverage(roster: Roster, spec: RosterInput, required: Requirement, path: Path) -> None:
    """Required vs scheduled agents per interval, all skills summed, over the period."""
    slots = spec.days * DAY_MIN // spec.interval_min
    need = [0] * slots
    have = [0] * slots
    for (t, _), n in required.items():
        if t < slots:
            need[t] += n
    for (t, _), n in roster.covered.items():
        if t < slots:
            have[t] += n
    days = [t * spec.interval_min / DAY_MIN for t in range(slots)]
    with png(path, width_in=14) as ax:
        ax.step(days, need, where="post", color="black", linewidth=0.8, label="required")
        ax.step(days, have, where="post", color="tab:blue", linewidth=0.8, label="scheduled")
        ax.set_xlabel(f"days from {spec.start.isoformat()}")
        ax.set_ylabel("agents")
        ax.set_title(f"Coverage: {roster.under} agent-intervals short, {roster.over} over")
        ax.legend(loc="upper right")
