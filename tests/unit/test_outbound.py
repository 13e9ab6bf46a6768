"""Outbound calls: the book on a real history file (follow-ups of closed orders, back-off,
unreachable, campaigns and their lists), and the dialer on the CallCenter the controller
runs (scripted Asterisk, real Redis): caps, IVR channels, pacing, allowed hours, a
customer's keys written on the target, a try that did not reach them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from ccserver.calls import outbound
from ccserver.calls.outbound import Pacing, dial_due, in_hours, room
from ccserver.config import OutboundConfig
from ccserver.errors import InputError
from ccserver.history import History
from ccserver.ivr.config import BusinessHours
from ccserver.ivr.loader import validate_outbound_dir
from ccserver.licensing import EVALUATION
from ccserver.records.orders import Sla, WorkOrderBook
from ccserver.records.outbound import OutboundBook, Policy, Target, parse_numbers
from ccserver.seats import SeatLedger
from tests.unit.test_call_features import Scene, make_scene

__all__ = ["make_scene"]  # the fixture, used by name

T0 = 1_800_000_000.0
ROOT = Path(__file__).resolve().parents[2]
SURVEY = Policy("survey", max_concurrent=3, cps=100.0, attempts=3, retry_s=60.0)


@pytest.fixture
def book(history: History) -> OutboundBook:
    return OutboundBook(history)


def _closed(history: History, caller: str | None) -> int:
    orders = WorkOrderBook(history, Sla([]), warn_before_s=0)
    order = orders.open("fault", who="ivr", caller=caller, now=T0)
    orders.move(order.id, "resolved", who="sup", now=T0 + 1)
    orders.move(order.id, "closed", who="sup", now=T0 + 2)
    return order.id


# --- the book ------------------------------------------------------------------------------
def test_a_closed_order_is_followed_up_once_and_the_rating_is_written_on_it(
    history: History, book: OutboundBook
) -> None:
    order_id = _closed(history, "13800000001")
    (target,) = book.schedule_followups(T0 + 3, delay_s=60, enabled=True)
    assert (target.work_order, target.number, target.next_at) == (order_id, "13800000001", T0 + 63)
    assert book.schedule_followups(T0 + 4, delay_s=60, enabled=True) == []  # once
    assert book.due(T0 + 62, 10) == [] and book.due(T0 + 63, 10) == [target]
    book.dialing(target.id, T0 + 63)
    done = book.answered(target.id, 4, {"fixed": "yes"}, T0 + 80)
    assert (done.state, done.result, done.rating) == ("done", "answered", 4)
    assert done.tries == [{"at": T0 + 63, "result": "answered"}]
    orders = WorkOrderBook(history, Sla([]), warn_before_s=0)
    order = orders.get(order_id)
    assert (order.followup, order.rating) == ("answered", 4)
    changes = orders.changes(order_id)
    assert [c["what"] for c in changes][-2:] == ["follow-up", "followed-up"]
    assert changes[-1]["fields"] == {"result": "answered", "rating": 4, "answers": {"fixed": "yes"}}


def test_orders_without_a_number_or_closed_with_follow_ups_off_are_not_called(
    history: History, book: OutboundBook
) -> None:
    nobody, off = _closed(history, None), None
    assert book.schedule_followups(T0 + 3, delay_s=0, enabled=True) == []
    off = _closed(history, "13800000003")
    assert book.schedule_followups(T0 + 4, delay_s=0, enabled=False) == []
    orders = WorkOrderBook(history, Sla([]), warn_before_s=0)
    assert orders.get(nobody).followup == "no-number"
    assert orders.get(off).followup == "none"
    assert orders.get(orders.open("enquiry", who="x", caller="1", now=T0).id).followup is None


def test_a_try_that_misses_backs_off_doubling_then_the_target_is_unreachable(
    history: History, book: OutboundBook
) -> None:
    order_id = _closed(history, "13800000002")
    (target,) = book.schedule_followups(T0, delay_s=0, enabled=True)
    policy = Policy("followup", 1, 1.0, attempts=3, retry_s=60.0)
    due_at = []
    for at, result in ((T0, "busy"), (T0 + 100, "no-answer"), (T0 + 300, "busy")):
        book.dialing(target.id, at)
        missed = book.unreached(target.id, result, at + 5, policy)
        due_at.append(missed.next_at if missed.state == "pending" else None)
    assert due_at == [T0 + 5 + 60, T0 + 105 + 120, None]
    assert (missed.state, missed.result) == ("done", "unreachable")
    assert [t["result"] for t in missed.tries] == ["busy", "no-answer", "busy"]
    order = WorkOrderBook(history, Sla([]), warn_before_s=0).get(order_id)
    assert (order.followup, order.rating) == ("unreachable", None)


def test_a_campaign_finishes_with_its_last_number_and_a_stop_ends_the_rest(
    book: OutboundBook,
) -> None:
    first = book.create_campaign("a", ["138001", "138002"], SURVEY, who="sup", now=T0)
    second = book.create_campaign("b", ["139001", "139002"], SURVEY, who="sup", now=T0)
    assert first.progress == {"pending": 2} and set(book.policies()) == {first.id, second.id}
    for target in book.targets(campaign=first.id):
        book.dialing(target.id, T0)
        book.answered(target.id, 5, {}, T0 + 9)
    assert book.campaign(first.id).state == "finished"
    assert book.campaign(first.id).progress == {"answered": 2}
    stopped = book.stop_campaign(second.id, T0 + 10)
    assert (stopped.state, stopped.progress) == ("stopped", {"stopped": 2})
    assert book.due(T0 + 99, 10) == [] and book.policies() == {}


def test_calls_left_dialing_by_a_stopped_controller_are_due_again(book: OutboundBook) -> None:
    campaign = book.create_campaign("a", ["138001"], SURVEY, who="sup", now=T0)
    (target,) = book.targets(campaign=campaign.id)
    book.dialing(target.id, T0)
    assert book.interrupted(T0 + 50) == 1
    (again,) = book.due(T0 + 50, 10)
    assert again.tries == [{"at": T0, "result": "interrupted"}] and again.state == "pending"


def test_a_campaign_list_is_csv_with_the_number_first() -> None:
    assert parse_numbers("number,name\n13800000001,Li\n\n+8613800000002\n13800000001\n") == [
        "13800000001",
        "+8613800000002",
    ]
    with pytest.raises(InputError, match="line 3: 'x12' is not a phone number"):
        parse_numbers("13800000001\n13800000002\nx12\n")
    with pytest.raises(InputError, match="no phone numbers"):
        parse_numbers("number\n")


def test_the_shipped_outbound_flows_are_valid() -> None:
    flows, issues = validate_outbound_dir(ROOT / "ivr_flows" / "outbound")
    assert issues == [] and set(flows) == {"followup", "survey"}
    assert OutboundConfig().follow_up_flow in flows


# --- the dialer ----------------------------------------------------------------------------
@pytest.fixture
async def dialer(
    make_scene: Callable[..., Scene], history: History
) -> AsyncIterator[tuple[Scene, OutboundBook]]:
    scene = make_scene()
    center, book = scene.center, OutboundBook(history)
    center.acd.ledger = SeatLedger(dataclasses.replace(EVALUATION, ivr_channels=20))
    all_day = BusinessHours(days=[1, 2, 3, 4, 5, 6, 7], start="00:00", end="24:00")
    settings = OutboundConfig(cps=100, hours=[all_day])
    center.config = center.config.model_copy(update={"outbound": settings})
    flows, _ = validate_outbound_dir(ROOT / "ivr_flows" / "outbound")
    center.outbound, center.outbound_flows = book, flows
    async with aiohttp.ClientSession() as session:
        center.lookups = session
        yield scene, book


async def test_a_campaign_never_has_more_calls_up_than_its_cap_and_each_holds_an_ivr_channel(
    dialer: tuple[Scene, OutboundBook],
) -> None:
    scene, book = dialer
    book.create_campaign("a", [f"13800000{n:03d}" for n in range(8)], SURVEY, who="sup")
    now = dt.datetime.now().timestamp()
    await dial_due(scene.center, book, Pacing(), now)
    up = scene.rung("out-")
    assert len(up) == 3 == len(scene.center.outbound_calls)  # the campaign's cap
    assert scene.center.acd.ledger.ivr_in_use == 3
    await dial_due(scene.center, book, Pacing(), now + 1)
    assert len(scene.rung("out-")) == 3  # still three up
    await scene.ends(up[0], cause=17)  # busy

    def retried() -> list[Target]:
        return [t for t in book.targets(campaign=1) if t.tries and t.state == "pending"]

    await scene.until(lambda: len(retried()) == 1, "the busy try written")
    (busy,) = retried()
    assert busy.tries[0]["result"] == "busy" and busy.next_at >= now + SURVEY.retry_s
    assert scene.center.acd.ledger.ivr_in_use == 2 and len(scene.center.outbound_calls) == 2


async def test_the_customers_keys_are_the_targets_rating_and_the_call_ends(
    dialer: tuple[Scene, OutboundBook],
) -> None:
    scene, book = dialer
    campaign = book.create_campaign("a", ["13800000001"], SURVEY, who="sup")
    await dial_due(scene.center, book, Pacing(), dt.datetime.now().timestamp())
    (channel,) = scene.rung("out-")
    await scene.feed("StasisStart", channel, args=["outbound", "1"])  # answered
    await scene.key(channel, "4")
    await scene.until(lambda: book.campaign(campaign.id).state == "finished", "the rating")
    (target,) = book.targets(campaign=campaign.id)
    assert (target.result, target.rating) == ("answered", 4)
    await scene.until(lambda: scene.requests("DELETE", f"/channels/{channel}") == 1, "hang-up")
    await scene.ends(channel)
    assert scene.center.outbound_calls == {} and scene.center.acd.ledger.ivr_in_use == 0


async def test_outbound_calls_leave_the_reserved_ivr_channels_to_callers(
    dialer: tuple[Scene, OutboundBook],
) -> None:
    scene, book = dialer
    center = scene.center
    limit = min(int(center.acd.ledger.usage()["ivr_channels"]), center.config.ivr.max_sessions)
    reserve = center.config.outbound.inbound_reserve
    center.acd.ledger.ivr_in_use = limit - reserve - 1  # callers in the IVR
    assert room(center) == 1
    book.create_campaign("a", ["138001", "138002"], SURVEY, who="sup")
    await dial_due(center, book, Pacing(), dt.datetime.now().timestamp())
    assert len(scene.rung("out-")) == 1 and room(center) == 0


def test_pacing_spaces_calls_by_one_over_cps() -> None:
    pacing = Pacing()
    assert pacing.wait("a", T0) == 0
    pacing.dialled("a", 2.0, T0)
    assert pacing.wait("a", T0 + 0.4) == pytest.approx(0.1) and pacing.wait("a", T0 + 0.5) == 0
    assert pacing.wait("b", T0) == 0  # another campaign has its own pace
    pacing.dialled("a", 2.0, T0 + 10)  # idle for a while: no credit for the gap
    assert pacing.wait("a", T0 + 10.2) == pytest.approx(0.3)


async def test_calls_are_spaced_by_the_campaigns_cps(dialer: tuple[Scene, OutboundBook]) -> None:
    scene, book = dialer
    policy = dataclasses.replace(SURVEY, cps=20.0)  # 50 ms apart; a tick is 200 ms
    book.create_campaign("a", ["138001", "138002", "138003", "138004"], policy, who="sup")
    pacing = Pacing()
    await dial_due(scene.center, book, pacing, dt.datetime.now().timestamp())
    assert len(scene.rung("out-")) == 3  # the cap, reached within the tick
    dialled = sorted(c.dialled_at for c in scene.center.outbound_calls.values())
    gaps = [b - a for a, b in itertools.pairwise(dialled)]
    assert all(gap >= 0.05 for gap in gaps), gaps


async def test_customers_are_called_only_inside_the_allowed_hours(
    dialer: tuple[Scene, OutboundBook],
) -> None:
    center = dialer[0].center
    center.config = center.config.model_copy(update={"outbound": OutboundConfig()})  # 8 to 20
    zone = center.config.ivr.zone()
    at = dt.datetime(2026, 12, 7, 7, 59, tzinfo=zone)
    assert not in_hours(center, at.timestamp())
    assert in_hours(center, (at + dt.timedelta(minutes=1)).timestamp())
    assert not in_hours(center, at.replace(hour=20, minute=0).timestamp())


async def test_a_call_whose_channel_vanished_during_a_lost_link_is_ended(
    dialer: tuple[Scene, OutboundBook],
) -> None:
    scene, book = dialer
    book.create_campaign("a", ["138001"], SURVEY, who="sup")
    await dial_due(scene.center, book, Pacing(), dt.datetime.now().timestamp())
    async with scene.center.transaction():
        await outbound.lost(scene.center, live=set())
    assert scene.center.outbound_calls == {} and scene.center.acd.ledger.ivr_in_use == 0
