"""The `[ivr]` section: business hours and holidays in the configured time zone, precise
errors, and a JSON round trip (the stack freezes the config into var/config.json)."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from pydantic import ValidationError

from ccserver.ivr.config import IvrConfig

UTC = dt.UTC


def test_business_hours_are_local_time_with_the_end_excluded_and_24_00_allowed() -> None:
    cfg = IvrConfig.model_validate(
        {"business_hours": [{"days": [2], "start": "08:00", "end": "24:00"}]}
    )
    # 2025-07-01 is a Tuesday; Beijing is UTC+8.
    assert not cfg.is_open(dt.datetime(2025, 6, 30, 23, 59, tzinfo=UTC))  # Tue 07:59
    assert cfg.is_open(dt.datetime(2025, 7, 1, 0, 0, tzinfo=UTC))  # Tue 08:00
    assert cfg.is_open(dt.datetime(2025, 7, 1, 15, 59, tzinfo=UTC))  # Tue 23:59
    assert not cfg.is_open(dt.datetime(2025, 7, 1, 16, 0, tzinfo=UTC))  # Wed 00:00


def test_holidays_close_the_day_in_the_configured_zone() -> None:
    cfg = IvrConfig.model_validate({"holidays": ["2025-10-01"]})
    national_day_morning = dt.datetime(
        2025, 10, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))
    )
    assert cfg.is_holiday(national_day_morning) and not cfg.is_open(national_day_morning)
    assert cfg.is_holiday(dt.datetime(2025, 9, 30, 16, 0, tzinfo=UTC))  # 00:00 in Beijing
    assert not cfg.is_holiday(dt.datetime(2025, 9, 30, 15, 59, tzinfo=UTC))


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"timezone": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
        ({"business_hours": [{"days": [8], "start": "08:00", "end": "09:00"}]}, "not [8]"),
        ({"business_hours": [{"days": [1], "start": "9:00", "end": "10:00"}]}, "HH:MM"),
        ({"business_hours": [{"days": [1], "start": "18:00", "end": "08:00"}]}, "after start"),
        ({"billing_url": "ftp://billing"}, "not an http(s) URL"),
        ({"max_sessions": 0}, "greater than or equal to 1"),
        ({"surveys": True}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_settings_are_refused_precisely(given: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        IvrConfig.model_validate(given)


def test_the_section_survives_a_json_round_trip_and_trims_the_url() -> None:
    cfg = IvrConfig.model_validate(
        {"billing_url": "http://10.0.0.5:8095/", "holidays": ["2025-10-01"]}
    )
    assert cfg.billing_url == "http://10.0.0.5:8095"
    assert IvrConfig.model_validate(json.loads(json.dumps(cfg.model_dump(mode="json")))) == cfg
