"""Outbound calls on the real stack: closing a work order makes the controller call the
customer (a SIPp UAS on loopback) and play the follow-up flow; the keys the customer
presses end up on the order. A busy customer is retried with back-off, then given up as
unreachable. A survey campaign of 30 numbers with a cap of 5 never has more than 5 calls
up, counted at the customers' side from SIPp's own log of INVITEs and BYEs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ccserver.loadtest import sipp
from ccserver.stack.procs import wait_until
from tests.integration.conftest import LiveStack, free_port, start_stack

pytestmark = pytest.mark.integration
CUSTOMER_PORT = free_port()
ALL_DAY = {"days": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": "24:00"}
RETRY_S = 1.0


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from start_stack(
        tmp_path_factory.mktemp("outbound"),
        {"answer": ["1001"]},
        outbound={
            "endpoint": f"PJSIP/callers/sip:{{number}}@127.0.0.1:{CUSTOMER_PORT}",
            "hours": [ALL_DAY],
            "attempts": 3,
            "retry_s": RETRY_S,
            "max_concurrent": 20,
            "cps": 20,
        },
    )


def _closed_order(live: LiveStack, number: str) -> int:
    status, order = live.api(
        "POST", "/orders", {"kind": "fault", "caller": number, "description": "no power"}
    )
    assert status == 201, order
    for state in ("resolved", "closed"):
        status, moved = live.api("POST", f"/orders/{order['id']}/state", {"state": state})
        assert status == 200, moved
    return int(order["id"])


def _order(live: LiveStack, order_id: int) -> dict[str, Any]:
    status, order = live.api("GET", f"/orders/{order_id}")
    assert status == 200, order
    return dict(order)


def _follow_up(live: LiveStack, customers: sipp.Sipp, number: str) -> dict[str, Any]:
    """Close an order of `number` while `customers` answer its phone; the order once its
    follow-up is over."""
    customers.start()
    try:
        order_id = _closed_order(live, number)
        assert wait_until(
            lambda: _order(live, order_id)["followup"] in ("answered", "unreachable"), 60
        )
    finally:
        customers.stop()
    return _order(live, order_id)


def test_closing_an_order_calls_the_customer_and_writes_the_rating_on_it(
    live: LiveStack,
) -> None:
    # Fixed? 1 (yes); then the rating: 4.
    keys: list[str | int] = [1500, "1", 2500, "4"]
    customer = sipp.customers(
        live.work, port=CUSTOMER_PORT, media_port=free_port(), keys=keys, name="customer-4"
    )
    order = _follow_up(live, customer, "13800000001")
    assert (order["followup"], order["rating"]) == ("answered", 4)
    (followed,) = [c for c in order["changes"] if c["what"] == "followed-up"]
    assert followed["fields"]["answers"] == {"fixed": "yes"}
    calls = sipp.customer_calls(customer)
    assert [(number, bye is not None) for number, _, bye in calls] == [("13800000001", True)]
    assert live.metrics()['ccserver_outbound_calls_total{kind="follow-up",result="answered"}'] == 1


def test_a_busy_customer_is_retried_with_back_off_then_unreachable(live: LiveStack) -> None:
    busy = sipp.busy_customers(live.work, port=CUSTOMER_PORT, media_port=free_port(), name="busy")
    order = _follow_up(live, busy, "13800000002")
    assert (order["followup"], order["rating"]) == ("unreachable", None)
    lines = busy.timing_file.read_text(encoding="latin-1").splitlines()
    tries = [float(line.split()[3]) for line in lines if line.endswith(" 13800000002")]
    assert len(tries) == 3  # the follow-up's attempts
    first_gap, second_gap = tries[1] - tries[0], tries[2] - tries[1]
    assert first_gap >= RETRY_S and second_gap >= 2 * RETRY_S  # back-off doubles
    metrics = live.metrics()
    assert metrics['ccserver_outbound_calls_total{kind="follow-up",result="busy"}'] == 3


def _most_up_at_once(calls: list[tuple[str, float, float | None]]) -> int:
    edges = sorted([(start, 1) for _, start, _ in calls] + [(end or 0, -1) for *_, end in calls])
    up = most = 0
    for _, step in edges:  # at a tie a call ending is counted before one starting
        up += step
        most = max(most, up)
    return most


def test_a_campaign_of_30_numbers_never_has_more_than_its_cap_of_5_up(live: LiveStack) -> None:
    numbers = [f"1390000{n:04d}" for n in range(30)]
    customer = sipp.customers(
        live.work, port=CUSTOMER_PORT, media_port=free_port(), keys=[1000, "3"], name="survey"
    ).start()
    try:
        body = {
            "name": "autumn survey",
            "csv": "number\n" + "\n".join(numbers),
            "max_concurrent": 5,
            "cps": 10,
        }
        status, campaign = live.api("POST", "/campaigns", body, token="supervisor")
        assert status == 201, campaign
        assert campaign["progress"] == {"pending": 30}

        def finished() -> bool:
            return bool(live.api("GET", f"/campaigns/{campaign['id']}")[1]["state"] == "finished")

        assert wait_until(finished, 240)
    finally:
        customer.stop()
    status, done = live.api("GET", f"/campaigns/{campaign['id']}")
    assert done["progress"] == {"answered": 30}
    assert [(t["number"], t["result"], t["rating"]) for t in done["targets"]] == [
        (number, "answered", 3) for number in numbers
    ]
    calls = sipp.customer_calls(customer)
    assert sorted(number for number, *_ in calls) == numbers  # each number called once
    assert all(bye is not None for *_, bye in calls)
    assert _most_up_at_once(calls) == 5
