"""The benchmark tables of the docs, generated from the JSON the benchmarks write.

    .venv/bin/python scripts/bench_docs.py           # rewrite the generated sections
    .venv/bin/python scripts/bench_docs.py --check   # exit 1 and print a diff if stale

Figures come from files, not from memory: `make bench` writes docs/bench/vs_app_queue.json,
`make bench-router` writes docs/bench/router.json, `make bench-forecast` and
`make bench-roster` write docs/bench/forecast.json and roster.json (each with a `meta`
object: commit, date, CPU, cores, Python; tests/bench/meta.py), and this script replaces
the text between `<!-- bench:NAME begin -->` and `<!-- bench:NAME end -->` in docs/benchmarks.md,
docs/routing.md and docs/workforce.md. Nothing outside the markers is touched.
tests/unit/test_bench_docs.py runs the check.

A missing or unreadable JSON file is an error (exit 2), with one exception:
docs/bench/capacity_goal.json, written by `make bench`'s slow test
(tests/bench/test_capacity_goal.py), is optional. Until it exists its section
(`capacity-goal`) reads "_not measured yet: run `make bench`._", and `--check` compares
the doc against that line.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccserver.loadtest.results import GOAL_CONCURRENCY, GOAL_CPS

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path("docs") / "bench"
SYSTEMS = ("ccserver", "app_queue")
TWINS = {"cython": "compiled", "python": "pure"}
DASH = "—"
NOT_MEASURED = "_not measured yet: run `make bench`._"


class DocError(Exception):
    """A doc without its markers, or a JSON file that is missing or lacks a figure."""


@dataclass(frozen=True)
class Section:
    doc: str
    marker: str
    source: str
    render: Callable[[dict[str, Any]], str]
    optional: bool = False  # a missing `source` gives NOT_MEASURED instead of an error


# -- formatting ---------------------------------------------------------------------------


def sig(value: float, digits: int = 3) -> str:
    """`value` with `digits` significant figures, trailing zeros kept (470, 2.00, 16.9)."""
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def ns(value: float) -> str:
    if value < 1_000:
        return f"{sig(value)} ns"
    if value < 1_000_000:
        return f"{sig(value / 1e3)} µs"
    return f"{sig(value / 1e6)} ms"


def limit_ns(value: float) -> str:
    """A target as written: 1 µs, 20 µs, 500 ns."""
    return f"{value / 1e3:g} µs" if value >= 1_000 else f"{value:g} ns"


def rate(value: float) -> str:
    if value >= 1e6:
        return f"{sig(value / 1e6)} M"
    if value >= 1e3:
        return f"{sig(value / 1e3)} k"
    return sig(value)


def num(value: float | None, decimals: int) -> str:
    return DASH if value is None else f"{value:.{decimals}f}"


def share(ratio: float) -> str:
    """A ratio as whole percent, without the sign: 1.354 -> "135"."""
    return f"{ratio * 100:.0f}"


def seconds(ms: float) -> str:
    return f"{ms / 1000:g}"


def meta_line(data: dict[str, Any], what: str) -> str:
    """ "Measured at commit X on DATE, CPU, N cores, Python V", from the JSON's `meta`."""
    meta = data.get("meta")
    if not isinstance(meta, dict):
        raise DocError("no `meta` object")
    commit = meta.get("commit")
    short = f"`{commit[:10]}`" if commit else "an unknown commit"
    dirty = " (with uncommitted changes)" if meta.get("dirty") else ""
    date = str(meta.get("date") or "an unknown date")[:10]
    cpu = meta.get("cpu") or "CPU model not recorded"
    cores = meta.get("cores")
    core_text = f"{cores} cores" if cores else "core count not recorded"
    python = meta.get("python")
    python_text = f", Python {python}" if python else ""
    line = f"_{what}: measured at commit {short}{dirty} on {date}, {cpu}, {core_text}{python_text}"
    if data.get("quick"):
        line += "; a `--quick` run"
    if meta.get("note"):
        line += f". {meta['note']}"
    return line.rstrip(".") + "._"


# -- docs/benchmarks.md -------------------------------------------------------------------


def _systems(data: dict[str, Any]) -> list[str]:
    present = data.get("systems") or {}
    return [s for s in SYSTEMS if s in present]


def render_fixed(data: dict[str, Any]) -> str:
    p = data["params"]
    planned = p["calls"] if p.get("calls") is not None else math.ceil(p["cps"] * p["duration_s"])
    talk = p["talk_ms"]
    names = _systems(data)
    blocks = [data["systems"][s] for s in names]
    idle = {s: " (idle)" if s != "ccserver" else "" for s in names}

    def row(label: str, cells: list[str]) -> str:
        return f"| {label} | " + " | ".join(cells) + " |"

    lines = [
        meta_line(data, "`make bench`"),
        "",
        f"Fixed load: {p['cps']:g} CPS for {p['duration_s']:g} s, talk {seconds(talk[0])}–"
        f"{seconds(talk[1])} s, {p['agents']} agents — {planned} calls per system.",
        "",
        "| | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
        row(
            "calls completed / failed",
            [f"{b['calls']['completed']} / {b['calls']['failed']}" for b in blocks],
        ),
        row(
            "ring delay p50 / p90 / p99 / max",
            [
                " / ".join(num(b["ring_delay_ms"][k], 1) for k in ("p50", "p90", "p99", "max"))
                + " ms"
                for b in blocks
            ],
        ),
        row(
            "caller wait p50 / p99",
            [" / ".join(num(b["wait_ms"][k], 0) for k in ("p50", "p99")) + " ms" for b in blocks],
        ),
        row(
            "Asterisk CPU (mean / max)",
            [
                f"{num(b['cpu']['asterisk_pct_mean'], 1)} / "
                f"{num(b['cpu']['asterisk_pct_max'], 0)} %"
                for b in blocks
            ],
        ),
        row(
            "controller CPU (mean / max)",
            [
                f"{num(b['cpu']['controller_pct_mean'], 1)} / "
                f"{num(b['cpu']['controller_pct_max'], 0)} %{idle[s]}"
                for s, b in zip(names, blocks, strict=True)
            ],
        ),
    ]
    return "\n".join(lines)


def _capacity_rows(data: dict[str, Any]) -> dict[str, dict[tuple[int, float], dict[str, Any]]]:
    rows: dict[str, dict[tuple[int, float], dict[str, Any]]] = {s: {} for s in SYSTEMS}
    for r in data.get("capacity") or []:
        rows.setdefault(r["system"], {})[(r["concurrency"], r["cps"])] = r
    return rows


def render_capacity(data: dict[str, Any]) -> str:
    rows = _capacity_rows(data)
    names = [s for s in SYSTEMS if rows.get(s)]
    if not names:
        return meta_line(data, "`make bench`") + "\n\nNo capacity search in this run."
    plan = data["capacity_plan"]
    first = plan["steps"][0]
    talk_s = first["talk_ms"] / 1000
    hold_s = talk_s + plan["ring_allowance_s"]
    steps = sorted({key for s in names for key in rows[s]})
    header = "| step | " + " | ".join(
        f"{s}: done / failed | Asterisk / controller CPU | ring p99" for s in names
    )
    lines = [
        f"Capacity search: each step keeps {hold_s:g} s per call ({plan['ring_allowance_s']:g} s "
        f"ringing, {talk_s:g} s talk), arrivals for {first['arrival_s']:g} s, then drains; a "
        "system stops at its first step with a failed call.",
        "",
        header + " |",
        "|---" * (1 + 3 * len(names)) + "|",
    ]
    for conc, cps in steps:
        cells = [f"{conc} calls, {cps:g} CPS"]
        for s in names:
            r = rows[s].get((conc, cps))
            if r is None:
                cells += [DASH, DASH, DASH]
                continue
            cells += [
                f"{r['completed']} / {r['failed']}",
                f"{num(r['asterisk_cpu_pct'], 0)} / {num(r['controller_cpu_pct'], 0)} %",
                f"{num(r['ring_delay_p99_ms'], 1)} ms",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *_capacity_summary(rows, names, steps)]
    return "\n".join(lines)


def _capacity_summary(
    rows: dict[str, dict[tuple[int, float], dict[str, Any]]],
    names: list[str],
    steps: list[tuple[int, float]],
) -> list[str]:
    out = []
    for s in names:
        passed = [key for key, r in rows[s].items() if r["ok"]]
        failed = [key for key, r in rows[s].items() if not r["ok"]]
        best = f"{max(passed)[0]} calls at {max(passed)[1]:g} CPS" if passed else "no step"
        stop = f"; first failed step {min(failed)[0]} calls" if failed else "; no step failed"
        out.append(f"- {s}: heaviest step passed {best}{stop}.")
    common = [key for key in steps if all(key in rows[s] for s in names)]
    if "ccserver" in names and "app_queue" in names and common:
        conc, cps = common[-1]
        ours, theirs = rows["ccserver"][(conc, cps)], rows["app_queue"][(conc, cps)]
        ours_total = ours["asterisk_cpu_pct"] + ours["controller_cpu_pct"]
        theirs_total = theirs["asterisk_cpu_pct"] + theirs["controller_cpu_pct"]
        out.append(
            f"- At {conc} calls and {cps:g} CPS: Asterisk {ours['asterisk_cpu_pct']:.0f} % of a "
            f"core under ccserver against {theirs['asterisk_cpu_pct']:.0f} % under app_queue; "
            f"Asterisk and controller together {ours_total:.0f} % against app_queue's "
            f"{theirs['asterisk_cpu_pct']:.0f} % ({theirs_total:.0f} % with the idle controller "
            "beside it)."
        )
    for s in names:
        p99 = [r["ring_delay_p99_ms"] for r in rows[s].values() if r["ring_delay_p99_ms"]]
        if p99:
            out.append(f"- {s}'s ring delay p99 over the steps: {min(p99):.1f}–{max(p99):.1f} ms.")
    if "ccserver" in names:
        per_call = {
            key: r["controller_cpu_pct"] * 10 / key[1]  # % of a core / CPS -> ms per call
            for key, r in rows["ccserver"].items()
            if r["controller_cpu_pct"]
        }
        if per_call:
            heaviest = max(per_call)
            full = 1000 / per_call[heaviest]
            out.append(
                f"- ccserver's controller CPU per call (its CPU ÷ CPS): "
                f"{min(per_call.values()):.1f}–{max(per_call.values()):.1f} ms; at the "
                f"heaviest step's {per_call[heaviest]:.1f} ms a call, its one thread would fill "
                f"a core near {round(full, 1 - math.floor(math.log10(full))):.0f} CPS."
            )
    return out


def render_goals(data: dict[str, Any]) -> str:
    targets = data["targets"]
    judged = data.get("goals") or []

    def verdict(keyword: str) -> str:
        for g in judged:
            if keyword in g["goal"]:
                return "met" if g["met"] else "**not met**"
        return "not measured"

    rows = _capacity_rows(data).get("ccserver", {})
    goal = rows.get((targets["concurrency"], targets["cps"]))
    passed = [key for key, r in rows.items() if r["ok"]]
    cells = []
    if goal is not None:
        cells.append(
            f"{goal['completed']}/{goal['calls']} completed at {goal['concurrency']} calls and "
            f"{goal['cps']:g} CPS"
        )
    if passed and max(passed) != (targets["concurrency"], targets["cps"]):
        best = rows[max(passed)]
        last = [(s["concurrency"], s["cps"]) for s in data["capacity_plan"]["steps"]][-1:]
        tail = ", the search's last step" if [max(passed)] == last else ", the heaviest passed"
        cells.append(
            f"{best['completed']}/{best['calls']} at {best['concurrency']} calls and "
            f"{best['cps']:g} CPS{tail}"
        )
    capacity = "; ".join(cells) or "no capacity search"

    ours = (data.get("systems") or {}).get("ccserver")
    cpu = "not measured"
    if ours is not None and ours["cpu"]["controller_to_asterisk"] is not None:
        c = ours["cpu"]
        cpu = (
            f"{share(c['controller_to_asterisk'])} % at the fixed load "
            f"({c['controller_pct_mean']:.1f} % against {c['asterisk_pct_mean']:.1f} % of a core)"
        )
        ratios = [r["controller_cpu_pct"] / r["asterisk_cpu_pct"] for r in rows.values()]
        if ratios:
            cpu += f"; {share(min(ratios))}–{share(max(ratios))} % in the capacity steps"
    theirs = (data.get("systems") or {}).get("app_queue")
    ring = "not measured"
    if ours is not None and theirs is not None:
        ring = (
            f"{num(ours['ring_delay_ms']['p99'], 1)} ms against "
            f"{num(theirs['ring_delay_ms']['p99'], 1)} ms"
        )
    lines = [
        "| goal | measured | |",
        "|---|---|---|",
        f"| {targets['concurrency']} concurrent calls and {targets['cps']:g} CPS with 0 failures "
        f"| {capacity} | {verdict('concurrent')} |",
        f"| controller CPU ≤ {share(targets['cpu_ratio'])} % of Asterisk's | {cpu} "
        f"| {verdict('CPU')} |",
        f"| ring delay p99 no worse than app_queue's | {ring} | {verdict('ring delay')} |",
    ]
    return "\n".join(lines)


def render_capacity_goal(data: dict[str, Any]) -> str:
    """The goal step run on its own (tests/bench/test_capacity_goal.py), with its verdict."""
    step, row = data["step"], data["row"]
    ring, wait, cpu = data["ring_delay_ms"], data["wait_ms"], data["cpu"]
    calls, completed, failed = step["calls"], row["completed"], row["failed"]
    if step["concurrency"] < GOAL_CONCURRENCY or step["cps"] < GOAL_CPS:
        verdict = f"{failed} failed, below the goal load: not met"
    elif failed:
        verdict = f"{failed} failed: not met"
    elif completed != calls:
        verdict = f"0 failed but {completed} of {calls} completed: not met"
    else:
        verdict = "0 failed: met"
    lines = [
        meta_line(data, "`make bench`, tests/bench/test_capacity_goal.py"),
        "",
        "| concurrency | CPS | calls | completed | failed | peak active "
        "| ring delay p50 / p99 | caller wait p50 / p99 | CPU Asterisk / controller (mean) |",
        "|---:" * 9 + "|",
        f"| {step['concurrency']} | {step['cps']:g} | {calls} | {completed} | {failed} "
        f"| {row['peak_active']} | {num(ring['p50'], 1)} / {num(ring['p99'], 1)} ms "
        f"| {num(wait['p50'], 0)} / {num(wait['p99'], 0)} ms "
        f"| {num(cpu['asterisk_pct_mean'], 1)} / {num(cpu['controller_pct_mean'], 1)} % |",
        "",
        f"Against the goal ({GOAL_CONCURRENCY} concurrent calls at {GOAL_CPS:g} CPS, "
        f"0 failed): **{verdict}**.",
    ]
    return "\n".join(lines)


# -- docs/routing.md ----------------------------------------------------------------------


def render_router(data: dict[str, Any]) -> str:
    results = data["results"]
    targets = data["targets"]
    by = {(r["workload"], r["twin"]): r for r in results}
    workloads = list(dict.fromkeys(r["workload"] for r in results))
    lines = [
        meta_line(data, "`make bench-router`"),
        "",
        "| workload | twin | dispatch p50 | dispatch p99 | router ops/s |",
        "|---|---|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['workload']} | {TWINS.get(r['twin'], r['twin'])} | {ns(r['dispatch_p50_ns'])} "
            f"| {ns(r['dispatch_p99_ns'])} | {rate(r['ops_per_s'])} |"
        )
    speedups = {w: by[(w, "cython")]["speedup_p50"] for w in workloads}
    lines += [
        "",
        "Speed-up compiled/pure at p50: "
        + ", ".join(f"**{speedups[w]:.1f}×** on the {w}" for w in workloads)
        + ".",
        "",
        "| target | measured | |",
        "|---|---|---|",
    ]
    for w in workloads:
        limit = targets.get(f"{w}_p99_ns")
        if limit is None:
            continue
        compiled = by[(w, "cython")]
        met = compiled["dispatch_p99_ns"] <= limit
        lines.append(
            f"| compiled dispatch p99 on the {w} ≤ {limit_ns(limit)} "
            f"| {ns(compiled['dispatch_p99_ns'])} (p50 {ns(compiled['dispatch_p50_ns'])}) "
            f"| {'met' if met else '**not met**'} |"
        )
    low = [w for w in workloads if speedups[w] < targets["speedup"]]
    verdict = "met" if not low else "**not met** on the " + " and the ".join(low)
    lines.append(
        f"| speed-up compiled/pure at p50 ≥ {targets['speedup']:g}× | "
        + ", ".join(f"{speedups[w]:.1f}× {w}" for w in workloads)
        + f" | {verdict} |"
    )
    return "\n".join(lines)


# -- docs/workforce.md -------------------------------------------------------------------


def render_forecast(data: dict[str, Any]) -> str:
    lines = [
        "| interval | held out | model MAPE | seasonal naive MAPE | inside the 80 % interval |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in data["results"]:
        lines.append(
            f"| {r['interval_min']} min | last {r['horizon']} ({r['test_intervals']} intervals) "
            f"| {r['mape_pct']:.2f} % | {r['naive_mape_pct']:.2f} % | {r['coverage_80']:.0%} |"
        )
    lines += ["", meta_line(data, f"Holdout on {data['series']}")]
    return "\n".join(lines)


def render_roster(data: dict[str, Any]) -> str:
    lines = [
        "| agents × days | time limit | wall time | status | shifts | short of the requirement "
        "| over | preferences not met |",
        "|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in data["results"]:
        lines.append(
            f"| {r['agents']} × {r['days']} | {r['time_limit_s']:g} s | {r['wall_s']:.1f} s "
            f"| {r['status']} | {r['shifts']} | {r['under']} of {r['required']} "
            f"({r['under_pct']:.2f} %) | {r['over']} | {r['preference_violations']} |"
        )
    lines += ["", meta_line(data, "Roster (tests/bench/bench_roster.py)")]
    return "\n".join(lines)


SECTIONS = (
    Section("docs/benchmarks.md", "vs-app-queue-fixed", "vs_app_queue.json", render_fixed),
    Section("docs/benchmarks.md", "vs-app-queue-capacity", "vs_app_queue.json", render_capacity),
    Section("docs/benchmarks.md", "vs-app-queue-goals", "vs_app_queue.json", render_goals),
    Section(
        "docs/benchmarks.md",
        "capacity-goal",
        "capacity_goal.json",
        render_capacity_goal,
        optional=True,
    ),
    Section("docs/routing.md", "router-table", "router.json", render_router),
    Section("docs/workforce.md", "forecast-holdout", "forecast.json", render_forecast),
    Section("docs/workforce.md", "roster-bench", "roster.json", render_roster),
)


# -- the generator ------------------------------------------------------------------------


def replace_section(text: str, marker: str, body: str) -> str:
    """`text` with everything between the two marker comments replaced by `body`."""
    begin, end = f"<!-- bench:{marker} begin -->", f"<!-- bench:{marker} end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    found = pattern.findall(text)
    if len(found) != 1:
        raise DocError(f"expected one `{begin}` … `{end}` pair, found {len(found)}")
    return pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text)


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DocError(f"{path} does not exist: run the benchmark first") from None
    except json.JSONDecodeError as exc:
        raise DocError(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DocError(f"{path} is not a JSON object")
    return data


def generate(root: Path = ROOT, bench_dir: Path | None = None) -> dict[Path, tuple[str, str]]:
    """{doc: (current text, generated text)} for every doc with a generated section."""
    bench = bench_dir if bench_dir is not None else root / BENCH_DIR
    out: dict[Path, tuple[str, str]] = {}
    cache: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        doc = root / section.doc
        if doc not in out:
            text = doc.read_text(encoding="utf-8")
            out[doc] = (text, text)
        source = bench / section.source
        if section.optional and not source.exists():
            body = NOT_MEASURED
        else:
            if section.source not in cache:
                cache[section.source] = load(source)
            try:
                body = section.render(cache[section.source])
            except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
                raise DocError(f"{source} lacks a figure for `{section.marker}`: {exc!r}") from None
        try:
            new = replace_section(out[doc][1], section.marker, body)
        except DocError as exc:
            raise DocError(f"{section.doc}: {exc}") from None
        out[doc] = (out[doc][0], new)
    return out


def diff(root: Path = ROOT, bench_dir: Path | None = None) -> str:
    """The unified diff from each doc to what its JSON gives ("" when all agree)."""
    parts: list[str] = []
    for doc, (current, generated) in generate(root, bench_dir).items():
        name = str(doc.relative_to(root)) if doc.is_relative_to(root) else str(doc)
        parts += difflib.unified_diff(
            current.splitlines(keepends=True),
            generated.splitlines(keepends=True),
            fromfile=f"{name} (as committed)",
            tofile=f"{name} (from the JSON)",
        )
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 with a diff if stale"
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this)")
    parser.add_argument("--bench-dir", type=Path, help="the JSON files (default: docs/bench)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            text = diff(args.root, args.bench_dir)
            if text:
                sys.stdout.write(text)
                print(
                    "\nthe docs' benchmark tables differ from docs/bench/*.json: "
                    "run scripts/bench_docs.py",
                    file=sys.stderr,
                )
                return 1
            return 0
        for doc, (current, generated) in generate(args.root, args.bench_dir).items():
            if generated != current:
                doc.write_text(generated, encoding="utf-8")
                print(f"updated {doc}")
    except DocError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
