"""`ccserver loadtest`: the load harness on the command line (see harness.py).

ccserver loadtest [--system ccserver|app_queue|both] [--cps 5] [--concurrency N]
    [--calls 60 | --duration S] [--agents N] [--pools 2] [--talk-ms 3000:5000]
    [--abandon-pct 0] [--abandon-wait-ms 1000:10000] [--mix CSV] [--capacity]
    [--out DIR] [--progress]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ccserver import config as config_mod
from ccserver.loadtest import params as params_mod
from ccserver.loadtest.results import BRANCH_OUTCOMES


def cmd_loadtest(args: argparse.Namespace) -> int:
    params = params_mod.from_args(
        system=args.system,
        cps=args.cps,
        concurrency=args.concurrency,
        calls=args.calls,
        duration=args.duration,
        agents=args.agents,
        pools=args.pools,
        talk_ms=args.talk_ms,
        abandon_pct=args.abandon_pct,
        abandon_wait_ms=args.abandon_wait_ms,
        mix=args.mix,
        out=args.out,
        capacity=args.capacity,
        progress=args.progress or sys.stderr.isatty(),
    )
    if params.agents < params.concurrency:
        print(
            f"warning: {params.agents} agents for {params.concurrency} calls at once: callers "
            "will queue, and ring delays will include that wait",
            file=sys.stderr,
        )
    from ccserver.loadtest import harness  # SIPp, the stack: only once the arguments are good

    result = harness.run(params, config_mod.load(args.config))
    print(summary(result))
    print(f"results: {params.out / 'result.json'}")
    failed = sum(s["calls"]["failed"] for s in result["systems"].values())
    return 1 if failed else 0


def summary(result: dict[str, Any]) -> str:
    """The figures side by side, one system a line, then capacity steps and goals."""
    header = (
        f"{'system':<10} {'asked':>6} {'offered':>7} {'done':>6} {'failed':>6} {'cut':>4}"
        f" {'aband':>5} {'ring p50/p99 ms':>17} {'ivr p50/p99 s':>15}"
        f" {'answer→agent p50/p99 s':>23} {'cpu ast/ctl %':>14}"
    )
    lines = [header] if result["systems"] else []

    def pair(p: dict[str, Any]) -> str:
        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f}"

        return f"{f(p['p50'])}/{f(p['p99'])}"

    def seconds(p: dict[str, Any]) -> str:
        def f(v: float | None) -> str:
            return "-" if v is None else f"{v / 1000:.1f}"

        return f"{f(p['p50'])}/{f(p['p99'])}"

    warnings = []
    for name, s in result["systems"].items():
        c, cpu = s["calls"], s["cpu"]
        lines.append(
            f"{name:<10} {c['asked']:>6} {c['offered']:>7} {c['completed']:>6} {c['failed']:>6}"
            f" {c['cut_off']:>4} {c['abandoned']:>5} {pair(s['ring_delay_ms']):>17}"
            f" {seconds(s['ivr_ms']):>15} {seconds(s['wait_ms']):>23}"
            f" {cpu['asterisk_pct_mean']:>6.1f}/{cpu['controller_pct_mean']:<6.1f}"
        )
        warnings += [f"WARNING {name}: {text}" for text in s["warnings"]]
        branches = s.get("branches") or {}
        if branches:
            lines.append(f"  {'branch':<12} " + " ".join(f"{k:>12}" for k in BRANCH_OUTCOMES))
            for branch, counts in branches.items():
                cells = " ".join(f"{counts[k]:>12}" for k in BRANCH_OUTCOMES)
                lines.append(f"  {branch:<12} {cells}")
    for row in result["capacity"]:
        lines.append(
            f"capacity {row['system']:<10} {row['concurrency']:>4} calls at {row['cps']:>5g} CPS:"
            f" {row['completed']}/{row['calls']} done, {row['failed']} failed"
            f" ({'ok' if row['ok'] else 'FAILED'}), cpu ast {row['asterisk_cpu_pct']:.0f} %"
            f" ctl {row['controller_cpu_pct']:.0f} %"
        )
    for goal in result["goals"]:
        lines.append(
            f"goal {'met    ' if goal['met'] else 'NOT met'} {goal['goal']}: {goal['measured']}"
        )
    return "\n".join([*lines, *warnings])


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `loadtest` to the `ccserver` command line."""
    p = sub.add_parser(
        "loadtest",
        help="SIPp load on a private stack: ccserver vs Asterisk's app_queue",
        description=(__doc__ or "").split("\n\n")[0],
    )
    p.add_argument("--config", metavar="FILE", help="only where Asterisk is installed is read")
    p.add_argument("--system", default="both", help="ccserver, app_queue or both (default)")
    p.add_argument("--cps", type=float, default=5.0, help="calls per second (default 5)")
    p.add_argument(
        "--concurrency", type=int, help="most calls up at once (default: cps × longest call)"
    )
    p.add_argument("--calls", type=int, help=f"calls a system (default {params_mod.DEFAULT_CALLS})")
    p.add_argument("--duration", type=float, help="seconds of arrivals instead of --calls")
    p.add_argument("--agents", type=int, help="agents' phones (default: --concurrency)")
    p.add_argument("--pools", type=int, default=2, help="SIPp agent pools (default 2)")
    p.add_argument("--talk-ms", default="3000:5000", help="talk time MIN:MAX ms (uniform)")
    p.add_argument("--abandon-pct", type=float, default=0.0, help="%% of callers who give up")
    p.add_argument(
        "--abandon-wait-ms", default="1000:10000", help="their patience MIN:MAX ms after answer"
    )
    p.add_argument("--mix", help="SIPp CSV of IVR key sequences: callers walk the IVR")
    p.add_argument(
        "--capacity", action="store_true", help="then step the load up to and past the goals"
    )
    p.add_argument("--out", default="loadtest-out", help="output dir (default ./loadtest-out)")
    p.add_argument("--progress", action="store_true", help="progress line even without a TTY")
    p.set_defaults(func=cmd_loadtest)
