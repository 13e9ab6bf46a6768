"""Value types shared by both router twins: configuration, results, views and the error.

They are plain Python (NamedTuples) so that the compiled and the pure router return objects
that compare equal, pickle, and print the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

MIN_LEVEL = 1
MAX_LEVEL = 10
MAX_SKILLS = 256
"""Skill names a router can know (indices are bytes in the compiled twin)."""
MAX_GROUPS = 16
"""Skill groups a queue can reach after all relaxation steps."""
MAX_GROUP_SKILLS = 16
"""Skills one group may require."""
AHT_ALPHA = 0.1
"""Weight of the newest handle time in a queue's moving average."""

STRATEGIES = ("longest-idle", "most-skilled", "least-calls")
AGENT_STATES = ("logged-out", "ready", "reserved", "busy", "wrap-up", "not-ready")
CALL_STATES = ("waiting", "offered", "connected", "gone")


class RouterError(ValueError):
    """A request the router refuses; `slug` is stable and safe to match on."""

    def __init__(self, slug: str, message: str) -> None:
        super().__init__(f"{slug}: {message}")
        self.slug = slug
        self.message = message


class RelaxStep(NamedTuple):
    """After `after_s` seconds in the queue, lower every minimum level of the queue's own
    skills by `lower_by` (never below 1) and accept agents of the `add` skill groups too.
    Steps accumulate: step 2 includes what step 1 lowered and added."""

    after_s: float
    lower_by: int = 0
    add: tuple[Mapping[str, int], ...] = ()


class Assignment(NamedTuple):
    """One decision of `dispatch`: offer `call` to `agent` — and why, for the decision log.

    `strategy` is the queue's strategy, or "preferred" when the caller's last agent was
    chosen; `step` the relaxation step in force; `group` the index of the skill group the
    agent matched (0 = the queue's own skills); `level` the agent's lowest level among that
    group's skills; `waited_s` the time since the call entered the queue."""

    call: str
    agent: str
    queue: str
    strategy: str
    step: int
    group: int
    level: int
    waited_s: float


class AgentView(NamedTuple):
    id: str
    state: str
    reason: str | None
    skills: dict[str, int]
    last_ready: float
    calls_taken: int
    call: str | None
    wrap_until: float | None


class CallView(NamedTuple):
    id: str
    queue: str
    state: str
    priority: int
    arrival: float
    queued_at: float
    step: int
    agent: str | None
    preferred_agent: str | None
    ewt_quoted: float


class EwtStats(NamedTuple):
    """How far the quoted expected waits were from the real ones (answered calls only)."""

    answered: int
    mean_error_s: float
    mean_abs_error_s: float
