"""`ccserver loadtest`: the same SIPp load against ccserver and against Asterisk's own
app_queue, on one private stack, measured by the same code.

One run of a system: the agent pools (SIPp UAS, talk time uniform in --talk-ms) start, the
callers (SIPp UAC: plain, abandoning, or walking the IVR) dial the system's number at
--cps with at most --concurrency calls up, and once a second the harness reads the
callers' SIPp statistics and the CPU of Asterisk and of the controller (cpu.py). The run
ends when the callers are done; at its time bound the callers stop placing calls and those
still up may drain for a while, and a call still up after that is reported as cut off
(never as failed: failed is what SIPp counted failed). Then the per-call timing is joined
from the SIPp logs (timing.py) and, for ccserver, with the controller's own record of when
each caller entered a queue, and summarised: calls, ring delay (queue entry to the agent's
INVITE), time in the IVR, answer to agent, CPU, and each IVR branch's outcomes. `both`
runs ccserver first, then app_queue with identical load. `--capacity` then steps load up
per system (results.py) until its first step with a failed call. Output: result.json and
report.html in --out.
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
from ccserver.loadtest import report, results, sipp, timing
from ccserver.loadtest.cpu import CpuMeter
from ccserver.loadtest.params import MARGIN_S, Params
from ccserver.loadtest.privstack import APP_QUEUE, HOTLINE, Plan, PrivateStack, free_port, started
from ccserver.logs import log
from ccserver.store import CALL_KEY, CALLS_KEY

logger = logging.getLogger("ccserver.loadtest")
SERVICE = {"ccserver": HOTLINE, "app_queue": APP_QUEUE}
DRAIN_S = 30.0
METRIC_SUFFIXES_LEFT_OUT = ("_bucket", "_created")
_runs = itertools.count(1)


@dataclass(frozen=True)
class Load:
    """One run's load: `calls` at `cps`, at most `limit` up at once, agents talking
    uniformly `talk_ms`, `abandon_pct` % of callers hanging up after `abandon_wait_ms`
    unless an agent answered first; no new call after `bound_s`, and the calls still up
    then are cut off `drain_s` later, whatever happens."""

    calls: int
    cps: float
    limit: int
    talk_ms: tuple[int, int]
    bound_s: float
    drain_s: float
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
    at_end: list[dict[str, int]] = []
    try:
        for callers in uacs:
            callers.sipp.start()
        at_end = _sample_until_done(uacs, meter, series, start, load, label, progress)
    finally:
        for callers in uacs:
            callers.sipp.stop()
        progress.done()
        _drain(ps)
        for pool in pools:
            pool.stop()
    return _summary(system, load, uacs, at_end, pools, work, series, ps)


def _sample_until_done(
    uacs: list[Callers],
    meter: CpuMeter,
    series: Series,
    start: float,
    load: Load,
    label: str,
    progress: Progress,
) -> list[dict[str, int]]:
    """Once a second: CPU, the callers' counters, the progress line; until every call
    of every caller process has ended. At the run's bound the callers stop placing calls
    and the calls up may go on for `drain_s`. Returns each caller process's last counters,
    read before anything is stopped."""
    deadline = start + load.bound_s
    draining = False
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
            return counts
        if draining and all(
            c["active"] == 0 or not u.sipp.running for c, u in zip(counts, uacs, strict=True)
        ):
            # A SIPp that has exited wrote its last counters as it did: read them again, or
            # the calls it finished in its last second would look cut off.
            return [
                live_counts(u.sipp.stat_file) if not u.sipp.running else c
                for c, u in zip(counts, uacs, strict=True)
            ]
        if time.monotonic() >= deadline:
            if draining:
                log(logger, "loadtest.cut_off", logging.WARNING, up=total["active"])
                return counts
            log(
                logger,
                "loadtest.bound_reached",
                logging.WARNING,
                bound_s=load.bound_s,
                up=total["active"],
                placed=total["created"],
            )
            for callers in uacs:
                callers.sipp.quit_softly()
            draining, deadline = True, deadline + load.drain_s


def _drain(ps: PrivateStack) -> None:
    """Wait (bounded) until Asterisk has no channel left, so the next run starts clean."""
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline:
        if ps.active_channels() == 0:
            return
        time.sleep(0.5)
    log(logger, "loadtest.drain_timeout", logging.WARNING, channels=ps.active_channels())


def _summary(
    system: str,
    load: Load,
    uacs: list[Callers],
    at_end: list[dict[str, int]],
    pools: list[sipp.Sipp],
    work: Path,
    series: Series,
    ps: PrivateStack,
) -> dict[str, Any]:
    created = completed = failed = 0
    calls: list[tuple[str, timing.CallTiming]] = []  # (caller kind, its timeline)
    for callers, counts in zip(uacs, at_end, strict=True):
        created += counts["created"]
        completed += counts["completed"]
        failed += counts["failed"]
        calls += [(callers.kind, call) for call in timing.collect(work, callers.run)]
    cut_off = created - completed - failed  # still up when the run's drain was over
    # ccserver's controller says when each caller entered a queue; app_queue's caller is
    # in Queue() as soon as it is answered.
    entered = queue_entries(ps, [c.run for c in uacs]) if system == "ccserver" else None
    measured = Measured()
    for kind, call in calls:
        queued_at = call.answered_at if entered is None else entered.get(call.caller)
        measured.add(kind, call, queued_at, ivr=load.mix is not None)
    agent_failed = sum(live_counts(p.stat_file)["failed"] for p in pools)
    block: dict[str, Any] = {
        "calls": {
            "asked": load.calls,
            "offered": created,
            "completed": completed,
            "failed": failed,
            "cut_off": cut_off,
            "abandoned": measured.abandoned,
            "agent_legs_failed": agent_failed,
            "peak_active": max(series.calls_active, default=0),
        },
        "ring_delay_ms": results.pct(measured.ring),
        "wait_ms": results.pct(measured.wait),
        "ivr_ms": results.pct(measured.ivr),
        "cpu": results.cpu_block(series.asterisk_cpu_pct, series.controller_cpu_pct),
        "series": series.as_json(),
        "samples": {
            "ring_delay_ms": [round(v, 2) for v in measured.ring],
            "wait_ms": [round(v, 2) for v in measured.wait],
            "ivr_ms": [round(v, 2) for v in measured.ivr],
        },
        "branches": measured.branches,
        "warnings": _warnings(load, created, cut_off),
    }
    if system == "ccserver":
        block["controller_metrics"] = controller_metrics(ps.config)
    log(logger, "loadtest.run_ended", system=system, **block["calls"])
    for warning in block["warnings"]:
        log(logger, "loadtest.warning", logging.WARNING, system=system, text=warning)
    return block


@dataclass
class Measured:
    """The per-call figures of one run, in ms, and each IVR branch's outcomes."""

    ring: list[float] = field(default_factory=list)
    wait: list[float] = field(default_factory=list)
    ivr: list[float] = field(default_factory=list)
    abandoned: int = 0
    branches: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(
        self, kind: str, call: timing.CallTiming, queued_at: float | None, *, ivr: bool
    ) -> None:
        """One caller: `queued_at` is when it entered a queue (None: it never did)."""
        if queued_at is not None and call.agent_invite_at is not None:
            self.ring.append((call.agent_invite_at - queued_at) * 1000)
        if call.wait_s is not None:
            self.wait.append(call.wait_s * 1000)
        left_ivr_at = queued_at if queued_at is not None else call.ended_at
        if ivr and call.answered_at is not None and left_ivr_at is not None:
            self.ivr.append((left_ivr_at - call.answered_at) * 1000)
        gave_up = call.answered_at is not None and call.agent_answered_at is None
        if kind == "abandoners" and gave_up and call.ended_by == "caller":
            self.abandoned += 1
        if ivr:
            outcomes = self.branches.setdefault(
                call.branch or "?", dict.fromkeys(results.BRANCH_OUTCOMES, 0)
            )
            outcomes["callers"] += 1
            outcomes[_outcome(call)] += 1


def _outcome(call: timing.CallTiming) -> str:
    """How a call ended, as a column of results.BRANCH_OUTCOMES."""
    if call.agent_answered_at is not None:
        return "agent"
    if call.ended_by == "caller":
        return "abandoned"
    if call.ended_by == "far end":
        return "ended_by_ivr"  # the flow hung up: self-service, or a closed service
    return "cut_off"


def _warnings(load: Load, offered: int, cut_off: int) -> list[str]:
    """What a reader must not miss: calls never placed, calls cut off by the harness."""
    found = []
    if offered < load.calls:
        found.append(
            f"{load.calls - offered} of the {load.calls} calls asked for were never placed: the "
            f"run's bound ({load.bound_s:.0f} s) came first; give a higher --concurrency or "
            "fewer --calls"
        )
    if cut_off:
        found.append(
            f"{cut_off} calls were still up {load.drain_s:.0f} s after the bound and were cut "
            "off by the harness (not failed by the system)"
        )
    return found


def queue_entries(ps: PrivateStack, runs: list[str]) -> dict[str, float | None]:
    """When each caller of `runs` entered a queue, from the controller's own call records
    (None: it never did), by caller number c<run>-<n>."""
    client = ps.stack.redis_client()
    prefixes = tuple(f"c{run}-" for run in runs)
    ids = [str(i) for i in client.lrange(CALLS_KEY, 0, -1)]
    found: dict[str, float | None] = {}
    for first in range(0, len(ids), 500):
        keys = [CALL_KEY.format(id=i) for i in ids[first : first + 500]]
        for raw in client.mget(keys):
            record = json.loads(raw) if raw else {}
            caller = str(record.get("caller", ""))
            if caller.startswith(prefixes):
                queued = record.get("queued_at")
                found[caller] = float(queued) if queued is not None else None
    return found


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
        drain_s=hold_s + MARGIN_S,
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
                drain_s=params.drain_s(),
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
    """result.json and report.html."""
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    report.write_report(result, out / "report.html")
