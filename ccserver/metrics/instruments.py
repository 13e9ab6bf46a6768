"""The event metrics: counters and histograms the call lifecycle updates as things happen
(a call offered to a queue, answered, abandoned, a RONA, a transfer; waits, ring and talk
times, routing decision and ARI request latency, illegal call-state moves). They live in
this module's `REGISTRY`, so the code that sees the event records it with one line
(`CALLS_OFFERED.labels(q).inc()`). The state gauges are read at scrape time
(`collector.py`). `docs/observability.md` lists both.

Names follow Prometheus' conventions: `ccserver_` prefix, base units (seconds), `_total`
counters, labels of low cardinality only (queue, state, reason, mode — never a caller, call
or agent id).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ccserver.acd import DIRECT_PREFIX
from ccserver.records.orders import KINDS

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
CALL_STATE_ERRORS = _counter(
    "ccserver_call_state_errors",
    "Call-state moves outside the transition table or outside a transaction (a bug: the "
    "log line `call.state_error` names the call).",
    ("from_state", "to_state"),
)
EWT_ERROR = _histogram(
    "ccserver_ewt_error_seconds",
    "|expected wait quoted at entry - actual wait| of answered calls.",
    WAIT_BUCKETS,
)


WORK_ORDERS_OVERDUE = _counter(
    "ccserver_work_order_overdue",
    "Work orders that passed a deadline of the SLA table while open (each deadline once).",
    ("kind",),
)


OUTBOUND_CALLS = _counter(
    "ccserver_outbound_calls",
    "Outbound calls placed (follow-ups of work orders, survey campaigns), by how they ended: "
    "answered, busy, no-answer, rejected, failed.",
    ("kind", "result"),
)
OUTBOUND_ACTIVE = Gauge(
    "ccserver_outbound_active",
    "Outbound calls up now (each holds an IVR channel).",
    registry=REGISTRY,
)


RECORDINGS_BYTES = Gauge(
    "ccserver_recordings_bytes",
    "Bytes of call recordings kept, as of the last retention sweep.",
    registry=REGISTRY,
)
RECORDINGS_DELETED = _counter(
    "ccserver_recordings_deleted", "Call recordings deleted at the end of their retention."
)
HISTORY_DELETED = _counter(
    "ccserver_history_deleted",
    "History rows deleted at the end of their retention (recordings.history_days), by table.",
    ("table",),
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
    for kind in KINDS:
        WORK_ORDERS_OVERDUE.labels(kind)
    for table in ("calls", "events", "agent_events"):
        HISTORY_DELETED.labels(table)
    for kind in ("follow-up", "campaign"):
        for result in ("answered", "busy", "no-answer", "rejected", "failed"):
            OUTBOUND_CALLS.labels(kind, result)


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
