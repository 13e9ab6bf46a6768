"""The one route table of API v1: each entry is an endpoint's method, path, least role,
body model, handler and documentation. `app.py` mounts it and `openapi.py` documents it
from the same entries, so what runs and what is documented cannot drift.

Handlers get a `Ctx` (the caller, the path parameters, the validated body) and return the
JSON to send; refusals are raised as `CCServerError`s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ccserver.api import models
from ccserver.api.auth import ApiError, Principal, RateLimiter, Role
from ccserver.api.backend import ApiBackend
from ccserver.errors import CCServerError

PREFIX = "/api/v1"


@dataclass(frozen=True)
class Services:
    """What handlers share: the backend, the PIN rate limit, the OpenAPI document."""

    backend: ApiBackend
    pin_limiter: RateLimiter
    document: dict[str, Any]


@dataclass(frozen=True)
class Ctx:
    services: Services
    principal: Principal | None  # None on public routes only
    params: Mapping[str, str]
    body: BaseModel | None

    @property
    def who(self) -> Principal:
        if self.principal is None:  # a route table error, not a client's
            raise RuntimeError("handler of a public route asked for the caller")
        return self.principal


Handler = Callable[[Ctx], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # below PREFIX
    handler: Handler
    operation_id: str
    summary: str
    role: Role | None  # the least role; None: no token needed
    response: type[BaseModel]
    many: bool = False  # the response is a list of `response`
    own_agent: bool = False  # an agent token may use it only when {id} is its own agent
    body: type[BaseModel] | None = None
    params: tuple[tuple[str, str], ...] = ()  # path parameter name, description
    errors: tuple[tuple[int, str], ...] = ()  # status, slug: beyond the auth ones
    details: str = ""  # the description beyond the summary

    @property
    def full_path(self) -> str:
        return PREFIX + self.path


async def _whoami(ctx: Ctx) -> Any:
    who = ctx.who
    return {"name": who.name, "role": who.role.label, "agent": who.agent_id}


async def _openapi(ctx: Ctx) -> Any:
    return ctx.services.document


async def _agents(ctx: Ctx) -> Any:
    return ctx.services.backend.agents()


async def _agent(ctx: Ctx) -> Any:
    return ctx.services.backend.agent(ctx.params["id"])


async def _agent_state(ctx: Ctx) -> Any:
    """Agents log in with their PIN (the same one they type on a desk phone), so a leaked
    agent token alone can't staff a seat; supervisors may log an agent in without it.
    Wrong PINs count against the token's rate limit."""
    body, who = ctx.body, ctx.who
    assert isinstance(body, models.AgentStateRequest)
    if body.action == "login" and body.pin is None and who.role < Role.SUPERVISOR:
        raise ApiError(
            "an agent logging in through the API gives its PIN (`pin`), the same as on a phone",
            slug="pin-required",
            status=403,
        )
    limiter, key = ctx.services.pin_limiter, f"pin:{who.name}"
    if body.pin is not None:
        limiter.check(key, "PIN attempts")
    try:
        return await ctx.services.backend.agent_action(
            ctx.params["id"],
            body.action,
            reason=body.reason,
            phone=body.phone,
            pin=body.pin,
            seconds=body.seconds,
            by=who.name,
        )
    except CCServerError as exc:
        if exc.slug == "pin-invalid":
            limiter.fail(key)
        raise


async def _queues(ctx: Ctx) -> Any:
    return ctx.services.backend.queues()


async def _queue(ctx: Ctx) -> Any:
    return ctx.services.backend.queue(ctx.params["name"])


async def _calls(ctx: Ctx) -> Any:
    return ctx.services.backend.calls()


async def _call(ctx: Ctx) -> Any:
    return await ctx.services.backend.call(ctx.params["id"])


_AGENT_ID = (("id", "the agent's id, e.g. `1001`"),)

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/openapi.json",
        _openapi,
        "openapi",
        "This document (OpenAPI 3.1).",
        None,
        models.OpenApiDocument,
    ),
    Route(
        "GET",
        "/whoami",
        _whoami,
        "whoami",
        "The caller's token name and role.",
        Role.AGENT,
        models.WhoAmI,
    ),
    Route(
        "GET",
        "/agents",
        _agents,
        "listAgents",
        "Every agent with its state, phone, skills and current call.",
        Role.AGENT,
        models.Agent,
        many=True,
    ),
    Route(
        "GET",
        "/agents/{id}",
        _agent,
        "getAgent",
        "One agent.",
        Role.AGENT,
        models.Agent,
        own_agent=True,
        params=_AGENT_ID,
        errors=((404, "agent-unknown"),),
        details="An agent token may read only its own agent.",
    ),
    Route(
        "POST",
        "/agents/{id}/state",
        _agent_state,
        "changeAgentState",
        "Change an agent's state.",
        Role.AGENT,
        models.Agent,
        own_agent=True,
        body=models.AgentStateRequest,
        params=_AGENT_ID,
        errors=(
            (400, "body-invalid"),
            (400, "input-invalid"),
            (403, "pin-required"),
            (403, "pin-invalid"),
            (404, "agent-unknown"),
            (409, "invalid-state"),
            (409, "license-seats-exhausted"),
            (413, "body-too-large"),
        ),
        details="Log in (on `phone`) or out, go ready, go not ready (with a `reason`), or "
        "extend wrap-up by `seconds`. An agent token may change only its own agent and logs "
        "in with its PIN; supervisors need none. Wrong PINs are rate-limited per token.",
    ),
    Route(
        "GET",
        "/queues",
        _queues,
        "listQueues",
        "Live queue statistics: calls waiting, oldest wait, expected wait, agents by state.",
        Role.AGENT,
        models.Queue,
        many=True,
    ),
    Route(
        "GET",
        "/queues/{name}",
        _queue,
        "getQueue",
        "One queue's live statistics.",
        Role.AGENT,
        models.Queue,
        params=(("name", "the queue's name, e.g. `95598`"),),
        errors=((404, "queue-unknown"),),
    ),
    Route(
        "GET",
        "/calls",
        _calls,
        "listCalls",
        "The calls in progress.",
        Role.SUPERVISOR,
        models.Call,
        many=True,
    ),
    Route(
        "GET",
        "/calls/{id}",
        _call,
        "getCall",
        "One call, live or from history, with its events.",
        Role.SUPERVISOR,
        models.CallDetail,
        params=(("id", "the call's id"),),
        errors=((404, "call-unknown"),),
    ),
)
