"""`make_app`: the REST API v1 as an aiohttp application, ready to mount or run.

One middleware wraps every request, so that every answer, even aiohttp's own 404 and 405,
is the same JSON error shape (`{"error": slug, "message": ...}`), and every write request is
audited with its final status, refusals included. A route's own wrapper checks the token
(rate-limited per remote address on failure), the role, the own-agent rule, and parses and
validates the body before the handler runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler as AiohttpHandler
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, ValidationError

from ccserver.api import openapi
from ccserver.api.audit import AuditLog
from ccserver.api.auth import ApiError, Principal, RateLimiter, TokenTable
from ccserver.api.backend import ApiBackend
from ccserver.api.routes import ROUTES, Ctx, Route, Services
from ccserver.errors import CCServerError
from ccserver.logs import log

logger = logging.getLogger("ccserver.api")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_BODY_BYTES = 64 * 1024  # the largest body we take is a few hundred bytes
PRINCIPAL = web.RequestKey("principal", Principal)
_HTTP_SLUGS = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}


def make_app(backend: ApiBackend, tokens: Mapping[str, str], audit: AuditLog) -> web.Application:
    """The API under `/api/v1`. `tokens` is `Secrets.api_tokens` (name → token). Each app
    has its own rate limits: 5 failures a minute of tokens per remote address, and of PINs
    per token name."""
    services = Services(backend, RateLimiter(), openapi.document(ROUTES))
    table = TokenTable(tokens)
    auth = RateLimiter()
    app = web.Application(middlewares=[_errors_and_audit(audit)], client_max_size=MAX_BODY_BYTES)
    for route in ROUTES:
        app.router.add_route(
            route.method,
            route.full_path,
            _endpoint(route, services, table, auth),
            name=route.operation_id,
        )
    return app


def _errors_and_audit(audit: AuditLog) -> Middleware:
    @web.middleware
    async def errors_and_audit(request: web.Request, handler: AiohttpHandler) -> web.StreamResponse:
        slug: str | None = None
        raw = b""
        try:
            if request.method in WRITE_METHODS:
                raw = await request.read()  # kept by aiohttp for the handler
            response = await handler(request)
        except CCServerError as exc:
            slug = exc.slug
            if exc.status >= 500:  # the controller could not do it: worth a line in its log
                log(logger, "api.failed", logging.WARNING, path=request.path, error=exc.slug)
            headers = exc.headers if isinstance(exc, ApiError) else None
            response = _error(exc.status, exc.slug, exc.message, headers)
        except web.HTTPException as exc:
            slug = _HTTP_SLUGS.get(exc.status, f"http-{exc.status}")
            message = _http_message(request, exc)
            allowed = exc.headers.get(hdrs.ALLOW)
            response = _error(exc.status, slug, message, {"Allow": allowed} if allowed else None)
        except Exception as exc:
            slug = "internal-error"
            logger.exception(
                "api.internal_error",
                extra={"fields": {"method": request.method, "path": request.path, "error": exc}},
            )
            response = _error(
                500, slug, "the server failed on this request; the controller log has details"
            )
        if request.method in WRITE_METHODS:
            principal = request.get(PRINCIPAL)
            audit.write(
                token=principal.name if principal else None,
                role=principal.role.label if principal else None,
                method=request.method,
                path=request.path,
                remote=request.remote,
                body=_body_for_audit(raw),
                status=response.status,
                error=slug,
            )
        return response

    return errors_and_audit


def _endpoint(
    route: Route, services: Services, table: TokenTable, limiter: RateLimiter
) -> AiohttpHandler:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        principal = None
        if route.role is not None:
            principal = _authenticate(request, table, limiter)
            request[PRINCIPAL] = principal
            _authorize(route, principal, request.match_info)
        body = _parse_body(route.body, await request.read()) if route.body else None
        result = await route.handler(Ctx(services, principal, request.match_info, body))
        return web.json_response(result, status=route.status)

    return endpoint


def _authenticate(request: web.Request, table: TokenTable, limiter: RateLimiter) -> Principal:
    key = f"auth:{request.remote}"
    limiter.check(key, "authentication attempts")
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        raise ApiError(
            "this endpoint needs `Authorization: Bearer <token>`; tokens are in the run "
            "dir's secrets.json under api_tokens (see docs/api.md)",
            slug="auth-required",
            status=401,
            headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="ccserver"'},
        )
    scheme, _, token = header.strip().partition(" ")
    principal = table.find(token.strip()) if scheme.lower() == "bearer" and token else None
    if principal is None:
        limiter.fail(key)
        log(logger, "api.auth_failed", logging.WARNING, remote=request.remote, path=request.path)
        raise ApiError(
            "the bearer token is not valid; take the current one from the run dir's "
            "secrets.json (api_tokens)",
            slug="auth-invalid",
            status=401,
            headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="ccserver", error="invalid_token"'},
        )
    return principal


def _authorize(route: Route, principal: Principal, params: Mapping[str, str]) -> None:
    assert route.role is not None
    if principal.role < route.role:
        raise CCServerError(
            f"{route.method} {route.full_path} needs the {route.role.label} role; the token "
            f"{principal.name} has {principal.role.label}",
            slug="forbidden",
            status=403,
        )
    if route.own_agent and not principal.may_act_for(params["id"]):
        raise CCServerError(
            f"the token {principal.name} may read or change only agent {principal.agent_id}",
            slug="forbidden",
            status=403,
        )


def _parse_body(model: type[BaseModel], raw: bytes) -> BaseModel:
    try:
        data = json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise CCServerError(
            f"the body is not valid JSON ({exc}); send a JSON object",
            slug="body-invalid",
        ) from None
    if not isinstance(data, dict):
        raise CCServerError("the body must be a JSON object", slug="body-invalid")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise CCServerError(f"the body is not accepted: {problems}", slug="input-invalid") from None


def _body_for_audit(raw: bytes) -> Any:
    """The body as JSON when it is JSON; otherwise only its size, since text we can't parse
    we can't redact either."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"unparsed_bytes": len(raw)}


def _http_message(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"no endpoint {request.path}; the endpoints are listed in /api/v1/openapi.json"
    if exc.status == 405:
        allowed = exc.headers.get(hdrs.ALLOW, "")
        return f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
    if exc.status == 413:
        return f"the body is larger than {MAX_BODY_BYTES} bytes"
    return exc.reason


def _error(
    status: int, slug: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response({"error": slug, "message": message}, status=status, headers=headers)
