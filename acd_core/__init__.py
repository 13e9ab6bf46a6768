"""acd_core — the skill-based routing core of ccserver.

Two implementations of one contract: `_router.pyx` (Cython, compiled by the package build)
and `_router_py.py` (pure Python). The compiled one is loaded when present;
`ACD_CORE_NO_EXTENSIONS=1` forces the pure twin. `IMPLEMENTATION` says which ("cython" or
"python"). Both run the same test suite and must make the same decisions.

The contract
============
Time. The router never reads a clock: every call passes `now` (seconds, any epoch). Timers
(wrap-up ends, relaxation steps, preferred-agent waits, RONA memory) take effect at the next
`dispatch(now)` with `now` at or after their time; `next_timer()` says when that is.

Skills and queues. Skills are names; an agent has a level 1–10 per skill. A queue names the
skills its calls need with a minimum level each (one "skill group": an agent must meet all
of them). Its relaxation schedule is a list of `RelaxStep(after_s, lower_by, add)`: once a
call has waited `after_s` in the queue (`queued_at + after_s <= now`), the queue's own
minimum levels drop by `lower_by` (never below 1) and the `add` groups are accepted too.
Steps accumulate. A call is never offered to an agent below the levels of its current step.

Agents. States: logged-out, ready, reserved (an offer is ringing), busy, wrap-up,
not-ready(reason). `last_ready` is when the agent last became ready (from login, not-ready,
wrap-up end or a call without wrap-up); withdrawing an offer the agent never answered
(`remove` of a ringing call) gives back ready without touching it. `calls_taken` counts
answered calls.

Calls. A call has a queue, a priority (higher first) and an original `arrival` (kept across
callback and transfer: pass it to `enqueue`), plus `queued_at`, the `now` it entered this
queue, from which relaxation and waits are measured. Service order: highest priority, then
earliest arrival, then call id. A call offered (`dispatch`) and then rejected (`reject`,
RONA) or whose agent logs out goes back to exactly that place.

Dispatch. `dispatch(now)` makes every assignment possible now: it takes waiting calls in
service order and gives each the best eligible ready agent, if any — a call that no ready
agent can take does not hold up calls behind it. Each assigned agent becomes reserved, so
no agent is ever offered two calls. "Best" is the queue's strategy:
  - longest-idle (default): smallest `last_ready`;
  - least-calls: fewest `calls_taken`, then smallest `last_ready`;
  - most-skilled: highest sum of the agent's levels over the skills of the group matched,
    then smallest `last_ready`;
always then the agent id. An agent's matched group is the first group of the step it meets.
Preferred agent: a call queued with `preferred_agent` (the caller's last agent) in a queue
with `preferred_s > 0` is offered only to that agent, if eligible, during its first
`preferred_s` seconds in the queue — unless that agent is logged out or has rejected the
call; after that, normal routing.

RONA. `reject(call, agent, now)` makes the agent not-ready("RONA"), puts the call back in its
place, and the call is not offered to that agent again before `now + rona_memory_s`.

Expected wait. Each queue keeps a moving average of handle times (talk + wrap-up, weight
`AHT_ALPHA`). EWT for k calls ahead = 0 when k = 0 and an eligible agent is ready, otherwise
(k + 1) × AHT / max(1, staffed eligible agents), staffed = ready, reserved, busy or wrap-up.
`enqueue` returns the quote; `answer` records the real wait so `ewt_stats` reports the error.

Snapshot. `snapshot()` is a JSON-able dict; `restore()` on an empty router of either twin
rebuilds the same state, which makes the same decisions.

Cost. A dispatch touches class heads (one heap per queue and relaxation step) and
candidate agents from per-(skill, level) bitsets ANDed with the ready set; agents who cannot
take a call are never visited one by one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from acd_core._types import (
    AGENT_STATES,
    CALL_STATES,
    MAX_LEVEL,
    MIN_LEVEL,
    STRATEGIES,
    AgentView,
    Assignment,
    CallView,
    EwtStats,
    RelaxStep,
    RouterError,
)

__all__ = [
    "AGENT_STATES",
    "CALL_STATES",
    "IMPLEMENTATION",
    "MAX_LEVEL",
    "MIN_LEVEL",
    "STRATEGIES",
    "AgentView",
    "Assignment",
    "CallView",
    "EwtStats",
    "RelaxStep",
    "Router",
    "RouterAPI",
    "RouterError",
    "load",
]


class RouterAPI(Protocol):
    """What both twins implement (see the module docstring for the semantics)."""

    rona_memory_s: float
    clock: float

    def __init__(self, *, rona_memory_s: float = ...) -> None: ...
    def define_queue(
        self,
        name: str,
        skills: Mapping[str, int],
        *,
        strategy: str = ...,
        relaxation: Sequence[RelaxStep] = ...,
        wrap_up_s: float = ...,
        preferred_s: float = ...,
        aht_s: float = ...,
    ) -> None: ...
    def login(
        self, agent: str, skills: Mapping[str, int], now: float, *, ready: bool = ...
    ) -> None: ...
    def set_skills(self, agent: str, skills: Mapping[str, int]) -> None: ...
    def logout(self, agent: str, now: float) -> str | None: ...
    def set_ready(self, agent: str, now: float) -> None: ...
    def set_not_ready(self, agent: str, reason: str, now: float) -> None: ...
    def extend_wrap_up(self, agent: str, seconds: float, now: float) -> float: ...
    def enqueue(
        self,
        call: str,
        queue: str,
        now: float,
        *,
        priority: int = ...,
        arrival: float | None = ...,
        preferred_agent: str | None = ...,
    ) -> float: ...
    def remove(self, call: str, now: float) -> str | None: ...
    def answer(self, call: str, now: float) -> None: ...
    def reject(self, call: str, agent: str, now: float) -> None: ...
    def complete(self, call: str, now: float, *, wrap_up_s: float | None = ...) -> None: ...
    def dispatch(self, now: float) -> list[Assignment]: ...
    def next_timer(self) -> float | None: ...
    def expected_wait(self, queue: str, priority: int = ...) -> float: ...
    def position(self, call: str) -> int: ...
    def waiting(self, queue: str | None = ...) -> int: ...
    def agent(self, agent: str) -> AgentView: ...
    def call(self, call: str) -> CallView: ...
    def agents(self) -> list[str]: ...
    def calls(self) -> list[str]: ...
    def ewt_stats(self, queue: str) -> EwtStats: ...
    def snapshot(self) -> dict[str, Any]: ...
    def restore(self, data: Mapping[str, Any]) -> None: ...


def load(implementation: str) -> type[RouterAPI]:
    """The router class of one twin, "cython" or "python" (tests compare the two)."""
    if implementation == "cython":
        from acd_core import _router  # type: ignore[attr-defined]

        cls: type[RouterAPI] = _router.Router
        return cls
    if implementation == "python":
        from acd_core import _router_py

        return _router_py.Router
    raise ValueError(f"unknown acd_core implementation {implementation!r}")


def _default() -> tuple[str, type[RouterAPI]]:
    if os.environ.get("ACD_CORE_NO_EXTENSIONS") == "1":
        return "python", load("python")
    try:
        return "cython", load("cython")
    except ImportError:
        return "python", load("python")


IMPLEMENTATION, Router = _default()
"""Which twin `Router` is: "cython" (compiled) or "python"."""
