"""The ACD takes a licensed seat for every login and gives it back at logout; a restart
keeps whoever was logged in, even over a license that shrank meanwhile."""

from __future__ import annotations

import dataclasses

import pytest

from ccserver.acd import Acd, AcdError
from ccserver.config import Config
from ccserver.licensing import License, LicenseError, new_license
from ccserver.seats import SeatLedger

NOW = 1_790_000_000.0
PHONES = [str(2001 + i) for i in range(4)]


def _config(auto_login: bool = False) -> Config:
    return Config.model_validate(
        {
            "phones": {"ids": PHONES},
            "acd": {
                "queues": [{"name": "general", "skills": {"general": 1}}],
                "agents": [
                    {
                        "id": str(1001 + i),
                        "skills": {"general": 5},
                        "phone": phone,
                        "auto_login": auto_login,
                    }
                    for i, phone in enumerate(PHONES)
                ],
            },
        }
    )


def _license(seats: int) -> License:
    lic = new_license(
        customer_id="c", customer_name="C", seats=seats, ivr_channels=1, days=30, now=NOW
    )
    return dataclasses.replace(lic, key_id="test")  # signed (not the evaluation license)


def _acd(seats: int, auto_login: bool = False) -> Acd:
    acd = Acd(_config(auto_login), SeatLedger(_license(seats), now=lambda: NOW))
    acd.start_fresh(NOW)
    return acd


def test_a_login_beyond_the_seats_is_refused_and_a_logout_frees_a_seat() -> None:
    acd = _acd(seats=2)
    acd.login("1001", "2001", NOW)
    acd.login("1002", "2002", NOW)
    with pytest.raises(LicenseError) as refused:
        acd.login("1003", "2003", NOW)
    assert (refused.value.slug, refused.value.status) == ("license-seats-exhausted", 409)
    assert acd.state("1003") == "logged-out" and acd.ledger.seats_in_use == 2
    acd.logout("1001", NOW)
    acd.login("1003", "2003", NOW)
    assert acd.ledger.seats_in_use == 2 and not acd.ledger.holds("1001")


def test_a_login_refused_by_the_acd_takes_no_seat() -> None:
    acd = _acd(seats=2)
    acd.login("1001", "2001", NOW)
    with pytest.raises(AcdError) as busy:
        acd.login("1002", "2001", NOW)  # phone in use: refused before a seat is taken
    assert busy.value.slug == "phone-in-use"
    assert acd.ledger.seats_in_use == 1


def test_auto_login_stops_at_the_license_and_the_rest_stay_logged_out() -> None:
    acd = _acd(seats=3, auto_login=True)
    states = [acd.state(str(1001 + i)) for i in range(4)]
    assert states.count("ready") == 3 and states.count("logged-out") == 1
    assert acd.ledger.usage()["refusals"] == {"license-seats-exhausted": 1}


def test_after_a_restart_the_logged_in_agents_keep_seats_over_a_smaller_license() -> None:
    before = _acd(seats=4, auto_login=True)
    after = Acd(_config(auto_login=True), SeatLedger(_license(2), now=lambda: NOW))
    after.restore(before.snapshot(), NOW)
    assert after.ledger.seats_in_use == 4
    assert all(after.state(str(1001 + i)) == "ready" for i in range(4))
    after.logout("1001", NOW)
    with pytest.raises(LicenseError):
        after.login("1001", "2001", NOW)
