"""The work orders' endpoints (`ccserver.records.orders`), part of the API v1 route table.

Agents open orders, read them and link their calls to them; supervisors (and the
integrations of field crews, with a supervisor's token) dispatch, assign and move them.
The book is synchronous SQLite, so every handler runs it in a thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ccserver.api import models
from ccserver.api.auth import Role
from ccserver.api.table import BODY_ERRORS, Ctx, Route, TextBody, number_param, records_of
from ccserver.records.orders import WorkOrderBook, to_csv

_ORDER_ID = (("id", "the work order's number"),)
_UNAVAILABLE = (503, "orders-unavailable")
_MOVE_ERRORS = ((404, "order-unknown"), (409, "invalid-state"), _UNAVAILABLE)


def _book(ctx: Ctx) -> WorkOrderBook:
    return records_of(ctx, "orders-unavailable").orders


def _order_id(ctx: Ctx) -> int:
    return number_param(ctx, "work order", "order-unknown")


async def _find(ctx: Ctx) -> list[Any]:
    query = ctx.query
    assert isinstance(query, models.OrderFilter)
    return await asyncio.to_thread(
        _book(ctx).find,
        state=query.state,
        kind=query.kind,
        account=query.account,
        caller=query.caller,
        area=query.area,
        open_only=query.open,
        escalated=query.escalated,
        limit=query.limit,
    )


async def _list_orders(ctx: Ctx) -> Any:
    return [order.to_dict() for order in await _find(ctx)]


async def _export_orders(ctx: Ctx) -> Any:
    return TextBody(to_csv(await _find(ctx)))


async def _open_order(ctx: Ctx) -> Any:
    body, who = ctx.body, ctx.who
    assert isinstance(body, models.OrderInput)
    caller = body.caller
    if body.call is not None:  # the call must exist, and be this agent's to name
        call = await ctx.services.backend.call(body.call, agent=who.reader)
        caller = caller or call.get("caller")
    order = await asyncio.to_thread(
        _book(ctx).open,
        body.kind,
        who=who.name,
        description=body.description,
        account=body.account,
        caller=caller,
        address=body.address,
        area=body.area,
        priority=body.priority,
        call_id=body.call,
        agent=who.agent_id,
    )
    return order.to_dict()


async def _get_order(ctx: Ctx) -> Any:
    book, order_id = _book(ctx), _order_id(ctx)
    order = await asyncio.to_thread(book.get, order_id)
    changes = await asyncio.to_thread(book.changes, order_id)
    return {**order.to_dict(), "changes": changes}


async def _move_order(ctx: Ctx) -> Any:
    body = ctx.body
    assert isinstance(body, models.OrderMove)
    order = await asyncio.to_thread(
        _book(ctx).move,
        _order_id(ctx),
        body.state,
        who=ctx.who.name,
        note=body.note,
        team=body.team,
        assignee=body.assignee,
    )
    return order.to_dict()


async def _assign_order(ctx: Ctx) -> Any:
    body = ctx.body
    assert isinstance(body, models.OrderAssign)
    order = await asyncio.to_thread(
        _book(ctx).assign,
        _order_id(ctx),
        who=ctx.who.name,
        team=body.team,
        assignee=body.assignee,
    )
    return order.to_dict()


async def _link_call(ctx: Ctx) -> Any:
    body, who = ctx.body, ctx.who
    assert isinstance(body, models.OrderLink)
    await ctx.services.backend.call(body.call, agent=who.reader)
    order = await asyncio.to_thread(_book(ctx).link_call, _order_id(ctx), body.call, who=who.name)
    return order.to_dict()


ORDER_ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/orders",
        _list_orders,
        "listOrders",
        "Work orders matching the query's filters, newest first.",
        Role.AGENT,
        models.WorkOrder,
        many=True,
        query=models.OrderFilter,
        errors=((400, "input-invalid"), _UNAVAILABLE),
        audit_read=True,
    ),
    Route(
        "GET",
        "/orders.csv",
        _export_orders,
        "exportOrders",
        "The same work orders as `GET /orders`, as CSV (a header row, then one row each).",
        Role.SUPERVISOR,
        None,
        query=models.OrderFilter,
        media="text/csv",
        errors=((400, "input-invalid"), _UNAVAILABLE),
        details="Columns: the fields of a work order; `calls` separated by spaces; times "
        "as epoch seconds; an empty cell is no value.",
        audit_read=True,
    ),
    Route(
        "POST",
        "/orders",
        _open_order,
        "openOrder",
        "Open a work order (state `new`), with its deadline from the SLA table.",
        Role.AGENT,
        models.WorkOrder,
        status=201,
        body=models.OrderInput,
        errors=(*BODY_ERRORS, (403, "forbidden"), (404, "call-unknown"), _UNAVAILABLE),
        details="The desk opens one from the call on screen (`call`); the IVR's repair "
        "branch opens one for the caller itself.",
    ),
    Route(
        "GET",
        "/orders/{id}",
        _get_order,
        "getOrder",
        "One work order with the history of every change (who, when, what).",
        Role.AGENT,
        models.WorkOrderDetail,
        params=_ORDER_ID,
        errors=((404, "order-unknown"), _UNAVAILABLE),
        audit_read=True,
    ),
    Route(
        "POST",
        "/orders/{id}/state",
        _move_order,
        "moveOrder",
        "Move a work order: dispatched, on-site, resolved, closed or cancelled.",
        Role.SUPERVISOR,
        models.WorkOrder,
        body=models.OrderMove,
        params=_ORDER_ID,
        errors=(*BODY_ERRORS, *_MOVE_ERRORS, (409, "assignee-required")),
        details="Allowed moves: new → dispatched, resolved, cancelled; dispatched → on-site, "
        "resolved, cancelled; on-site → resolved, cancelled; resolved → closed, or back to "
        "dispatched (not fixed). The next deadline comes from the SLA table; a new one "
        "starts the chasing again.",
    ),
    Route(
        "POST",
        "/orders/{id}/assign",
        _assign_order,
        "assignOrder",
        "Give an open work order to a team and/or a person.",
        Role.SUPERVISOR,
        models.WorkOrder,
        body=models.OrderAssign,
        params=_ORDER_ID,
        errors=(*BODY_ERRORS, *_MOVE_ERRORS),
    ),
    Route(
        "POST",
        "/orders/{id}/calls",
        _link_call,
        "linkOrderCall",
        "Link another call to a work order (the customer asking after it).",
        Role.AGENT,
        models.WorkOrder,
        body=models.OrderLink,
        params=_ORDER_ID,
        errors=(
            *BODY_ERRORS,
            (403, "forbidden"),
            (404, "call-unknown"),
            (404, "order-unknown"),
            _UNAVAILABLE,
        ),
    ),
)
