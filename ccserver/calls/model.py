"""A call as the controller keeps it: the `Call` record, its states and the moves between
them, its outcomes, and the ids of everything we create in Asterisk for it.

Invariants:
- `Call.state` changes only through `CallCenter.move`, which checks `TRANSITIONS`; the
  table below is the whole list of states and of the moves between them.
- Every id of a channel or bridge we create is built here (`agent_leg_id`,
  `customer_leg_id`, `call_bridge_id`, `recording_name`, …) and recognised here
  (`is_our_leg`, `call_of_bridge`): recovery finds exactly what the live code made.
- A record (`to_record`) holds plain JSON values: the enums are `str` subclasses.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class CallState(StrEnum):
    ARRIVING = "arriving"  # in Stasis, the session answering and greeting
    IVR = "ivr"  # a flow talks to the caller
    WAITING = "waiting"  # in a queue, on hold
    RINGING = "ringing"  # an agent's phone rings for it
    CONNECTED = "connected"  # caller and agent talk
    CONSULTING = "consulting"  # attended transfer: the two agents talk, the caller holds
    SURVEY = "survey"  # the agent hung up first; the flow runs its survey
    TRANSFERRED = "transferred"  # the flow sent the caller back to the dialplan
    CALLBACK = "callback"  # the caller hung up keeping the place; waits in the queue
    CALLBACK_RINGING = "callback-ringing"  # the reserved agent's phone rings
    CALLBACK_DIALING = "callback-dialing"  # the agent answered; the customer is dialled
    CALLBACK_WAIT = "callback-wait"  # the customer was not reached; a retry is due
    ENDED = "ended"


class Outcome(StrEnum):
    COMPLETED = "completed"  # an agent talked with the caller
    ABANDONED = "abandoned"  # the caller hung up before an agent (or the IVR) served them
    TRANSFERRED = "transferred"  # the flow handed the caller on to the dialplan
    SELF_SERVICE = "self-service"  # a self-service node of the flow served the caller
    IVR_ABANDONED = "ivr-abandoned"  # the caller left the flow before being served
    IVR_ENDED = "ivr-ended"  # the flow ended the call before serving the caller
    CALLBACK_FAILED = "callback-failed"  # the customer was not reached in any attempt


S = CallState
TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    S.ARRIVING: frozenset({S.IVR, S.WAITING, S.ENDED}),
    S.IVR: frozenset({S.WAITING, S.CALLBACK, S.TRANSFERRED, S.ENDED}),
    S.WAITING: frozenset({S.RINGING, S.CALLBACK, S.ENDED}),
    S.RINGING: frozenset({S.CONNECTED, S.CONSULTING, S.WAITING, S.ENDED}),
    S.CONNECTED: frozenset({S.WAITING, S.SURVEY, S.ENDED}),
    S.CONSULTING: frozenset({S.CONNECTED, S.WAITING, S.ENDED}),
    S.SURVEY: frozenset({S.TRANSFERRED, S.ENDED}),
    S.TRANSFERRED: frozenset({S.ENDED}),
    S.CALLBACK: frozenset({S.CALLBACK_RINGING, S.ENDED}),
    S.CALLBACK_RINGING: frozenset({S.CALLBACK_DIALING, S.CALLBACK, S.ENDED}),
    S.CALLBACK_DIALING: frozenset({S.CONNECTED, S.CALLBACK_WAIT, S.CALLBACK, S.ENDED}),
    S.CALLBACK_WAIT: frozenset({S.CALLBACK, S.ENDED}),
    S.ENDED: frozenset(),
}
"""Every legal move; anything else is a bug (`CallCenter.move` says what it does then)."""

WAITING_STATES = frozenset({S.WAITING, S.RINGING})
"""The caller is on hold in a queue (the waiting session runs)."""
CALLBACK_STATES = frozenset({S.CALLBACK, S.CALLBACK_RINGING, S.CALLBACK_DIALING, S.CALLBACK_WAIT})
"""The caller has hung up on purpose; the call lives on for its callback."""
TALKING_STATES = frozenset({S.CONNECTED, S.CONSULTING})
"""An agent is on the call (the router has it as answered)."""


class LegRole(StrEnum):
    """What a channel we originated is for; decides who handles its answer and its end."""

    AGENT = "agent"  # an agent's phone for a call waiting in a queue
    CONSULT_TARGET = "consult-target"  # the agent an attended transfer consults
    CONSULT_SOURCE = "consult-source"  # the transferring agent, during the consult
    CALLBACK_AGENT = "callback-agent"  # the agent reserved for a callback
    CUSTOMER = "customer"  # the customer dialled for a callback


class MonitorMode(StrEnum):
    """Where a supervisor's voice goes; they always hear both sides."""

    LISTEN = "listen"  # nowhere
    WHISPER = "whisper"  # to the agent only
    BARGE = "barge"  # to the agent and the caller


@dataclass
class Monitor:
    """A supervisor's session on an agent's call: their phone's leg and a snoop channel on
    the agent's leg, in the session's bridge (`ccserver.calls.monitor`)."""

    id: str
    supervisor: str  # who asked: a token name, or `phone:<id>` for a feature code
    phone: str  # where the supervisor listens
    agent: str
    call: str
    agent_channel: str  # the leg snooped on
    mode: MonitorMode
    leg: str  # the supervisor's channel
    bridge: str
    started_at: float
    answered_at: float | None = None
    snoop: str | None = None  # the snoop in the bridge now
    pending_snoop: str | None = None  # one made for a new mode, not in the bridge yet

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "supervisor": self.supervisor,
            "phone": self.phone,
            "agent": self.agent,
            "call": self.call,
            "mode": self.mode.value,
            "started_at": self.started_at,
            "answered_at": self.answered_at,
        }


@dataclass
class OutboundCall:
    """A call the center placed to a customer (`ccserver.calls.outbound`): a work order's
    follow-up (`campaign` None) or a campaign's; it holds an IVR channel from dial to end."""

    channel: str
    target: int  # the row of `ccserver.records.outbound`
    campaign: int | None
    number: str
    flow: str
    attempts: int  # the tries its policy allows (`Policy.attempts`)
    retry_s: float
    dialled_at: float
    answered_at: float | None = None


@dataclass(frozen=True)
class Leg:
    call: str
    role: LegRole


# --- ids of what we create in Asterisk ------------------------------------------------------
HOLDING_BRIDGE = "ccserver-holding"
"""The one holding bridge (music on hold) every waiting caller is in."""
AGENT_LEG_PREFIX = "agent-"
CUSTOMER_LEG_PREFIX = "cb-"
CALL_BRIDGE_PREFIX = "call-"
RECORDING_PREFIX = "call-"
COMMENT_PREFIX = "comment-"
MONITOR_LEG_PREFIX = "mon-"
SNOOP_PREFIX = "snoop-"
MONITOR_BRIDGE_PREFIX = "monitor-"
OUTBOUND_LEG_PREFIX = "out-"
GENERATION_MARK = "~"  # in no channel id Asterisk makes


def agent_leg_id() -> str:
    return f"{AGENT_LEG_PREFIX}{uuid.uuid4().hex}"


def customer_leg_id() -> str:
    return f"{CUSTOMER_LEG_PREFIX}{uuid.uuid4().hex}"


def call_bridge_id(call_id: str, generation: int = 0) -> str:
    """The mixing bridge where the call's caller (or customer) and agent talk. Each bridge
    after the call's first (a transfer, a requeue) has the next `generation` in its id:
    Asterisk keeps a destroyed bridge's id taken until its last channel has left it."""
    suffix = f"{GENERATION_MARK}{generation}" if generation else ""
    return CALL_BRIDGE_PREFIX + call_id + suffix


def call_of_bridge(bridge_id: str) -> str | None:
    """The call a bridge of ours belongs to; None for any other bridge."""
    if bridge_id.startswith(CALL_BRIDGE_PREFIX):
        return bridge_id[len(CALL_BRIDGE_PREFIX) :].split(GENERATION_MARK, 1)[0]
    return None


def outbound_leg_id() -> str:
    return f"{OUTBOUND_LEG_PREFIX}{uuid.uuid4().hex}"


def is_our_leg(channel_id: str) -> bool:
    """A channel we originated (an agent's or a customer's leg, a supervisor's phone or
    its snoop on an agent, an outbound call), not a caller's."""
    return channel_id.startswith(
        (
            AGENT_LEG_PREFIX,
            CUSTOMER_LEG_PREFIX,
            MONITOR_LEG_PREFIX,
            SNOOP_PREFIX,
            OUTBOUND_LEG_PREFIX,
        )
    )


def monitor_ids() -> tuple[str, str, str]:
    """A new monitor session's id, its supervisor leg's channel id and its bridge's id."""
    session = uuid.uuid4().hex[:12]
    return session, MONITOR_LEG_PREFIX + session, MONITOR_BRIDGE_PREFIX + session


def snoop_id() -> str:
    return f"{SNOOP_PREFIX}{uuid.uuid4().hex}"


def is_monitor_bridge(bridge_id: str) -> bool:
    return bridge_id.startswith(MONITOR_BRIDGE_PREFIX)


def recording_name(call_id: str) -> str:
    """The call's talk, recorded from its bridge (`<name>.wav`)."""
    return RECORDING_PREFIX + call_id


def comment_name(call_id: str) -> str:
    """A caller's spoken comment (the survey), one file per recording."""
    return f"{COMMENT_PREFIX}{call_id}-{uuid.uuid4().hex[:6]}"


# --- causes ----------------------------------------------------------------------------------
HANGUP_CAUSES = {16: "normal", 17: "busy", 18: "no-response", 19: "no-answer", 21: "rejected"}
"""Q.850 causes of an originated leg that did not answer, as a RONA result."""
VANISHED_CAUSES = {44: "rtp-timeout"}
"""Causes of an agent leg lost in a talk without the agent hanging up: 44 is what Asterisk
sets when the phone sent no audio for the endpoint's `rtp_timeout` (res_pjsip_sdp_rtp;
seen in ChannelDestroyed by tests/integration/test_agent_drills.py)."""


def cause_result(cause: int) -> str:
    return HANGUP_CAUSES.get(cause, f"cause-{cause}")


@dataclass
class Call:
    """One call from Stasis entry to its end. `id` is the caller's channel id (kept for a
    callback, whose caller has hung up)."""

    id: str
    caller: str
    dnis: str
    arrived_at: float
    state: CallState = CallState.ARRIVING
    queue: str | None = None
    priority: int = 0
    queued_at: float | None = None
    ewt_quoted_s: float | None = None
    agent: str | None = None
    agent_channel: str | None = None
    connected_at: float | None = None
    ended_at: float | None = None
    outcome: Outcome | None = None
    hangup_by: str | None = None  # caller, agent, ivr, system
    decision: dict[str, Any] | None = None  # the router's reason for the connected agent
    attempts: list[dict[str, Any]] = field(default_factory=list)
    overflowed_from: list[str] = field(default_factory=list)
    announcements: int = 0
    recording: str | None = None
    callback: dict[str, Any] | None = None  # number, customer_channel, attempts
    flow: str | None = None  # the IVR flow that ran the call, if any
    ivr_route: dict[str, Any] | None = None  # what happened in it (FlowRecord)
    survey_score: int | None = None
    handled_by: str | None = None  # "ivr" once a self-service node served the caller
    consult: dict[str, Any] | None = None  # an attended transfer: agent, leg, from_queue
    held: bool = False  # the agent put the caller on hold (the caller hears music)
    disposition: str | None = None  # the agent's wrap-up code (the queue's `dispositions`)
    note: str | None = None  # the agent's wrap-up note
    bridge_generation: int = 0  # how many talk bridges the call has had destroyed

    @property
    def bridge(self) -> str:
        """The id of the call's talk bridge (made when an agent answers)."""
        return call_bridge_id(self.id, self.bridge_generation)

    @property
    def wait_s(self) -> float | None:
        if self.queued_at is None:
            return None
        end = self.connected_at or self.ended_at
        return None if end is None else round(end - self.queued_at, 3)

    def to_record(self) -> dict[str, Any]:
        data = asdict(self)
        data["wait_s"] = self.wait_s
        return data

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Call:
        """A call back from its record (unknown keys ignored, enums restored)."""
        fields = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        fields["state"] = CallState(fields.get("state", CallState.ARRIVING))
        outcome = fields.get("outcome")
        fields["outcome"] = None if outcome is None else Outcome(outcome)
        return cls(**fields)
