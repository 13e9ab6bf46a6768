"""Where what happens to calls is written: the live state in Redis (call records, queue
events, the ACD snapshot), the history store the reports read, and the event counters.

Invariants:
- Every queue event goes to all of them at once (`event`), so the counters, the Redis
  stream, the history and the wallboard's counts can never disagree about what happened.
- An ended call's record goes to the history once it is written to Redis (`save_ended`).
- Agents' state changes reach the history with every ACD snapshot (`save_acd`), so no code
  path has to remember to report one, and changes the router makes on its own timers
  (wrap-up ending) are seen within the ticker's second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ccserver.acd import Acd
from ccserver.calls.model import Call
from ccserver.history import History
from ccserver.metrics import instruments


class LiveStore(Protocol):
    """The Redis side of the journal (`ccserver.store.Store`)."""

    async def save_call(self, record: dict[str, Any], *, new: bool = False) -> None: ...
    async def add_event(self, call_id: str, kind: str, **fields: Any) -> None: ...
    async def save_acd(self, state: dict[str, Any]) -> None: ...
    async def load_call(self, call_id: str) -> dict[str, Any] | None: ...
    async def load_acd(self) -> dict[str, Any] | None: ...


EventCounter = Callable[[str, str | None, str | None, Mapping[str, Any], float], None]
"""Told of every queue event: kind, queue, agent, fields, when (`Wallboard.count`)."""


class Journal:
    def __init__(
        self,
        store: LiveStore,
        history: History | None,
        *,
        short_abandon_s: float,
        counter: EventCounter | None = None,
    ) -> None:
        """`history` None: no history store (tests that replay events into a center);
        `counter`: also told of every queue event (the wallboard's counts)."""
        self.store = store
        self.history = history
        self.short_abandon_s = short_abandon_s
        self.counter = counter
        self._agent_states: dict[str, tuple[str, str | None]] = {}  # as last put in history

    async def load_acd(self) -> dict[str, Any] | None:
        """The last ACD snapshot written (`save_acd`), with its parked callbacks."""
        return await self.store.load_acd()

    async def load_call(self, call_id: str) -> dict[str, Any] | None:
        return await self.store.load_call(call_id)

    async def save_call(self, call: Call, *, new: bool = False) -> None:
        await self.store.save_call(call.to_record(), new=new)

    async def save_ended(self, call: Call) -> None:
        """An ended call's record, to Redis and to the history store the reports read."""
        record = call.to_record()
        await self.store.save_call(record)
        if self.history is not None:
            self.history.save_call(record)

    async def event(self, call: Call, kind: str, **fields: Any) -> None:
        """One queue event: counted, to the Redis stream and to the history store."""
        clean = {k: v for k, v in fields.items() if v is not None}
        instruments.queue_event(
            kind,
            str(clean.get("queue", call.queue) or ""),
            clean,
            short_abandon_s=self.short_abandon_s,
        )
        await self.store.add_event(call.id, kind, **clean)
        queue, agent = clean.pop("queue", call.queue), clean.pop("agent", call.agent)
        if self.counter is not None:
            self.counter(kind, queue, agent, clean, time.time())
        if self.history is not None:
            self.history.record_event(call.id, kind, queue=queue, agent=agent, **clean)

    async def agent_event(self, agent_id: str, action: str, **fields: Any) -> None:
        """An agent's own action (login, ready, …), to the Redis stream."""
        await self.store.add_event(f"agent:{agent_id}", f"agent-{action}", **fields)

    async def save_acd(self, acd: Acd, parked: list[str]) -> None:
        """The ACD state and the callbacks waiting for a retry (which the router does not
        hold), then every agent whose state or reason changed since the last look."""
        await self.store.save_acd({"acd": acd.snapshot(), "parked": parked})
        if self.history is None:
            return
        for agent_id in acd.agents:
            view = acd.agent_view(agent_id)
            now = (view["state"], view["reason"])
            if self._agent_states.get(agent_id, ("logged-out", None)) != now:
                self._agent_states[agent_id] = now
                self.history.agent_state(agent_id, view["state"], reason=view["reason"])
