"""The load test's report: one HTML file that opens offline, anywhere.

A benchmark's report is read later and elsewhere: copied off the box that ran it, attached
to an issue, opened on a laptop without network. So it carries everything inside itself:
CSS inline, charts drawn by matplotlib on its Agg canvas (no display, no pyplot global
state) into PNGs embedded as base64 data URIs, no script, no external URL. Every string
taken from the result is escaped: params come from a command line, metric names from the
controller. Either system may be missing and any series may be empty (a run that failed
early deserves a report saying so most of all), so each section says "no data" instead of
failing. The layout follows the result JSON written by `ccserver.loadtest.harness`.
"""

from __future__ import annotations

import base64
import io
import math
import shlex
from collections.abc import Callable, Iterable
from html import escape
from pathlib import Path
from typing import Any, TypeGuard

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ccserver.errors import InputError
from ccserver.loadtest.results import BRANCH_OUTCOMES

SYSTEMS = ("ccserver", "app_queue")
COLOURS = {"ccserver": "tab:blue", "app_queue": "tab:orange"}
PCTS = ("p50", "p90", "p99", "max")
NO_DATA = '<p class="nodata">no data</p>'

# Rows of the side-by-side table: label, section of SYS, key, decimals for floats.
_ROWS: tuple[tuple[str, str, str, int], ...] = (
    *(
        (f"calls {k.replace('_', ' ')}", "calls", k, 0)
        for k in ("asked", "offered", "completed", "failed", "cut_off", "abandoned")
    ),
    ("ring delay samples", "ring_delay_ms", "n", 0),
    *((f"ring delay {p} (ms)", "ring_delay_ms", p, 1) for p in PCTS),
    ("time in the IVR samples", "ivr_ms", "n", 0),
    *((f"time in the IVR {p} (ms)", "ivr_ms", p, 1) for p in PCTS),
    ("answer to agent samples", "wait_ms", "n", 0),
    *((f"answer to agent {p} (ms)", "wait_ms", p, 1) for p in PCTS),
    ("Asterisk CPU mean (% of a core)", "cpu", "asterisk_pct_mean", 1),
    ("Asterisk CPU max (% of a core)", "cpu", "asterisk_pct_max", 1),
    ("controller CPU mean (% of a core)", "cpu", "controller_pct_mean", 1),
    ("controller CPU max (% of a core)", "cpu", "controller_pct_max", 1),
    ("controller / Asterisk CPU (%)", "cpu", "controller_to_asterisk", 1),  # a ratio: x 100
)
_CAPACITY = ("system", "concurrency", "cps", "calls", "completed", "failed", "ok")
_CAPACITY_CPU = ("asterisk_cpu_pct", "controller_cpu_pct")

_CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
.met { background: #d6f5d6; color: #135e13; font-weight: bold; }
.notmet { background: #f8d4d4; color: #8a1414; font-weight: bold; }
.nodata { color: #888; font-style: italic; }
img { max-width: 100%; }
code { background: #f4f4f4; padding: 0.2em 0.4em; }
"""


def write_report(result: dict[str, Any], path: Path) -> None:
    """Render `result` and write it to `path` (UTF-8)."""
    try:
        path.write_text(render_html(result), encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"{path}: cannot write the report ({exc.strerror}); choose a writable --out",
            slug="report-unwritable",
        ) from None


def render_html(result: dict[str, Any]) -> str:
    """The whole report as one self-contained HTML page."""
    given = _dict(result.get("systems"))
    systems = {name: given[name] for name in SYSTEMS if isinstance(given.get(name), dict)}
    params = _dict(result.get("params"))
    started = escape(str(result.get("started_at", "unknown date")))
    capacity = _list(result.get("capacity"))
    metrics = _dict(_dict(systems.get("ccserver")).get("controller_metrics"))
    body = [
        f"<h1>ccserver load test</h1>\n<p>Started {started}; systems: "
        f"{escape(', '.join(systems) or 'none')}.</p>",
        "<h2>Parameters</h2>",
        _table(
            ["parameter", "value"], [[escape(str(k)), escape(_str(v))] for k, v in params.items()]
        ),
        _warnings(systems),
        "<h2>Goals</h2>",
        _goals(_list(result.get("goals"))),
        "<h2>Side by side</h2>",
        _compare(systems),
        "<h2>Calls over time</h2>",
        _img(_calls_chart(systems), "calls active and completed over time"),
        "<h2>Ring delay and wait percentiles</h2>",
        _img(_percentile_chart(systems), "ring delay and wait percentiles"),
        "<h2>CPU over time</h2>",
        _img(_cpu_chart(systems), "CPU of Asterisk and the controller over time"),
    ]
    ivr = {name: system for name, system in systems.items() if _dict(system.get("branches"))}
    if ivr:
        body += [
            "<h2>Through the IVR</h2>",
            _img(_ivr_chart(ivr), "time callers spent in the IVR"),
            *(_branches(name, _dict(system.get("branches"))) for name, system in ivr.items()),
        ]
    if capacity:
        body += ["<h2>Capacity search</h2>", _capacity(capacity)]
    if metrics:
        rows = [[escape(str(k)), escape(_fmt(v, 3))] for k, v in sorted(metrics.items())]
        body += ["<h2>Controller metrics (ccserver)</h2>", _table(["metric", "value"], rows)]
    body += ["<h2>How to reproduce</h2>", f"<p><code>{escape(_command(params))}</code></p>"]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>ccserver load test {started}</title><style>{_CSS}</style></head>\n"
        "<body>\n" + "\n".join(b for b in body if b) + "\n</body></html>\n"
    )


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_num(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: object, decimals: int) -> str:
    if isinstance(value, float) and _is_num(value):
        return f"{value:.{decimals}f}"
    return _str(value)


def _str(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ":".join(_str(v) for v in value)
    return str(value)


def _table(head: Iterable[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    """A table of already escaped cells; `classes` gives each row's class."""
    if not rows:
        return NO_DATA
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return "\n".join([*out, "</table>"])


def _goals(goals: list[Any]) -> str:
    rows, classes = [], []
    for goal in map(_dict, goals):
        met = goal.get("met") is True
        verdict = "met" if met else "not met"
        rows.append([escape(_str(goal.get("goal"))), escape(_str(goal.get("measured"))), verdict])
        classes.append("met" if met else "notmet")
    return _table(["goal", "measured", "verdict"], rows, classes)


def _compare(systems: dict[str, dict[str, Any]]) -> str:
    def cell(system: dict[str, Any], sec: str, key: str, decimals: int) -> str:
        value = _dict(system.get(sec)).get(key)
        if key == "controller_to_asterisk" and _is_num(value):
            value = value * 100
        return escape(_fmt(value, decimals))

    rows = [
        [label, *(cell(s, sec, key, dec) for s in systems.values())]
        for label, sec, key, dec in _ROWS
    ]
    return _table(["", *(escape(n) for n in systems)], rows) if systems else NO_DATA


def _warnings(systems: dict[str, dict[str, Any]]) -> str:
    """What the harness says a reader must not miss (calls never placed, calls cut off)."""
    items = [
        f"<li><b>{escape(name)}</b>: {escape(_str(text))}</li>"
        for name, system in systems.items()
        for text in _list(system.get("warnings"))
    ]
    return f'<ul class="notmet">{"".join(items)}</ul>' if items else ""


def _branches(name: str, branches: dict[str, Any]) -> str:
    """Each branch of the mix: its callers and how their calls ended."""
    rows = [
        [escape(str(branch)), *(escape(_str(_dict(counts).get(k))) for k in BRANCH_OUTCOMES)]
        for branch, counts in branches.items()
    ]
    head = ["branch", *(k.replace("_", " ") for k in BRANCH_OUTCOMES)]
    return f"<h3>{escape(name)}: outcome by branch</h3>\n" + _table(head, rows)


def _ivr_chart(systems: dict[str, dict[str, Any]]) -> bytes | None:
    def draw(axes: list[Axes]) -> bool:
        (ax,) = axes
        plotted = False
        for name, system in systems.items():
            samples = _list(_dict(system.get("samples")).get("ivr_ms"))
            seconds = [v / 1000 for v in samples if _is_num(v)]
            if seconds:
                ax.hist(seconds, bins=20, color=COLOURS[name], alpha=0.7, label=name)
                plotted = True
        return _finish(
            ax, plotted, "time in the IVR (answer to queue, or to hang-up)", "s", "callers"
        )

    return _figure(1, draw)


def _capacity(steps: list[Any]) -> str:
    rows, classes = [], []
    for step in map(_dict, steps):
        ok = step.get("ok") is True
        cells = [escape(_str(step.get(k))) for k in _CAPACITY[:-1]]
        cpu = [escape(_fmt(step.get(k), 1)) for k in _CAPACITY_CPU]
        rows.append([*cells, "ok" if ok else "failed", *cpu])
        classes.append("met" if ok else "notmet")
    head = [*_CAPACITY, "Asterisk CPU %", "controller CPU %"]
    return _table(head, rows, classes)


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return NO_DATA
    data = base64.b64encode(png).decode("ascii")
    return f'<p><img alt="{escape(alt)}" src="data:image/png;base64,{data}"></p>'


def _series(system: dict[str, Any], key: str) -> tuple[list[float], list[float]]:
    """(t, y) of one series, pairs with a non-number on either side left out."""
    series = _dict(system.get("series"))
    pairs = zip(_list(series.get("t_s")), _list(series.get(key)), strict=False)
    kept = [(float(t), float(y)) for t, y in pairs if _is_num(t) and _is_num(y)]
    return [t for t, _ in kept], [y for _, y in kept]


def _figure(
    panels: int, draw: Callable[[list[Axes]], bool], *, sharey: bool = False
) -> bytes | None:
    """A row of `panels` axes drawn by `draw`; None when `draw` found nothing to plot."""
    fig = Figure(figsize=(5.5 * panels, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(1, panels, sharey=sharey, squeeze=False)[0])
    if not draw(axes):
        return None
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    return buf.getvalue()


def _finish(ax: Axes, plotted: bool, title: str, xlabel: str, ylabel: str) -> bool:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if plotted:
        ax.legend(loc="best", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    return plotted


def _calls_chart(systems: dict[str, dict[str, Any]]) -> bytes | None:
    def draw(axes: list[Axes]) -> bool:
        found = []
        for ax, key in zip(axes, ("calls_active", "calls_completed"), strict=True):
            plotted = False
            for name, system in systems.items():
                t, y = _series(system, key)
                if t:
                    ax.plot(t, y, color=COLOURS[name], label=name)
                    plotted = True
                t, y = _series(system, "calls_failed")
                if key == "calls_completed" and any(y):  # failures drawn beside completions
                    ax.plot(t, y, color=COLOURS[name], linestyle=":", label=f"{name} failed")
            found.append(_finish(ax, plotted, key.replace("_", " "), "seconds", "calls"))
        return any(found)

    return _figure(2, draw)


def _percentile_chart(systems: dict[str, dict[str, Any]]) -> bytes | None:
    def draw(axes: list[Axes]) -> bool:
        found = []
        width = 0.8 / max(len(systems), 1)
        for ax, key in zip(axes, ("ring_delay_ms", "wait_ms"), strict=True):
            plotted = False
            for i, (name, system) in enumerate(systems.items()):
                pct = _dict(system.get(key))
                values = [float(pct[p]) if _is_num(pct.get(p)) else math.nan for p in PCTS]
                if all(math.isnan(v) for v in values):
                    continue
                xs = [x + (i - (len(systems) - 1) / 2) * width for x in range(len(PCTS))]
                ax.bar(xs, values, width, color=COLOURS[name], label=name)
                plotted = True
            ax.set_xticks(range(len(PCTS)), PCTS)
            title = "ring delay (queue entry to agent INVITE)" if key == "ring_delay_ms" else "wait"
            found.append(_finish(ax, plotted, title, "percentile", "ms"))
        return any(found)

    return _figure(2, draw)


def _cpu_chart(systems: dict[str, dict[str, Any]]) -> bytes | None:
    def draw(axes: list[Axes]) -> bool:
        found = []
        for ax, (name, system) in zip(axes, systems.items(), strict=True):
            plotted = False
            for key, label, colour in (
                ("asterisk_cpu_pct", "Asterisk", "tab:green"),
                ("controller_cpu_pct", "controller", "tab:purple"),
            ):
                t, y = _series(system, key)
                if t:
                    ax.plot(t, y, color=colour, label=label)
                    plotted = True
            found.append(_finish(ax, plotted, name, "seconds", "% of one core"))
        return any(found)

    # One y scale for both systems, so their CPU compares at a glance.
    return _figure(len(systems), draw, sharey=True) if systems else None


def _command(params: dict[str, Any]) -> str:
    """The command line that reruns the load: one --flag per recorded parameter."""
    words = ["ccserver", "loadtest"]
    for key, value in params.items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            words.append(flag)
        elif value is not None and value is not False:
            words += [flag, _str(value)]
    return shlex.join(words)
