"""Work orders (工单): what a call leaves to be done — a fault repair, a complaint, a
business request, an enquiry — from opening to closing, with deadlines and a history.

- **States**: new → dispatched → on-site → resolved → closed, or cancelled (`TRANSITIONS`
  says which moves are allowed; a resolved order goes back to dispatched when the customer
  says it is not fixed). Dispatching needs a team or a person to dispatch to.
- **Deadlines**: the SLA table gives, per kind (and optionally per area), how long after
  opening each state must be reached — e.g. an urban fault on site within 45 minutes.
  `due_at` is the earliest deadline of a state not yet reached (`due_state`); a closed or
  cancelled order has none.
- **Chasing (督办)**: `chase(now)` raises an open order's `escalation` to `WARNING` (1)
  when its deadline is less than `warn_before_s` away and to `OVERDUE` (2) once it has
  passed. A move that gives the order a new deadline starts it again at 0.
- **Follow-up (回访)**: a closed order is followed up by a call to its caller
  (`ccserver.records.outbound` takes it with `take_closed`, then `record_followup` writes
  the result and rating on the order).
- **History**: every change (opened, moved, assigned, linked to a call, escalated,
  followed up) is a row of `work_order_changes` — who, when, what, fields — written in the
  same transaction as the change, so an order never differs from its history.

Storage: the history store (`History.records()` transactions, tables in its migrations).
Orders are numbered 1, 2, 3 …: the number is what callers hear and type.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ccserver.errors import CCServerError, InputError
from ccserver.history import History

KINDS = ("fault", "complaint", "business", "enquiry")
STATES = ("new", "dispatched", "on-site", "resolved", "closed", "cancelled")
OPEN_STATES = ("new", "dispatched", "on-site", "resolved")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("dispatched", "resolved", "cancelled"),
    "dispatched": ("on-site", "resolved", "cancelled"),
    "on-site": ("resolved", "cancelled"),
    "resolved": ("closed", "dispatched"),
    "closed": (),
    "cancelled": (),
}
_PROGRESS = ("new", "dispatched", "on-site", "resolved", "closed")  # the way forward
WARNING, OVERDUE = 1, 2

_COLUMNS = (
    "id, kind, state, priority, account, caller, address, area, description, team, "
    "assignee, agent, created_at, created_by, updated_at, due_at, due_state, escalation, "
    "followup, rating"
)
CSV_COLUMNS = (*_COLUMNS.split(", "), "calls")
_CLOSED_WAITING = "state = 'closed' AND followup IS NULL"  # closed, follow-up not yet taken


@dataclass(frozen=True)
class SlaRule:
    """`state` must be reached within `within_s` of opening, for orders of `kind` (and of
    `area`; None: any area without a rule of its own)."""

    kind: str
    state: str
    within_s: float
    area: str | None = None


class Sla:
    """The deadlines of the SLA table."""

    def __init__(self, rules: Iterable[SlaRule]) -> None:
        self._within: dict[tuple[str, str, str | None], float] = {}
        for rule in rules:
            self._within[(rule.kind, rule.state, rule.area)] = rule.within_s

    def deadline(
        self, kind: str, area: str | None, state: str, opened_at: float
    ) -> tuple[float | None, str | None]:
        """The earliest deadline of a state an order in `state` has not reached yet, and
        that state; (None, None) when no rule applies any more."""
        if state not in _PROGRESS:
            return None, None
        best: tuple[float | None, str | None] = (None, None)
        for target in _PROGRESS[_PROGRESS.index(state) + 1 :]:
            within = self._within.get((kind, target, area), self._within.get((kind, target, None)))
            if within is None:
                continue
            due = opened_at + within
            if best[0] is None or due < best[0]:
                best = (due, target)
        return best


@dataclass(frozen=True)
class WorkOrder:
    id: int
    kind: str
    state: str
    priority: int
    account: str | None
    caller: str | None
    address: str | None
    area: str | None
    description: str
    team: str | None
    assignee: str | None
    agent: str | None  # the agent who opened it (its desk is told of its chasing)
    created_at: float
    created_by: str
    updated_at: float
    due_at: float | None
    due_state: str | None
    escalation: int
    followup: str | None
    """The follow-up call (回访) after closing: None (not closed yet), "scheduled",
    "answered", "unreachable", "no-number" (no caller number to dial), "none" (closed
    before follow-ups existed, or with follow-ups off)."""
    rating: int | None
    """The customer's 1–5 rating in the follow-up call, when they gave one."""
    calls: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "calls": list(self.calls)}


class OrderUnknown(CCServerError):
    slug = "order-unknown"
    status = 404


class WorkOrderBook:
    """The work orders in the history store; see the module docstring for the contract.
    Every method is synchronous (async callers use `asyncio.to_thread`)."""

    def __init__(self, history: History, sla: Sla, *, warn_before_s: float) -> None:
        self.history = history
        self.sla = sla
        self.warn_before_s = warn_before_s

    # --- changes -------------------------------------------------------------------------
    def open(
        self,
        kind: str,
        *,
        who: str,
        description: str = "",
        account: str | None = None,
        caller: str | None = None,
        address: str | None = None,
        area: str | None = None,
        priority: int = 0,
        call_id: str | None = None,
        agent: str | None = None,
        now: float | None = None,
    ) -> WorkOrder:
        """A new order (state `new`), linked to `call_id` when given."""
        if kind not in KINDS:
            raise InputError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
        at = time.time() if now is None else now
        due_at, due_state = self.sla.deadline(kind, area, "new", at)
        fields = {
            "kind": kind,
            "state": "new",
            "priority": priority,
            "account": account,
            "caller": caller,
            "address": address,
            "area": area,
            "description": description,
            "agent": agent,
            "created_at": at,
            "created_by": who,
            "updated_at": at,
            "due_at": due_at,
            "due_state": due_state,
            "escalation": 0,
        }
        with self.history.records() as db:
            cursor = db.execute(
                f"INSERT INTO work_orders ({', '.join(fields)}) "
                f"VALUES ({', '.join('?' * len(fields))})",
                tuple(fields.values()),
            )
            order_id = int(cursor.lastrowid or 0)
            _change(db, order_id, at, who, "opened", {"kind": kind, "due_at": due_at})
            if call_id:
                _link(db, order_id, call_id, at, who)
            return _load(db, order_id)

    def move(
        self,
        order_id: int,
        to: str,
        *,
        who: str,
        note: str | None = None,
        team: str | None = None,
        assignee: str | None = None,
        now: float | None = None,
    ) -> WorkOrder:
        """Move an order to state `to` (dispatching may name the team/person); raises
        order-unknown (404), invalid-state (409: not a move `TRANSITIONS` allows),
        assignee-required (409: dispatching to nobody)."""
        if to not in STATES:
            raise InputError(f"state {to!r} is not one of {', '.join(STATES)}")
        at = time.time() if now is None else now
        with self.history.records() as db:
            order = _load(db, order_id)
            if to not in TRANSITIONS[order.state]:
                allowed = ", ".join(TRANSITIONS[order.state]) or "none (it is final)"
                raise CCServerError(
                    f"work order {order_id} is {order.state}; it may move to: {allowed}",
                    slug="invalid-state",
                    status=409,
                )
            team, assignee = team or order.team, assignee or order.assignee
            if to == "dispatched" and not (team or assignee):
                raise CCServerError(
                    f"dispatching work order {order_id} needs a `team` or an `assignee`",
                    slug="assignee-required",
                    status=409,
                )
            due_at, due_state = self.sla.deadline(order.kind, order.area, to, order.created_at)
            escalation = (
                order.escalation if (due_at, due_state) == (order.due_at, order.due_state) else 0
            )
            db.execute(
                "UPDATE work_orders SET state = ?, team = ?, assignee = ?, updated_at = ?, "
                "due_at = ?, due_state = ?, escalation = ? WHERE id = ?",
                (to, team, assignee, at, due_at, due_state, escalation, order_id),
            )
            fields = {"from": order.state, "to": to, "note": note, "due_at": due_at}
            if (team, assignee) != (order.team, order.assignee):
                fields |= {"team": team, "assignee": assignee}
            _change(db, order_id, at, who, "moved", fields)
            return _load(db, order_id)

    def assign(
        self,
        order_id: int,
        *,
        who: str,
        team: str | None,
        assignee: str | None,
        now: float | None = None,
    ) -> WorkOrder:
        """Give an open order to a team and/or person (None keeps what it has)."""
        at = time.time() if now is None else now
        with self.history.records() as db:
            order = _load(db, order_id)
            _require_open(order)
            team, assignee = team or order.team, assignee or order.assignee
            db.execute(
                "UPDATE work_orders SET team = ?, assignee = ?, updated_at = ? WHERE id = ?",
                (team, assignee, at, order_id),
            )
            _change(db, order_id, at, who, "assigned", {"team": team, "assignee": assignee})
            return _load(db, order_id)

    def link_call(
        self, order_id: int, call_id: str, *, who: str, now: float | None = None
    ) -> WorkOrder:
        """Link another contact (a caller chasing their order) to the order."""
        at = time.time() if now is None else now
        with self.history.records() as db:
            _load(db, order_id)
            _link(db, order_id, call_id, at, who)
            return _load(db, order_id)

    def chase(self, now: float) -> list[WorkOrder]:
        """Raise the escalation of open orders whose deadline is near or past; returns the
        orders raised, as they are now."""
        raised = []
        with self.history.records() as db:
            rows = db.execute(
                f"SELECT id, due_at, escalation FROM work_orders WHERE due_at IS NOT NULL "
                f"AND due_at <= ? AND escalation < ? AND state IN ({_marks(OPEN_STATES)})",
                (now + self.warn_before_s, OVERDUE, *OPEN_STATES),
            ).fetchall()
            for row in rows:
                level = OVERDUE if row["due_at"] <= now else WARNING
                if level <= row["escalation"]:
                    continue
                db.execute("UPDATE work_orders SET escalation = ? WHERE id = ?", (level, row["id"]))
                _change(db, row["id"], now, "system", "escalated", {"level": level})
                raised.append(_load(db, row["id"]))
        return raised

    # --- reads ---------------------------------------------------------------------------
    def get(self, order_id: int) -> WorkOrder:
        rows = self.history.query(f"SELECT {_COLUMNS} FROM work_orders WHERE id = ?", (order_id,))
        if not rows:
            raise OrderUnknown(f"no work order {order_id}")
        return _order(rows[0], self._calls([order_id]).get(order_id, ()))

    def find(
        self,
        *,
        state: str | None = None,
        kind: str | None = None,
        account: str | None = None,
        caller: str | None = None,
        area: str | None = None,
        open_only: bool = False,
        escalated: bool = False,
        limit: int = 500,
    ) -> list[WorkOrder]:
        """Orders matching every filter given, newest first, at most `limit`."""
        where, params = ["1 = 1"], []
        for column, value in (
            ("state", state),
            ("kind", kind),
            ("account", account),
            ("caller", caller),
            ("area", area),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if open_only:
            where.append(f"state IN ({_marks(OPEN_STATES)})")
            params.extend(OPEN_STATES)
        if escalated:
            where.append("escalation > 0")
        rows = self.history.query(
            f"SELECT {_COLUMNS} FROM work_orders WHERE {' AND '.join(where)} "
            "ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        calls = self._calls([row["id"] for row in rows])
        return [_order(row, calls.get(row["id"], ())) for row in rows]

    def changes(self, order_id: int) -> list[dict[str, Any]]:
        """The order's history, oldest first: at, who, what, fields."""
        self.get(order_id)
        rows = self.history.query(
            "SELECT at, who, what, fields FROM work_order_changes WHERE order_id = ? ORDER BY id",
            (order_id,),
        )
        return [{**dict(row), "fields": json.loads(row["fields"])} for row in rows]

    def counts(self) -> dict[tuple[str, str], int]:
        """How many orders there are per (state, kind)."""
        rows = self.history.query(
            "SELECT state, kind, count(*) AS n FROM work_orders GROUP BY state, kind"
        )
        return {(row["state"], row["kind"]): int(row["n"]) for row in rows}

    def overdue(self) -> dict[str, int]:
        """How many open orders are past their deadline now (as last chased), per kind."""
        rows = self.history.query(
            f"SELECT kind, count(*) AS n FROM work_orders WHERE escalation >= ? "
            f"AND state IN ({_marks(OPEN_STATES)}) GROUP BY kind",
            (OVERDUE, *OPEN_STATES),
        )
        return {row["kind"]: int(row["n"]) for row in rows}

    def _calls(self, order_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        if not order_ids:
            return {}
        rows = self.history.query(
            f"SELECT order_id, call_id FROM work_order_calls WHERE order_id IN "
            f"({_marks(order_ids)}) ORDER BY linked_at, call_id",
            tuple(order_ids),
        )
        found: dict[int, list[str]] = {}
        for row in rows:
            found.setdefault(row["order_id"], []).append(row["call_id"])
        return {order_id: tuple(calls) for order_id, calls in found.items()}


class FlowOrders:
    """The work orders as IVR flows use them (`ccserver.ivr.channel.OrderDesk`): opened
    by "ivr", read in a thread so that the event loop never waits on SQLite."""

    def __init__(self, book: WorkOrderBook) -> None:
        self.book = book

    async def open_order(
        self,
        kind: str,
        *,
        caller: str,
        call_id: str,
        account: str | None,
        area: str | None,
        description: str,
    ) -> int:
        order = await asyncio.to_thread(
            self.book.open,
            kind,
            who="ivr",
            caller=caller or None,
            call_id=call_id,
            account=account,
            area=area,
            description=description,
        )
        return order.id

    async def open_orders(self, caller: str) -> list[tuple[int, str, str]]:
        found = await asyncio.to_thread(self.book.find, caller=caller, open_only=True, limit=5)
        return [(order.id, order.kind, order.state) for order in found]


def to_csv(orders: Iterable[WorkOrder]) -> str:
    """The orders as CSV (a header, then one row each; the calls separated by spaces)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for order in orders:
        row = order.to_dict()
        writer.writerow(
            [" ".join(row["calls"]) if c == "calls" else _cell(row[c]) for c in CSV_COLUMNS]
        )
    return out.getvalue()


def _cell(value: Any) -> Any:
    return "" if value is None else value


def closed_waiting(history: History) -> bool:
    """Whether an order was closed and not yet taken for a follow-up (`take_closed`)."""
    return bool(history.query(f"SELECT 1 FROM work_orders WHERE {_CLOSED_WAITING} LIMIT 1"))


def take_closed(db: sqlite3.Connection, at: float, *, follow_up: bool) -> list[tuple[int, str]]:
    """Closed orders not yet followed up: mark them "scheduled" (or "no-number", or "none"
    when `follow_up` is off) in the transaction `db`; returns (order, caller) to dial."""
    rows = db.execute(f"SELECT id, caller FROM work_orders WHERE {_CLOSED_WAITING}").fetchall()
    taken = []
    for row in rows:
        followup = "scheduled" if row["caller"] else "no-number"
        followup = followup if follow_up else "none"
        db.execute("UPDATE work_orders SET followup = ? WHERE id = ?", (followup, row["id"]))
        if followup == "scheduled":
            _change(db, row["id"], at, "system", "follow-up", {"number": row["caller"]})
            taken.append((int(row["id"]), str(row["caller"])))
    return taken


def record_followup(
    db: sqlite3.Connection,
    order_id: int,
    at: float,
    *,
    result: str,
    rating: int | None,
    answers: dict[str, str],
) -> None:
    """The follow-up call of an order ended: "answered" (with the rating, if given, and
    the flow's answers) or "unreachable"; written in the transaction `db`."""
    db.execute(
        "UPDATE work_orders SET followup = ?, rating = ?, updated_at = ? WHERE id = ?",
        (result, rating, at, order_id),
    )
    fields = {"result": result, "rating": rating, "answers": answers}
    _change(db, order_id, at, "system", "followed-up", fields)


def _require_open(order: WorkOrder) -> None:
    if order.state not in OPEN_STATES:
        raise CCServerError(
            f"work order {order.id} is {order.state}", slug="invalid-state", status=409
        )


def _load(db: sqlite3.Connection, order_id: int) -> WorkOrder:
    row = db.execute(f"SELECT {_COLUMNS} FROM work_orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        raise OrderUnknown(f"no work order {order_id}")
    calls = db.execute(
        "SELECT call_id FROM work_order_calls WHERE order_id = ? ORDER BY linked_at, call_id",
        (order_id,),
    ).fetchall()
    return _order(row, tuple(c["call_id"] for c in calls))


def _order(row: sqlite3.Row, calls: tuple[str, ...]) -> WorkOrder:
    return WorkOrder(**dict(row), calls=calls)


def _link(db: sqlite3.Connection, order_id: int, call_id: str, at: float, who: str) -> None:
    inserted = db.execute(
        "INSERT INTO work_order_calls (order_id, call_id, linked_at) VALUES (?, ?, ?) "
        "ON CONFLICT (order_id, call_id) DO NOTHING",
        (order_id, call_id, at),
    ).rowcount
    if inserted:
        _change(db, order_id, at, who, "linked", {"call": call_id})


def _change(
    db: sqlite3.Connection, order_id: int, at: float, who: str, what: str, fields: dict[str, Any]
) -> None:
    db.execute(
        "INSERT INTO work_order_changes (order_id, at, who, what, fields) VALUES (?, ?, ?, ?, ?)",
        (order_id, at, who, what, json.dumps(fields, ensure_ascii=False)),
    )


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))
