"""The parameters of `ccserver loadtest`, checked before anything starts.

A load test takes minutes and starts a whole stack, so every mistake in the arguments is
reported at once, with what to type instead, before the first process is spawned.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ccserver.errors import InputError
from ccserver.loadtest import mix as mix_mod
from ccserver.loadtest.results import RING_ALLOWANCE_S, parse_range

SYSTEMS = ("ccserver", "app_queue", "both")
DEFAULT_CALLS = 60
MAX_CPS = 200.0
MAX_AGENTS = 2000
MAX_CONCURRENCY = 2000
MARGIN_S = 30.0
"""Added to the planned time of a run (arrivals + the longest IVR walk + the longest talk
+ ringing): past it the harness stops placing calls and lets those still up drain (for
`drain_s`), so a load test always ends by itself."""


@dataclass(frozen=True)
class Params:
    system: str
    cps: float
    concurrency: int
    calls: int | None
    duration_s: float | None
    agents: int
    pools: int
    talk_ms: tuple[int, int]
    abandon_pct: float
    abandon_wait_ms: tuple[int, int]
    mix: Path | None
    out: Path
    capacity: bool
    progress: bool
    ivr_s: float = 0.0
    """The longest time a caller of the mix spends in the IVR before its queue (0: none)."""

    @property
    def systems(self) -> list[str]:
        return ["ccserver", "app_queue"] if self.system == "both" else [self.system]

    @property
    def planned_calls(self) -> int | None:
        """Calls of the fixed-load run; None when only the capacity search runs."""
        if self.calls is not None:
            return self.calls
        if self.duration_s is not None:
            return max(1, math.ceil(self.cps * self.duration_s))
        return None

    def hold_s(self) -> float:
        """`longest_call_s` of this run."""
        return longest_call_s(self.ivr_s, self.talk_ms, self.abandon_pct, self.abandon_wait_ms)

    def bound_s(self) -> float:
        """When a fixed-load run stops placing calls: its arrivals, then one longest call."""
        calls = self.planned_calls or 0
        arrivals = self.duration_s if self.duration_s is not None else calls / self.cps
        return arrivals + self.hold_s() + MARGIN_S

    def drain_s(self) -> float:
        """How long calls still up at the bound may go on before they are cut off."""
        return self.hold_s() + MARGIN_S

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        data["mix"] = None if self.mix is None else str(self.mix)
        data["talk_ms"] = list(self.talk_ms)
        data["abandon_wait_ms"] = list(self.abandon_wait_ms)
        return data


def from_args(
    *,
    system: str,
    cps: float,
    concurrency: int | None,
    calls: int | None,
    duration: float | None,
    agents: int | None,
    pools: int,
    talk_ms: str,
    abandon_pct: float,
    abandon_wait_ms: str,
    mix: str | None,
    out: str,
    capacity: bool,
    progress: bool,
) -> Params:
    """Check every argument and fill the derived defaults; InputError lists all problems."""
    problems: list[str] = []
    if system not in SYSTEMS:
        problems.append(f"--system {system!r}: choose one of {', '.join(SYSTEMS)}")
    if not 0 < cps <= MAX_CPS:
        problems.append(f"--cps {cps:g}: give calls per second above 0, at most {MAX_CPS:g}")
    if calls is not None and duration is not None:
        problems.append("--calls and --duration: give one of them, not both")
    if calls is not None and calls < 1:
        problems.append(f"--calls {calls}: at least 1")
    if duration is not None and not 1 <= duration <= 24 * 3600:
        problems.append(f"--duration {duration:g}: 1 to 86400 seconds")
    if not 1 <= pools <= 32:
        problems.append(f"--pools {pools}: 1 to 32 SIPp agent pools")
    talk = _range(talk_ms, "--talk-ms", problems)
    if talk is not None and talk[0] < 200:
        problems.append(f"--talk-ms {talk_ms}: at least 200 ms (the agent rings 200 ms first)")
    wait = _range(abandon_wait_ms, "--abandon-wait-ms", problems)
    if not 0 <= abandon_pct <= 100:
        problems.append(f"--abandon-pct {abandon_pct:g}: a percentage, 0 to 100")
    mix_path = None if mix is None else Path(mix)
    ivr_s = 0.0
    if mix_path is not None:
        if not mix_path.is_file():
            problems.append(f"--mix {mix}: no such file (a SIPp CSV of IVR key sequences)")
        else:
            try:
                ivr_s = mix_mod.read(mix_path).longest_ivr_s
            except InputError as exc:
                problems.append(exc.message)
        if system != "ccserver":
            problems.append(
                "--mix walks ccserver's IVR, which app_queue has not: --system ccserver"
            )
    if concurrency is None:
        # Little's law with the longest call; a bad --cps, --talk-ms or --abandon-wait-ms
        # is reported already.
        hold = longest_call_s(ivr_s, talk or (0, 0), abandon_pct, wait or (0, 0))
        concurrency = min(MAX_CONCURRENCY, math.ceil(max(cps, 0) * hold) + 1)
    elif not 1 <= concurrency <= MAX_CONCURRENCY:
        problems.append(f"--concurrency {concurrency}: 1 to {MAX_CONCURRENCY} calls at once")
    if agents is None:
        agents = max(pools, concurrency)
    elif not 1 <= agents <= MAX_AGENTS:
        problems.append(f"--agents {agents}: 1 to {MAX_AGENTS}")
    elif agents < pools <= 32:
        problems.append(f"--agents {agents} cannot fill --pools {pools}: one agent a pool at least")
    if problems:
        raise InputError("; ".join(problems), slug="loadtest-invalid")
    assert talk is not None and wait is not None  # a None range added a problem above
    if calls is None and duration is None and not capacity:
        calls = DEFAULT_CALLS
    return Params(
        system=system,
        cps=cps,
        concurrency=concurrency,
        calls=calls,
        duration_s=duration,
        agents=agents,
        pools=pools,
        talk_ms=talk,
        abandon_pct=abandon_pct,
        abandon_wait_ms=wait,
        mix=mix_path,
        out=Path(out),
        capacity=capacity,
        progress=progress,
        ivr_s=ivr_s,
    )


def longest_call_s(
    ivr_s: float, talk_ms: tuple[int, int], abandon_pct: float, abandon_wait_ms: tuple[int, int]
) -> float:
    """The longest a call may stay up: the IVR walk, then the talk (an abandoner leaves
    after its patience at the latest), and the ringing."""
    longest = ivr_s + talk_ms[1] / 1000
    if abandon_pct > 0:
        longest = max(longest, abandon_wait_ms[1] / 1000)
    return longest + RING_ALLOWANCE_S


def _range(text: str, what: str, problems: list[str]) -> tuple[int, int] | None:
    try:
        return parse_range(text, what)
    except ValueError as exc:
        problems.append(str(exc))
        return None
