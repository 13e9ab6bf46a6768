"""What the REST API needs from the running contact center; the controller implements it.

Plain dicts cross this boundary (the API serialises them as they are); errors a user can
meet are `CCServerError`s with the slugs named below, and the API answers with their status.
"""

from __future__ import annotations

from typing import Any, Protocol


class ApiBackend(Protocol):
    def agents(self) -> list[dict[str, Any]]:
        """Every agent, each: id, name, state, reason, phone, skills, call, calls_taken."""
        ...

    def agent(self, agent_id: str) -> dict[str, Any]:
        """One agent; raises CCServerError(slug="agent-unknown", status=404)."""
        ...

    async def agent_action(
        self,
        agent_id: str,
        action: str,
        *,
        reason: str | None,
        phone: str | None,
        pin: str | None,
        seconds: float | None,
        by: str,
    ) -> dict[str, Any]:
        """Apply `action` (login, logout, ready, not-ready, extend-wrap-up) and return the
        agent; raises CCServerError with slugs such as agent-unknown (404), pin-invalid
        (403), invalid-state (409), license-seats-exhausted (409).

        The API has already checked roles: an agent's own token always brings a `pin` for
        `login`; a supervisor's may leave it None (no PIN check) or give one (check it).
        `by` is the caller's token name, for the backend's own logs."""
        ...

    def queues(self) -> list[dict[str, Any]]:
        """Live queue stats, each: name, waiting, oldest_wait_s, ewt_s, agents (by state)."""
        ...

    def queue(self, name: str) -> dict[str, Any]:
        """One queue's stats; raises slug queue-unknown (404)."""
        ...

    def calls(self) -> list[dict[str, Any]]:
        """The calls in progress."""
        ...

    async def call(self, call_id: str) -> dict[str, Any]:
        """One call, live or from history, with its "events"; raises call-unknown (404)."""
        ...
