"""The shapes the API takes and gives, as pydantic models.

Request bodies are validated with them; response models only describe what the backend's
dicts hold (for the OpenAPI document) and allow more fields, so the controller can add one
without breaking clients or this layer.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

# A call's states and outcomes are the call model's own enums, so the document lists them.
from ccserver.calls.model import CallState, Outcome

# The body of `POST /notices` is the notice board's own input model, so the API takes
# exactly what `NoticeBoard.add` accepts and the document shows exactly that.
from ccserver.ivr.notices import NoticeInput as NoticeInput

Action = Literal["login", "logout", "ready", "not-ready", "extend-wrap-up"]
Reason = Literal["break", "training", "meeting", "after-call-work"]


class AgentStateRequest(BaseModel):
    """Change an agent's state. `phone` (login: the desk to ring), `pin` (login with the
    agent's own token: required), `reason` (not-ready), `seconds` (extend-wrap-up)."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    reason: Reason | None = None
    phone: str | None = Field(default=None, min_length=1, max_length=64)
    pin: str | None = Field(default=None, min_length=1, max_length=32)
    seconds: float | None = Field(default=None, gt=0, le=3600)


class TransferRequest(BaseModel):
    """Transfer a connected call: give exactly one of `queue` (a queue's name) and `agent`
    (an agent's id). The caller keeps its original arrival time in the target queue."""

    model_config = ConfigDict(extra="forbid")

    queue: str | None = Field(default=None, min_length=1, max_length=64)
    agent: str | None = Field(default=None, min_length=1, max_length=64)
    mode: Literal["blind", "attended"] = Field(
        default="blind",
        description="blind: the agent is done at once. attended: the caller is held while "
        "the agent talks to the target; the agent hanging up completes the transfer.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> TransferRequest:
        if (self.queue is None) == (self.agent is None):
            raise ValueError("give exactly one of queue and agent")
        return self


class Alert(BaseModel):
    """An alert firing now."""

    fingerprint: str
    status: Literal["firing"]
    name: str = Field(description="the rule's alertname, e.g. `CcserverQueueOldestWaitHigh`")
    severity: str
    summary: str
    labels: dict[str, str]
    starts_at: str = Field(description="when it began firing (RFC 3339, Alertmanager's)")


MonitorModeName = Literal["listen", "whisper", "barge"]


class MonitorRequest(BaseModel):
    """Listen in on a talking agent: give exactly one of `call` (a call's id) and `agent`
    (the agent whose current call it is), the `phone` that rings for the supervisor, and the
    `mode` to start in."""

    model_config = ConfigDict(extra="forbid")

    call: str | None = Field(default=None, min_length=1, max_length=64)
    agent: str | None = Field(default=None, min_length=1, max_length=64)
    phone: str = Field(
        min_length=1,
        max_length=64,
        description="an id of `phones.ids`, or `browser`: the token's browser phone",
    )
    mode: MonitorModeName = Field(
        default="listen",
        description="listen: hear both sides, nobody hears you. whisper: the agent hears "
        "you, the caller does not. barge: both hear you.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> MonitorRequest:
        if (self.call is None) == (self.agent is None):
            raise ValueError("give exactly one of call and agent")
        return self


class MonitorSwitch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: MonitorModeName


class MonitorSession(BaseModel):
    """A supervisor's monitor session on an agent's call."""

    id: str
    supervisor: str = Field(description="the token name, or `phone:<id>` for a feature code")
    phone: str = Field(description="the supervisor's phone")
    agent: str
    call: str
    mode: MonitorModeName
    started_at: float
    answered_at: float | None = Field(description="null: the supervisor's phone still rings")


class MoveRequest(BaseModel):
    """Move a waiting caller: to `queue`, and/or to the `head` of the queue it ends in."""

    model_config = ConfigDict(extra="forbid")

    queue: str | None = Field(default=None, min_length=1, max_length=64)
    head: bool = Field(default=False, description="ahead of every caller waiting there")

    @model_validator(mode="after")
    def _something(self) -> MoveRequest:
        if self.queue is None and not self.head:
            raise ValueError("give a queue, or head: true, or both")
        return self


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Error(BaseModel):
    """Every error: a stable slug to match on and a message that says what to do."""

    error: str
    message: str


class Agent(_Open):
    id: str
    name: str | None = None
    state: str
    reason: str | None = None
    phone: str | None = None
    skills: dict[str, int] = Field(default_factory=dict, description="skill → level 1–10")
    call: str | None = Field(default=None, description="the call the agent is on, if any")
    calls_taken: int = 0


class Queue(_Open):
    name: str
    waiting: int
    oldest_wait_s: float | None = None
    ewt_s: float | None = Field(default=None, description="expected wait time of a new call")
    agents: dict[str, int] = Field(default_factory=dict, description="agents by state")


class Call(_Open):
    id: str
    caller: str | None = None
    dnis: str | None = None
    state: CallState | None = Field(
        default=None, description="where the call is (ccserver.calls.model.TRANSITIONS)"
    )
    outcome: Outcome | None = Field(default=None, description="how it ended (once ended)")
    agent: str | None = None
    arrived_at: float | None = None


class CallEvent(_Open):
    at: float
    kind: str


class CallDetail(Call):
    events: list[CallEvent]


class Notice(_Open):
    id: str
    text: str
    text_en: str | None = None
    scope: Literal["all"] | list[str] = Field(description='"all" or caller-number prefixes')
    starts_at: AwareDatetime
    ends_at: AwareDatetime = Field(description="the notice is heard until then (excluded)")
    created_at: AwareDatetime


class LicenseUsage(_Open):
    """The license in force and what is used of it now."""

    license_id: str
    customer_id: str
    evaluation: bool = Field(description="no license installed: the built-in evaluation limits")
    seats: int = Field(description="concurrent agent logins licensed")
    seats_in_use: int
    grace_seats: int = Field(description="logins allowed beyond `seats` for a short while")
    grace_in_use: int
    grace_until: float | None = Field(description="epoch seconds when the grace window ends")
    ivr_channels: int
    ivr_in_use: int
    expires_at: float | None = Field(description="epoch seconds; null: never")
    days_to_expiry: float | None
    refusals: dict[str, int] = Field(description="refused logins / IVR channels by slug")
    grace_overshoots: int


class Deleted(BaseModel):
    deleted: str = Field(description="the id of what was deleted")


class WhoAmI(BaseModel):
    name: str = Field(description="the token's name, e.g. `agent:1001`")
    role: Literal["admin", "supervisor", "agent"]
    agent: str | None = Field(default=None, description="the agent id of an agent token")


class OpenApiDocument(_Open):
    openapi: str


class DeskLogin(BaseModel):
    """Open a desk session: the agent's id and PIN (the same as on a phone), and where its
    calls ring: in the page (`browser`, WebRTC) or on a desk `phone` (default: its own)."""

    model_config = ConfigDict(extra="forbid")

    agent: str = Field(pattern=r"^[0-9]{3,8}$")
    pin: str = Field(min_length=1, max_length=32)
    device: Literal["browser", "phone"] = "browser"
    phone: str | None = Field(default=None, min_length=1, max_length=64)


class SipAccount(BaseModel):
    uri: str = Field(description="the browser phone's SIP URI, e.g. `sip:web1001@127.0.0.1`")
    ws: str = Field(description="Asterisk's SIP-over-WebSocket address")
    user: str
    password: str


class DeskSession(BaseModel):
    token: str = Field(description="the session's bearer token (agent role, this agent only)")
    expires_at: float = Field(description="epoch seconds; log in again after it")
    agent: Agent
    sip: SipAccount | None = Field(description="the browser phone; null for a desk phone")
    language: str = Field(description="the center's language (`acd.language`): zh or en")


class Disposition(BaseModel):
    """Close a call in wrap-up: one of its queue's codes (`dispositions` of the screen pop)
    and an optional note."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64)
    note: str | None = Field(default=None, max_length=2000)


class Screen(_Open):
    """The screen pop: the call as the desk shows it (caller, queue, wait, the IVR's path,
    what the caller entered and heard, why this agent) with the caller's recent contacts,
    open work orders and the outage notices that reach the caller."""

    id: str
    caller: str | None = None
    queue: str | None = None
    state: str
    why: str | None = None
    ivr: dict[str, object] = Field(default_factory=dict)
    dispositions: list[str] = Field(default_factory=list)
    pop: dict[str, object] = Field(
        default_factory=dict, description="contacts, notices, orders (open work orders)"
    )


# --- work orders (ccserver.records.orders; a unit test ties these to its KINDS and STATES)
OrderKind = Literal["fault", "complaint", "business", "enquiry"]
OrderState = Literal["new", "dispatched", "on-site", "resolved", "closed", "cancelled"]
_Text = Field(default=None, min_length=1, max_length=200)


class OrderInput(BaseModel):
    """Open a work order. `call`: the call it comes from (an agent may name only a call it
    talked on); without `caller`, the call's caller number is taken."""

    model_config = ConfigDict(extra="forbid")

    kind: OrderKind
    description: str = Field(default="", max_length=4000)
    account: str | None = _Text
    caller: str | None = _Text
    address: str | None = _Text
    area: str | None = Field(
        default=None, min_length=1, max_length=40, description="picks the SLA's deadlines"
    )
    priority: int = Field(default=0, ge=0, le=9)
    call: str | None = _Text


class OrderMove(BaseModel):
    """Move a work order to another state; dispatching names a `team` or an `assignee`
    unless the order has one."""

    model_config = ConfigDict(extra="forbid")

    state: OrderState
    note: str | None = Field(default=None, min_length=1, max_length=4000)
    team: str | None = _Text
    assignee: str | None = _Text


class OrderAssign(BaseModel):
    """Give a work order to a team and/or a person (what is not given is kept)."""

    model_config = ConfigDict(extra="forbid")

    team: str | None = _Text
    assignee: str | None = _Text

    @model_validator(mode="after")
    def _someone(self) -> OrderAssign:
        if self.team is None and self.assignee is None:
            raise ValueError("give a team, an assignee or both")
        return self


class OrderLink(BaseModel):
    """Link another call (e.g. the customer calling about the order) to a work order."""

    model_config = ConfigDict(extra="forbid")

    call: str = Field(min_length=1, max_length=200)


class OrderFilter(BaseModel):
    """Which work orders to list: every filter given must match; newest first."""

    model_config = ConfigDict(extra="forbid")

    state: OrderState | None = None
    kind: OrderKind | None = None
    account: str | None = _Text
    caller: str | None = _Text
    area: str | None = _Text
    open: bool = Field(default=False, description="only orders not closed or cancelled")
    escalated: bool = Field(default=False, description="only orders being chased")
    limit: int = Field(default=500, ge=1, le=10_000)


FollowUp = Literal["scheduled", "answered", "unreachable", "no-number", "none"]


class WorkOrder(_Open):
    id: int = Field(description="the order's number (what the caller hears)")
    kind: OrderKind
    state: OrderState
    priority: int
    account: str | None = None
    caller: str | None = None
    area: str | None = None
    team: str | None = None
    assignee: str | None = None
    created_at: float
    due_at: float | None = Field(default=None, description="the next deadline (epoch s)")
    due_state: OrderState | None = Field(default=None, description="what is due then")
    escalation: int = Field(description="0 on time, 1 deadline near, 2 overdue")
    followup: FollowUp | None = Field(default=None, description="the follow-up call, once closed")
    rating: int | None = Field(default=None, description="the customer's 1-5 in the follow-up")
    calls: list[str] = Field(description="the calls it came from or that asked after it")


class OrderChange(_Open):
    at: float
    who: str
    what: Literal["opened", "moved", "assigned", "linked", "escalated", "follow-up", "followed-up"]
    fields: dict[str, object]


class WorkOrderDetail(WorkOrder):
    changes: list[OrderChange]


# --- outbound calls (ccserver.records.outbound)
class CampaignInput(BaseModel):
    """A survey campaign: the numbers to call (CSV, the number in the first column; a
    header row is allowed) and how to call them. The configured caps for all outbound
    calls (`[outbound]`) and the licensed IVR channels bound it too."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    flow: str = Field(default="survey", min_length=1, max_length=64, description="outbound flow")
    csv: str = Field(
        min_length=1,
        max_length=60_000,
        description="the list of numbers (a request carries about 4,000; a longer list is "
        "several campaigns)",
    )
    max_concurrent: int = Field(default=5, ge=1, le=1000, description="calls up at once")
    cps: float = Field(default=1.0, gt=0, le=100, description="new calls a second")
    attempts: int = Field(default=2, ge=1, le=10, description="tries of a busy/unanswered number")
    retry_s: float = Field(default=600.0, gt=0, le=86400, description="back-off: this, 2×, 4× …")


class Campaign(_Open):
    id: int
    name: str
    flow: str
    max_concurrent: int
    cps: float
    attempts: int
    retry_s: float
    state: Literal["running", "finished", "stopped"]
    created_at: float
    created_by: str
    progress: dict[str, int] = Field(
        description="numbers by state (pending, dialing) or result (answered, unreachable, stopped)"
    )


class OutboundTarget(_Open):
    id: int
    number: str
    state: Literal["pending", "dialing", "done"]
    result: Literal["answered", "unreachable", "stopped"] | None = None
    rating: int | None = Field(default=None, description="the 1-5 the customer keyed")
    answers: dict[str, str] = Field(description="the variables the flow set")
    tries: list[dict[str, object]] = Field(description="each try: at (epoch s), result")
    next_at: float


class CampaignDetail(Campaign):
    targets: list[OutboundTarget] = Field(description="per number, in list order")


# --- the knowledge base (ccserver.records.knowledge)
class ArticleInput(BaseModel):
    """An article: a title, a Markdown body, tags (a queue, an IVR node, a disposition code,
    a word: what the desk suggests it for) and an optional validity period."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=50_000, description="Markdown")
    tags: list[str] = Field(default_factory=list, max_length=50)
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = Field(
        default=None, description="not found nor suggested from then on"
    )


class KnowledgeQuery(BaseModel):
    """A search of the knowledge base."""

    model_config = ConfigDict(extra="forbid")

    q: str = Field(min_length=1, max_length=200, description="words, Chinese or English")
    limit: int = Field(default=20, ge=1, le=100)
    expired: bool = Field(default=False, description="expired articles too (supervisors)")


class Article(_Open):
    id: int
    title: str
    body: str
    tags: list[str]
    valid_from: float | None = None
    valid_until: float | None = None
    valid: bool = Field(description="valid now")
    views: int = Field(description="times agents opened it")


class ArticleHit(_Open):
    id: int
    title: str
    tags: list[str]
    snippet: str = Field(description="the body around the first word found")
    valid: bool


class ArticleLookups(_Open):
    id: int
    title: str
    reads: int
    readers: int
    last_at: float


# --- quality inspection (ccserver.records.qa)
class QaScoreInput(BaseModel):
    """Score a call: the form's items it earned and the deductions it took, as
    `section.item` (a deduction twice for two occurrences)."""

    model_config = ConfigDict(extra="forbid")

    call: str = Field(min_length=1, max_length=200)
    ticked: list[str] = Field(default_factory=list, max_length=200)
    deducted: list[str] = Field(default_factory=list, max_length=200)
    comment: str | None = Field(default=None, min_length=1, max_length=4000)


class QaDispute(BaseModel):
    """The agent's reason for disputing a score (once)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=4000)


class QaQueueQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scored: bool = Field(default=False, description="the calls scored already instead")
    limit: int = Field(default=500, ge=1, le=10_000)


class QaScoresQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str | None = Field(default=None, min_length=1, max_length=64)
    limit: int = Field(default=500, ge=1, le=10_000)


class QaForm(_Open):
    form: str
    title: str
    sections: list[dict[str, object]]


class QaQueued(_Open):
    call_id: str
    agent: str
    queue: str | None = None
    rule: Literal["queue", "csat", "long", "random", "weekly"]
    queued_at: float
    recording: str | None = None


class QaScore(_Open):
    id: int
    call_id: str
    agent: str
    inspector: str
    total: float
    max_points: float
    share: float | None = None
    sheet: dict[str, object] = Field(description="per section: max, earned, deducted, points")
    comment: str | None = None
    dispute: str | None = None
    disputed_at: float | None = None
