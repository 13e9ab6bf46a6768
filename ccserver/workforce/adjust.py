"""Adjustments: a calendar of known events that move the forecast — a planned outage in an
area, a tariff change, a campaign, a holiday — each a multiplicative or an additive effect
on the intervals it covers, for some queues or all.

Calendar (YAML):

    events:
      - name: planned outage, Futian district
        kind: outage               # outage | tariff | campaign | holiday | other
        start: 2027-01-12T08:00    # local time, like the forecast's intervals
        end: 2027-01-12T18:00      # excluded
        queues: [repair]           # optional: only when forecasting these queues
        multiply: 1.8              # or `add: 12` (calls per interval, may be negative)

Events apply in the calendar's order; an interval's calls never go below zero. The
prediction interval moves with its forecast (scaled by a factor, shifted by an addition).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ccserver.workforce.forecast import Forecast
from ccserver.workforce.inputs import load_yaml

KINDS = ("outage", "tariff", "campaign", "holiday", "other")


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str = Field(default="other", pattern="^(" + "|".join(KINDS) + ")$")
    start: dt.datetime
    end: dt.datetime
    queues: tuple[str, ...] = ()
    multiply: float | None = Field(default=None, ge=0, le=100)
    add: float | None = None

    @model_validator(mode="after")
    def _one_effect(self) -> Event:
        if (self.multiply is None) == (self.add is None):
            raise ValueError("give one effect: multiply or add")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def applies_to(self, queue: str | None) -> bool:
        """Every event moves the total; a queue's forecast only by events naming it (or
        naming none)."""
        return not self.queues or queue is None or queue in self.queues


class _Calendar(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[Event] = Field(default_factory=list)


def load_calendar(path: Path) -> list[Event]:
    return load_yaml(path, _Calendar).events


@dataclass(frozen=True)
class Effect:
    """What one event did to the forecast."""

    event: Event
    intervals: int
    calls_before: float
    calls_after: float


def apply(
    fc: Forecast, events: list[Event], queue: str | None = None
) -> tuple[Forecast, list[Effect]]:
    """The forecast with the events applied, and each event's effect."""
    calls, lower, upper = fc.calls.copy(), fc.lower.copy(), fc.upper.copy()
    index = pd.DatetimeIndex(calls.index)
    naive = index.tz_localize(None) if index.tz is not None else index
    effects = []
    for event in events:
        if not event.applies_to(queue):
            continue
        start, end = event.start.replace(tzinfo=None), event.end.replace(tzinfo=None)
        mask = (naive >= start) & (naive < end)
        before = float(calls[mask].sum())
        if event.multiply is not None:
            factor = event.multiply
            calls[mask], lower[mask], upper[mask] = (
                calls[mask] * factor,
                lower[mask] * factor,
                upper[mask] * factor,
            )
        else:
            shift = float(event.add or 0.0)
            calls[mask] = (calls[mask] + shift).clip(lower=0.0)
            lower[mask] = (lower[mask] + shift).clip(lower=0.0)
            upper[mask] = (upper[mask] + shift).clip(lower=0.0)
        effects.append(Effect(event, int(mask.sum()), before, float(calls[mask].sum())))
    return replace(fc, calls=calls, lower=lower, upper=upper), effects
