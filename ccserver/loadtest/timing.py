"""Per-call timing joined from the SIPp timing logs of callers and agents' phones.

The load harness measures ring delay (queue entry to the agent's phone ringing) and caller
wait from the outside, the same way for ccserver and for app_queue: every SIPp process of a
load run writes one line an event with SIPp's `[timestamp]` keyword, whose third field is
the absolute unix time with microseconds (`<date> <time> <unix time>`; `[clock_tick]` only
counts from that SIPp's own start). Callers log under their number c<run>-<n>; agents'
phones log under the caller number found in the INVITE's From. `collect` joins the lines of
one run by that number. A SIPp process killed mid-write leaves a cut last line: lines
that do not parse are skipped, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ccserver.loadtest.sipp import TIMING_SUFFIX

CALLER_END = ("caller-bye-sent", "caller-bye-received")
AGENT_END = ("agent-bye-sent", "agent-bye-received", "agent-cancelled")


@dataclass(frozen=True)
class CallTiming:
    """One caller's timeline in unix seconds; None where the event never happened (or its
    line was lost)."""

    caller: str
    answered_at: float | None
    """The caller got 200 OK from Asterisk: the call entered the system (for a caller
    without IVR keys, the queue)."""
    agent_invite_at: float | None
    """The first agent's phone got an INVITE for this caller (it rang)."""
    agent_answered_at: float | None
    """An agent's phone answered (first ACK of its 200 OK)."""
    ended_at: float | None
    """The caller's call ended (either side hung up); from the agent's side if the caller
    logged no end."""
    ivr_done_at: float | None = None
    """The caller started its last IVR keys (right after the answer for a caller without
    keys)."""

    @property
    def ring_delay_s(self) -> float | None:
        if self.answered_at is None or self.agent_invite_at is None:
            return None
        return self.agent_invite_at - self.answered_at

    @property
    def wait_s(self) -> float | None:
        if self.answered_at is None or self.agent_answered_at is None:
            return None
        return self.agent_answered_at - self.answered_at


def collect(work_dir: Path, run: str) -> list[CallTiming]:
    """Every caller of `run` (number c<run>-<n>) found in the timing logs of `work_dir`,
    sorted by caller number."""
    prefix = f"c{run}-"
    events: dict[str, dict[str, list[float]]] = {}
    for log_file in sorted(work_dir.glob(f"*{TIMING_SUFFIX}")):
        for event, at, caller in _lines(log_file):
            if caller.startswith(prefix):
                events.setdefault(caller, {}).setdefault(event, []).append(at)
    return [_timing(caller, events[caller]) for caller in sorted(events, key=_call_number)]


def _lines(log_file: Path) -> list[tuple[str, float, str]]:
    """(event, unix time, caller) of each complete line: `<event> <date> <time> <unix time>
    <caller> [<extra>...]`; callers seen by agents may carry the quote or colon that
    preceded them in the From header."""
    text = log_file.read_text(encoding="latin-1", errors="replace")
    complete = text if text.endswith("\n") else text.rpartition("\n")[0]
    found = []
    for line in complete.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        try:
            at = float(fields[3])
        except ValueError:
            continue
        found.append((fields[0], at, fields[4].lstrip('":')))
    return found


def _timing(caller: str, seen: dict[str, list[float]]) -> CallTiming:
    def times(*names: str) -> list[float]:
        return [t for name in names for t in seen.get(name, [])]

    def first(name: str) -> float | None:
        return min(times(name), default=None)

    # The caller's own end if it logged one, else the last end of an agent leg.
    ended_at = min(times(*CALLER_END), default=None) or max(times(*AGENT_END), default=None)
    return CallTiming(
        caller=caller,
        answered_at=first("caller-answered"),
        agent_invite_at=first("agent-invite"),
        agent_answered_at=first("agent-answered"),
        ended_at=ended_at,
        ivr_done_at=first("caller-ivr-done"),
    )


def _call_number(caller: str) -> tuple[int, str]:
    number = caller.rpartition("-")[2]
    return (int(number), caller) if number.isdigit() else (0, caller)
