"""Prometheus metrics on the controller's `/metrics` (`docs/observability.md` lists them).

Two kinds:
- **Events** — counters and histograms the call lifecycle updates as things happen (a call
  offered to a queue, answered, abandoned, a RONA, a transfer; waits, ring and talk times,
  routing decision and ARI request latency). They live in this module's `REGISTRY`, so the
  code that sees the event records it with one line (`CALLS_OFFERED.labels(q).inc()`).
- **State** — gauges read from the live objects at scrape time (calls waiting and the oldest
  wait per queue, agents by state, link health, the license, active notices), so nothing
  has to remember to update them and a reloaded license shows at the next scrape.

Names follow Prometheus' conventions: `ccserver_` prefix, base units (seconds), `_total`
counters, labels of low cardinality only (queue, state, reason, mode — never a caller, call
or agent id).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ccserver.acd import DIRECT_PREFIX

if TYPE_CHECKING:
    from ccserver.calls import CallCenter
    from ccserver.store import StoreStats

REGISTRY = CollectorRegistry(auto_describe=True)
WAIT_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
TALK_BUCKETS = (5, 15, 30, 60, 120, 180, 300, 600, 900, 1800)
FAST_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    return Counter(name, doc, labels, registry=REGISTRY)


def _histogram(
    name: str, doc: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()
) -> Histogram:
    return Histogram(name, doc, labels, buckets=buckets, registry=REGISTRY)


CALLS_OFFERED = _counter(
    "ccserver_calls_offered", "Calls that entered a queue (again after an overflow).", ("queue",)
)
CALLS_ANSWERED = _counter(
    "ccserver_calls_answered", "Calls an agent answered, by the queue they waited in.", ("queue",)
)
CALLS_ABANDONED = _counter(
    "ccserver_calls_abandoned",
    "Callers who hung up waiting, after at least reports.short_abandon_s.",
    ("queue",),
)
CALLS_ABANDONED_SHORT = _counter(
    "ccserver_calls_abandoned_short",
    "Callers who hung up waiting before reports.short_abandon_s (counted apart).",
    ("queue",),
)
CALLS_OVERFLOWED = _counter(
    "ccserver_calls_overflowed", "Calls moved on at their queue's max wait.", ("queue",)
)
CALLBACKS = _counter(
    "ccserver_callbacks",
    "Callbacks: requested, connected (customer reached), failed (attempts exhausted).",
    ("queue", "result"),
)
TRANSFERS = _counter("ccserver_transfers", "Transfers of connected calls.", ("mode",))
RONA = _counter("ccserver_rona", "Agents' phones that rang out or failed (RONA).", ("queue",))
IVR_SESSIONS = _counter("ccserver_ivr_sessions", "Callers who entered an IVR flow.")
IVR_SELF_SERVICE = _counter("ccserver_ivr_self_service", "Callers the IVR served without an agent.")
QUEUE_WAIT = _histogram(
    "ccserver_queue_wait_seconds", "Wait of answered calls.", WAIT_BUCKETS, ("queue",)
)
RING = _histogram("ccserver_ring_seconds", "Agent ring time until answer.", WAIT_BUCKETS)
TALK = _histogram(
    "ccserver_talk_seconds", "Talk time of completed calls.", TALK_BUCKETS, ("queue",)
)
WRAP_UP = _histogram(
    "ccserver_wrap_up_seconds", "Wrap-up granted after a call (the queue's).", TALK_BUCKETS
)
ROUTING = _histogram(
    "ccserver_routing_decision_seconds", "One dispatch of the router.", FAST_BUCKETS
)
ARI_REQUEST = _histogram(
    "ccserver_ari_request_seconds", "ARI REST requests.", FAST_BUCKETS, ("method",)
)
RESYNC = _histogram(
    "ccserver_resync_seconds",
    "Rebuilding the calls (from Redis at start) and reconciling them with Asterisk's channels "
    "after an ARI (re)connection; no call is routed meanwhile.",
    (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EWT_ERROR = _histogram(
    "ccserver_ewt_error_seconds",
    "|expected wait quoted at entry - actual wait| of answered calls.",
    WAIT_BUCKETS,
)


def declare(queues: Iterable[str]) -> None:
    """Create every known label set at zero, so a queue that has had no abandon (RONA,
    transfer…) yet shows 0 rather than no series: rates and alerts need the series."""
    for queue in queues:
        for counter in (
            CALLS_OFFERED,
            CALLS_ANSWERED,
            CALLS_ABANDONED,
            CALLS_ABANDONED_SHORT,
            CALLS_OVERFLOWED,
            RONA,
        ):
            counter.labels(queue)
        for result in ("requested", "connected", "failed"):
            CALLBACKS.labels(queue, result)
        QUEUE_WAIT.labels(queue)
        TALK.labels(queue)
    for mode in ("blind", "attended"):
        TRANSFERS.labels(mode)
    for method in ("GET", "POST", "DELETE"):
        ARI_REQUEST.labels(method)


def queue_label(queue: str) -> str:
    """The `queue` label: agents' direct queues (`direct-<agent>`, for transfers to a
    person) are one label, `direct`, so no agent id becomes a series."""
    return "direct" if queue.startswith(DIRECT_PREFIX) else queue


def queue_event(kind: str, queue: str, fields: dict[str, Any], *, short_abandon_s: float) -> None:
    """Count one queue event (`CallCenter.event` calls this for every event it records, so
    the counters and the history can never disagree about what happened)."""
    queue = queue_label(queue)
    if kind == "enter":
        CALLS_OFFERED.labels(queue).inc()
    elif kind == "abandon" and fields.get("wait_s") is not None:
        # Only callers who had entered the queue (offered): one who hung up in the greeting,
        # or in the IVR while being connected, has no wait and is not the queue's abandon.
        wait = float(fields["wait_s"])
        (CALLS_ABANDONED_SHORT if wait < short_abandon_s else CALLS_ABANDONED).labels(queue).inc()
    elif kind == "rona":
        RONA.labels(queue).inc()
    elif kind == "overflow":
        CALLS_OVERFLOWED.labels(queue_label(str(fields.get("source", queue)))).inc()
    elif kind == "transfer":
        TRANSFERS.labels(str(fields.get("mode", "blind"))).inc()
    elif kind == "callback":
        CALLBACKS.labels(queue, "requested").inc()
    elif kind == "complete" and fields.get("outcome") == "callback-failed":
        CALLBACKS.labels(queue, "failed").inc()


def talk(queue: str, talk_s: float | None, wrap_up_s: float) -> None:
    if talk_s is not None:
        TALK.labels(queue_label(queue)).observe(talk_s)
    WRAP_UP.observe(wrap_up_s)


def answered(
    queue: str, *, wait_s: float, ring_s: float, ewt_s: float | None, callback: bool
) -> None:
    queue = queue_label(queue)
    CALLS_ANSWERED.labels(queue).inc()
    QUEUE_WAIT.labels(queue).observe(wait_s)
    RING.observe(ring_s)
    if ewt_s is not None:
        EWT_ERROR.observe(abs(ewt_s - wait_s))
    if callback:
        CALLBACKS.labels(queue, "connected").inc()


class CenterCollector(Collector):
    """The state gauges, read from the call center when Prometheus scrapes."""

    def __init__(self, center: CallCenter, reconnects: Reconnects) -> None:
        self.center = center
        self.reconnects = reconnects
        self.links: dict[str, bool] = {}  # refreshed by the scrape handler (async checks)
        self.notices_active = 0

    def collect(self) -> Iterator[Metric]:
        yield from self._queues()
        yield from self._links()
        yield from self._license()
        yield from store_families(self.center.store.stats())
        yield GaugeMetricFamily(
            "ccserver_notices_active", "Outage notices callers hear now.", value=self.notices_active
        )

    def _queues(self) -> Iterator[Metric]:
        acd, now = self.center.acd, time.time()
        waiting = GaugeMetricFamily("ccserver_calls_waiting", "Calls waiting.", labels=["queue"])
        oldest = GaugeMetricFamily(
            "ccserver_oldest_wait_seconds", "Wait of the oldest call waiting.", labels=["queue"]
        )
        agents = GaugeMetricFamily(
            "ccserver_agents", "Agents able to take the queue, by state.", labels=["queue", "state"]
        )
        for spec in self.center.config.acd.queues:
            view = acd.queue_view(spec.name, now)
            waiting.add_metric([spec.name], view["waiting"])
            oldest.add_metric([spec.name], view["oldest_wait_s"])
            for state, count in sorted(view["agents"].items()):
                agents.add_metric([spec.name, state], count)
        yield from (waiting, oldest, agents)
        counts = acd.counts()
        logged_in = sum(n for state, n in counts.items() if state != "logged-out")
        yield GaugeMetricFamily("ccserver_agents_logged_in", "Agents logged in.", value=logged_in)
        yield GaugeMetricFamily(
            "ccserver_ivr_sessions_active",
            "Callers talking to an IVR flow now.",
            value=acd.ledger.ivr_in_use,
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
        for link, count in sorted(self.reconnects().items()):
            lost.add_metric([link], count)
        yield lost

    def _license(self) -> Iterator[Metric]:
        usage = self.center.acd.ledger.usage()
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


Links = Callable[[], Awaitable[dict[str, bool]]]
Reconnects = Callable[[], dict[str, int]]


def handler(
    center: CallCenter, links: Links, reconnects: Reconnects
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The `/metrics` route: the text exposition format, no token (it binds to loopback, as
    everything else; Prometheus scrapes it locally). `links` checks ARI, AMI and Redis;
    `reconnects` counts the Asterisk links' losses (the links keep those counts)."""
    collector = CenterCollector(center, reconnects)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)

    async def metrics(_: web.Request) -> web.Response:
        collector.links = await links()
        if center.notices is not None and collector.links.get("redis"):
            collector.notices_active = await center.notices.active_count(dt.datetime.now(dt.UTC))
        body = generate_latest(REGISTRY) + generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return metrics
