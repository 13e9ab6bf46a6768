"""Work orders as call control sees them: their chasing (督办) reaches the people.

Every `work_orders.check_every_s` the chaser raises the escalation of orders whose
deadline is near or past (`WorkOrderBook.chase`), then:
- an order that went overdue counts in `ccserver_work_order_overdue_total{kind}`;
- the desk of the agent who opened the order gets an `order.escalated` event;
- the wallboard's banner lists every open order being chased, most urgent first;
- each raise is a log line `order.escalated`.

A history store that fails is logged and tried again at the next check; the chaser never
stops and never touches a call.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time

from ccserver.calls.center import CallCenter
from ccserver.errors import CCServerError
from ccserver.logs import log
from ccserver.metrics import instruments
from ccserver.records.orders import OVERDUE, WorkOrder, WorkOrderBook

logger = logging.getLogger("ccserver.orders")
BOARD_LISTED = 50  # the most urgent chased orders the wallboard lists


async def chase_forever(center: CallCenter, book: WorkOrderBook, every_s: float) -> None:
    while True:
        await chase(center, book, time.time())
        await asyncio.sleep(every_s)


async def chase(center: CallCenter, book: WorkOrderBook, now: float) -> list[WorkOrder]:
    """One round of chasing; returns the orders it raised."""
    try:
        raised = await asyncio.to_thread(book.chase, now)
        chased = await asyncio.to_thread(book.find, open_only=True, escalated=True, limit=1000)
    except (CCServerError, sqlite3.Error) as exc:
        log(logger, "order.chase_failed", logging.WARNING, error=repr(exc)[:200])
        return []
    for order in raised:
        log(
            logger,
            "order.escalated",
            logging.WARNING if order.escalation == OVERDUE else logging.INFO,
            order=order.id,
            kind=order.kind,
            level=order.escalation,
            due=order.due_state,
            due_at=order.due_at,
        )
        if order.escalation == OVERDUE:
            instruments.WORK_ORDERS_OVERDUE.labels(order.kind).inc()
        if order.agent and center.desk is not None:
            center.desk.tell(order.agent, "order.escalated", now, order=order.to_dict())
    if center.board is not None:
        chased.sort(key=lambda o: (-o.escalation, o.due_at or now, o.id))
        center.board.orders = [o.to_dict() for o in chased[:BOARD_LISTED]]
    return raised
