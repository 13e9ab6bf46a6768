"""The event counters: what each queue event counts, short abandons apart, and labels that
never carry an agent id."""

from __future__ import annotations

from ccserver.metrics import instruments


def _value(name: str, **labels: str) -> float:
    value = instruments.REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_abandons_under_the_threshold_are_counted_apart() -> None:
    before = _value("ccserver_calls_abandoned_total", queue="m-abandon")
    short = _value("ccserver_calls_abandoned_short_total", queue="m-abandon")
    for wait in (3.0, 9.99, 10.0, 42.0):
        instruments.queue_event("abandon", "m-abandon", {"wait_s": wait}, short_abandon_s=10.0)
    assert _value("ccserver_calls_abandoned_total", queue="m-abandon") == before + 2
    assert _value("ccserver_calls_abandoned_short_total", queue="m-abandon") == short + 2


def test_a_caller_who_never_entered_the_queue_is_not_its_abandon() -> None:
    """Hung up while the IVR was connecting them: the call has a queue but no wait, and
    counting it would push the queue's short abandons above what it was offered."""
    short = _value("ccserver_calls_abandoned_short_total", queue="m-connecting")
    instruments.queue_event(
        "abandon", "m-connecting", {"outcome": "abandoned"}, short_abandon_s=10.0
    )
    assert _value("ccserver_calls_abandoned_short_total", queue="m-connecting") == short
    assert _value("ccserver_calls_abandoned_total", queue="m-connecting") == 0


def test_a_direct_queue_is_one_label_not_one_per_agent() -> None:
    before = _value("ccserver_calls_offered_total", queue="direct")
    for agent in ("1001", "1002"):
        instruments.queue_event("enter", f"direct-{agent}", {}, short_abandon_s=10.0)
    instruments.answered("direct-1001", wait_s=2.0, ring_s=1.0, ewt_s=None, callback=False)
    assert _value("ccserver_calls_offered_total", queue="direct") == before + 2
    assert _value("ccserver_calls_offered_total", queue="direct-1001") == 0
    assert _value("ccserver_queue_wait_seconds_count", queue="direct") >= 1


def test_every_known_series_exists_at_zero_before_its_first_event() -> None:
    instruments.declare(["m-quiet"])
    for name in ("calls_offered", "calls_abandoned", "rona", "calls_overflowed"):
        assert (
            instruments.REGISTRY.get_sample_value(f"ccserver_{name}_total", {"queue": "m-quiet"})
            == 0
        )
    assert (
        instruments.REGISTRY.get_sample_value("ccserver_transfers_total", {"mode": "attended"})
        is not None
    )


def test_transfers_callbacks_and_overflows_are_counted_by_their_event() -> None:
    instruments.queue_event("transfer", "m-x", {"mode": "attended"}, short_abandon_s=10.0)
    instruments.queue_event("overflow", "m-y", {"source": "m-x"}, short_abandon_s=10.0)
    instruments.queue_event("callback", "m-x", {}, short_abandon_s=10.0)
    instruments.queue_event("complete", "m-x", {"outcome": "callback-failed"}, short_abandon_s=10.0)
    assert _value("ccserver_calls_overflowed_total", queue="m-x") == 1
    assert _value("ccserver_callbacks_total", queue="m-x", result="requested") == 1
    assert _value("ccserver_callbacks_total", queue="m-x", result="failed") == 1
    assert _value("ccserver_transfers_total", mode="attended") >= 1
