"""The one route table of API v1 (`ROUTES`; the work orders' entries come from
`order_routes.py`, the knowledge base's from `knowledge_routes.py`, quality inspection's
from `qa_routes.py`, the survey campaigns' from `campaign_routes.py`): each entry is an
endpoint's method, path, least role, body model, handler and documentation. `app.py` mounts
it and `openapi.py` documents it from the same entries, so what runs and what is documented
cannot drift.

Handlers get a `Ctx` (the caller, the path parameters, the validated body) and return the
JSON to send; refusals are raised as `CCServerError`s.
"""

from __future__ import annotations

from typing import Any

from ccserver.api import models
from ccserver.api.auth import ApiError, Role
from ccserver.api.campaign_routes import CAMPAIGN_ROUTES
from ccserver.api.knowledge_routes import KNOWLEDGE_ROUTES
from ccserver.api.order_routes import ORDER_ROUTES
from ccserver.api.qa_routes import QA_ROUTES
from ccserver.api.sessions import Sessions
from ccserver.api.table import BODY_ERRORS, Ctx, FileBody, Route
from ccserver.errors import CCServerError


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
    proven = who.session is not None  # a desk session was opened with the PIN
    if body.action == "login" and body.pin is None and who.role < Role.SUPERVISOR and not proven:
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
    return await ctx.services.backend.call(ctx.params["id"], agent=ctx.who.reader)


async def _screen(ctx: Ctx) -> Any:
    return await ctx.services.backend.screen(ctx.params["id"], agent=ctx.who.reader)


async def _hold(ctx: Ctx) -> Any:
    return await ctx.services.backend.hold(ctx.params["id"], on=True, by=ctx.who.name)


async def _unhold(ctx: Ctx) -> Any:
    return await ctx.services.backend.hold(ctx.params["id"], on=False, by=ctx.who.name)


async def _disposition(ctx: Ctx) -> Any:
    body = ctx.body
    assert isinstance(body, models.Disposition)
    return await ctx.services.backend.dispose(
        ctx.params["id"], code=body.code, note=body.note, by=ctx.who.name
    )


async def _desk_login(ctx: Ctx) -> Any:
    """The PIN is checked by the backend; wrong ones and unknown agents count against the
    client's address (there is no token yet; guessing agent ids is as limited as guessing
    PINs), and the center's PIN guard counts wrong PINs per agent too."""
    body = ctx.body
    assert isinstance(body, models.DeskLogin)
    sessions = _sessions(ctx)
    limiter, key = ctx.services.pin_limiter, f"pin:{ctx.remote}"
    limiter.check(key, "PIN attempts")
    try:
        desk = await ctx.services.backend.desk_login(
            body.agent, pin=body.pin, device=body.device, phone=body.phone
        )
    except CCServerError as exc:
        if exc.slug in ("pin-invalid", "agent-unknown"):
            limiter.fail(key)
        raise
    token, expires_at = await sessions.open(body.agent)
    return {"token": token, "expires_at": expires_at, **desk}


async def _desk_logout(ctx: Ctx) -> Any:
    await _sessions(ctx).close(ctx.who)
    return {"deleted": ctx.who.session or ctx.who.name}


def _sessions(ctx: Ctx) -> Sessions:
    if ctx.services.sessions is None:
        raise ApiError("desk sessions need Redis", slug="sessions-unavailable", status=503)
    return ctx.services.sessions


async def _transfer(ctx: Ctx) -> Any:
    body = ctx.body
    assert isinstance(body, models.TransferRequest)
    return await ctx.services.backend.transfer(
        ctx.params["id"],
        queue=body.queue,
        agent=body.agent,
        by=ctx.who.name,
        attended=body.mode == "attended",
    )


async def _move(ctx: Ctx) -> Any:
    body = ctx.body
    assert isinstance(body, models.MoveRequest)
    return await ctx.services.backend.move(
        ctx.params["id"], queue=body.queue, head=body.head, by=ctx.who.name
    )


async def _recording(ctx: Ctx) -> Any:
    return FileBody(await ctx.services.backend.recording(ctx.params["id"], by=ctx.who.name))


async def _alerts(ctx: Ctx) -> Any:
    return ctx.services.backend.alerts()


async def _supervisor_phone(ctx: Ctx) -> Any:
    return ctx.services.backend.supervisor_sip(ctx.who.name)


async def _monitors(ctx: Ctx) -> Any:
    return ctx.services.backend.monitors()


async def _start_monitor(ctx: Ctx) -> Any:
    body = ctx.body
    assert isinstance(body, models.MonitorRequest)
    return await ctx.services.backend.start_monitor(
        call=body.call, agent=body.agent, phone=body.phone, mode=body.mode, by=ctx.who.name
    )


async def _switch_monitor(ctx: Ctx) -> Any:
    body = ctx.body
    assert isinstance(body, models.MonitorSwitch)
    return await ctx.services.backend.switch_monitor(
        ctx.params["id"], mode=body.mode, by=ctx.who.name
    )


async def _stop_monitor(ctx: Ctx) -> Any:
    session = ctx.params["id"]
    await ctx.services.backend.stop_monitor(session, by=ctx.who.name)
    return {"deleted": session}


async def _license(ctx: Ctx) -> Any:
    return ctx.services.backend.license()


async def _reload_license(ctx: Ctx) -> Any:
    return ctx.services.backend.reload_license(by=ctx.who.name)


async def _notices(ctx: Ctx) -> Any:
    return await ctx.services.backend.notices()


async def _add_notice(ctx: Ctx) -> Any:
    body = ctx.body
    assert isinstance(body, models.NoticeInput)
    # as JSON (times as ISO strings with their offset), and only the fields that were sent
    data = body.model_dump(mode="json", exclude_unset=True)
    return await ctx.services.backend.add_notice(data, by=ctx.who.name)


async def _delete_notice(ctx: Ctx) -> Any:
    notice_id = ctx.params["id"]
    await ctx.services.backend.delete_notice(notice_id, by=ctx.who.name)
    return {"deleted": notice_id}


_AGENT_ID = (("id", "the agent's id, e.g. `1001`"),)
_CALL_ID = (("id", "the call's id"),)
_HOLD_ERRORS = (
    (403, "forbidden"),
    (404, "call-unknown"),
    (409, "invalid-state"),
    (409, "call-gone"),
)

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
        audit_read=True,
    ),
    Route(
        "GET",
        "/calls/{id}",
        _call,
        "getCall",
        "One call, live or from history, with its events.",
        Role.AGENT,
        models.CallDetail,
        params=_CALL_ID,
        errors=((403, "forbidden"), (404, "call-unknown")),
        details="An agent token reads only the calls it was offered or talked on.",
        audit_read=True,
    ),
    Route(
        "GET",
        "/calls/{id}/screen",
        _screen,
        "getCallScreen",
        "The call's screen pop: caller, queue, wait, IVR path and inputs, why this agent, "
        "the caller's recent contacts and the notices that reach it.",
        Role.AGENT,
        models.Screen,
        params=_CALL_ID,
        errors=((403, "forbidden"), (404, "call-unknown"), (503, "desk-unavailable")),
        details="An agent token reads only the calls it was offered or talked on. "
        "`pop.contacts`: the caller's calls of the last `desk.history_days` days, newest "
        "first (date, queue, agent, outcome, disposition, survey score).",
        audit_read=True,
    ),
    Route(
        "POST",
        "/calls/{id}/hold",
        _hold,
        "holdCall",
        "Put the caller of a connected call on hold: the caller hears music.",
        Role.AGENT,
        models.Call,
        params=_CALL_ID,
        errors=_HOLD_ERRORS,
        details="An agent token may hold only its own call. Holding a held call changes "
        "nothing. Answers the call (`held`: true).",
    ),
    Route(
        "POST",
        "/calls/{id}/unhold",
        _unhold,
        "unholdCall",
        "Take a held caller off hold: caller and agent talk again.",
        Role.AGENT,
        models.Call,
        params=_CALL_ID,
        errors=_HOLD_ERRORS,
    ),
    Route(
        "POST",
        "/calls/{id}/disposition",
        _disposition,
        "disposeCall",
        "Close a call with a disposition code and an optional note (wrap-up).",
        Role.AGENT,
        models.Call,
        body=models.Disposition,
        params=_CALL_ID,
        errors=(*BODY_ERRORS, (403, "forbidden"), (404, "call-unknown")),
        details="`code` is one of the call's queue's `dispositions` (the screen pop lists "
        "them). Works on a live or an ended call; a later one replaces it. An agent token "
        "may close only a call it talked on. The code and note go to the call's record in "
        "the history, where `ccserver report` counts same-matter repeat calls.",
    ),
    Route(
        "POST",
        "/desk/session",
        _desk_login,
        "openDeskSession",
        "Log in at the desk: agent id and PIN give a session token (agent role).",
        None,
        models.DeskSession,
        status=201,
        body=models.DeskLogin,
        errors=(
            *BODY_ERRORS,
            (403, "pin-invalid"),
            (404, "agent-unknown"),
            (404, "phone-unknown"),
            (409, "agent-on-call"),
            (409, "license-seats-exhausted"),
            (429, "rate-limited"),
            (503, "sessions-unavailable"),
        ),
        details="The agent is logged in, not ready, where its calls will ring: `browser` "
        "(the page's WebRTC phone; `sip` is its account) or a desk `phone`; an agent "
        "logged in at another phone moves here (not in a call). The token "
        "lasts `desk.session_ttl_s`; send it as `Authorization: Bearer`, never in a cookie. "
        "Wrong PINs and unknown agents are rate-limited per client address, wrong PINs per "
        "agent too.",
    ),
    Route(
        "DELETE",
        "/desk/session",
        _desk_logout,
        "closeDeskSession",
        "End this desk session (its token stops working at once).",
        Role.AGENT,
        models.Deleted,
        errors=((503, "sessions-unavailable"),),
        details="Log the agent out first (`POST /agents/{id}/state`) if it is leaving.",
    ),
    Route(
        "POST",
        "/calls/{id}/transfer",
        _transfer,
        "transferCall",
        "Transfer a connected call to a queue or to one agent.",
        Role.AGENT,
        models.Call,
        body=models.TransferRequest,
        params=_CALL_ID,
        errors=(
            *BODY_ERRORS,
            (403, "forbidden"),
            (404, "call-unknown"),
            (404, "queue-unknown"),
            (404, "agent-unknown"),
            (409, "invalid-state"),
            (409, "agent-logged-out"),
        ),
        details="Give exactly one of `queue` and `agent`. The caller waits in the target "
        "queue (an agent's own queue for `agent`) with its original arrival time, so it is "
        "not sent to the back. `blind` (default): the agent on the call is done with it "
        "(wrap-up as usual). `attended`: the caller is held and the agent stays on the line; "
        "when the target answers the two agents talk, and the agent hanging up completes "
        "the transfer; the target hanging up or not answering sends the caller back to its "
        "former queue. An agent token may transfer only a call it is on. Answers the call "
        "as it is now.",
    ),
    Route(
        "POST",
        "/calls/{id}/move",
        _move,
        "moveCall",
        "Move a waiting caller to another queue, or to the head of its queue.",
        Role.SUPERVISOR,
        models.Call,
        body=models.MoveRequest,
        params=_CALL_ID,
        errors=(
            *BODY_ERRORS,
            (404, "call-unknown"),
            (404, "queue-unknown"),
            (409, "invalid-state"),
        ),
        details="The caller keeps its original arrival time. `head`: a priority above every "
        "caller waiting in the target queue, so it is offered next. Only a caller waiting "
        "(not one an agent's phone rings for) can be moved.",
    ),
    Route(
        "GET",
        "/calls/{id}/recording",
        _recording,
        "getRecording",
        "The call's recording (WAV), with range requests; each read is audited.",
        Role.SUPERVISOR,
        None,
        params=_CALL_ID,
        errors=((404, "call-unknown"), (404, "recording-none")),
        media="audio/wav",
        details="The call's `recording` field says whether there is one (its queue records: "
        "`record` in `[acd.queues]`). Every read is an audit line (`recording.play`, who, "
        "which call).",
    ),
    Route(
        "GET",
        "/alerts",
        _alerts,
        "listAlerts",
        "The alerts firing now, as the stack's Alertmanager delivered them.",
        Role.SUPERVISOR,
        models.Alert,
        many=True,
        details="Prometheus evaluates deploy/prometheus/rules/alerts.yml, Alertmanager groups "
        "and routes them (deploy/alertmanager/) to the controller; a resolved alert leaves "
        "the list. Kept in memory: after a restart the list fills again within Alertmanager's "
        "group interval.",
    ),
    Route(
        "GET",
        "/supervision/phone",
        _supervisor_phone,
        "getSupervisorPhone",
        "The SIP account of this token's browser phone, to listen in from the wallboard.",
        Role.SUPERVISOR,
        models.SipAccount,
        errors=((404, "phone-unknown"),),
        details="Each supervisor-level token (`supervisor`, `admin`) has a WebRTC endpoint "
        "`web-<token name>`; the wallboard registers it and answers the sessions that "
        '`POST /monitors` with `"phone": "browser"` rings there.',
    ),
    Route(
        "GET",
        "/monitors",
        _monitors,
        "listMonitors",
        "The supervisors' monitor sessions (listen, whisper, barge) now.",
        Role.SUPERVISOR,
        models.MonitorSession,
        many=True,
    ),
    Route(
        "POST",
        "/monitors",
        _start_monitor,
        "startMonitor",
        "Listen to, whisper to or barge into a talking agent's call from a phone.",
        Role.SUPERVISOR,
        models.MonitorSession,
        status=201,
        body=models.MonitorRequest,
        errors=(
            *BODY_ERRORS,
            (404, "call-unknown"),
            (404, "agent-unknown"),
            (404, "phone-unknown"),
            (409, "not-talking"),
            (502, "phone-failed"),
        ),
        details="The `phone` rings (caller id: the mode and the agent); when it answers "
        "the supervisor hears the caller and the agent. `whisper`: the agent hears the "
        "supervisor, the caller does not; `barge`: both do. The session ends when the "
        "supervisor hangs up, when it is deleted, or when the agent's part of the call ends; "
        "the call itself is never touched. Every start, switch and end is in the audit log.",
    ),
    Route(
        "POST",
        "/monitors/{id}/mode",
        _switch_monitor,
        "switchMonitor",
        "Switch a monitor session between listen, whisper and barge.",
        Role.SUPERVISOR,
        models.MonitorSession,
        body=models.MonitorSwitch,
        params=(("id", "the session's id"),),
        errors=(*BODY_ERRORS, (404, "monitor-unknown")),
    ),
    Route(
        "DELETE",
        "/monitors/{id}",
        _stop_monitor,
        "stopMonitor",
        "End a monitor session; the call goes on.",
        Role.SUPERVISOR,
        models.Deleted,
        params=(("id", "the session's id"),),
        errors=((404, "monitor-unknown"),),
    ),
    Route(
        "GET",
        "/license",
        _license,
        "getLicense",
        "The license in force: seats and IVR channels, what is in use, grace and expiry.",
        Role.SUPERVISOR,
        models.LicenseUsage,
    ),
    Route(
        "POST",
        "/license/reload",
        _reload_license,
        "reloadLicense",
        "Put the installed license file in force now, without a restart.",
        Role.ADMIN,
        models.LicenseUsage,
        errors=(
            (400, "license-malformed"),
            (400, "license-truncated"),
            (400, "license-unknown-key"),
            (400, "license-signature-invalid"),
            (400, "license-wrong-customer"),
            (400, "license-not-yet-valid"),
            (400, "license-unreadable"),
            (400, "license-key-invalid"),
        ),
        details="`ccserver license install FILE` checks the file, puts it in place and calls "
        "this. A file that does not pass leaves the license in force as it was. Agents "
        "logged in keep their seats even when the new license has fewer; calls are never "
        "cut. Answers as `GET /api/v1/license`.",
    ),
    Route(
        "GET",
        "/notices",
        _notices,
        "listNotices",
        "The outage notices that have not ended yet (active or scheduled), by start time.",
        Role.SUPERVISOR,
        models.Notice,
        many=True,
        errors=((503, "notices-unavailable"),),
    ),
    Route(
        "POST",
        "/notices",
        _add_notice,
        "addNotice",
        "Post an outage notice: callers in its scope hear it before the menu.",
        Role.SUPERVISOR,
        models.Notice,
        status=201,
        body=models.NoticeInput,
        errors=(
            *BODY_ERRORS,
            (500, "prompt-failed"),
            (503, "notices-unavailable"),
        ),
        details="`scope` is `all` or a non-empty list of caller-number prefixes; times carry "
        "their offset; `starts_at` defaults to now and `ends_at` must be after it and in the "
        "future. The audio is made before the notice is stored, so callers arriving "
        "afterwards hear it at once; a notice that cannot be spoken is refused.",
    ),
    Route(
        "DELETE",
        "/notices/{id}",
        _delete_notice,
        "deleteNotice",
        "Withdraw an outage notice at once.",
        Role.SUPERVISOR,
        models.Deleted,
        params=(("id", "the notice's id, from `GET /api/v1/notices`"),),
        errors=((404, "notice-unknown"), (503, "notices-unavailable")),
        details='Answers `{"deleted": id}`.',
    ),
    *ORDER_ROUTES,
    *KNOWLEDGE_ROUTES,
    *QA_ROUTES,
    *CAMPAIGN_ROUTES,
)
