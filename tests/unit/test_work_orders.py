"""Work orders on a real history file: opening with the SLA's deadline, the state machine,
dispatching, chasing, the history of every change, filters, counts and CSV."""

from __future__ import annotations

import csv
import io
import typing
from pathlib import Path

import pytest

from ccserver.api import models
from ccserver.config import WorkOrdersConfig
from ccserver.errors import CCServerError
from ccserver.history import History
from ccserver.ivr import model as flow_model
from ccserver.records.orders import KINDS, OVERDUE, STATES, WARNING, Sla, WorkOrderBook, to_csv

T0 = 1_800_000_000.0


@pytest.fixture
def book(history: History) -> WorkOrderBook:
    settings = WorkOrdersConfig()
    return WorkOrderBook(
        history, Sla(r.rule() for r in settings.sla), warn_before_s=settings.warn_before_s
    )


def _fault(book: WorkOrderBook, **extra: object) -> int:
    order = book.open(
        "fault",
        who="ivr",
        account="0012345678",
        caller="13800000001",
        description="no power",
        call_id="c-1",
        now=T0,
        **extra,  # type: ignore[arg-type]
    )
    return order.id


def test_an_urban_fault_is_due_to_be_dispatched_first_then_on_site_within_45_minutes(
    book: WorkOrderBook,
) -> None:
    order = book.get(_fault(book, area="urban"))
    assert (order.state, order.due_state, order.due_at) == ("new", "dispatched", T0 + 600)
    assert order.calls == ("c-1",) and order.id == 1
    moved = book.move(order.id, "dispatched", who="sup", team="crew-3", now=T0 + 60)
    assert (moved.due_state, moved.due_at, moved.team) == ("on-site", T0 + 2700, "crew-3")
    rural = book.get(_fault(book, area="rural"))
    book.move(rural.id, "dispatched", who="sup", assignee="li", now=T0 + 60)
    assert book.get(rural.id).due_at == T0 + 90 * 60
    done = book.move(order.id, "on-site", who="crew-3", now=T0 + 1800)
    assert (done.due_at, done.due_state) == (None, None)  # no rule for resolving a fault


def test_moves_follow_the_state_machine_and_dispatch_needs_someone(book: WorkOrderBook) -> None:
    order_id = _fault(book)
    with pytest.raises(CCServerError) as nobody:
        book.move(order_id, "dispatched", who="sup")
    assert (nobody.value.slug, nobody.value.status) == ("assignee-required", 409)
    with pytest.raises(CCServerError) as skipped:
        book.move(order_id, "closed", who="sup")
    assert (skipped.value.slug, skipped.value.status) == ("invalid-state", 409)
    assert "dispatched, resolved, cancelled" in skipped.value.message
    with pytest.raises(CCServerError) as unknown_state:
        book.move(order_id, "lost", who="sup")
    assert unknown_state.value.slug == "input-invalid"
    with pytest.raises(CCServerError) as unknown:
        book.move(999, "dispatched", who="sup", team="t")
    assert (unknown.value.slug, unknown.value.status) == ("order-unknown", 404)
    book.move(order_id, "dispatched", who="sup", team="crew-1")
    book.move(order_id, "on-site", who="crew-1")
    book.move(order_id, "resolved", who="crew-1")
    book.move(order_id, "dispatched", who="sup", note="customer: still dark")  # reopened
    book.move(order_id, "resolved", who="crew-1")
    closed = book.move(order_id, "closed", who="sup")
    with pytest.raises(CCServerError) as final:
        book.move(order_id, "cancelled", who="sup")
    assert "none (it is final)" in final.value.message
    with pytest.raises(CCServerError):
        book.assign(order_id, who="sup", team="other", assignee=None)
    assert closed.team == "crew-1" and book.get(order_id).state == "closed"


def test_every_change_is_in_the_history_with_who_and_what(book: WorkOrderBook) -> None:
    order_id = _fault(book)
    book.assign(order_id, who="sup", team="crew-2", assignee=None, now=T0 + 5)
    book.move(order_id, "dispatched", who="sup", note="go", now=T0 + 6)
    book.link_call(order_id, "c-2", who="agent:1001", now=T0 + 7)
    book.link_call(order_id, "c-2", who="agent:1001", now=T0 + 8)  # once only
    changes = book.changes(order_id)
    assert [(c["what"], c["who"]) for c in changes] == [
        ("opened", "ivr"),
        ("linked", "ivr"),
        ("assigned", "sup"),
        ("moved", "sup"),
        ("linked", "agent:1001"),
    ]
    assert changes[3]["fields"] == {
        "from": "new",
        "to": "dispatched",
        "note": "go",
        "due_at": T0 + 2700,
    }
    assert book.get(order_id).calls == ("c-1", "c-2")


def test_chasing_warns_before_the_deadline_and_marks_overdue_once(book: WorkOrderBook) -> None:
    order_id = _fault(book)  # dispatch due at T0 + 600, warned from T0 + 0 (600 s before)
    book.open("enquiry", who="api", now=T0)  # due in a day: not chased yet
    assert [(o.id, o.escalation) for o in book.chase(T0 + 1)] == [(order_id, WARNING)]
    assert book.chase(T0 + 2) == []  # raised once per level
    assert [(o.id, o.escalation) for o in book.chase(T0 + 601)] == [(order_id, OVERDUE)]
    assert book.chase(T0 + 700) == []
    assert [o.id for o in book.find(escalated=True)] == [order_id]
    # dispatched: a new deadline (on site by T0 + 2700) starts the chase again
    moved = book.move(order_id, "dispatched", who="sup", team="t", now=T0 + 800)
    assert moved.escalation == 0
    assert [o.escalation for o in book.chase(T0 + 2701)] == [OVERDUE]  # straight past it
    assert [c["what"] for c in book.changes(order_id)].count("escalated") == 3


def test_filters_counts_open_orders_and_csv(book: WorkOrderBook) -> None:
    first = _fault(book, area="urban")
    book.open("complaint", who="api", caller="13800000001", description='rude, "very"', now=T0)
    other = book.open("enquiry", who="api", caller="13900000000", now=T0)
    book.move(other.id, "cancelled", who="sup")
    assert [o.id for o in book.find(caller="13800000001")] == [2, first]  # newest first
    assert [o.id for o in book.find(open_only=True)] == [2, first]
    assert [o.id for o in book.find(kind="enquiry", state="cancelled")] == [other.id]
    assert book.find(area="rural") == []
    assert book.counts() == {
        ("new", "fault"): 1,
        ("new", "complaint"): 1,
        ("cancelled", "enquiry"): 1,
    }
    rows = list(csv.DictReader(io.StringIO(to_csv(book.find()))))
    assert [r["id"] for r in rows] == ["3", "2", "1"]
    assert rows[1]["description"] == 'rude, "very"' and rows[2]["calls"] == "c-1"
    assert rows[0]["due_at"] == ""  # cancelled: none


def test_an_unknown_kind_is_refused(book: WorkOrderBook) -> None:
    with pytest.raises(CCServerError) as refused:
        book.open("weather", who="api")
    assert refused.value.slug == "input-invalid" and "fault, complaint" in refused.value.message
    assert book.find() == []


def test_orders_survive_reopening_the_history(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    first = History(path)
    WorkOrderBook(first, Sla([]), warn_before_s=0).open("business", who="api", now=T0)
    first.close()
    again = History(path)
    try:
        order = WorkOrderBook(again, Sla([]), warn_before_s=0).get(1)
        assert (order.kind, order.due_at, order.created_by) == ("business", None, "api")
    finally:
        again.close()


def test_the_sla_table_refuses_two_rules_for_the_same_thing() -> None:
    rule = {"kind": "fault", "state": "on-site", "within_s": 60}
    with pytest.raises(ValueError, match="two rules for fault reaching on-site in any area"):
        WorkOrdersConfig(sla=[rule, rule])  # type: ignore[list-item]


def test_the_api_models_list_the_same_kinds_and_states() -> None:
    assert typing.get_args(models.OrderKind) == KINDS
    assert typing.get_args(models.OrderState) == STATES
    assert typing.get_args(flow_model.OrderKind) == KINDS  # the IVR's order node
