"""`make_app`: the REST API v1 as an aiohttp application, ready to mount or run, with the
event channel (`/api/v1/events`, a WebSocket), the desk page (`/desk/`) and the supervisors'
wallboard page (`/wallboard/`).

One middleware wraps every request, so that every answer, even aiohttp's own 404 and 405,
is the same JSON error shape (`{"error": slug, "message": ...}`), and every write request,
and every read of a caller's data (`Route.audit_read`: calls, work orders, campaign lists),
is audited with its final status, refusals included. A route's own wrapper checks the token
(rate-limited per remote address on failure), the role, the own-agent rule, and parses and
validates the body before the handler runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler as AiohttpHandler
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, ValidationError

from ccserver.api import openapi
from ccserver.api.auth import ApiError, Principal, RateLimiter, Role, TokenTable
from ccserver.api.backend import ApiBackend
from ccserver.api.routes import ROUTES
from ccserver.api.sessions import Sessions
from ccserver.api.table import PREFIX, Ctx, FileBody, Route, Services, TextBody
from ccserver.audit import AuditLog
from ccserver.errors import CCServerError
from ccserver.logs import log
from ccserver.records import Records

logger = logging.getLogger("ccserver.api")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_BODY_BYTES = 64 * 1024  # the largest body we take is a few hundred bytes
PRINCIPAL = web.RequestKey("principal", Principal)
AUDITED_READ = web.RequestKey("audited_read", bool)
_HTTP_SLUGS = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}
DESK_DIR = Path(__file__).with_name("static") / "desk"
BOARD_DIR = Path(__file__).with_name("static") / "wallboard"
HELLO_TIMEOUT_S = 10.0
WS_AUTH_FAILED = 4401  # WebSocket close codes 4000-4999 are the application's
WS_REFUSED = 4403
WS_SERVER_ERROR = 1011
DESK_CSP = (
    "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob:; "
    "img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
)


def make_app(
    backend: ApiBackend,
    tokens: Mapping[str, str],
    audit: AuditLog,
    *,
    sessions: Sessions | None = None,
    vendor_dir: Path | None = None,
    records: Records | None = None,
) -> web.Application:
    """The API under `/api/v1`. `tokens` is `Secrets.api_tokens` (name → token);
    `sessions`: the desk sessions (None: no desk logins); `vendor_dir`: the desk page's npm
    packages (`web/node_modules`), served under `/desk/vendor/`; `records`: the work orders
    and the knowledge base (None: their endpoints answer 503). Each app has its own rate
    limits: 5 failures a minute of tokens per remote address, and of PINs per token name
    (per address for desk logins)."""
    services = Services(backend, RateLimiter(), openapi.document(ROUTES), sessions, records)
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
    app.router.add_get(PREFIX + "/events", _events(services, table, auth), name="events")
    app.router.add_get("/desk", _redirect("/desk/"))
    app.router.add_get("/desk/", _page(DESK_DIR))
    if vendor_dir is not None and vendor_dir.is_dir():
        app.router.add_static("/desk/vendor/", vendor_dir)
    app.router.add_static("/desk/", DESK_DIR)
    app.router.add_get("/wallboard", _redirect("/wallboard/"))
    app.router.add_get("/wallboard/", _page(BOARD_DIR))
    app.router.add_static("/wallboard/", BOARD_DIR)
    return app


def _redirect(to: str) -> AiohttpHandler:
    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(to)

    return redirect


def _page(directory: Path) -> AiohttpHandler:
    """A page's `index.html` (the desk's, the wallboard's); its policy lets it load only
    this origin's scripts and styles."""

    async def page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(
            directory / "index.html",
            headers={"Content-Security-Policy": DESK_CSP, "X-Content-Type-Options": "nosniff"},
        )

    return page


def _events(services: Services, table: TokenTable, limiter: RateLimiter) -> AiohttpHandler:
    """The desk's event channel. The browser can't send headers on a WebSocket, so the
    token comes in the first message, `{"token": …, "after": <last seq seen> | null,
    "agent": <id, supervisors only>}`, never in the URL; a page of another origin is
    refused. Then the channel sends JSON events (`DeskFeed.stream`) until either side
    closes or the session expires. The wallboard's hello is `{"token": …, "board": true}`
    (supervisors only); it gets the whole board at every change."""

    async def events(request: web.Request) -> web.StreamResponse:
        _same_origin(request)
        ws = web.WebSocketResponse(heartbeat=20.0)
        await ws.prepare(request)
        try:
            hello = json.loads((await ws.receive(timeout=HELLO_TIMEOUT_S)).data)
            principal = await _principal(request, str(hello["token"]), table, limiter, services)
            if hello.get("board"):
                if principal.role < Role.SUPERVISOR:
                    raise ApiError("the wallboard is for supervisors", slug="forbidden", status=403)
                stream = services.backend.board_events()
            else:
                stream = _desk_stream(services, principal, hello)
        except CCServerError as exc:
            code = WS_AUTH_FAILED if exc.status == 401 else WS_REFUSED
            await ws.send_json({"type": "error", "error": exc.slug, "message": exc.message})
            await ws.close(code=code, message=exc.slug.encode())
            return ws
        except (TimeoutError, ValueError, TypeError, KeyError):
            await ws.send_json(
                {
                    "type": "error",
                    "error": "hello-invalid",
                    "message": 'send {"token": …, "after": null} first',
                }
            )
            await ws.close(code=WS_REFUSED, message=b"hello-invalid")
            return ws
        await _pump(ws, stream, principal.expires_at)
        return ws

    return events


def _desk_stream(services: Services, principal: Principal, hello: dict[str, Any]) -> Any:
    agent = principal.agent_id or str(hello.get("agent") or "")
    after = hello.get("after")
    if after is not None and (not isinstance(after, int) or after < 0):
        raise CCServerError("`after` is a sequence number (≥ 0) or null", slug="input-invalid")
    return services.backend.desk_events(agent, after)


async def _pump(ws: web.WebSocketResponse, stream: Any, expires_at: float | None) -> None:
    """Send the stream's events until the client goes, or its session ends."""

    async def send() -> None:
        async for event in stream:
            await ws.send_json(event)

    async def listen() -> None:
        async for _ in ws:  # nothing to read after the hello; this ends when it closes
            pass

    tasks = [asyncio.create_task(send()), asyncio.create_task(listen())]
    timeout = None if expires_at is None else max(0.0, expires_at - time.time())
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, ConnectionError):
                pass
            except Exception:  # the desk reconnects; the log says why it had to
                logger.exception("api.events_failed")
        with contextlib.suppress(ConnectionError):
            await stream.aclose()
        if not ws.closed:
            expired = expires_at is not None and time.time() >= expires_at
            if expired:  # the page logs in again
                await ws.close(code=WS_AUTH_FAILED, message=b"session-expired")
            else:  # the page reconnects
                await ws.close(code=WS_SERVER_ERROR, message=b"server-error")


def _same_origin(request: web.Request) -> None:
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise CCServerError(
            f"a page of {origin} may not open this channel", slug="origin-refused", status=403
        )


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
            if exc.status < 400:  # a redirection (`/desk` → `/desk/`) is no error
                raise
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
        if request.method in WRITE_METHODS or request.get(AUDITED_READ):
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
        request[AUDITED_READ] = route.audit_read  # before the checks: a refusal is audited too
        if route.role is not None:
            principal = await _authenticate(request, table, limiter, services)
            request[PRINCIPAL] = principal
            _authorize(route, principal, request.match_info)
        body = _parse_body(route.body, await request.read()) if route.body else None
        query = _validate(route.query, dict(request.query), "query") if route.query else None
        ctx = Ctx(services, principal, request.match_info, body, request.remote or "", query)
        result = await route.handler(ctx)
        if isinstance(result, FileBody):
            return web.FileResponse(result.path, headers={hdrs.CONTENT_TYPE: route.media})
        if isinstance(result, TextBody):
            return web.Response(text=result.text, content_type=route.media, charset="utf-8")
        return web.json_response(result, status=route.status)

    return endpoint


async def _authenticate(
    request: web.Request, table: TokenTable, limiter: RateLimiter, services: Services
) -> Principal:
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
    if scheme.lower() != "bearer":
        token = ""
    return await _principal(request, token.strip(), table, limiter, services)


async def _principal(
    request: web.Request, token: str, table: TokenTable, limiter: RateLimiter, services: Services
) -> Principal:
    """Whose token this is: a configured token, else a desk session; failures are
    rate-limited per remote address."""
    key = f"auth:{request.remote}"
    limiter.check(key, "authentication attempts")
    principal = table.find(token) if token else None
    if principal is None and token and services.sessions is not None:
        principal = await services.sessions.find(token)
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
    return _validate(model, data, "body")


def _validate(model: type[BaseModel], data: dict[str, Any], what: str) -> BaseModel:
    """`data` (a JSON body, or a query string's parameters) as `model`, or input-invalid
    naming every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or what}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise CCServerError(
            f"the {what} is not accepted: {problems}", slug="input-invalid"
        ) from None


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
