"""The `campaigns` command: survey campaigns in the history store, from a terminal or cron.

    ccserver campaigns start "autumn survey" numbers.csv --max-concurrent 5 --cps 1
    ccserver campaigns list                      # every campaign and its progress
    ccserver campaigns show 3                    # each number's result, rating, tries
    ccserver campaigns show 3 --format csv       # the same, for a spreadsheet
    ccserver campaigns stop 3                    # dial no more of it

It works on the same file as the running controller, whose dialer calls the numbers
(docs/outbound.md); a campaign started here is dialled as one started over the API. The
flow must be one of the outbound flows (`outbound.flows_dir`).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from ccserver import config as config_mod
from ccserver.errors import InputError
from ccserver.ivr.loader import load_outbound_flows
from ccserver.records.outbound import Campaign, OutboundBook, Policy, Target, parse_numbers
from ccserver.records_cli import command, history, table, text, when, who

_TARGET_COLUMNS = ("number", "state", "result", "rating", "answers", "tries", "last_try")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `campaigns` to the `ccserver` command line."""
    acts = command(sub, "campaigns", "survey campaigns: start, list, show, stop", "who started it")

    start = acts.add_parser("start", help="call every number of a CSV list (number first)")
    start.add_argument("name")
    start.add_argument("list", metavar="LIST.csv", type=Path)
    start.add_argument("--flow", default="survey", help="an outbound flow (survey)")
    start.add_argument("--max-concurrent", type=int, default=5, help="calls up at once (5)")
    start.add_argument("--cps", type=float, default=1.0, help="new calls a second (1)")
    start.add_argument("--attempts", type=int, default=2, help="tries of a busy number (2)")
    start.add_argument("--retry-s", type=float, default=600.0, help="back-off, doubling (600)")
    start.set_defaults(func=_start)

    listing = acts.add_parser("list", help="every campaign and its progress, newest first")
    listing.set_defaults(func=_list)

    show = acts.add_parser("show", help="one campaign and every number's outcome")
    show.add_argument("id", type=int)
    show.add_argument("--format", choices=["table", "csv", "json"], default="table")
    show.set_defaults(func=_show)

    stop = acts.add_parser("stop", help="dial no more of a campaign")
    stop.add_argument("id", type=int)
    stop.set_defaults(func=_stop)


@contextlib.contextmanager
def _book(args: argparse.Namespace, config: config_mod.Config) -> Iterator[OutboundBook]:
    store = history(args, config)
    try:
        yield OutboundBook(store)
    finally:
        store.close()


def _start(args: argparse.Namespace) -> int:
    config = config_mod.load(args.config)
    flows = load_outbound_flows(config.outbound.resolved_flows_dir())
    if args.flow not in flows:
        raise InputError(f"--flow {args.flow!r} is not an outbound flow ({', '.join(flows)})")
    if args.max_concurrent < 1 or args.cps <= 0 or args.attempts < 1 or args.retry_s <= 0:
        raise InputError("--max-concurrent, --cps, --attempts and --retry-s must be positive")
    try:
        listed = args.list.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{args.list}: cannot be read as UTF-8 text ({exc})") from None
    numbers = parse_numbers(listed)
    policy = Policy(args.flow, args.max_concurrent, args.cps, args.attempts, args.retry_s)
    with _book(args, config) as book:
        campaign = book.create_campaign(args.name, numbers, policy, who=who(args))
    print(f"campaign {campaign.id} started: {len(numbers)} number(s), flow {campaign.flow}")
    return 0


def _list(args: argparse.Namespace) -> int:
    with _book(args, config_mod.load(args.config)) as book:
        campaigns = book.campaigns()
    rows = [["id", "name", "state", "flow", "started", "progress"]]
    rows += [
        [str(c.id), c.name, c.state, c.flow, when(c.created_at), _progress(c)] for c in campaigns
    ]
    table(rows)
    print(f"{len(campaigns)} campaign(s)")
    return 0


def _show(args: argparse.Namespace) -> int:
    with _book(args, config_mod.load(args.config)) as book:
        campaign = book.campaign(args.id)
        targets = book.targets(campaign=args.id)
    if args.format == "json":
        detail = {**campaign.to_dict(), "targets": [t.to_dict() for t in targets]}
        print(json.dumps(detail, ensure_ascii=False, indent=2))
        return 0
    rows = [list(_TARGET_COLUMNS)] + [_row(t) for t in targets]
    if args.format == "csv":
        csv.writer(sys.stdout, lineterminator="\n").writerows(rows)
        return 0
    print(f"campaign {campaign.id} {campaign.name!r}: {campaign.state}, {_progress(campaign)}")
    table(rows)
    return 0


def _stop(args: argparse.Namespace) -> int:
    with _book(args, config_mod.load(args.config)) as book:
        campaign = book.stop_campaign(args.id)
    print(f"campaign {campaign.id} is {campaign.state}: {_progress(campaign)}")
    return 0


def _progress(campaign: Campaign) -> str:
    return ", ".join(f"{key} {count}" for key, count in sorted(campaign.progress.items())) or "-"


def _row(target: Target) -> list[str]:
    answers = " ".join(f"{k}={v}" for k, v in sorted(target.answers.items()))
    last = target.tries[-1] if target.tries else None
    last_try = f"{when(last['at'])} {last['result']}" if last and last.get("at") else "-"
    return [
        target.number,
        target.state,
        text(target.result),
        text(target.rating),
        answers or "-",
        str(len(target.tries)),
        last_try,
    ]
