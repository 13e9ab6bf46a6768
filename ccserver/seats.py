"""The seat ledger: who holds a licensed seat and how many IVR channels are busy, against
the license in force (`licensing.py` reads and checks licenses; this enforces them).
Pure code with the clock passed in, so grace windows and expiry are tested without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ccserver.config import Config
from ccserver.licensing import License, LicenseError, expiry_warning, iso, load_configured


@dataclass(frozen=True)
class SeatGrant:
    agent_id: str
    grace: bool
    """True: the seat is beyond the licensed count, allowed by the grace policy."""


class SeatLedger:
    """Who holds a seat and how many IVR channels are busy, against the license in force.

    Refusals only ever stop something new: a login or an IVR channel. Nobody holding a seat
    is logged out — not after expiry, a shrinking `replace` or the end of a grace window —
    so no call in progress is cut. Not thread-safe: the controller's event loop owns it.
    """

    def __init__(
        self, lic: License, *, now: Callable[[], float] = time.time, expiry_warning_days: int = 14
    ) -> None:
        self._license = lic
        self._now = now
        self._warning_days = expiry_warning_days
        self._holders: dict[str, SeatGrant] = {}
        self._over_since: float | None = None
        self.ivr_in_use = 0
        self.refusals: dict[str, int] = {}
        self.grace_overshoots = 0
        """Logins granted beyond the licensed seats (grace seats), since start."""

    @property
    def license(self) -> License:
        return self._license

    @property
    def seats_in_use(self) -> int:
        return len(self._holders)

    def holds(self, agent_id: str) -> bool:
        return agent_id in self._holders

    def _refuse(self, slug: str, message: str) -> LicenseError:
        self.refusals[slug] = self.refusals.get(slug, 0) + 1
        return LicenseError(message, slug=slug, status=409)

    def _grace_extra(self) -> int:
        lic = self._license
        return lic.grace.extra_seats(lic.seats) if lic.grace else 0

    def _track_overshoot(self) -> None:
        if self.seats_in_use <= self._license.seats:
            self._over_since = None
        elif self._over_since is None:
            self._over_since = self._now()

    def _grace_until(self) -> float | None:
        grace = self._license.grace
        if grace is None or self._over_since is None:
            return None
        return self._over_since + grace.max_minutes * 60

    def acquire_seat(self, agent_id: str) -> SeatGrant:
        """A seat for a logging-in agent, or LicenseError (409) saying why not."""
        held = self._holders.get(agent_id)
        if held is not None:
            return held
        lic, now = self._license, self._now()
        if lic.expires_at is not None and now >= lic.expires_at.timestamp():
            raise self._refuse(
                "license-expired",
                f"the license expired at {iso(lic.expires_at)}: no new logins until a "
                "renewed license is installed (agents logged in stay)",
            )
        if lic.not_before is not None and now < lic.not_before.timestamp():
            raise self._refuse(
                "license-not-yet-valid", f"the license starts at {iso(lic.not_before)}"
            )
        grace = self.seats_in_use >= lic.seats
        if grace:
            until = self._grace_until()
            if until is not None and now > until:
                raise self._refuse(
                    "license-grace-exhausted",
                    f"all {lic.seats} licensed seats are taken and the grace period is over: "
                    "wait for an agent to log out, or license more seats",
                )
            if self.seats_in_use >= lic.seats + self._grace_extra():
                raise self._refuse(
                    "license-seats-exhausted",
                    f"all {lic.seats} licensed seats are taken: wait for an agent to log out, "
                    "or license more seats",
                )
            self.grace_overshoots += 1
        grant = SeatGrant(agent_id, grace)
        self._holders[agent_id] = grant
        self._track_overshoot()
        return grant

    def release_seat(self, agent_id: str) -> bool:
        """Free an agent's seat; False when it held none."""
        held = self._holders.pop(agent_id, None) is not None
        self._track_overshoot()
        return held

    def ivr_room(self) -> bool:
        """Whether a new caller may have an IVR channel; False (counted as a refusal) when
        all are busy: the caller then goes straight to a queue, never refused."""
        if self.ivr_in_use >= self._license.ivr_channels:
            self.refusals["license-ivr-full"] = self.refusals.get("license-ivr-full", 0) + 1
            return False
        return True

    def enter_ivr(self) -> None:
        """A caller is in the IVR. Not checked: a caller admitted once (`ivr_room`) comes
        back for the survey after their agent even if the channels filled meanwhile."""
        self.ivr_in_use += 1

    def release_ivr(self) -> None:
        """Free a channel; never below zero, so a call torn down twice makes no phantom room."""
        self.ivr_in_use = max(0, self.ivr_in_use - 1)

    def sync(self, agent_ids: Iterable[str]) -> None:
        """Make the seat holders exactly `agent_ids`: after a restart, whoever was logged in
        keeps a seat, within the license or not — a license never logs anyone out."""
        self._holders = {a: self._holders.get(a) or SeatGrant(a, False) for a in agent_ids}
        self._track_overshoot()

    def replace(self, lic: License) -> None:
        """Swap the license at runtime. Holders keep their seats; after a shrink, new logins
        are refused until usage is back under the new limits."""
        self._license = lic
        self._track_overshoot()

    def usage(self) -> dict[str, Any]:
        """A snapshot for the REST route and the Prometheus gauges."""
        lic, now = self._license, self._now()
        days = lic.days_to_expiry(now)
        return {
            "license_id": lic.id,
            "customer_id": lic.customer_id,
            "evaluation": lic.evaluation,
            "seats": lic.seats,
            "seats_in_use": self.seats_in_use,
            "grace_seats": self._grace_extra(),
            "grace_in_use": max(0, self.seats_in_use - lic.seats),
            "grace_until": self._grace_until(),
            "ivr_channels": lic.ivr_channels,
            "ivr_in_use": self.ivr_in_use,
            "expires_at": lic.expires_at.timestamp() if lic.expires_at else None,
            "days_to_expiry": days,
            "refusals": dict(self.refusals),
            "grace_overshoots": self.grace_overshoots,
        }

    def expiry_warning(self) -> str | None:
        """A message for logs and `license show` when expiry is near or past."""
        return expiry_warning(self._license, now=self._now(), days=self._warning_days)


def reload(ledger: SeatLedger, config: Config) -> License:
    """Read the installed license file again and put it in force. A file that does not pass
    raises LicenseError and changes nothing; holders keep their seats either way."""
    lic = load_configured(config, now=time.time())
    ledger.replace(lic)
    return lic
