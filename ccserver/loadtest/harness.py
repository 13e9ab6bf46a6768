"""`ccserver loadtest`: the same SIPp load against ccserver and against Asterisk's own
app_queue, on one private stack, measured by the same code.

One run of a system: the agent pools (SIPp UAS, talk time uniform in --talk-ms) start, the
callers (SIPp UAC: plain, abandoning, or walking the IVR) dial the system's number at
--cps with at most --concurrency calls up, and once a second the harness reads the
callers' SIPp statistics and the CPU of Asterisk and of the controller (cpu.py). The run
ends when the callers are done or at its hard time limit; then the calls drain, the
per-call timing is joined from the SIPp logs (timing.py) and summarised: calls, ring delay
(queue entry to the agent's INVITE), caller wait, CPU. `both` runs ccserver first, then
app_queue with identical load. `--capacity` then steps load up per system (results.py)
until its first step with a failed call. Output: result.json and report.html in --out.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import math
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ccserver.config import Config
from ccserver.errors import StackError
from ccserver.loadtest import results, sipp, timing
from ccserver.loadtest.cpu import CpuMeter
from ccserver.loadtest.params import MARGIN_S, Params
from ccserver.loadtest.privstack import APP_QUEUE, HOTLINE, Plan, PrivateStack, free_port, started
from ccserver.logs import log

logger = logging.getLogger("ccserver.loadtest")
SERVICE = {"ccserver": HOTLINE, "app_queue": APP_QUEUE}
DRAIN_S = 30.0
METRIC_SUFFIXES_LEFT_OUT = ("_bucket", "_created")
_runs = itertools.count(1)


@dataclass(frozen=True)
class Load:
    """One run's load: `calls` at `cps`, at most `limit` up at once, agents talking
    uniformly `talk_ms`, `abandon_pct` % of callers hanging up after `abandon_wait_ms`
    unless an agent answered first; stopped at `bound_s` whatever happens."""

    calls: int
    cps: float
    limit: int
    talk_ms: tuple[int, int]
    bound_s: float
    abandon_pct: float = 0.0
    abandon_wait_ms: tuple[int, int] = (1000, 10000)
    mix: Path | None = None

    def split(self) -> list[tuple[str, int, float, int]]:
        """(kind, calls, rate, limit) of each caller process: plain and abandoning callers
        share the calls, the rate and the limit in proportion."""
        abandoning = round(self.calls * self.abandon_pct / 100)
        parts = []
        for kind, calls in (("callers", self.calls - abandoning), ("abandoners", abandoning)):
            if calls > 0:
                share = calls / self.calls
                parts.append((kind, calls, self.cps * share, max(1, math.ceil(self.limit * share))))
        return parts


@dataclass(frozen=True)
class Callers:
    """One SIPp caller process of a run: its kind, run tag (numbers c<run>-<n>) and calls."""

    kind: str
    run: str
    calls: int
    sipp: sipp.Sipp


@dataclass
class Series:
    """Per-second samples of a run (the contract's "series")."""

    t_s: list[float] = field(default_factory=list)
    calls_active: list[int] = field(default_factory=list)
    calls_completed: list[int] = field(default_factory=list)
    calls_failed: list[int] = field(default_factory=list)
    asterisk_cpu_pct: list[float | None] = field(default_factory=list)
    controller_cpu_pct: list[float | None] = field(default_factory=list)

    def as_json(self) -> dict[str, list[Any]]:
        return {
            "t_s": self.t_s,
            "calls_active": self.calls_active,
            "calls_completed": self.calls_completed,
            "calls_failed": self.calls_failed,
            "asterisk_cpu_pct": [None if v is None else round(v, 2) for v in self.asterisk_cpu_pct],
            "controller_cpu_pct": [
                None if v is None else round(v, 2) for v in self.controller_cpu_pct
            ],
        }


def live_counts(stat_file: Path) -> dict[str, int]:
    """The latest row of a SIPp `-trace_stat` file: created, active, completed, failed."""
    try:
        with open(stat_file, newline="", encoding="latin-1") as f:
            rows = [row for row in csv.reader(f, delimiter=";") if row]
    except FileNotFoundError:
        rows = []
    last = dict(zip(rows[0], rows[-1], strict=False)) if len(rows) >= 2 else {}

    def num(column: str) -> int:
        try:
            return int(last.get(column, "0") or 0)
        except ValueError:
            return 0

    return {
        "created": num("TotalCallCreated"),
        "active": num("CurrentCall"),
        "completed": num("SuccessfulCall(C)"),
        "failed": num("FailedCall(C)"),
    }


class Progress:
    """One status line on stderr, rewritten in place (`\\r`) once a second."""

    def __init__(self, enabled: bool, stream: TextIO = sys.stderr) -> None:
        self.enabled = enabled
        self.stream = stream
        self._width = 0

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        self._width = max(self._width, len(text))
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()

    def done(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def bar(
    label: str,
    done: int,
    total: int,
    counts: dict[str, int],
    cpu: dict[str, float | None],
    elapsed: float,
    bound: float,
) -> str:
    """The progress line: a bar of finished calls, then the figures behind it."""
    width = 24
    filled = min(width, width * done // total) if total else 0

    def pct(value: float | None) -> str:
        return "  -" if value is None else f"{value:3.0f}"

    return (
        f"{label:<22} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        f"  up {counts['active']:>3}  ok {counts['completed']:>4}  failed {counts['failed']:>3}"
        f"  cpu ast {pct(cpu.get('asterisk'))}% ctl {pct(cpu.get('controller'))}%"
        f"  {elapsed:4.0f}/{bound:.0f} s"
    )


def run_system(
    ps: PrivateStack, system: str, load: Load, work: Path, label: str, progress: Progress
) -> dict[str, Any]:
    """Place one load on one system and measure it; the contract's SYS block."""
    # Caller numbers c<run>-<n> must be unique across runs: the controller's records and
    # the SIPp logs are joined on them.
    base = f"{int(time.time()) % 100000:05d}{next(_runs) % 100:02d}"
    pools = [
        sipp.agent_pool(
            work, port=port, media_port=free_port(), talk_ms=load.talk_ms, name=f"agents-{k}"
        ).start()
        for k, (port, _phones) in enumerate(ps.pools)
    ]
    uacs: list[Callers] = []
    for n, (kind, calls, rate, limit) in enumerate(load.split(), start=1):
        run = f"{base}{n}"
        uac = sipp.load_callers(
            work,
            target=ps.sip_target,
            service=SERVICE[system],
            run=run,
            calls=calls,
            rate=rate,
            limit=limit,
            local_port=free_port(),
            media_port=free_port(),
            name=f"{kind}-{run}",
            mix=load.mix,
            abandon_wait_ms=load.abandon_wait_ms if kind == "abandoners" else None,
        )
        uacs.append(Callers(kind, run, calls, uac))
    log(logger, "loadtest.run_started", system=system, calls=load.calls, cps=load.cps, work=work)
    meter = CpuMeter(ps.pids())
    series = Series()
    start = time.monotonic()
    try:
        for callers in uacs:
            callers.sipp.start()
        _sample_until_done(uacs, meter, series, start, load, label, progress)
    finally:
        for callers in uacs:
            callers.sipp.stop()
        progress.done()
        _drain(ps)
        for pool in pools:
            pool.stop()
    return _summary(system, uacs, pools, work, series, ps)


def _sample_until_done(
    uacs: list[Callers],
    meter: CpuMeter,
    series: Series,
    start: float,
    load: Load,
    label: str,
    progress: Progress,
) -> None:
    """Once a second: CPU, the callers' counters, the progress line; until every call
    of every caller process has ended or the run's bound is reached."""
    deadline = start + load.bound_s
    while True:
        time.sleep(max(0.0, 1.0 - (time.monotonic() - start) % 1.0))
        cpu = meter.sample()
        counts = [live_counts(callers.sipp.stat_file) for callers in uacs]
        total = {k: sum(c[k] for c in counts) for k in ("created", "active", "completed", "failed")}
        elapsed = time.monotonic() - start
        series.t_s.append(round(elapsed, 2))
        series.calls_active.append(total["active"])
        series.calls_completed.append(total["completed"])
        series.calls_failed.append(total["failed"])
        series.asterisk_cpu_pct.append(cpu.get("asterisk"))
        series.controller_cpu_pct.append(cpu.get("controller"))
        done = total["completed"] + total["failed"]
        progress.show(bar(label, done, load.calls, total, cpu, elapsed, load.bound_s))
        if all(c["completed"] + c["failed"] >= u.calls for c, u in zip(counts, uacs, strict=True)):
            return
        if time.monotonic() >= deadline:
            log(logger, "loadtest.bound_reached", level=logging.WARNING, bound_s=load.bound_s)
            return


def _drain(ps: PrivateStack) -> None:
    """Wait (bounded) until Asterisk has no channel left, so the next run starts clean."""
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline:
        if ps.active_channels() == 0:
            return
        time.sleep(0.5)
    log(logger, "loadtest.drain_timeout", level=logging.WARNING, channels=ps.active_channels())


def _summary(
    system: str,
    uacs: list[Callers],
    pools: list[sipp.Sipp],
    work: Path,
    series: Series,
    ps: PrivateStack,
) -> dict[str, Any]:
    created = completed = failed = abandoned = 0
    ring: list[float] = []
    wait: list[float] = []
    for callers in uacs:
        counts = live_counts(callers.sipp.stat_file)
        created += counts["created"]
        completed += counts["completed"]
        # A call still up when the run was stopped at its bound failed too.
        failed += counts["created"] - counts["completed"]
        for call in timing.collect(work, callers.run):
            if call.ring_delay_s is not None:
                ring.append(call.ring_delay_s * 1000)
            if call.wait_s is not None:
                wait.append(call.wait_s * 1000)
            if callers.kind == "abandoners" and call.answered_at and call.agent_answered_at is None:
                abandoned += 1
    agent_failed = sum(live_counts(p.stat_file)["failed"] for p in pools)
    block: dict[str, Any] = {
        "calls": {
            "offered": created,
            "completed": completed,
            "failed": failed,
            "abandoned": abandoned,
            "agent_legs_failed": agent_failed,
            "peak_active": max(series.calls_active, default=0),
        },
        "ring_delay_ms": results.pct(ring),
        "wait_ms": results.pct(wait),
        "cpu": results.cpu_block(series.asterisk_cpu_pct, series.controller_cpu_pct),
        "series": series.as_json(),
        "samples": {
            "ring_delay_ms": [round(v, 2) for v in ring],
            "wait_ms": [round(v, 2) for v in wait],
        },
    }
    if system == "ccserver":
        block["controller_metrics"] = controller_metrics(ps.config)
    log(logger, "loadtest.run_ended", system=system, **block["calls"])
    return block


def controller_metrics(config: Config) -> dict[str, float]:
    """The controller's own `ccserver_*` samples (histogram buckets left out)."""
    url = f"http://127.0.0.1:{config.controller.http_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        raise StackError(f"controller /metrics did not answer: {exc}") from None
    return parse_metrics(text)


def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if not line.startswith("ccserver_"):
            continue
        name, _, value = line.rpartition(" ")
        bare = name.split("{", 1)[0]
        if bare.endswith(METRIC_SUFFIXES_LEFT_OUT):
            continue
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out


def capacity_row(system: str, step: results.Step, block: dict[str, Any]) -> dict[str, Any]:
    calls = block["calls"]
    return {
        "system": system,
        "concurrency": step.concurrency,
        "cps": step.cps,
        "calls": step.calls,
        "completed": calls["completed"],
        "failed": calls["failed"],
        "ok": calls["failed"] == 0 and calls["completed"] == step.calls,
        "asterisk_cpu_pct": block["cpu"]["asterisk_pct_mean"],
        "controller_cpu_pct": block["cpu"]["controller_pct_mean"],
        "peak_active": calls["peak_active"],
        "ring_delay_p99_ms": block["ring_delay_ms"]["p99"],
    }


def step_load(step: results.Step) -> Load:
    """A capacity step as a load: fixed talk time, SIPp's limit well above the target
    concurrency so that a system that holds calls too long shows it instead of being
    throttled."""
    hold_s = step.talk_ms / 1000 + results.RING_ALLOWANCE_S
    return Load(
        calls=step.calls,
        cps=step.cps,
        limit=math.ceil(step.concurrency * 1.5) + 5,
        talk_ms=(step.talk_ms, step.talk_ms),
        bound_s=step.arrival_s + hold_s + MARGIN_S,
    )


def run(params: Params, base: Config, progress: Progress | None = None) -> dict[str, Any]:
    """The whole load test; returns the result (also written to --out)."""
    if shutil.which("sipp") is None:
        raise StackError("sipp is not installed: run `make setup` (Debian package sip-tester)")
    progress = progress or Progress(params.progress)
    steps = results.capacity_steps() if params.capacity else []
    top = max([params.concurrency, *(s.concurrency for s in steps)])
    agents = max([params.agents, *(math.ceil(s.concurrency * 1.1) for s in steps)])
    plan = Plan(agents=agents, pools=params.pools, concurrency=top, ivr=params.mix is not None)
    out = params.out
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "version": 1,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": params.as_json(),
        "systems": {},
        "capacity": [],
        "goals": [],
    }
    with started(base, out, plan) as ps:
        if params.planned_calls is not None:
            load = Load(
                calls=params.planned_calls,
                cps=params.cps,
                limit=params.concurrency,
                talk_ms=params.talk_ms,
                bound_s=params.bound_s(),
                abandon_pct=params.abandon_pct,
                abandon_wait_ms=params.abandon_wait_ms,
                mix=params.mix,
            )
            for system in params.systems:
                result["systems"][system] = run_system(
                    ps, system, load, out / "sipp" / system, system, progress
                )
        for system in params.systems if steps else []:
            result["capacity"].extend(
                results.search(steps, _step_runner(ps, system, out, progress))
            )
    result["goals"] = results.goals(result["systems"], result["capacity"])
    write(result, out)
    return result


def _step_runner(
    ps: PrivateStack, system: str, out: Path, progress: Progress
) -> Callable[[results.Step], dict[str, Any]]:
    def run_step(step: results.Step) -> dict[str, Any]:
        label = f"{system} {step.concurrency}@{step.cps:g}"
        work = out / "sipp" / f"{system}-capacity-{step.concurrency}"
        block = run_system(ps, system, step_load(step), work, label, progress)
        return capacity_row(system, step, block)

    return run_step


def write(result: dict[str, Any], out: Path) -> None:
    """result.json, and report.html when the report renderer is installed."""
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    try:
        from ccserver.loadtest import report
    except ModuleNotFoundError as exc:
        if exc.name != "ccserver.loadtest.report":
            raise
        log(logger, "loadtest.no_report", level=logging.WARNING, reason=str(exc))
        return
    (out / "report.html").write_text(report.render_html(result), encoding="utf-8")
