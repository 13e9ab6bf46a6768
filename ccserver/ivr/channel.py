"""The contract between the IVR interpreter and the call controller.

The controller implements `FlowChannel` over ARI for each caller and hands it to
`ccserver.ivr.interpreter.run_flow`, which returns a `FlowRecord` for the call record.
Keeping the contract apart from the interpreter lets tests drive flows through a scripted
channel and lets the controller import the types without the interpreter's dependencies.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ccserver.ivr.notices import Notice


class CallerGone(Exception):
    """The caller hung up; the interpreter stops."""


@dataclass
class QueueRequest:
    queue: str
    priority: int
    language: str
    variables: dict[str, str]
    route: dict[str, Any] = field(default_factory=dict)
    """The flow's record so far (`FlowRecord.to_dict()`): what the agent's screen pop shows
    of the caller's way through the IVR."""


@dataclass
class QueueResult:
    """How the queue step ended. `outcome`: "agent-hangup" (the caller is still on the
    line: the survey may run), "caller-hangup", "callback" (the caller chose a callback
    and hung up), "overflow-hangup", …; only "agent-hangup" continues the flow."""

    outcome: str
    agent: str | None = None


class FlowChannel(Protocol):
    """One caller's channel, as the controller implements it over ARI. Any method may
    raise `CallerGone` when the caller hangs up."""

    call_id: str
    caller: str
    dnis: str

    async def play(self, media: list[str], *, interruptible: bool) -> str:
        """Play media URIs in order; returns the first DTMF digit pressed during playback
        (which stops it) when interruptible, else ""."""
        ...

    async def read_digits(
        self,
        *,
        max_digits: int,
        timeout_s: float,
        inter_digit_s: float,
        terminator: str | None,
        first: str = "",
    ) -> str:
        """Collect digits after `first` (a digit already pressed, part of the result) up to
        `max_digits` or the `terminator` (not part of the result); "" on timeout."""
        ...

    def connecting(self, queue: str, priority: int) -> None:
        """The flow chose `queue`; its "connecting you" prompt plays next. A caller who hangs
        up now asked for an agent: an abandon in that queue, not a call self-service served."""
        ...

    def self_served(self, node: str) -> None:
        """The caller finished `node`, which the flow marks as serving them: from now a
        hang-up in the IVR is self-service, not an IVR abandon. Told once a call."""
        ...

    async def queue(self, request: QueueRequest) -> QueueResult: ...

    async def callback(self, queue: str | None, number: str) -> None:
        """The caller accepted a callback to `number`: from now the call waits in `queue`
        (None: the default) without the caller. The confirmation plays next, and a caller
        who hangs up during it (many do, once they have pressed the key) is still called."""
        ...

    async def transfer(self, target: str) -> None: ...

    async def record(self, max_s: float) -> str | None:
        """Record the caller (ended by silence, # or `max_s`); the file's path, or None."""
        ...

    async def hangup(self) -> None: ...


class OrderDesk(Protocol):
    """What the interpreter needs of the work orders (`ccserver.records.orders.FlowOrders`
    implements it over the history store). Any method may raise; the interpreter takes
    the node's error branch."""

    async def open_order(
        self,
        kind: str,
        *,
        caller: str,
        call_id: str,
        account: str | None,
        area: str | None,
        description: str,
    ) -> int:
        """Open an order (by the IVR) linked to the call; its number."""
        ...

    async def open_orders(self, caller: str) -> list[tuple[int, str, str]]:
        """The caller's open orders, newest first: (number, kind, state)."""
        ...


class NoticeSource(Protocol):
    """What the interpreter needs of the notice board (`ccserver.ivr.notices.NoticeBoard`)."""

    async def active_for(self, caller: str, now: dt.datetime) -> list[Notice]: ...


@dataclass
class FlowRecord:
    """What happened in the IVR part of one call; `to_dict()` goes into the call record.

    `outcome`: "queued" (see `queue_outcome`), "transferred", "callback", "hangup" (the
    flow ended the call), "caller-hangup" (the caller left during the IVR) or "failed"."""

    flow: str
    call_id: str
    caller: str
    dnis: str
    started_at: str
    language: str
    ended_at: str | None = None
    route: list[str] = field(default_factory=list)
    inputs: list[dict[str, str]] = field(default_factory=list)
    """Keys entered: {"node", "input", "result": "ok" | "invalid" | "timeout"}."""
    variables: dict[str, str] = field(default_factory=dict)
    lookups: list[dict[str, Any]] = field(default_factory=list)
    """{"node", "result": "hit" | "miss" | "error", "detail", "ms"}."""
    notices: list[str] = field(default_factory=list)
    self_service: str | None = None
    """The first node marked `self_service` the caller finished, if any."""
    queue: str | None = None
    priority: int | None = None
    queue_outcome: str | None = None
    agent: str | None = None
    transfer_to: str | None = None
    callback: dict[str, str] | None = None
    survey_score: int | None = None
    survey_comment: str | None = None
    outcome: str = "running"
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
