"""What the REST API needs from the running contact center; the controller implements it.

Plain dicts cross this boundary (the API serialises them as they are); errors a user can
meet are `CCServerError`s with the slugs named below, and the API answers with their status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
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

    async def call(self, call_id: str, *, agent: str | None = None) -> dict[str, Any]:
        """One call, live or from history, with its "events"; raises call-unknown (404).
        `agent`: the reader is that agent, who may read only a call it was offered or
        talked on (forbidden, 403)."""
        ...

    async def screen(self, call_id: str, *, agent: str | None = None) -> dict[str, Any]:
        """The call's screen pop (`ccserver.calls.desk.call_context` plus `pop`: the
        caller's recent contacts and the notices that reach it); errors as `call`."""
        ...

    async def hold(self, call_id: str, *, on: bool, by: str) -> dict[str, Any]:
        """Hold (`on`) or take off hold a connected call and return it; raises
        call-unknown (404), forbidden (403: not this agent's call), invalid-state (409:
        not connected), call-gone (409)."""
        ...

    async def dispose(
        self, call_id: str, *, code: str, note: str | None, by: str
    ) -> dict[str, Any]:
        """Record the wrap-up disposition of a call the agent talked on (live or ended)
        and return it; raises call-unknown (404), forbidden (403), input-invalid (400: not
        a code of the call's queue)."""
        ...

    async def desk_login(
        self, agent_id: str, *, pin: str, device: str, phone: str | None
    ) -> dict[str, Any]:
        """Check the agent's PIN and log it in, not ready, where its calls are to ring:
        its browser phone (`device="browser"`) or a desk phone (`phone`, else its own).
        An agent already logged in there stays as it is (a reloaded page); one logged in
        at another phone moves here. Returns `agent` (as `agent()`), `sip` (the browser
        phone's account, or None) and `language`; raises pin-invalid (403), agent-unknown
        (404), phone-unknown (404), agent-on-call (409: a call holds it at another phone),
        license-seats-exhausted (409)."""
        ...

    def desk_events(self, agent_id: str, after: int | None) -> AsyncIterator[dict[str, Any]]:
        """The agent's desk events: a snapshot, then those after `after`, then each new
        one as it happens (`ccserver.calls.desk.DeskFeed.stream`)."""
        ...

    def board_events(self) -> AsyncIterator[dict[str, Any]]:
        """The wallboard (`ccserver.calls.board.Wallboard.board` with `notices` in force
        and firing `alerts`): now, then at every change; raises board-unavailable (503)."""
        ...

    async def transfer(
        self, call_id: str, *, queue: str | None, agent: str | None, by: str, attended: bool
    ) -> dict[str, Any]:
        """Transfer (blind, or `attended`: consult first) a connected call to `queue` or
        to `agent` (exactly one is given; the API has checked that) and return the call;
        raises call-unknown (404), queue-unknown (404), agent-unknown (404),
        agent-logged-out (409: the target agent is not logged in), invalid-state (409: the
        call is not connected to an agent),
        forbidden (403: an agent token that is not on the call).

        The API lets every agent token through: the backend knows which agent is on the
        call, so it refuses `by="agent:<id>"` unless `<id>` is that agent."""
        ...

    async def move(self, call_id: str, *, queue: str | None, head: bool, by: str) -> dict[str, Any]:
        """Move a waiting caller to `queue` and/or ahead of every caller waiting there,
        keeping its arrival, and return the call; raises call-unknown (404), queue-unknown
        (404), invalid-state (409: not waiting)."""
        ...

    async def recording(self, call_id: str, *, by: str) -> Path:
        """The file of the call's recording (live or ended call), the read audited as
        `by`'s; raises call-unknown (404), recording-none (404: not recorded, or the file
        is gone)."""
        ...

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts firing now, as Alertmanager delivered them (`AlertBoard.firing`)."""
        ...

    def monitors(self) -> list[dict[str, Any]]:
        """The supervisors' monitor sessions (`ccserver.calls.model.Monitor.to_dict`)."""
        ...

    def supervisor_sip(self, by: str) -> dict[str, Any]:
        """The SIP account of token `by`'s browser phone (uri, ws, user, password), which
        the wallboard registers to listen in; raises phone-unknown (404) for a token
        without one."""
        ...

    async def start_monitor(
        self, *, call: str | None, agent: str | None, phone: str, mode: str, by: str
    ) -> dict[str, Any]:
        """Ring `phone` (`browser`: the caller's browser phone, see `supervisor_sip`) for a
        monitor session in `mode` (listen, whisper, barge) on the call
        `call` or on the one `agent` talks on (exactly one is given) and return it; raises
        call-unknown, agent-unknown, phone-unknown (404), not-talking (409: no agent is
        talking on the call), phone-failed (502)."""
        ...

    async def switch_monitor(self, session: str, *, mode: str, by: str) -> dict[str, Any]:
        """Change a session's mode and return it; raises monitor-unknown (404)."""
        ...

    async def stop_monitor(self, session: str, *, by: str) -> None:
        """End a session (the call goes on); raises monitor-unknown (404)."""
        ...

    def license(self) -> dict[str, Any]:
        """The license in force and its use now (`SeatLedger.usage()`)."""
        ...

    def outbound_flows(self) -> list[str]:
        """The outbound flows a campaign may play, by name."""
        ...

    def reload_license(self, *, by: str) -> dict[str, Any]:
        """Read the installed license file again and put it in force (as `license`); on any
        problem with it raises LicenseError (license-* slugs, 400) and keeps the one in force.
        Agents logged in keep their seats whatever the new license says."""
        ...

    async def notices(self) -> list[dict[str, Any]]:
        """The outage notices not yet ended (active or scheduled), by start time, each as
        `Notice.to_dict()`: id, text, text_en, scope, starts_at, ends_at, created_at;
        raises notices-unavailable (503) when the call center has no notice board."""
        ...

    async def add_notice(self, data: dict[str, Any], *, by: str) -> dict[str, Any]:
        """Add a notice and return it (as in `notices`). `data` is the posted body, already
        valid against `NoticeInput` (JSON types: times as ISO 8601 strings); raises
        InputError (input-invalid, 400) for what only the board checks (ends_at before
        starts_at or already past), prompt-failed (500) when its audio can't be made,
        notices-unavailable (503)."""
        ...

    async def delete_notice(self, notice_id: str, *, by: str) -> None:
        """Withdraw a notice at once; raises notice-unknown (404), notices-unavailable
        (503)."""
        ...
