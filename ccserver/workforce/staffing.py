"""Staffing per interval from a volume forecast, and the license seats it takes.

For each interval: traffic A = calls × AHT / interval length (erlangs); the agents on the
phones are the fewest that meet the target — Erlang C service level (share answered
within `target_s`) or ASA — without exceeding the maximum occupancy; the agents to
schedule are that number / (1 − shrinkage), rounded up (shrinkage: breaks, training,
absence — paid time off the phones). License seats = the peak of scheduled agents over
the intervals + the IVR channels, since every scheduled agent is logged in at once at the
peak and each IVR channel holds a seat of its own.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import pandas as pd

from ccserver.errors import InputError
from ccserver.workforce import erlang
from ccserver.workforce.forecast import interval_seconds

__all__ = [
    "EXAMPLE_95598_CALLS",
    "EXAMPLE_95598_LABEL",
    "Example95598",
    "IntervalStaff",
    "StaffingPlan",
    "Targets",
    "example_95598",
    "license_seats",
    "scheduled_agents",
    "staff_intervals",
]

# Absorbs float noise such as 112 / (1 - 0.3) = 160.00000000000003 before rounding up.
_ROUNDING_SLACK = 1e-9


@dataclass(frozen=True)
class Targets:
    """What an interval must achieve. Give either `sl` (with `target_s`) or `asa_s`."""

    aht_s: float
    sl: float | None = 0.8
    target_s: float = 20.0
    asa_s: float | None = None
    max_occupancy: float | None = None
    shrinkage: float = 0.0

    def __post_init__(self) -> None:
        if (self.sl is None) == (self.asa_s is None):
            raise InputError("give one staffing target: a service level (sl) or an ASA (asa_s)")
        if not (math.isfinite(self.aht_s) and self.aht_s > 0):
            raise InputError(f"AHT must be > 0 seconds, got {self.aht_s}")
        if not (math.isfinite(self.shrinkage) and 0 <= self.shrinkage < 1):
            raise InputError(f"shrinkage must be in [0, 1), got {self.shrinkage}")
        if self.max_occupancy is not None and not 0 < self.max_occupancy <= 1:
            raise InputError(f"max occupancy must be in (0, 1], got {self.max_occupancy}")

    def describe(self) -> str:
        goal = (
            f"SL {self.sl:.0%} in {self.target_s:g} s"
            if self.sl is not None
            else f"ASA ≤ {self.asa_s:g} s"
        )
        occ = f", occupancy ≤ {self.max_occupancy:.0%}" if self.max_occupancy else ""
        return f"{goal}, AHT {self.aht_s:g} s{occ}, shrinkage {self.shrinkage:.0%}"


def scheduled_agents(on_phones: int, shrinkage: float) -> int:
    """Agents to schedule so that `on_phones` remain after shrinkage: ⌈N / (1 − s)⌉."""
    if on_phones < 0 or not 0 <= shrinkage < 1:
        raise InputError("agents must be ≥ 0 and shrinkage in [0, 1)")
    return math.ceil(on_phones / (1.0 - shrinkage) - _ROUNDING_SLACK)


def license_seats(peak_agents: int, ivr_channels: int) -> int:
    """Seats to license: peak concurrent agents + IVR channels."""
    if peak_agents < 0 or ivr_channels < 0:
        raise InputError("agents and IVR channels must be ≥ 0")
    return peak_agents + ivr_channels


@dataclass(frozen=True)
class IntervalStaff:
    start: pd.Timestamp
    calls: float
    traffic: float  # erlangs
    agents: int  # on the phones (Erlang C)
    scheduled: int  # agents / (1 − shrinkage), rounded up
    service_level: float  # Erlang C with `agents`; 1.0 when there are no calls
    asa: float  # seconds
    occupancy: float


@dataclass(frozen=True)
class StaffingPlan:
    intervals: tuple[IntervalStaff, ...]
    interval_min: int
    targets: Targets
    ivr_channels: int
    peak: IntervalStaff = field(init=False)

    def __post_init__(self) -> None:
        if not self.intervals:
            raise InputError("no intervals to staff")
        object.__setattr__(self, "peak", max(self.intervals, key=lambda i: i.scheduled))

    @property
    def peak_agents(self) -> int:
        return self.peak.scheduled

    @property
    def license_seats(self) -> int:
        return license_seats(self.peak_agents, self.ivr_channels)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([vars(i) for i in self.intervals]).set_index("start")

    def to_dict(self) -> dict[str, object]:
        return {
            "interval_min": self.interval_min,
            "targets": vars(self.targets),
            "ivr_channels": self.ivr_channels,
            "peak_agents": self.peak_agents,
            "peak_start": self.peak.start.isoformat(),
            "license_seats": self.license_seats,
            "intervals": [
                {**vars(i), "start": i.start.isoformat()} | _rounded(i) for i in self.intervals
            ],
        }


def _rounded(i: IntervalStaff) -> dict[str, float]:
    return {
        "calls": round(i.calls, 1),
        "traffic": round(i.traffic, 3),
        "service_level": round(i.service_level, 4),
        "asa": round(i.asa, 2),
        "occupancy": round(i.occupancy, 4),
    }


def _staff_one(start: pd.Timestamp, calls: float, seconds: float, t: Targets) -> IntervalStaff:
    if not math.isfinite(calls) or calls < 0:
        raise InputError(f"{start}: calls must be a number ≥ 0, got {calls}")
    traffic = calls * t.aht_s / seconds
    if traffic == 0:
        return IntervalStaff(start, calls, 0.0, 0, 0, 1.0, 0.0, 0.0)
    if t.sl is not None:
        agents = erlang.agents_for_service_level(
            traffic, t.aht_s, t.target_s, t.sl, t.max_occupancy
        )
    else:
        assert t.asa_s is not None
        agents = erlang.agents_for_asa(traffic, t.aht_s, t.asa_s, t.max_occupancy)
    return IntervalStaff(
        start=start,
        calls=calls,
        traffic=traffic,
        agents=agents,
        scheduled=scheduled_agents(agents, t.shrinkage),
        service_level=erlang.service_level(traffic, agents, t.aht_s, t.target_s),
        asa=erlang.asa(traffic, agents, t.aht_s),
        occupancy=erlang.occupancy(traffic, agents),
    )


def staff_intervals(
    calls: pd.Series, interval_min: int, targets: Targets, ivr_channels: int = 0
) -> StaffingPlan:
    """Staff every interval of `calls` (calls per interval, indexed by interval start)."""
    if ivr_channels < 0:
        raise InputError(f"IVR channels must be ≥ 0, got {ivr_channels}")
    seconds = interval_seconds(interval_min)
    rows = tuple(
        _staff_one(pd.Timestamp(start), float(n), seconds, targets) for start, n in calls.items()
    )
    return StaffingPlan(rows, interval_min, targets, ivr_channels)


# --- the 95598 worked example -------------------------------------------------------------

# An illustrative storm-day forecast for one province's 95598 power hotline, calls per
# half-hour from 08:00 to 20:00. Not measured data: the shape is a utility hotline's usual
# morning peak, scaled so that the peak half-hour (950 calls) lands on the 160 agents of
# the brief with the targets below.
EXAMPLE_95598_CALLS = (
    180, 320, 560, 780, 900, 950, 920, 860, 760, 700, 680, 720,
    760, 740, 690, 620, 560, 500, 430, 380, 330, 280, 230, 190,
)  # fmt: skip
EXAMPLE_95598_TARGETS = Targets(aht_s=180, sl=0.8, target_s=20, max_occupancy=0.85, shrinkage=0.3)
EXAMPLE_95598_IVR = 20
EXAMPLE_95598_SEATS_TODAY = 71
EXAMPLE_95598_LABEL = (
    "95598 worked example — illustrative volumes, not measured: a storm-day shape scaled "
    "so the peak lands on 160 agents; for a real center use its own history "
    "(ccserver staff --csv HISTORY.csv)"
)
"""The header `ccserver staff|simulate --example 95598` print above their tables."""


@dataclass(frozen=True)
class Example95598:
    plan: StaffingPlan
    seats_today: int

    @property
    def seats_to_add(self) -> int:
        return max(self.plan.license_seats - self.seats_today, 0)

    def summary(self) -> str:
        p = self.plan
        return (
            f"today: {self.seats_today} seats licensed\n"
            f"tomorrow: peak {p.peak_agents} agents at {p.peak.start:%H:%M} "
            f"({p.peak.calls:g} calls, {p.peak.traffic:g} E, {p.peak.agents} on the phones "
            f"÷ (1 − {p.targets.shrinkage:g} shrinkage)) + {p.ivr_channels} IVR channels "
            f"= {p.license_seats} seats; {self.seats_to_add} more than today"
        )


def example_95598(day: dt.date | None = None) -> Example95598:
    """The 95598 case: 71 seats today; tomorrow's storm forecast (`EXAMPLE_95598_CALLS`)
    at SL 80/20, AHT 180 s, occupancy ≤ 85 %, shrinkage 30 % needs 160 agents at the peak,
    plus 20 IVR channels: 180 seats. `day` is the date of the forecast (default tomorrow)."""
    day = day or dt.date.today() + dt.timedelta(days=1)
    start = pd.Timestamp(day) + pd.Timedelta(hours=8)
    index = pd.date_range(start, periods=len(EXAMPLE_95598_CALLS), freq="30min", name="start")
    calls = pd.Series([float(c) for c in EXAMPLE_95598_CALLS], index=index, name="calls")
    plan = staff_intervals(calls, 30, EXAMPLE_95598_TARGETS, EXAMPLE_95598_IVR)
    return Example95598(plan, EXAMPLE_95598_SEATS_TODAY)
