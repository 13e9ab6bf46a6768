"""The route table's parts: an endpoint (`Route`), what its handler gets (`Ctx`, with the
`Services` handlers share) and what a handler may answer besides JSON (`FileBody`,
`TextBody`). `routes.py` and `order_routes.py` hold the entries; `app.py` mounts them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ccserver.api.auth import Principal, RateLimiter, Role
from ccserver.api.backend import ApiBackend
from ccserver.api.sessions import Sessions
from ccserver.errors import CCServerError
from ccserver.records import Records

PREFIX = "/api/v1"
BODY_ERRORS = ((400, "body-invalid"), (400, "input-invalid"), (413, "body-too-large"))
"""The refusals of a route's body, for its `errors`."""


@dataclass(frozen=True)
class Services:
    """What handlers share: the backend, the PIN rate limit, the OpenAPI document, the
    desk sessions (None without Redis), the service records (None without a history
    store)."""

    backend: ApiBackend
    pin_limiter: RateLimiter
    document: dict[str, Any]
    sessions: Sessions | None = None
    records: Records | None = None


@dataclass(frozen=True)
class Ctx:
    services: Services
    principal: Principal | None  # None on public routes only
    params: Mapping[str, str]
    body: BaseModel | None
    remote: str = ""  # the client's address, for rate limits of public routes
    query: BaseModel | None = None  # the validated query string, on routes that take one

    @property
    def who(self) -> Principal:
        if self.principal is None:  # a route table error, not a client's
            raise RuntimeError("handler of a public route asked for the caller")
        return self.principal


Handler = Callable[[Ctx], Awaitable[Any]]


@dataclass(frozen=True)
class FileBody:
    """What a route whose `media` is not JSON answers: a file, served with range
    requests."""

    path: Path


@dataclass(frozen=True)
class TextBody:
    """What a route whose `media` is a text type (CSV) answers."""

    text: str


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # below PREFIX
    handler: Handler
    operation_id: str
    summary: str
    role: Role | None  # the least role; None: no token needed
    response: type[BaseModel] | None  # None: the answer is a file of `media`
    many: bool = False  # the response is a list of `response`
    status: int = 200  # of a successful answer: 200, or 201 when it creates something
    own_agent: bool = False  # an agent token may use it only when {id} is its own agent
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None  # its fields are the query parameters
    params: tuple[tuple[str, str], ...] = ()  # path parameter name, description
    errors: tuple[tuple[int, str], ...] = ()  # status, slug: beyond the auth ones
    details: str = ""  # the description beyond the summary
    media: str = "application/json"  # of a successful answer
    audit_read: bool = False  # it reads a caller's data: audited as writes are (who, which)

    @property
    def full_path(self) -> str:
        return PREFIX + self.path


def records_of(ctx: Ctx, slug: str) -> Records:
    """The service records, or `slug` (503) on a server without a history store."""
    if ctx.services.records is None:
        raise CCServerError(
            "this lives in the history store, which this server has not opened",
            slug=slug,
            status=503,
        )
    return ctx.services.records


def number_param(ctx: Ctx, what: str, slug: str) -> int:
    """The path parameter `id` as the number of a `what`; `slug` (404) when it is not one."""
    raw = ctx.params["id"]
    if not raw.isdigit():
        raise CCServerError(f"no {what} {raw!r}: numbers only", slug=slug, status=404)
    return int(raw)
