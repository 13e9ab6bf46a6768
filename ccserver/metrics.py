"""Prometheus metrics on the controller's `/metrics`: the license in force and its use, and
the outage notices callers hear now.

Values are read from the live objects when Prometheus scrapes (a custom collector), so
nothing has to remember to update a gauge and a reloaded license shows at the next scrape.
Names follow Prometheus' conventions: `ccserver_` prefix, base units, `_total` counters,
labels of low cardinality only (a refusal's reason, never an agent or a call).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ccserver.calls import CallCenter


class CenterCollector(Collector):
    def __init__(self, center: CallCenter) -> None:
        self.center = center
        self.notices_active = 0  # refreshed by the scrape handler (the board is async)

    def collect(self) -> Iterator[Metric]:
        usage = self.center.acd.ledger.usage()
        gauges = {
            "seats": ("Concurrent agent logins the license allows.", usage["seats"]),
            "seats_in_use": ("Agents logged in (each holds a seat).", usage["seats_in_use"]),
            "grace_seats": (
                "Logins the grace policy allows beyond the seats.",
                usage["grace_seats"],
            ),
            "grace_in_use": ("Seats in use beyond the licensed ones.", usage["grace_in_use"]),
            "ivr_channels": ("Concurrent IVR sessions the license allows.", usage["ivr_channels"]),
            "ivr_in_use": ("Callers talking to an IVR flow now.", usage["ivr_in_use"]),
        }
        for name, (doc, value) in gauges.items():
            yield GaugeMetricFamily(f"ccserver_license_{name}", doc, value=value)
        yield GaugeMetricFamily(
            "ccserver_license_evaluation",
            "1 when no license is installed and the evaluation limits apply.",
            value=1 if usage["evaluation"] else 0,
        )
        if usage["expires_at"] is not None:
            yield GaugeMetricFamily(
                "ccserver_license_expiry_timestamp_seconds",
                "When the license in force expires (Unix time).",
                value=usage["expires_at"],
            )
        refusals = CounterMetricFamily(
            "ccserver_license_refusals",
            "Logins and IVR sessions the license refused, by reason (the error's slug).",
            labels=["reason"],
        )
        for reason, count in sorted(usage["refusals"].items()):
            refusals.add_metric([reason], count)
        yield refusals
        yield CounterMetricFamily(
            "ccserver_license_grace_overshoots",
            "Logins granted beyond the licensed seats under the grace policy.",
            value=usage["grace_overshoots"],
        )
        yield GaugeMetricFamily(
            "ccserver_notices_active",
            "Outage notices callers hear now.",
            value=self.notices_active,
        )


def handler(center: CallCenter) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The `/metrics` route: the text exposition format, no token (bind it to loopback, as
    everything else; Prometheus scrapes it locally)."""
    registry = CollectorRegistry(auto_describe=False)
    collector = CenterCollector(center)
    registry.register(collector)

    async def metrics(_: web.Request) -> web.Response:
        if center.notices is not None:
            collector.notices_active = await center.notices.active_count(dt.datetime.now(dt.UTC))
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    return metrics
