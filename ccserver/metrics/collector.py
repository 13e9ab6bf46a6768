"""The state gauges: read from the running center when Prometheus scrapes (calls waiting and
the oldest wait per queue, agents by state, link health, the license, the store's outage
mode, active notices), so nothing has to remember to update them and a reloaded license
shows at the next scrape. The center is seen only through `CenterView`.

Names follow Prometheus' conventions: `ccserver_` prefix, base units (seconds), `_total`
counters, labels of low cardinality only (queue, state, reason, mode — never a caller, call
or agent id).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NamedTuple, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ccserver.metrics.instruments import REGISTRY
from ccserver.records.orders import KINDS, STATES
from ccserver.store import StoreStats


class WorkOrderCounts(NamedTuple):
    by_state: dict[tuple[str, str], int]  # (state, kind) -> orders
    overdue: dict[str, int]  # kind -> open orders past a deadline


class CenterView(Protocol):
    """What the gauges read (the controller implements it)."""

    def queue_views(self, now: float) -> list[dict[str, Any]]:
        """`Acd.queue_view` of every configured queue."""

    def agent_counts(self) -> dict[str, int]:
        """Configured agents by state."""

    def license_usage(self) -> dict[str, Any]:
        """`SeatLedger.usage()`."""

    def store_stats(self) -> StoreStats: ...

    def reconnects(self) -> dict[str, int]:
        """Losses of each Asterisk link so far."""

    async def links(self) -> dict[str, bool]:
        """Whether ARI, AMI and Redis are up now."""

    async def notices_active(self) -> int:
        """Outage notices callers hear now (0 when Redis is down)."""

    async def work_orders(self) -> WorkOrderCounts:
        """Work orders by state and kind, and the open ones past a deadline by kind."""


class CenterCollector(Collector):
    """The state gauges, read from the call center when Prometheus scrapes."""

    def __init__(self, center: CenterView) -> None:
        self.center = center
        self.links: dict[str, bool] = {}  # refreshed by the scrape handler (async checks)
        self.notices_active = 0
        self.orders = WorkOrderCounts({}, {})  # refreshed by the scrape handler (SQL)

    def collect(self) -> Iterator[Metric]:
        yield from self._queues()
        yield from self._links()
        yield from self._license()
        yield from store_families(self.center.store_stats())
        yield GaugeMetricFamily(
            "ccserver_notices_active", "Outage notices callers hear now.", value=self.notices_active
        )
        yield from self._work_orders()

    def _work_orders(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily(
            "ccserver_work_orders", "Work orders by state and kind.", labels=["state", "kind"]
        )
        overdue = GaugeMetricFamily(
            "ccserver_work_orders_overdue",
            "Open work orders past a deadline of the SLA table, by kind.",
            labels=["kind"],
        )
        for kind in KINDS:
            for state in STATES:
                by_state.add_metric([state, kind], self.orders.by_state.get((state, kind), 0))
            overdue.add_metric([kind], self.orders.overdue.get(kind, 0))
        yield by_state
        yield overdue

    def _queues(self) -> Iterator[Metric]:
        waiting = GaugeMetricFamily("ccserver_calls_waiting", "Calls waiting.", labels=["queue"])
        oldest = GaugeMetricFamily(
            "ccserver_oldest_wait_seconds", "Wait of the oldest call waiting.", labels=["queue"]
        )
        agents = GaugeMetricFamily(
            "ccserver_agents", "Agents able to take the queue, by state.", labels=["queue", "state"]
        )
        for view in self.center.queue_views(time.time()):
            waiting.add_metric([view["name"]], view["waiting"])
            oldest.add_metric([view["name"]], view["oldest_wait_s"])
            for state, count in sorted(view["agents"].items()):
                agents.add_metric([view["name"], state], count)
        yield from (waiting, oldest, agents)
        counts = self.center.agent_counts()
        logged_in = sum(n for state, n in counts.items() if state != "logged-out")
        yield GaugeMetricFamily("ccserver_agents_logged_in", "Agents logged in.", value=logged_in)
        yield GaugeMetricFamily(
            "ccserver_ivr_sessions_active",
            "Callers talking to an IVR flow now.",
            value=self.center.license_usage()["ivr_in_use"],
        )

    def _links(self) -> Iterator[Metric]:
        for name, doc in (
            ("ari", "The ARI websocket to Asterisk is up."),
            ("ami", "The AMI connection to Asterisk is up."),
            ("redis", "Redis answers."),
        ):
            yield GaugeMetricFamily(f"ccserver_{name}_up", doc, value=int(self.links.get(name, 0)))
        lost = CounterMetricFamily(
            "ccserver_link_reconnects",
            "Times a link to Asterisk was lost or a try to connect it failed (each retry counts).",
            labels=["link"],
        )
        for link, count in sorted(self.center.reconnects().items()):
            lost.add_metric([link], count)
        yield lost

    def _license(self) -> Iterator[Metric]:
        usage = self.center.license_usage()
        gauges = {
            "seats": ("Concurrent agent logins the license allows.", usage["seats"]),
            "seats_in_use": ("Agents logged in (each holds a seat).", usage["seats_in_use"]),
            "grace_seats": ("Logins allowed beyond the seats (grace).", usage["grace_seats"]),
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


def store_families(stats: StoreStats) -> Iterator[Metric]:
    """The Redis store's outage mode (`store.py`): writes buffered in memory while Redis
    does not take them, replayed when it does; what the buffer's caps dropped is lost."""
    yield GaugeMetricFamily(
        "ccserver_store_degraded",
        "1 while writes to Redis are buffered in the controller's memory (Redis down or "
        "refusing writes, or the buffer being replayed).",
        value=int(stats.degraded),
    )
    buffered = GaugeMetricFamily(
        "ccserver_store_buffered_writes",
        "Writes waiting in the outage buffer for Redis, by kind (call records, ACD state, events).",
        labels=["kind"],
    )
    for kind, count in (
        ("call", stats.buffered_calls),
        ("acd", stats.buffered_acd),
        ("event", stats.buffered_events),
    ):
        buffered.add_metric([kind], count)
    yield buffered
    yield CounterMetricFamily(
        "ccserver_store_write_failures",
        "Writes (and replay attempts) Redis did not take.",
        value=stats.failed_writes,
    )
    yield CounterMetricFamily(
        "ccserver_store_replayed",
        "Buffered writes replayed to Redis once it took writes again.",
        value=stats.replayed,
    )
    dropped = CounterMetricFamily(
        "ccserver_store_dropped",
        "Writes lost because the outage buffer was full, by kind (call, event).",
        labels=["kind"],
    )
    dropped.add_metric(["call"], stats.dropped_calls)
    dropped.add_metric(["event"], stats.dropped_events)
    yield dropped


def handler(center: CenterView) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The `/metrics` route: the text exposition format, no token (it binds to loopback, as
    everything else; Prometheus scrapes it locally)."""
    collector = CenterCollector(center)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)

    async def metrics(_: web.Request) -> web.Response:
        collector.links = await center.links()
        collector.notices_active = (
            await center.notices_active() if collector.links.get("redis") else 0
        )
        collector.orders = await center.work_orders()
        body = generate_latest(REGISTRY) + generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return metrics
