"""The workforce commands: `erlang` and `simulate` here; `forecast`, `staff` and `roster` in
`plan_cli` (registered from here).

    ccserver erlang b --traffic 10 --lines 18            blocking of 18 lines
    ccserver erlang b --traffic 10 --blocking 0.01       lines for 1 % blocking
    ccserver erlang c --traffic 10 --agents 14 --aht 180 --target 20
    ccserver erlang a --traffic 10 --agents 14 --aht 180 --target 20 --patience 120
    ccserver erlang staff --traffic 10 --aht 180 --target 20 --sl 0.8 [--max-occupancy 0.85]
    ccserver simulate --example 95598 --agents 71 112 [--rona 0.03 --patience 120]
    ccserver simulate --calls-per-hour 200 --hours 8 --agents 12 14 16

Every command takes `--format table|json`. Handlers return the exit code; user errors
are `InputError`s, which `ccserver.cli.main` prints as one line without a traceback.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from ccserver.errors import InputError
from ccserver.workforce import plan_cli
from ccserver.workforce.cli_common import add_targets, emit, pct, with_format

# --- erlang -------------------------------------------------------------------------------


def cmd_erlang_b(args: argparse.Namespace) -> int:
    from ccserver.workforce import erlang

    if (args.lines is None) == (args.blocking is None):
        raise InputError("give --lines (to get the blocking) or --blocking (to get the lines)")
    if args.lines is not None:
        b = erlang.erlang_b(args.traffic, args.lines)
        data = {"traffic": args.traffic, "lines": args.lines, "blocking": b}
        return emit(args, data, [f"blocking  {b:.6f}  ({args.lines} lines, {args.traffic:g} E)"])
    n = erlang.servers_for_blocking(args.traffic, args.blocking)
    b = erlang.erlang_b(args.traffic, n)
    data = {"traffic": args.traffic, "lines": n, "blocking": b}
    return emit(args, data, [f"lines     {n}", f"blocking  {b:.6f}"])


def _erlang_c_lines(traffic: float, agents: int, aht: float, target: float) -> dict[str, Any]:
    from ccserver.workforce import erlang

    return {
        "traffic": traffic,
        "agents": agents,
        "aht_s": aht,
        "target_s": target,
        "p_wait": erlang.erlang_c(traffic, agents),
        "service_level": erlang.service_level(traffic, agents, aht, target),
        "asa_s": erlang.asa(traffic, agents, aht),
        "occupancy": erlang.occupancy(traffic, agents),
    }


def _c_table(d: dict[str, Any]) -> list[str]:
    return [
        f"agents         {d['agents']}",
        f"P(wait)        {d['p_wait']:.4f}",
        f"service level  {pct(d['service_level'])} answered within {d['target_s']:g} s",
        f"ASA            {d['asa_s']:.2f} s",
        f"occupancy      {pct(d['occupancy'])}",
    ]


def cmd_erlang_c(args: argparse.Namespace) -> int:
    d = _erlang_c_lines(args.traffic, args.agents, args.aht, args.target)
    return emit(args, d, _c_table(d))


def cmd_erlang_a(args: argparse.Namespace) -> int:
    from ccserver.workforce import erlang

    if not (math.isfinite(args.aht) and args.aht > 0):
        raise InputError(f"--aht must be > 0 seconds, got {args.aht}")
    if not (math.isfinite(args.traffic) and args.traffic > 0):
        raise InputError(f"--traffic must be > 0 erlangs, got {args.traffic}")
    r = erlang.erlang_a(args.traffic / args.aht, args.aht, args.patience, args.agents, args.target)
    data = {
        "traffic": args.traffic,
        "agents": args.agents,
        "aht_s": args.aht,
        "patience_s": args.patience,
        "target_s": args.target,
        "p_wait": r.p_wait,
        "p_abandon": r.p_abandon,
        "service_level": r.service_level,
        "asa_s": r.asa,
    }
    lines = [
        f"agents         {args.agents}",
        f"P(wait)        {r.p_wait:.4f}",
        f"P(abandon)     {r.p_abandon:.4f}",
        f"service level  {pct(r.service_level)} answered within {args.target:g} s",
        f"ASA            {r.asa:.2f} s (answered calls)",
    ]
    return emit(args, data, lines)


def cmd_erlang_staff(args: argparse.Namespace) -> int:
    from ccserver.workforce import erlang
    from ccserver.workforce.staffing import scheduled_agents

    if args.asa is not None:
        n = erlang.agents_for_asa(args.traffic, args.aht, args.asa, args.max_occupancy)
    else:
        n = erlang.agents_for_service_level(
            args.traffic, args.aht, args.target, args.sl, args.max_occupancy
        )
    d = _erlang_c_lines(args.traffic, n, args.aht, args.target)
    d["scheduled"] = scheduled_agents(n, args.shrinkage)
    d["shrinkage"] = args.shrinkage
    lines = _c_table(d)
    lines.insert(1, f"scheduled      {d['scheduled']} (shrinkage {args.shrinkage:g})")
    return emit(args, d, lines)


def _add_erlang(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    erlang_p = sub.add_parser("erlang", help="Erlang B, C and A queueing formulas")
    models = erlang_p.add_subparsers(dest="model", metavar="MODEL", required=True)

    b = with_format(models.add_parser("b", help="Erlang B: blocking of a trunk group"))
    b.add_argument("--traffic", type=float, required=True, help="offered traffic, erlangs")
    b.add_argument("--lines", type=int, help="number of lines: prints the blocking")
    b.add_argument("--blocking", type=float, help="target blocking: prints the lines needed")
    b.set_defaults(func=cmd_erlang_b)

    def queue(name: str, text: str, agents: bool = True) -> argparse.ArgumentParser:
        p = with_format(models.add_parser(name, help=text))
        p.add_argument("--traffic", type=float, required=True, help="offered traffic, erlangs")
        if agents:
            p.add_argument("--agents", type=int, required=True)
        p.add_argument("--aht", type=float, required=True, help="average handling time, s")
        p.add_argument("--target", type=float, default=20.0, help="answer target, s (20)")
        return p

    c = queue("c", "Erlang C: P(wait), service level, ASA, occupancy")
    c.set_defaults(func=cmd_erlang_c)
    a = queue("a", "Erlang A (with abandonment): P(wait), P(abandon), SL, ASA")
    a.add_argument(
        "--patience", type=float, required=True, help="mean caller patience, s (inf: none)"
    )
    a.set_defaults(func=cmd_erlang_a)
    s = queue("staff", "fewest agents meeting a service level or ASA", agents=False)
    add_targets(s, require_aht=False)
    s.set_defaults(func=cmd_erlang_staff)


# --- simulate -----------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> int:
    import sys

    from ccserver.workforce.simulate import SimConfig, simulate

    illustrative = args.example == "95598"  # invented volumes, not a center's own
    header: list[str] = []
    if illustrative:
        from ccserver.workforce.staffing import EXAMPLE_95598_CALLS, EXAMPLE_95598_LABEL

        rates = tuple(c / 1800.0 for c in EXAMPLE_95598_CALLS)
        interval = 1800.0
        header = [EXAMPLE_95598_LABEL]
    elif args.calls_per_hour is not None:
        rates = (args.calls_per_hour / 3600.0,) * max(1, args.hours)
        interval = 3600.0
    else:
        raise InputError("give --example 95598 or --calls-per-hour")

    def bar(fraction: float) -> None:
        if sys.stderr.isatty():
            done = int(fraction * 30)
            print(f"\r[{'#' * done}{'.' * (30 - done)}] {fraction:4.0%}", end="", file=sys.stderr)

    runs = []
    for agents in args.agents:
        cfg = SimConfig(
            agents=agents, rates_per_s=rates, interval_s=interval, aht_s=args.aht,
            patience_s=args.patience, target_s=args.target, ring_s=args.ring,
            rona_prob=args.rona, wrap_up_s=args.wrap_up, seed=args.seed,
        )  # fmt: skip
        r = simulate(cfg, bar)
        seconds = interval * len(rates)
        runs.append(
            {
                "agents": agents,
                "offered": r.total.offered,
                "service_level": r.total.service_level(),
                "asa_s": r.total.asa(),
                "abandon_rate": r.total.abandon_rate(),
                "occupancy": r.occupancy(r.total, seconds),
                "worst_interval_sl": min(
                    (t.service_level() for t in r.intervals if t.offered), default=math.nan
                ),
            }
        )
    if sys.stderr.isatty():
        print(file=sys.stderr)
    lines = [
        *header,
        "agents  offered  service level    ASA  abandoned  occupancy  worst interval SL",
    ]
    lines += [
        f"{x['agents']:6d}  {x['offered']:7d}  {pct(x['service_level']):>13}  "
        f"{x['asa_s']:5.1f}s  {pct(x['abandon_rate']):>9}  {pct(x['occupancy']):>9}  "
        f"{pct(x['worst_interval_sl']):>17}"
        for x in runs
    ]
    data = {"illustrative": illustrative, "runs": runs, "seed": args.seed, "target_s": args.target}
    return emit(args, data, lines)


def _add_simulate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = with_format(
        sub.add_parser("simulate", help="simulate a day on the real router (digital twin)")
    )
    p.add_argument(
        "--example", choices=["95598"], help="the 95598 storm-day volumes (illustrative)"
    )
    p.add_argument("--calls-per-hour", type=float, help="a constant arrival rate instead")
    p.add_argument("--hours", type=int, default=8, help="hours at that rate (8)")
    p.add_argument("--agents", type=int, nargs="+", required=True, help="agents on the phones")
    p.add_argument("--aht", type=float, default=180.0, help="mean handle time, s (180)")
    p.add_argument("--target", type=float, default=20.0, help="service-level target, s (20)")
    p.add_argument("--patience", type=float, help="mean caller patience, s (none: no abandons)")
    p.add_argument("--ring", type=float, default=0.0, help="ring time before answer, s (0)")
    p.add_argument("--rona", type=float, default=0.0, help="share of offers not answered (0)")
    p.add_argument("--wrap-up", type=float, default=0.0, help="wrap-up after each call, s (0)")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_simulate)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `erlang`, `simulate`, `forecast`, `staff` and `roster` to the command line."""
    _add_simulate(sub)
    _add_erlang(sub)
    plan_cli.register(sub)
