"""Per-call timing joined from the SIPp timing logs of callers and agents' phones.

The load harness times each call from the outside, the same way for ccserver and for
app_queue (answered, agent's phone rang and answered, ended, by whom): every SIPp process of a
load run writes one line an event with SIPp's `[timestamp]` keyword, whose third field is
the absolute unix time with microseconds (`<date> <time> <unix time>`; `[clock_tick]` only
counts from that SIPp's own start). Callers log under their number c<run>-<n>; agents'
phones log under the caller number found in the INVITE's From. `collect` joins the lines of
one run by that number; a caller's `caller-answered` line also names the IVR branch of the
mix row it walks. A SIPp process killed mid-write leaves a cut last line: lines that do not
parse are skipped, never fatal.
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
    ended_by: str | None = None
    """"caller" (it hung up first), "far end" (Asterisk hung up on it), or None (no end
    logged: the call was cut off, or its line lost)."""
    branch: str | None = None
    """The IVR branch of the caller's mix row (None for callers without a mix)."""

    @property
    def answer_to_ring_s(self) -> float | None:
        """From the answer to the first agent's INVITE: the ring delay for a caller who
        enters the queue on answer; with an IVR, the ring delay starts at the queue entry,
        which only the controller knows (harness.queue_entries)."""
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
    branches: dict[str, str] = {}
    for log_file in sorted(work_dir.glob(f"*{TIMING_SUFFIX}")):
        for event, at, caller, extra in _lines(log_file):
            if caller.startswith(prefix):
                events.setdefault(caller, {}).setdefault(event, []).append(at)
                if event == "caller-answered" and extra:
                    branches[caller] = extra
    return [
        _timing(caller, events[caller], branches.get(caller))
        for caller in sorted(events, key=_call_number)
    ]


def _lines(log_file: Path) -> list[tuple[str, float, str, str]]:
    """(event, unix time, caller, first extra field or "") of each complete line: `<event>
    <date> <time> <unix time> <caller> [<extra>...]`; callers seen by agents may carry the
    quote or colon that preceded them in the From header."""
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
        found.append((fields[0], at, fields[4].lstrip('":'), fields[5] if len(fields) > 5 else ""))
    return found


def _timing(caller: str, seen: dict[str, list[float]], branch: str | None) -> CallTiming:
    def times(*names: str) -> list[float]:
        return [t for name in names for t in seen.get(name, [])]

    def first(name: str) -> float | None:
        return min(times(name), default=None)

    # The caller's own end if it logged one, else the last end of an agent leg.
    ended_at = min(times(*CALLER_END), default=None) or max(times(*AGENT_END), default=None)
    ends = sorted((t, name) for name in CALLER_END for t in seen.get(name, []))
    ended_by = None if not ends else ("caller" if ends[0][1] == "caller-bye-sent" else "far end")
    return CallTiming(
        caller=caller,
        answered_at=first("caller-answered"),
        agent_invite_at=first("agent-invite"),
        agent_answered_at=first("agent-answered"),
        ended_at=ended_at,
        ivr_done_at=first("caller-ivr-done"),
        ended_by=ended_by,
        branch=branch,
    )


def _call_number(caller: str) -> tuple[int, str]:
    number = caller.rpartition("-")[2]
    return (int(number), caller) if number.isdigit() else (0, caller)
