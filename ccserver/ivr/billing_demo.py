"""A small, real billing backend for the demo and the tests: `ccserver billing-demo`.

The 95598 flow's self-service branch looks accounts up over HTTP (`[ivr] billing_url`).
A utility points that at its billing system; the demo and the tests point it at this
aiohttp app, so the lookup path is exercised end to end over a real socket:

    GET /accounts/{account}   200 {"account", "name", "balance", "due_date"}
                              404 {"error": "account-unknown"}
                              400 {"error": "account-invalid"} (not 10 digits)
    GET /healthz              200 {"status": "ok"}

`balance` is the amount due in yuan (a JSON number, rounded to the fen), `due_date` an
ISO date. `delay_s` slows every answer down, to show (and test) a lookup timing out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from dataclasses import dataclass
from decimal import Decimal

from aiohttp import web

DEFAULT_PORT = 8095


@dataclass(frozen=True)
class Account:
    account: str
    name: str
    balance: Decimal
    due_date: str


DEMO_ACCOUNTS = (
    Account("1000000001", "张伟", Decimal("123.45"), "2025-08-15"),
    Account("1000000002", "王芳", Decimal("0.00"), "2025-08-20"),
    Account("1000000003", "李娜", Decimal("1005.08"), "2025-09-01"),
    Account("1000000004", "刘洋", Decimal("86.50"), "2025-08-25"),
    Account("2000000001", "Zhao Industrial Park", Decimal("25600.00"), "2025-08-31"),
)
"""Fixed accounts, so that tests and demo scripts can name them."""

_ACCOUNT = re.compile(r"^[0-9]{10}$")


def _json(data: object, status: int = 200) -> web.Response:
    """JSON with the names in UTF-8 as they are (not \\u escapes)."""
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def _account_json(account: Account) -> dict[str, object]:
    return {
        "account": account.account,
        "name": account.name,
        "balance": round(float(account.balance), 2),
        "due_date": account.due_date,
    }


def make_app(
    accounts: tuple[Account, ...] = DEMO_ACCOUNTS, *, delay_s: float = 0.0
) -> web.Application:
    """The billing app over `accounts`; every answer waits `delay_s` first."""
    by_number = {a.account: a for a in accounts}

    async def get_account(request: web.Request) -> web.Response:
        if delay_s:
            await asyncio.sleep(delay_s)
        number = request.match_info["account"]
        if not _ACCOUNT.match(number):
            return _json({"error": "account-invalid"}, 400)
        account = by_number.get(number)
        if account is None:
            return _json({"error": "account-unknown"}, 404)
        return _json(_account_json(account))

    async def healthz(_: web.Request) -> web.Response:
        return _json({"status": "ok"})

    app = web.Application()
    app.router.add_get("/accounts/{account}", get_account)
    app.router.add_get("/healthz", healthz)
    return app


def cmd_billing_demo(args: argparse.Namespace) -> int:
    print(f"billing demo on http://{args.host}:{args.port} ({len(DEMO_ACCOUNTS)} accounts)")
    web.run_app(make_app(delay_s=args.delay), host=args.host, port=args.port, print=None)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `billing-demo` to the `ccserver` command line."""
    p = sub.add_parser("billing-demo", help="serve demo billing accounts over HTTP")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT})")
    p.add_argument("--delay", type=float, default=0.0, help="seconds before each answer (0)")
    p.set_defaults(func=cmd_billing_demo)
