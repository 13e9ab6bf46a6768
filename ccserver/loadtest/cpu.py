"""CPU time of running processes, read from `/proc/<pid>/stat`, as percent of one core.

The load harness compares Asterisk's CPU with the controller's under the same calls, so it
needs the processes' own CPU, not the machine's: `utime + stime` (fields 14 and 15 of
`/proc/<pid>/stat`, in clock ticks, all threads included) sampled once a second; the
delta over the wall time between two samples is the share of one core (100 = one core
busy). Nothing here needs privileges or extra packages, and a process that went away is
reported as None, never as a crash of the measurement.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_stat(text: str) -> int:
    """utime + stime in clock ticks from the text of `/proc/<pid>/stat`.

    The command name (field 2) is in parentheses and may itself hold spaces or ')', so the
    fields are counted from the last ')': after it, field 3 (state) is index 0, so utime
    (field 14) is index 11 and stime (field 15) index 12."""
    closing = text.rfind(")")
    if closing < 0:
        raise ValueError("not a /proc/<pid>/stat line: no ')' after the command name")
    fields = text[closing + 1 :].split()
    if len(fields) < 13:
        raise ValueError(f"/proc/<pid>/stat line too short: {len(fields) + 2} fields")
    return int(fields[11]) + int(fields[12])


def read_ticks(pid: int) -> int | None:
    """The process's CPU ticks so far, or None when it no longer runs."""
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def percent(ticks_delta: int, wall_s: float, ticks_per_s: int = CLOCK_TICKS) -> float:
    """CPU use over an interval as percent of one core."""
    if wall_s <= 0:
        return 0.0
    return 100.0 * ticks_delta / ticks_per_s / wall_s


@dataclass
class CpuMeter:
    """Successive readings of some named processes; `sample()` returns each one's CPU
    percent since the previous call (None for a process that is gone or not yet seen)."""

    pids: dict[str, int]
    clock: Callable[[], float] = time.monotonic
    _last: dict[str, tuple[float, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sample()  # the baseline: the first interval starts now

    def sample(self) -> dict[str, float | None]:
        now = self.clock()
        out: dict[str, float | None] = {}
        for name, pid in self.pids.items():
            ticks = read_ticks(pid)
            previous = self._last.get(name)
            if ticks is None:
                out[name] = None
                self._last.pop(name, None)
                continue
            out[name] = (
                None if previous is None else percent(ticks - previous[1], now - previous[0])
            )
            self._last[name] = (now, ticks)
        return out


def summary(series: list[float | None]) -> tuple[float, float]:
    """(mean, max) of a CPU series, gaps left out; (0, 0) when nothing was measured."""
    values = [v for v in series if v is not None]
    if not values:
        return 0.0, 0.0
    return sum(values) / len(values), max(values)
