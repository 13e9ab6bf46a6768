"""The shapes the API takes and gives, as pydantic models.

Request bodies are validated with them; response models only describe what the backend's
dicts hold (for the OpenAPI document) and allow more fields, so the controller can add one
without breaking clients or this layer.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
    state: str | None = None
    agent: str | None = None
    arrived_at: float | None = None


class CallEvent(_Open):
    at: float
    kind: str


class CallDetail(Call):
    events: list[CallEvent]


class WhoAmI(BaseModel):
    name: str = Field(description="the token's name, e.g. `agent:1001`")
    role: Literal["admin", "supervisor", "agent"]
    agent: str | None = Field(default=None, description="the agent id of an agent token")


class OpenApiDocument(_Open):
    openapi: str
