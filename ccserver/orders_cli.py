"""The `orders` command: the work orders in the history store, from a terminal or a script.

    ccserver orders list --open --kind fault            # a table, newest first
    ccserver orders list --state resolved --format csv  # CSV as GET /api/v1/orders.csv
    ccserver orders show 12                              # one order and its history
    ccserver orders open fault --caller 13800000001 --account 0012345678 --area rural
    ccserver orders move 12 dispatched --team crew-3 --note "crew 3 on the way"
    ccserver orders assign 12 --assignee li

It works on the same file as the running controller (SQLite allows both); changes are
recorded in each order's history as `--by` (default `cli:<login name>`). The controller
chases deadlines; the command does not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator

from ccserver import config as config_mod
from ccserver.records.orders import KINDS, STATES, Sla, WorkOrder, WorkOrderBook, to_csv
from ccserver.records_cli import command, history, table, text, when, who

_TABLE = ("id", "kind", "state", "priority", "caller", "account", "area", "team", "assignee")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `orders` to the `ccserver` command line."""
    acts = command(
        sub, "orders", "work orders: list, show, open, move, assign", "who the history records"
    )

    listing = acts.add_parser("list", help="orders matching every filter, newest first")
    listing.add_argument("--state", choices=STATES)
    listing.add_argument("--kind", choices=KINDS)
    for name in ("caller", "account", "area"):
        listing.add_argument(f"--{name}")
    listing.add_argument("--open", action="store_true", help="only orders not closed/cancelled")
    listing.add_argument("--escalated", action="store_true", help="only orders being chased")
    listing.add_argument("--limit", type=int, default=500)
    listing.add_argument("--format", choices=["table", "csv", "json"], default="table")
    listing.set_defaults(func=_list)

    show = acts.add_parser("show", help="one order and the history of its changes")
    show.add_argument("id", type=int)
    show.set_defaults(func=_show)

    opening = acts.add_parser("open", help="open an order (state new)")
    opening.add_argument("kind", choices=KINDS)
    for name in ("caller", "account", "address", "area", "call"):
        opening.add_argument(f"--{name}")
    opening.add_argument("--description", default="")
    opening.add_argument("--priority", type=int, default=0, choices=range(10), metavar="0-9")
    opening.set_defaults(func=_open)

    move = acts.add_parser("move", help="move an order to another state")
    move.add_argument("id", type=int)
    move.add_argument("state", choices=STATES)
    for name in ("note", "team", "assignee"):
        move.add_argument(f"--{name}")
    move.set_defaults(func=_move)

    assign = acts.add_parser("assign", help="give an open order to a team and/or person")
    assign.add_argument("id", type=int)
    assign.add_argument("--team")
    assign.add_argument("--assignee")
    assign.set_defaults(func=_assign)


@contextlib.contextmanager
def _book(args: argparse.Namespace) -> Iterator[WorkOrderBook]:
    config = config_mod.load(args.config)
    settings = config.work_orders
    store = history(args, config)
    try:
        yield WorkOrderBook(
            store,
            Sla(rule.rule() for rule in settings.sla),
            warn_before_s=settings.warn_before_s,
        )
    finally:
        store.close()


def _list(args: argparse.Namespace) -> int:
    with _book(args) as book:
        orders = book.find(
            state=args.state,
            kind=args.kind,
            caller=args.caller,
            account=args.account,
            area=args.area,
            open_only=args.open,
            escalated=args.escalated,
            limit=args.limit,
        )
    if args.format == "csv":
        sys.stdout.write(to_csv(orders))
    elif args.format == "json":
        print(json.dumps([o.to_dict() for o in orders], ensure_ascii=False, indent=2))
    else:
        _table(orders)
    return 0


def _table(orders: list[WorkOrder]) -> None:
    rows = [[*_TABLE, "due"]]
    for order in orders:
        data = order.to_dict()
        rows.append([text(data[c]) for c in _TABLE] + [_due(order)])
    table(rows)
    print(f"{len(orders)} order(s)")


def _due(order: WorkOrder) -> str:
    if order.due_at is None:
        return "-"
    mark = {1: " (soon)", 2: " (OVERDUE)"}.get(order.escalation, "")
    return f"{order.due_state} by {when(order.due_at)}{mark}"


def _show(args: argparse.Namespace) -> int:
    with _book(args) as book:
        order, changes = book.get(args.id), book.changes(args.id)
    for key, value in order.to_dict().items():
        shown = when(value) if key.endswith("_at") and value is not None else text(value)
        print(f"{key:12} {shown}")
    print("history:")
    for change in changes:
        fields = ", ".join(f"{k}={text(v)}" for k, v in change["fields"].items())
        print(f"  {when(change['at'])}  {change['who']:16} {change['what']:9} {fields}")
    return 0


def _open(args: argparse.Namespace) -> int:
    with _book(args) as book:
        order = book.open(
            args.kind,
            who=who(args),
            description=args.description,
            account=args.account,
            caller=args.caller,
            address=args.address,
            area=args.area,
            priority=args.priority,
            call_id=args.call,
        )
    print(f"work order {order.id} opened: {order.kind}, {_due(order)}")
    return 0


def _move(args: argparse.Namespace) -> int:
    with _book(args) as book:
        order = book.move(
            args.id,
            args.state,
            who=who(args),
            note=args.note,
            team=args.team,
            assignee=args.assignee,
        )
    print(f"work order {order.id} is {order.state}; next: {_due(order)}")
    return 0


def _assign(args: argparse.Namespace) -> int:
    with _book(args) as book:
        order = book.assign(args.id, who=who(args), team=args.team, assignee=args.assignee)
    print(f"work order {order.id}: team {order.team or '-'}, assignee {order.assignee or '-'}")
    return 0
