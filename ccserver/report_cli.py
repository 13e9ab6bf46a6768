"""The `report` command: KPIs of a period from the history store, by band, hour, day,
queue or agent, as a terminal table, CSV or JSON.

    ccserver report --from 2025-01-06 --to 2025-01-07 --by band
    ccserver report --from 2025-01-06T08:00 --to 2025-01-06T20:00 --by hour --format csv
    ccserver report --from 2025-01-01 --to 2025-02-01 --by agent --format json --db h.sqlite

The store is read through a read-only connection of its own rather than `History`: a
report must not create, migrate or lock the live file, needs no writer thread, and reads
in bulk what `History`'s helpers give call by call (events) or not at all (each agent's
state when the period begins). The numbers come from `ccserver.reports`; docs/reports.md
defines them.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import sqlite3
import sys
import textwrap
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ccserver import config as config_mod
from ccserver import reports
from ccserver.errors import CCServerError, InputError
from ccserver.history import SCHEMA_VERSION, HistoryUnavailable
from ccserver.workforce import adherence

AGENT_LOOKAHEAD_S = 3600.0
"""Agent states are read this long past the last call's end, to see its wrap-up end."""

_CALLS = (
    "SELECT call_id, caller, queue, arrived_at, queued_at, connected_at, ended_at, outcome, "
    "agent, wait_s, talk_s, handled_by, survey_score, record FROM calls "
    "WHERE arrived_at >= ? AND arrived_at < ? ORDER BY arrived_at, call_id"
)
_EVENTS = (
    "SELECT e.id, e.call_id, e.at, e.kind, e.queue, e.agent, e.fields FROM events e "
    "JOIN calls c ON c.call_id = e.call_id WHERE c.arrived_at >= ? AND c.arrived_at < ? "
    "ORDER BY e.id"
)
# SQLite takes the bare columns of a max() aggregate from the row holding the maximum.
_STATES_BEFORE = (
    "SELECT id, max(at) AS at, agent, state FROM agent_events WHERE at < ? GROUP BY agent"
)
_STATES = "SELECT id, at, agent, state FROM agent_events WHERE at >= ? AND at < ? ORDER BY at, id"
_REASONED_BEFORE = (
    "SELECT max(at) AS at, agent, state, reason FROM agent_events WHERE at < ? GROUP BY agent"
)
_REASONED = (
    "SELECT at, agent, state, reason FROM agent_events WHERE at >= ? AND at < ? ORDER BY at, id"
)
_ARRIVALS = (
    "SELECT call_id, caller, arrived_at, json_extract(record, '$.disposition') AS disposition "
    "FROM calls WHERE arrived_at >= ? AND arrived_at <= ? "
    "AND caller IS NOT NULL AND caller <> ''"
)

_ORDER_LINKS = (
    "SELECT l.call_id, l.order_id FROM work_order_calls l JOIN calls c ON c.call_id = l.call_id "
    "WHERE c.arrived_at >= ? AND c.arrived_at <= ?"
)
_QA_SCORES = (
    "SELECT s.call_id, s.total, s.max_points FROM qa_scores s "
    "JOIN calls c ON c.call_id = s.call_id WHERE c.arrived_at >= ? AND c.arrived_at < ?"
)
_SHARES = frozenset(
    {"manual_share", "answer_rate", "abandon_rate", "loss_rate", "service_level", "occupancy"}
    | {"fcr", "fcr_same", "qa"}
)
_VOLUMES = (
    ("offered", "offered"),
    ("ivr", "ivr_handled"),
    ("agent", "agent_handled"),
    ("manual", "manual_share"),
    ("queued", "queued"),
    ("answered", "answered"),
    ("aband", "abandoned"),
    ("short", "short_abandoned"),
    ("cb", "callbacks"),
    ("cb_ok", "callbacks_done"),
    ("loss", "call_loss"),
    ("ivr-ab", "ivr_abandoned"),
    ("loss%", "loss_rate"),
)
_SERVICE = (
    ("ans%", "answer_rate"),
    ("aband%", "abandon_rate"),
    ("SL", "service_level"),
    ("ASA", "asa_s"),
    ("AHT", "aht_s"),
    ("occ", "occupancy"),
    ("xfer", "transfers"),
    ("FCR", "fcr"),
    ("FCR=", "fcr_same"),
    ("CSAT", "csat"),
    ("n", "csat_n"),
    ("QA", "qa"),
    ("qa_n", "qa_n"),
)
"""The terminal table in two blocks (all columns at once are too wide to read)."""
_SL_BASE = {
    "answered": "answered",
    "offered": "queued",
    "offered-minus-short": "(queued − short)",
}


class HistoryMissing(CCServerError):
    """There is no history store at the path a report was asked to read."""

    slug = "history-missing"
    status = 404
    exit_code = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `report` to the `ccserver` command line."""
    p = sub.add_parser("report", help="KPI report of a period from the history store")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file (default: ./ccserver.toml if present, or $CCSERVER_CONFIG)",
    )
    p.add_argument("--from", dest="start", required=True, metavar="ISO", help="first instant")
    p.add_argument("--to", dest="end", required=True, metavar="ISO", help="end (excluded)")
    p.add_argument("--by", choices=reports.GROUP_BY, default="band", help="grouping (band)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--db", metavar="PATH", help="history store (default: the configured one)")
    p.add_argument(
        "--adherence",
        metavar="ROSTER_CSV",
        help="instead of the KPIs: each rostered shift in the period beside what its agent did",
    )
    p.add_argument(
        "--grace-s", type=float, default=adherence.GRACE_S, help="late by this much is on time (60)"
    )
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    config = config_mod.load(args.config)
    zone = config.ivr.zone()
    start, end = _instant(args.start, zone, "--from"), _instant(args.end, zone, "--to")
    if start >= end:
        raise InputError(
            f"--from {args.start} is not before --to {args.end}; the period is [from, to)",
            slug="report-range-invalid",
        )
    db = Path(args.db) if args.db else config.run_dir / config.controller.history_db
    if args.adherence:
        return _adherence(args, db, zone, start, end)
    rows = read(db, start, end, config.reports.fcr_window_h * 3600.0)
    report = reports.build(
        rows,
        by=args.by,
        start=start,
        end=end,
        observed_until=min(end, time.time()),
        settings=config.reports,
        zone=zone,
    )
    period = f"{_local(start, zone)} to {_local(end, zone)} ({zone.key})"
    # No calls: the table says so; CSV and JSON stay parseable (no rows) and say it aside.
    rows_out = _all(report) if report.total.offered else []
    if not rows_out:
        note = f"no calls arrived from {period} in {db}"
        print(note, file=sys.stdout if args.format == "table" else sys.stderr)
    if args.format == "json":
        print(json.dumps([r.as_dict(args.by) for r in rows_out], indent=2, allow_nan=False))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([args.by, *reports.COLUMNS])
        for row in rows_out:
            writer.writerow(["" if v is None else v for v in row.as_dict(args.by).values()])
    elif rows_out:
        print(f"calls arriving {period}, by {args.by}, from {db}")
        for line in _table(report, config.reports):
            print(line)
    return 0


def _adherence(args: argparse.Namespace, db: Path, zone: ZoneInfo, start: float, end: float) -> int:
    """Adherence of the roster's shifts that start in [start, end), per agent and team."""
    shifts = [
        s for s in adherence.read_roster(Path(args.adherence), zone) if start <= s.start < end
    ]
    if not shifts:
        raise InputError(f"{args.adherence}: no shift starts in the period", slug="roster-empty")
    events = read_agent_events(db, min(s.start for s in shifts), max(s.end for s in shifts))
    agents, teams = adherence.adherence(shifts, events, grace_s=args.grace_s)
    tables = {"agent": sorted(agents.values(), key=lambda a: a.key)}
    tables["team"] = sorted(teams.values(), key=lambda a: a.key)
    if args.format == "json":
        print(json.dumps({k: [r.as_dict() for r in v] for k, v in tables.items()}, indent=2))
        return 0
    columns = list(adherence.Adherence(key="").as_dict())
    if args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["by", *columns])
        for by, table in tables.items():
            for row in table:
                writer.writerow([by, *("" if v is None else v for v in row.as_dict().values())])
        return 0
    print(f"adherence of {len(shifts)} shifts from {_local(start, zone)} to {_local(end, zone)}")
    header = "by     key        shifts  on time  absent  late min  early min  not ready  adherence"
    print(header)
    for by, table in tables.items():
        for r in table:
            share = "-" if r.adherence is None else f"{r.adherence:.1%}"
            print(
                f"{by:<6} {r.key:<10} {r.shifts:>6}  {r.on_time:>7}  {r.absent:>6}  "
                f"{r.late_min:>8.1f}  {r.early_leave_min:>9.1f}  {r.not_ready_min:>9.1f}  "
                f"{share:>9}"
            )
    return 0


def read_arrivals(path: Path, start: float, end: float, queue: str | None) -> list[float]:
    """When each call of [start, end) arrived (of one queue, or all), from the history
    file at `path` — what a forecast from the history needs, and nothing more."""
    sql = "SELECT arrived_at FROM calls WHERE arrived_at >= ? AND arrived_at < ?"
    params: tuple[Any, ...] = (start, end)
    if queue is not None:
        sql, params = sql + " AND queue = ?", (*params, queue)
    with _history(path) as conn:
        return [float(row["arrived_at"]) for row in conn.execute(sql, params)]


def read_agent_events(path: Path, start: float, end: float) -> list[dict[str, Any]]:
    """Agents' state changes in [start, end) from the history file at `path`, after each
    agent's last state before `start` (what they were doing when the period began)."""
    with _history(path) as conn:
        before = [dict(r) for r in conn.execute(_REASONED_BEFORE, (start,))]
        return before + [dict(r) for r in conn.execute(_REASONED, (start, end))]


def _instant(text: str, zone: ZoneInfo, flag: str) -> float:
    """An ISO date or date-time; naive ones are in the report's zone."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{flag} {text!r} is not an ISO date or date-time (2025-01-06, 2025-01-06T09:30, "
            "2025-01-06T09:30+08:00)",
            slug="report-date-invalid",
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=zone)).timestamp()


def _local(at: float, zone: ZoneInfo) -> str:
    return f"{dt.datetime.fromtimestamp(at, zone):%Y-%m-%d %H:%M}"


@contextlib.contextmanager
def _history(path: Path) -> Iterator[sqlite3.Connection]:
    """The history file at `path`, read-only, once its schema is known to be readable;
    every SQLite error inside is a HistoryUnavailable naming the file."""
    if not path.exists():
        raise HistoryMissing(
            f"{path}: no history store there; give --db PATH, or check stack.run_dir and "
            "controller.history_db (the controller writes it once calls are taken)"
        )
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise _unreadable(path, exc) from None
    try:
        conn.row_factory = sqlite3.Row
        version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        if version is None or version > SCHEMA_VERSION:
            raise HistoryUnavailable(
                f"{path}: history schema version {version}, this ccserver reads "
                f"{SCHEMA_VERSION}; use the ccserver that wrote it"
            )
        yield conn
    except sqlite3.Error as exc:
        raise _unreadable(path, exc) from None
    finally:
        conn.close()


def read(path: Path, start: float, end: float, fcr_window_s: float) -> reports.Rows:
    """The rows a report of [start, end) needs, from the history file at `path`."""
    with _history(path) as conn:
        calls = [_call(r) for r in conn.execute(_CALLS, (start, end))]
        events = [
            {**dict(r), "fields": json.loads(r["fields"])}
            for r in conn.execute(_EVENTS, (start, end))
        ]
        last = max((c["ended_at"] or c["arrived_at"] for c in calls), default=end)
        horizon = max(end, last)
        states = [dict(r) for r in conn.execute(_STATES_BEFORE, (start,))]
        states += [dict(r) for r in conn.execute(_STATES, (start, horizon + AGENT_LOOKAHEAD_S))]
        arrivals = [dict(r) for r in conn.execute(_ARRIVALS, (start, horizon + fcr_window_s))]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        links: dict[str, set[int]] = defaultdict(set)
        if "work_order_calls" in tables:  # a store older than the work orders has none
            for row in conn.execute(_ORDER_LINKS, (start, horizon + fcr_window_s)):
                links[row["call_id"]].add(int(row["order_id"]))
        qa = (
            [dict(r) for r in conn.execute(_QA_SCORES, (start, end))]
            if "qa_scores" in tables
            else []
        )
    return reports.Rows(
        calls=calls,
        events=events,
        agent_events=states,
        arrivals=arrivals,
        order_links={call: frozenset(orders) for call, orders in links.items()},
        qa_scores=qa,
    )


def _call(row: sqlite3.Row) -> dict[str, Any]:
    return {**dict(row), "record": json.loads(row["record"])}


def _unreadable(path: Path, exc: sqlite3.Error) -> HistoryUnavailable:
    return HistoryUnavailable(
        f"{path}: cannot read it as a ccserver history store ({exc}); give the right --db"
    )


def _all(report: reports.Report) -> list[reports.Row]:
    return [*report.rows, report.total]


def _table(report: reports.Report, settings: config_mod.ReportsConfig) -> list[str]:
    lines: list[str] = []
    for block in (_VOLUMES, _SERVICE):
        header = [report.by, *(title for title, _ in block)]
        body = [
            [row.group, *(_cell(row, key, settings) for _, key in block)] for row in _all(report)
        ]
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        rule = "-" * len(_line(header, widths))
        lines += ["", _line(header, widths), *(_line(cells, widths) for cells in body[:-1])]
        lines += [rule, _line(body[-1], widths)]
    base = _SL_BASE[settings.service_level_definition]
    legend = (
        f"SL = answered within {settings.service_level_s:g} s / {base}, ! below the "
        f"{settings.service_level_target:.0%} target; short = abandoned after less than "
        f"{settings.short_abandon_s:g} s (not in aband); loss = offered − ivr − answered − "
        "cb_ok. ASA and AHT in seconds, AHT = talk + wrap-up where recorded; occ = (busy + "
        f"wrap-up) / logged in; FCR = no call from the number within "
        f"{settings.fcr_window_h:g} h. Definitions: docs/reports.md"
    )
    lines += ["", *textwrap.wrap(legend, 100)]
    return lines


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    """The group name left-aligned, the numbers right-aligned."""
    first = cells[0].ljust(widths[0])
    return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])


def _cell(row: reports.Row, key: str, settings: config_mod.ReportsConfig) -> str:
    value = getattr(row, key)
    if key == "service_level":  # a mark column of its own keeps the numbers aligned
        if value is None:
            return "- "
        return f"{value:.1%}" + ("!" if value < settings.service_level_target else " ")
    if value is None:
        return "-"
    if key in _SHARES:
        return f"{value:.1%}"
    if key == "csat":
        return f"{value:.2f}"
    return f"{value:.1f}" if isinstance(value, float) else str(value)
