"""The `[ivr]` section of the configuration: where flows live, what they may call, and the
calendar their `branch` nodes consult.

Business hours and holidays live here, not in the flow files, because one calendar serves
every hotline number and changes more often (a new holiday list each year) than the flows.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_CLOCK = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")


def minutes(clock: str) -> int:
    """ "08:30" → 510; "24:00" → 1440 (the end of the day, so a range can cover it)."""
    hours, mins = clock.split(":")
    return int(hours) * 60 + int(mins)


def resolved_dir(path: Path) -> Path:
    """A flows directory as given when absolute or present from here; else the one shipped
    beside the package (so `ccserver` run from anywhere finds the reference flows)."""
    if path.is_absolute() or path.exists():
        return path
    shipped = Path(__file__).resolve().parents[2] / path
    return shipped if shipped.exists() else path


class BusinessHours(BaseModel):
    """Open from `start` to `end` (local time, end excluded) on the ISO weekdays `days`
    (1 = Monday … 7 = Sunday)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: list[int] = Field(min_length=1)
    start: str
    end: str

    @field_validator("days")
    @classmethod
    def _weekdays(cls, days: list[int]) -> list[int]:
        bad = [d for d in days if not 1 <= d <= 7]
        if bad:
            raise ValueError(f"days are ISO weekdays 1 (Monday) to 7 (Sunday), not {bad}")
        return days

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"{value!r} is not a time of day HH:MM (00:00 to 24:00)")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> BusinessHours:
        if minutes(self.end) <= minutes(self.start):
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self

    def covers(self, weekday: int, minute_of_day: int) -> bool:
        return weekday in self.days and minutes(self.start) <= minute_of_day < minutes(self.end)


def _weekdays_8_to_18() -> list[BusinessHours]:
    return [BusinessHours(days=[1, 2, 3, 4, 5], start="08:00", end="18:00")]


class IvrConfig(BaseModel):
    """IVR settings. `billing_url` is the base URL that flow `lookup` nodes write as
    `{billing_url}`; point it at the real billing system (or `ccserver billing-demo`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flows_dir: Path = Path("ivr_flows")
    billing_url: str = "http://127.0.0.1:8095"
    lookup_timeout_s: float = Field(default=2.0, gt=0, le=30)
    """Default timeout of a `lookup` node's HTTP call; a node may set its own."""
    max_sessions: int = Field(default=20, ge=1, le=10_000)
    """IVR channels in use at once (the licensed self-service channels)."""
    timezone: str = "Asia/Shanghai"
    business_hours: list[BusinessHours] = Field(default_factory=_weekdays_8_to_18)
    holidays: list[dt.date] = Field(default_factory=list)
    survey: bool = True
    """Off: `survey` nodes are skipped and the call ends when the agent hangs up."""

    @field_validator("billing_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
            raise ValueError(f"{url!r} is not an http(s) URL such as http://127.0.0.1:8095")
        return url.rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (e.g. Asia/Shanghai)") from None
        return name

    def resolved_flows_dir(self) -> Path:
        return resolved_dir(self.flows_dir)

    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def is_holiday(self, when: dt.datetime) -> bool:
        """Is the local date of the aware datetime `when` a configured holiday?"""
        return when.astimezone(self.zone()).date() in self.holidays

    def is_open(self, when: dt.datetime) -> bool:
        """Within business hours at the aware datetime `when`: a listed range covers the
        local time and the day is not a holiday."""
        local = when.astimezone(self.zone())
        if local.date() in self.holidays:
            return False
        minute = local.hour * 60 + local.minute
        return any(r.covers(local.isoweekday(), minute) for r in self.business_hours)
