"""Agents as the controller sees them, and the foundation's choice of agent.

v0 keeps this in process: every configured agent starts ready; the longest-idle ready agent
takes the next call (ties by agent id, so the choice is deterministic). An agent whose
phone does not answer (or is busy) goes not-ready for `rona_cooldown_s` and then returns to
ready by itself. The acd_core Router replaces the choice in a later issue.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class AgentState(enum.StrEnum):
    READY = "ready"
    RINGING = "ringing"
    BUSY = "busy"
    NOT_READY = "not-ready"


@dataclass
class Agent:
    id: str
    state: AgentState = AgentState.READY
    idle_since: float = 0.0
    calls_taken: int = 0
    call_id: str | None = None
    reason: str = ""

    def snapshot(self) -> dict[str, object]:
        return {
            "id": self.id,
            "state": self.state.value,
            "reason": self.reason,
            "call": self.call_id,
            "calls_taken": self.calls_taken,
        }


class Roster:
    def __init__(self, agent_ids: list[str], now: float) -> None:
        self.agents = {agent_id: Agent(agent_id, idle_since=now) for agent_id in agent_ids}

    def pick(self) -> Agent | None:
        """The longest-idle ready agent (ties broken by id)."""
        ready = [a for a in self.agents.values() if a.state is AgentState.READY]
        return min(ready, key=lambda a: (a.idle_since, a.id), default=None)

    def ring(self, agent: Agent, call_id: str) -> None:
        agent.state, agent.call_id = AgentState.RINGING, call_id

    def busy(self, agent: Agent) -> None:
        agent.state = AgentState.BUSY
        agent.calls_taken += 1

    def ready(self, agent: Agent, now: float) -> None:
        agent.state, agent.call_id, agent.reason, agent.idle_since = AgentState.READY, None, "", now

    def not_ready(self, agent: Agent, reason: str) -> None:
        agent.state, agent.call_id, agent.reason = AgentState.NOT_READY, None, reason

    def counts(self) -> dict[str, int]:
        counts = {state.value: 0 for state in AgentState}
        for agent in self.agents.values():
            counts[agent.state.value] += 1
        return counts
