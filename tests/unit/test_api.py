"""REST API v1 over real HTTP on 127.0.0.1 against an in-memory backend that keeps agents,
queues and calls in dicts and refuses with the same slugs as the controller's; its outage
notices are a real `NoticeBoard` on a throwaway Redis, with real audio.

Proves: every endpoint answers; every role is refused where it must be (and each refusal is
one the OpenAPI document lists for that operation); errors are always `{error, message}`;
the document is valid OpenAPI 3.1 and lists exactly the mounted routes; every write is
audited, refusals included, with secrets redacted; failed tokens and PINs are rate-limited.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate
from redis.asyncio import Redis

from ccserver.api import openapi
from ccserver.api.app import MAX_BODY_BYTES, make_app
from ccserver.api.auth import RateLimiter, TokenTable
from ccserver.api.routes import ROUTES
from ccserver.api.sessions import Sessions
from ccserver.api.table import PREFIX
from ccserver.audit import AuditLog
from ccserver.errors import CCServerError
from ccserver.history import History
from ccserver.ivr.notices import KEY, Notice, NoticeBoard
from ccserver.licensing import EVALUATION
from ccserver.prompts import Prompts
from ccserver.records.knowledge import ArticleText
from ccserver.records.orders import Sla, SlaRule
from ccserver.records.outbound import Policy
from ccserver.seats import SeatLedger
from tests.records import records_of

TOKENS = {
    "admin": "admin-token-aaaaaaaaaaaaaaaaaaaaaaaa",
    "supervisor": "supervisor-token-bbbbbbbbbbbbbbbbbbb",
    "agent:1001": "agent-1001-token-ccccccccccccccccccc",
    "agent:1002": "agent-1002-token-ddddddddddddddddddd",
}
PINS = {"1001": "482913", "1002": "105577"}
DOC = openapi.document(ROUTES)
TOMORROW = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
OUTAGE = {"text": "城南片区线路故障，正在抢修。", "ends_at": TOMORROW}  # a valid notice body
ARTICLE = {"title": "停电报修流程", "body": "先查询停电公告，再受理报修。", "tags": ["repair"]}


SURVEY = Policy("survey", max_concurrent=5, cps=1.0, attempts=2, retry_s=600.0)


class MemoryBackend:
    """A small contact center in dicts, with the controller's refusals and slugs."""

    def __init__(self, board: NoticeBoard | None, seats: int = 1) -> None:
        self.board, self.seats = board, seats
        self.sessions: dict[str, dict[str, Any]] = {"m0": {"id": "m0", "mode": "listen"}}
        self.recorded: Path | None = None  # the file of call c2's recording
        self.agent_table: dict[str, dict[str, Any]] = {
            agent_id: {
                "id": agent_id,
                "name": f"Agent {agent_id}",
                "state": "logged-out",
                "reason": None,
                "phone": None,
                "skills": {"billing": 5},
                "call": None,
                "calls_taken": 0,
            }
            for agent_id in PINS
        }
        self.queue_table = {
            "95598": {"name": "95598", "waiting": 2, "oldest_wait_s": 31.5, "ewt_s": 40.0}
        }
        self.live: dict[str, dict[str, Any]] = {
            "c1": {"id": "c1", "caller": "13800000001", "state": "waiting", "agent": None},
            "c2": {"id": "c2", "caller": "13800000002", "state": "connected", "agent": "1002"},
        }
        self.past = {"c0": {"id": "c0", "caller": "13800000000", "state": "ended"}}
        self.actions: list[tuple[str, str, str]] = []
        self.explode = False
        self.ledger = SeatLedger(EVALUATION)

    def agents(self) -> list[dict[str, Any]]:
        return list(self.agent_table.values())

    def agent(self, agent_id: str) -> dict[str, Any]:
        if agent_id not in self.agent_table:
            raise CCServerError(f"no agent {agent_id}", slug="agent-unknown", status=404)
        return self.agent_table[agent_id]

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
        if self.explode:
            raise RuntimeError("database password is hunter2")
        agent = self.agent(agent_id)
        if pin is not None and pin != PINS[agent_id]:
            raise CCServerError("wrong PIN", slug="pin-invalid", status=403)
        logged_in = agent["state"] != "logged-out"
        if action == "login":
            if logged_in:
                raise _invalid(agent, action)
            if sum(a["state"] != "logged-out" for a in self.agent_table.values()) >= self.seats:
                raise CCServerError("no seat", slug="license-seats-exhausted", status=409)
            agent.update(state="not-ready", phone=phone or agent_id)
        elif not logged_in:
            raise _invalid(agent, action)
        elif action == "logout":
            agent.update(state="logged-out", reason=None, phone=None)
        elif action == "ready":
            agent.update(state="ready", reason=None)
        elif action == "not-ready":
            agent.update(state="not-ready", reason=reason)
        elif agent["state"] != "wrap-up":  # extend-wrap-up
            raise _invalid(agent, action)
        else:
            agent["wrap_up_s"] = agent.get("wrap_up_s", 0) + (seconds or 30)
        self.actions.append((agent_id, action, by))
        return agent

    def queues(self) -> list[dict[str, Any]]:
        return [{**q, "agents": self._by_state()} for q in self.queue_table.values()]

    def queue(self, name: str) -> dict[str, Any]:
        if name not in self.queue_table:
            raise CCServerError(f"no queue {name}", slug="queue-unknown", status=404)
        return {**self.queue_table[name], "agents": self._by_state()}

    def calls(self) -> list[dict[str, Any]]:
        return list(self.live.values())

    async def call(self, call_id: str, *, agent: str | None = None) -> dict[str, Any]:
        found = self._readable(call_id, agent)
        return {**found, "events": [{"at": 1.0, "kind": "enter", "queue": "95598"}]}

    async def screen(self, call_id: str, *, agent: str | None = None) -> dict[str, Any]:
        found = self._readable(call_id, agent)
        return {
            **found,
            "dispositions": ["other"],
            "pop": {"contacts": [], "notices": [], "orders": [], "articles": []},
        }

    def _readable(self, call_id: str, agent: str | None) -> dict[str, Any]:
        found = self.live.get(call_id) or self.past.get(call_id)
        if found is None:
            raise CCServerError(f"no call {call_id}", slug="call-unknown", status=404)
        if agent is not None and agent != found.get("agent"):
            raise CCServerError("not your call", slug="forbidden", status=403)
        return found

    async def hold(self, call_id: str, *, on: bool, by: str) -> dict[str, Any]:
        call = self._own(call_id, by)
        call["held"] = on
        self.actions.append((call_id, "hold" if on else "unhold", by))
        return call

    async def dispose(
        self, call_id: str, *, code: str, note: str | None, by: str
    ) -> dict[str, Any]:
        call = self._own(call_id, by)
        if code != "other":
            raise CCServerError("no such code", slug="input-invalid", status=400)
        call.update(disposition=code, note=note)
        self.actions.append((call_id, f"disposition:{code}", by))
        return call

    def _own(self, call_id: str, by: str) -> dict[str, Any]:
        call = self.live.get(call_id)
        if call is None:
            raise CCServerError(f"no live call {call_id}", slug="call-unknown", status=404)
        if by.startswith("agent:") and by.removeprefix("agent:") != call["agent"]:
            raise CCServerError("not your call", slug="forbidden", status=403)
        return call

    async def desk_login(
        self, agent_id: str, *, pin: str, device: str, phone: str | None
    ) -> dict[str, Any]:
        agent = self.agent(agent_id)
        if pin != PINS[agent_id]:
            raise CCServerError("wrong PIN", slug="pin-invalid", status=403)
        target = f"web{agent_id}" if device == "browser" else phone or agent_id
        if agent["state"] == "logged-out":
            agent.update(state="not-ready", phone=target)
        sip = (
            {
                "uri": f"sip:{target}@127.0.0.1",
                "ws": "ws://127.0.0.1:1/ws",
                "user": target,
                "password": "sip-secret",
            }
            if device == "browser"
            else None
        )
        return {"agent": agent, "sip": sip, "language": "zh"}

    async def desk_events(self, agent_id: str, after: int | None) -> AsyncIterator[dict[str, Any]]:
        self.agent(agent_id)
        yield {"type": "snapshot", "seq": 2, "agent": agent_id, "view": {}, "call": None}
        for seq in range(1 if after is None else after + 1, 3):
            yield {"type": "agent.state", "seq": seq, "agent": agent_id}
        await asyncio.Event().wait()  # live events: none come

    async def transfer(
        self, call_id: str, *, queue: str | None, agent: str | None, by: str, attended: bool
    ) -> dict[str, Any]:
        assert (queue is None) != (agent is None), "the API lets only one target through"
        call = self.live.get(call_id)
        if call is None:
            raise CCServerError(f"no live call {call_id}", slug="call-unknown", status=404)
        if by.startswith("agent:") and by.removeprefix("agent:") != call["agent"]:
            raise CCServerError("not your call", slug="forbidden", status=403)
        if call["state"] != "connected":
            raise CCServerError(f"call is {call['state']}", slug="invalid-state", status=409)
        if queue is not None:
            target = self.queue(queue)["name"]
        else:
            assert agent is not None
            if self.agent(agent)["state"] == "logged-out":
                raise CCServerError("not logged in", slug="agent-logged-out", status=409)
            target = f"direct-{agent}"
        call.update(state="waiting", agent=None, queue=target)
        mode = ":attended" if attended else ""
        self.actions.append((call_id, f"transfer:{target}{mode}", by))
        return call

    def alerts(self) -> list[dict[str, Any]]:
        return []

    async def recording(self, call_id: str, *, by: str) -> Path:
        if self.recorded is None or call_id != "c2":
            raise CCServerError("no recording", slug="recording-none", status=404)
        self.actions.append((call_id, "recording", by))
        return self.recorded

    async def move(self, call_id: str, *, queue: str | None, head: bool, by: str) -> dict[str, Any]:
        call = self.live.get(call_id)
        if call is None:
            raise CCServerError(f"no live call {call_id}", slug="call-unknown", status=404)
        if call["state"] != "waiting":
            raise CCServerError(f"call is {call['state']}", slug="invalid-state", status=409)
        call.update(queue=self.queue(queue)["name"] if queue else call.get("queue"))
        self.actions.append((call_id, f"move:{queue}:{head}", by))
        return call

    def board_events(self) -> AsyncIterator[dict[str, Any]]:
        return self._board()

    async def _board(self) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "board", "queues": [], "agents": []}
        await asyncio.Event().wait()

    def supervisor_sip(self, by: str) -> dict[str, Any]:
        endpoint = f"web-{by}"
        return {
            "uri": f"sip:{endpoint}@127.0.0.1",
            "ws": "ws://x/ws",
            "user": endpoint,
            "password": "p",
        }

    def monitors(self) -> list[dict[str, Any]]:
        return list(self.sessions.values())

    async def start_monitor(
        self, *, call: str | None, agent: str | None, phone: str, mode: str, by: str
    ) -> dict[str, Any]:
        talking = [c for c in self.live.values() if c["id"] == call or c["agent"] == agent]
        if not talking or talking[0]["state"] != "connected":
            raise CCServerError("on no call", slug="not-talking", status=409)
        session = {
            "id": f"m{len(self.sessions) + 1}",
            "supervisor": by,
            "phone": phone,
            "agent": talking[0]["agent"],
            "call": talking[0]["id"],
            "mode": mode,
            "started_at": 1.0,
            "answered_at": None,
        }
        self.sessions[session["id"]] = session
        return session

    async def switch_monitor(self, session: str, *, mode: str, by: str) -> dict[str, Any]:
        if session not in self.sessions:
            raise CCServerError("no session", slug="monitor-unknown", status=404)
        self.sessions[session]["mode"] = mode
        return self.sessions[session]

    async def stop_monitor(self, session: str, *, by: str) -> None:
        if self.sessions.pop(session, None) is None:
            raise CCServerError("no session", slug="monitor-unknown", status=404)

    def license(self) -> dict[str, Any]:
        return self.ledger.usage()

    def outbound_flows(self) -> list[str]:
        return ["followup", "survey"]

    def reload_license(self, *, by: str) -> dict[str, Any]:
        self.actions.append(("license", "reload", by))
        return self.ledger.usage()

    async def notices(self) -> list[dict[str, Any]]:
        return [n.to_dict() for n in await self._board().list()]

    async def add_notice(self, data: dict[str, Any], *, by: str) -> dict[str, Any]:
        notice = await self._board().add(data)
        self.actions.append((notice.id, "add-notice", by))
        return notice.to_dict()

    async def delete_notice(self, notice_id: str, *, by: str) -> None:
        await self._board().delete(notice_id)
        self.actions.append((notice_id, "delete-notice", by))

    def _board(self) -> NoticeBoard:
        if self.board is None:
            raise CCServerError("no Redis", slug="notices-unavailable", status=503)
        return self.board

    def _by_state(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for agent in self.agent_table.values():
            counts[agent["state"]] = counts.get(agent["state"], 0) + 1
        return counts


def _invalid(agent: dict[str, Any], action: str) -> CCServerError:
    return CCServerError(f"{action} from {agent['state']}", slug="invalid-state", status=409)


@dataclass
class Api:
    client: TestClient[Any, Any]
    backend: MemoryBackend
    audit: AuditLog

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any, Any]:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        async with self.client.request(method, path, headers=headers, data=data) as resp:
            if resp.status < 300 and resp.content_type != "application/json":  # a file
                return resp.status, await resp.read(), resp.headers
            assert resp.content_type == "application/json"
            return resp.status, await resp.json(), resp.headers


@pytest.fixture
async def api(tmp_path: Path, redis: Redis, prompts: Prompts) -> AsyncIterator[Api]:
    now = dt.datetime.now(dt.UTC)
    seeded = Notice(  # as the board stores it: no audio needed to list or delete it
        id="n0",
        text="全市计划检修。",
        scope="all",
        starts_at=now,
        ends_at=now + dt.timedelta(days=1),
        created_at=now,
    )
    await redis.hset(KEY, seeded.id, seeded.model_dump_json())
    backend, audit = MemoryBackend(NoticeBoard(redis, prompts)), AuditLog(tmp_path / "audit.jsonl")
    backend.recorded = tmp_path / "call-c2.wav"
    backend.recorded.write_bytes(b"RIFF" + bytes(range(256)) * 8)
    history = History(tmp_path / "history.sqlite")
    records = records_of(history, Sla([SlaRule("fault", "on-site", 2700)]))
    records.orders.open("fault", who="agent:1002", caller="13800000002", call_id="c2", agent="1002")
    history.save_call({"id": "c9", "caller": "138", "agent": "1002", "recording": "/r/c9.wav"})
    await history.flush()
    records.qa.score("c9", inspector="supervisor", ticked=["voice.clear"], deducted=[])
    records.knowledge.add(
        ArticleText("电费缴纳方式", "网上国网App缴纳电费。", ("billing",)), who="sup"
    )
    records.outbound.create_campaign("spring", ["13800000007"], SURVEY, who="supervisor")
    app = make_app(backend, TOKENS, audit, sessions=Sessions(redis, ttl_s=600), records=records)
    server = TestServer(app, host="127.0.0.1")
    try:
        async with TestClient(server) as client:
            yield Api(client, backend, audit)
    finally:
        history.close()


def _documented(method: str, template: str, status: int, slug: str) -> None:
    """The OpenAPI document lists this refusal for this operation."""
    responses = DOC["paths"][PREFIX + template][method.lower()]["responses"]
    assert f"`{slug}`" in responses[str(status)]["description"], (method, template, slug)


# --- who may do what --------------------------------------------------------------------
CASES = [  # method, template, path, body, least role, owning agent
    ("GET", "/whoami", "/whoami", None, "agent", None),
    ("GET", "/agents", "/agents", None, "agent", None),
    ("GET", "/agents/{id}", "/agents/1002", None, "agent", "1002"),
    (
        "POST",
        "/agents/{id}/state",
        "/agents/1002/state",
        {"action": "login", "pin": PINS["1002"]},
        "agent",
        "1002",
    ),
    ("GET", "/queues", "/queues", None, "agent", None),
    ("GET", "/queues/{name}", "/queues/95598", None, "agent", None),
    ("GET", "/calls", "/calls", None, "supervisor", None),
    ("GET", "/calls/{id}", "/calls/c2", None, "agent", "1002"),
    ("GET", "/calls/{id}/screen", "/calls/c2/screen", None, "agent", "1002"),
    ("POST", "/calls/{id}/hold", "/calls/c2/hold", None, "agent", "1002"),
    ("POST", "/calls/{id}/unhold", "/calls/c2/unhold", None, "agent", "1002"),
    (
        "POST",
        "/calls/{id}/disposition",
        "/calls/c2/disposition",
        {"code": "other"},
        "agent",
        "1002",
    ),
    ("DELETE", "/desk/session", "/desk/session", None, "agent", None),
    ("POST", "/calls/{id}/transfer", "/calls/c2/transfer", {"queue": "95598"}, "agent", "1002"),
    ("GET", "/notices", "/notices", None, "supervisor", None),
    ("POST", "/notices", "/notices", OUTAGE, "supervisor", None),
    ("DELETE", "/notices/{id}", "/notices/n0", None, "supervisor", None),
    ("GET", "/alerts", "/alerts", None, "supervisor", None),
    ("GET", "/calls/{id}/recording", "/calls/c2/recording", None, "supervisor", None),
    ("POST", "/calls/{id}/move", "/calls/c1/move", {"head": True}, "supervisor", None),
    ("GET", "/monitors", "/monitors", None, "supervisor", None),
    ("GET", "/supervision/phone", "/supervision/phone", None, "supervisor", None),
    ("POST", "/monitors", "/monitors", {"agent": "1002", "phone": "1009"}, "supervisor", None),
    ("POST", "/monitors/{id}/mode", "/monitors/m0/mode", {"mode": "barge"}, "supervisor", None),
    ("DELETE", "/monitors/{id}", "/monitors/m0", None, "supervisor", None),
    ("GET", "/license", "/license", None, "supervisor", None),
    ("POST", "/license/reload", "/license/reload", None, "admin", None),
    ("GET", "/orders", "/orders?open=true&kind=fault", None, "agent", None),
    ("GET", "/orders.csv", "/orders.csv", None, "supervisor", None),
    ("POST", "/orders", "/orders", {"kind": "enquiry", "account": "001"}, "agent", None),
    ("GET", "/orders/{id}", "/orders/1", None, "agent", None),
    ("POST", "/orders/{id}/state", "/orders/1/state", {"state": "cancelled"}, "supervisor", None),
    ("POST", "/orders/{id}/assign", "/orders/1/assign", {"team": "crew-2"}, "supervisor", None),
    ("POST", "/orders/{id}/calls", "/orders/1/calls", {"call": "c2"}, "agent", "1002"),
    ("GET", "/knowledge/search", "/knowledge/search?q=%E7%BC%B4%E7%BA%B3", None, "agent", None),
    ("GET", "/knowledge/articles", "/knowledge/articles", None, "supervisor", None),
    ("POST", "/knowledge/articles", "/knowledge/articles", ARTICLE, "supervisor", None),
    ("GET", "/knowledge/articles/{id}", "/knowledge/articles/1", None, "agent", None),
    ("PUT", "/knowledge/articles/{id}", "/knowledge/articles/1", ARTICLE, "supervisor", None),
    ("DELETE", "/knowledge/articles/{id}", "/knowledge/articles/1", None, "supervisor", None),
    ("GET", "/knowledge/lookups", "/knowledge/lookups", None, "supervisor", None),
    ("GET", "/qa/form", "/qa/form", None, "agent", None),
    ("GET", "/qa/queue", "/qa/queue?scored=true", None, "supervisor", None),
    (
        "POST",
        "/qa/scores",
        "/qa/scores",
        {"call": "c9", "ticked": ["voice.pace"]},
        "supervisor",
        None,
    ),
    ("GET", "/qa/scores", "/qa/scores", None, "agent", None),
    ("GET", "/qa/scores/{id}", "/qa/scores/1", None, "agent", "1002"),
    ("POST", "/qa/scores/{id}/dispute", "/qa/scores/1/dispute", {"reason": "x"}, "agent", "1002"),
    ("GET", "/campaigns", "/campaigns", None, "supervisor", None),
    ("POST", "/campaigns", "/campaigns", {"name": "s", "csv": "13800000009"}, "supervisor", None),
    ("GET", "/campaigns/{id}", "/campaigns/1", None, "supervisor", None),
    ("POST", "/campaigns/{id}/stop", "/campaigns/1/stop", None, "supervisor", None),
]
CALLERS = ["none", "bad", "agent:1001", "agent:1002", "supervisor", "admin"]
RANK = {"agent": 1, "supervisor": 2, "admin": 3}


def _expected(least: str, owner: str | None, caller: str, ok: int) -> tuple[int, str | None]:
    if caller == "none":
        return 401, "auth-required"
    if caller == "bad":
        return 401, "auth-invalid"
    role = caller.split(":")[0]
    if RANK[role] < RANK[least] or (owner and role == "agent" and caller != f"agent:{owner}"):
        return 403, "forbidden"
    return ok, None


def test_the_access_cases_cover_every_route_but_the_public_document() -> None:
    covered = {(method, template) for method, template, *_ in CASES}
    assert covered == {(r.method, r.path) for r in ROUTES if r.role is not None}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    ("method", "template", "path", "body", "least", "owner"), CASES, ids=[c[2] for c in CASES]
)
async def test_each_role_is_let_in_or_refused_as_documented(
    api: Api,
    caller: str,
    method: str,
    template: str,
    path: str,
    body: Any,
    least: str,
    owner: str | None,
) -> None:
    token = {"none": None, "bad": "not-a-token"}.get(caller, TOKENS.get(caller))
    status, answer, headers = await api.call(method, PREFIX + path, token=token, body=body)
    [route] = [r for r in ROUTES if (r.method, r.path) == (method, template)]
    want_status, want_slug = _expected(least, owner, caller, route.status)
    assert status == want_status, answer
    if want_slug is not None:
        assert answer["error"] == want_slug and answer["message"]
        _documented(method, template, status, want_slug)
    if status == 401:
        assert headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("name", sorted(TOKENS))
async def test_whoami_names_the_token_and_its_role(api: Api, name: str) -> None:
    status, body, _ = await api.call("GET", f"{PREFIX}/whoami", token=TOKENS[name])
    assert status == 200
    agent = name.split(":")[1] if name.startswith("agent:") else None
    assert body == {"name": name, "role": name.split(":")[0], "agent": agent}


async def test_a_token_sent_with_another_scheme_is_invalid(api: Api) -> None:
    headers = {"Authorization": f"Basic {TOKENS['admin']}"}
    async with api.client.get(f"{PREFIX}/whoami", headers=headers) as resp:
        assert resp.status == 401 and (await resp.json())["error"] == "auth-invalid"


def test_token_names_that_give_no_role_and_empty_tokens_are_ignored() -> None:
    table = TokenTable({"robot": "robot-token", "agent:": "x", "agent:7": "", "admin": "a"})
    assert table.find("robot-token") is None and table.find("x") is None
    assert table.find("") is None
    found = table.find("a")
    assert found is not None and found.name == "admin"


# --- the endpoints ------------------------------------------------------------------------
async def test_agents_are_listed_and_read_one_by_one(api: Api) -> None:
    status, agents, _ = await api.call("GET", f"{PREFIX}/agents", token=TOKENS["agent:1001"])
    assert status == 200 and [a["id"] for a in agents] == ["1001", "1002"]
    status, agent, _ = await api.call("GET", f"{PREFIX}/agents/1001", token=TOKENS["agent:1001"])
    assert status == 200 and agent["skills"] == {"billing": 5}
    status, error, _ = await api.call("GET", f"{PREFIX}/agents/9999", token=TOKENS["supervisor"])
    assert (status, error["error"]) == (404, "agent-unknown")
    _documented("GET", "/agents/{id}", 404, "agent-unknown")


async def test_an_agent_logs_in_with_its_pin_and_changes_its_own_state(api: Api) -> None:
    me, path = TOKENS["agent:1001"], f"{PREFIX}/agents/1001/state"
    status, agent, _ = await api.call(
        "POST", path, token=me, body={"action": "login", "pin": PINS["1001"], "phone": "2001"}
    )
    assert status == 200 and (agent["state"], agent["phone"]) == ("not-ready", "2001")
    status, agent, _ = await api.call("POST", path, token=me, body={"action": "ready"})
    assert status == 200 and agent["state"] == "ready"
    body = {"action": "not-ready", "reason": "break"}
    status, agent, _ = await api.call("POST", path, token=me, body=body)
    assert status == 200 and agent["reason"] == "break"
    assert api.backend.actions == [
        ("1001", "login", "agent:1001"),
        ("1001", "ready", "agent:1001"),
        ("1001", "not-ready", "agent:1001"),
    ]


async def test_an_agent_login_without_or_with_a_wrong_pin_is_refused(api: Api) -> None:
    me, path = TOKENS["agent:1001"], f"{PREFIX}/agents/1001/state"
    status, error, _ = await api.call("POST", path, token=me, body={"action": "login"})
    assert (status, error["error"]) == (403, "pin-required")
    body = {"action": "login", "pin": "000000"}
    status, error, _ = await api.call("POST", path, token=me, body=body)
    assert (status, error["error"]) == (403, "pin-invalid")
    for slug in ("pin-required", "pin-invalid"):
        _documented("POST", "/agents/{id}/state", 403, slug)
    assert api.backend.agent_table["1001"]["state"] == "logged-out"


async def test_supervisors_need_no_pin_and_the_backends_refusals_come_through(api: Api) -> None:
    boss, admin = TOKENS["supervisor"], TOKENS["admin"]
    login = {"action": "login"}
    status, _, _ = await api.call("POST", f"{PREFIX}/agents/1001/state", token=boss, body=login)
    assert status == 200
    refusals = [  # path, body, status, slug
        ("/agents/1002/state", login, 409, "license-seats-exhausted"),
        ("/agents/1001/state", login, 409, "invalid-state"),
        ("/agents/1001/state", {"action": "extend-wrap-up", "seconds": 60}, 409, "invalid-state"),
        ("/agents/9999/state", login, 404, "agent-unknown"),
    ]
    for path, body, want_status, slug in refusals:
        status, error, _ = await api.call("POST", PREFIX + path, token=admin, body=body)
        assert (status, error["error"]) == (want_status, slug), path
        _documented("POST", "/agents/{id}/state", want_status, slug)
    api.backend.agent_table["1001"]["state"] = "wrap-up"
    body = {"action": "extend-wrap-up", "seconds": 60}
    status, agent, _ = await api.call("POST", f"{PREFIX}/agents/1001/state", token=admin, body=body)
    assert status == 200 and agent["wrap_up_s"] == 60
    assert api.backend.actions[-1] == ("1001", "extend-wrap-up", "admin")


async def test_queues_are_listed_and_read_one_by_one(api: Api) -> None:
    me = TOKENS["agent:1002"]
    status, queues, _ = await api.call("GET", f"{PREFIX}/queues", token=me)
    assert status == 200 and queues[0]["name"] == "95598"
    assert queues[0]["agents"] == {"logged-out": 2}
    status, queue, _ = await api.call("GET", f"{PREFIX}/queues/95598", token=me)
    assert status == 200 and queue["waiting"] == 2 and queue["ewt_s"] == 40.0
    status, error, _ = await api.call("GET", f"{PREFIX}/queues/nope", token=me)
    assert (status, error["error"]) == (404, "queue-unknown")
    _documented("GET", "/queues/{name}", 404, "queue-unknown")


async def test_calls_are_listed_and_read_live_or_from_history_with_events(api: Api) -> None:
    boss = TOKENS["supervisor"]
    status, calls, _ = await api.call("GET", f"{PREFIX}/calls", token=boss)
    assert status == 200 and [c["id"] for c in calls] == ["c1", "c2"]
    for call_id in ("c1", "c0"):
        status, call, _ = await api.call("GET", f"{PREFIX}/calls/{call_id}", token=boss)
        assert status == 200 and call["id"] == call_id and call["events"][0]["kind"] == "enter"
    status, error, _ = await api.call("GET", f"{PREFIX}/calls/nope", token=boss)
    assert (status, error["error"]) == (404, "call-unknown")
    _documented("GET", "/calls/{id}", 404, "call-unknown")


async def test_an_agent_transfers_its_own_call_to_a_queue(api: Api) -> None:
    path = f"{PREFIX}/calls/c2/transfer"
    body = {"queue": "95598"}
    status, call, _ = await api.call("POST", path, token=TOKENS["agent:1002"], body=body)
    assert status == 200
    assert (call["id"], call["state"], call["agent"], call["queue"]) == (
        "c2",
        "waiting",
        None,
        "95598",
    )
    assert api.backend.actions == [("c2", "transfer:95598", "agent:1002")]


async def test_a_supervisor_transfers_a_call_to_a_logged_in_agent(api: Api) -> None:
    boss, path = TOKENS["supervisor"], f"{PREFIX}/calls/c2/transfer"
    status, error, _ = await api.call("POST", path, token=boss, body={"agent": "1001"})
    assert (status, error["error"]) == (409, "agent-logged-out")
    _documented("POST", "/calls/{id}/transfer", 409, "agent-logged-out")
    api.backend.agent_table["1001"]["state"] = "ready"
    status, call, _ = await api.call("POST", path, token=boss, body={"agent": "1001"})
    assert status == 200 and call["queue"] == "direct-1001"
    assert api.backend.actions == [("c2", "transfer:direct-1001", "supervisor")]


async def test_an_attended_transfer_is_asked_for_by_mode(api: Api) -> None:
    path, agent = f"{PREFIX}/calls/c2/transfer", TOKENS["agent:1002"]
    status, error, _ = await api.call(
        "POST", path, token=agent, body={"queue": "95598", "mode": "warm"}
    )
    assert (status, error["error"]) == (400, "input-invalid") and "mode" in error["message"]
    body = {"queue": "95598", "mode": "attended"}
    status, _, _ = await api.call("POST", path, token=agent, body=body)
    assert status == 200
    assert api.backend.actions == [("c2", "transfer:95598:attended", "agent:1002")]


async def test_a_supervisor_plays_a_recording_by_ranges_and_an_agent_may_not(api: Api) -> None:
    path = f"{PREFIX}/calls/c2/recording"
    status, error, _ = await api.call("GET", path, token=TOKENS["agent:1002"])
    assert (status, error["error"]) == (403, "forbidden")
    headers = {"Authorization": f"Bearer {TOKENS['supervisor']}", "Range": "bytes=4-19"}
    async with api.client.get(path, headers=headers) as response:
        assert (response.status, response.headers["Content-Type"]) == (206, "audio/wav")
        assert await response.read() == bytes(range(16))
    status, error, _ = await api.call("GET", f"{PREFIX}/calls/c1/recording", token=TOKENS["admin"])
    assert (status, error["error"]) == (404, "recording-none")
    _documented("GET", "/calls/{id}/recording", 404, "recording-none")
    assert api.backend.actions == [("c2", "recording", "supervisor")]


async def test_only_supervisors_monitor_and_every_session_action_is_audited(api: Api) -> None:
    path, body = f"{PREFIX}/monitors", {"agent": "1002", "phone": "1009", "mode": "whisper"}
    status, error, _ = await api.call("POST", path, token=TOKENS["agent:1002"], body=body)
    assert (status, error["error"]) == (403, "forbidden")
    boss = TOKENS["supervisor"]
    both = {**body, "call": "c2"}
    status, error, _ = await api.call("POST", path, token=boss, body=both)
    assert (status, error["error"]) == (400, "input-invalid")
    status, error, _ = await api.call("POST", path, token=boss, body={**body, "mode": "shout"})
    assert (status, error["error"]) == (400, "input-invalid") and "mode" in error["message"]
    status, session, _ = await api.call("POST", path, token=boss, body=body)
    assert status == 201 and (session["call"], session["mode"]) == ("c2", "whisper")
    switch = f"{path}/{session['id']}/mode"
    status, session, _ = await api.call("POST", switch, token=boss, body={"mode": "barge"})
    assert (status, session["mode"]) == (200, "barge")
    status, _, _ = await api.call("DELETE", f"{path}/{session['id']}", token=boss)
    assert status == 200
    status, error, _ = await api.call("DELETE", f"{path}/{session['id']}", token=boss)
    assert (status, error["error"]) == (404, "monitor-unknown")
    _documented("DELETE", "/monitors/{id}", 404, "monitor-unknown")
    _documented("POST", "/monitors", 409, "not-talking")
    audited = [(e["method"], e["path"], e["status"]) for e in api.audit.tail(6)]
    assert audited[-3:] == [
        ("POST", f"{path}/{session['id']}/mode", 200),
        ("DELETE", f"{path}/{session['id']}", 200),
        ("DELETE", f"{path}/{session['id']}", 404),
    ]


@pytest.mark.parametrize(
    ("token", "call_id", "body", "want_status", "slug"),
    [
        ("agent:1001", "c2", {"queue": "95598"}, 403, "forbidden"),  # 1002 is on c2
        ("agent:1001", "c1", {"queue": "95598"}, 403, "forbidden"),  # nobody is on c1
        ("admin", "nope", {"queue": "95598"}, 404, "call-unknown"),
        ("admin", "c2", {"queue": "nope"}, 404, "queue-unknown"),
        ("admin", "c2", {"agent": "9999"}, 404, "agent-unknown"),
        ("admin", "c1", {"queue": "95598"}, 409, "invalid-state"),  # still waiting
        ("admin", "c2", {"queue": "95598", "agent": "1001"}, 400, "input-invalid"),
        ("admin", "c2", {}, 400, "input-invalid"),
        ("admin", "c2", {"queue": None, "agent": None}, 400, "input-invalid"),
        ("admin", "c2", {"queue": ""}, 400, "input-invalid"),
        ("admin", "c2", {"queue": "95598", "priority": 5}, 400, "input-invalid"),
    ],
)
async def test_a_transfer_is_refused_with_the_backends_or_the_bodys_slug(
    api: Api, token: str, call_id: str, body: Any, want_status: int, slug: str
) -> None:
    path = f"{PREFIX}/calls/{call_id}/transfer"
    status, error, _ = await api.call("POST", path, token=TOKENS[token], body=body)
    assert (status, error["error"]) == (want_status, slug), error
    assert error["message"]
    _documented("POST", "/calls/{id}/transfer", want_status, slug)
    assert api.backend.actions == []
    assert api.backend.live["c2"]["state"] == "connected"


async def test_a_transfer_names_both_targets_when_it_gets_neither_or_both(api: Api) -> None:
    path = f"{PREFIX}/calls/c2/transfer"
    for body in ({}, {"queue": "95598", "agent": "1001"}):
        _, error, _ = await api.call("POST", path, token=TOKENS["admin"], body=body)
        assert "exactly one of queue and agent" in error["message"]


async def test_a_supervisor_posts_lists_and_withdraws_a_notice(api: Api, prompts: Prompts) -> None:
    boss = TOKENS["supervisor"]
    text, text_en = "城南片区线路故障，正在抢修，预计十四点恢复供电。", "A south district fault."
    body = {
        "text": f" {text} ",  # stripped by the board
        "text_en": text_en,
        "scope": ["0755", "139"],
        "starts_at": "2020-07-01T09:00:00+08:00",
        "ends_at": "2099-07-01T14:00:00+08:00",
    }
    status, notice, _ = await api.call("POST", f"{PREFIX}/notices", token=boss, body=body)
    assert status == 201
    assert (notice["text"], notice["text_en"]) == (text, text_en)
    assert notice["scope"] == ["0755", "139"]
    assert (notice["starts_at"], notice["ends_at"]) == (body["starts_at"], body["ends_at"])
    assert dt.datetime.fromisoformat(notice["created_at"]).tzinfo is not None
    assert prompts.path(text, "zh").exists()  # the audio was made before storing
    assert prompts.path(text_en, "en").exists()

    status, notices, _ = await api.call("GET", f"{PREFIX}/notices", token=boss)
    assert status == 200 and [n["id"] for n in notices] == [notice["id"], "n0"]  # by start
    assert notices[0] == notice

    path = f"{PREFIX}/notices/{notice['id']}"
    status, answer, _ = await api.call("DELETE", path, token=TOKENS["admin"])
    assert (status, answer) == (200, {"deleted": notice["id"]})
    _, notices, _ = await api.call("GET", f"{PREFIX}/notices", token=boss)
    assert [n["id"] for n in notices] == ["n0"]
    status, error, _ = await api.call("DELETE", path, token=boss)
    assert (status, error["error"]) == (404, "notice-unknown")
    _documented("DELETE", "/notices/{id}", 404, "notice-unknown")
    assert api.backend.actions == [
        (notice["id"], "add-notice", "supervisor"),
        (notice["id"], "delete-notice", "admin"),
    ]


async def test_a_notice_takes_its_defaults_from_the_board(api: Api) -> None:
    before = dt.datetime.now(dt.UTC)
    status, notice, _ = await api.call(
        "POST", f"{PREFIX}/notices", token=TOKENS["admin"], body=OUTAGE
    )
    assert status == 201 and notice["scope"] == "all" and notice["text_en"] is None
    assert dt.datetime.fromisoformat(notice["starts_at"]) >= before  # now, on the board


@pytest.mark.parametrize(
    ("fields", "in_message"),
    [
        ({"text": ""}, "text: String should have at least 1 character"),
        ({"text": "   "}, "a notice needs words to speak"),
        ({"text": None}, "text: Input should be a valid string"),
        ({"text_en": "x" * 501}, "text_en: String should have at most 500 characters"),
        ({"ends_at": None}, "ends_at: Input should be a valid datetime"),
        ({"ends_at": "2099-07-01T10:00:00"}, "ends_at: Input should have timezone info"),
        ({"ends_at": "tomorrow"}, "ends_at: Input should be a valid datetime"),
        ({"scope": ["13a"]}, "scope"),
        ({"scope": "al"}, "scope"),
        ({"scope": []}, 'scope: give "all" or at least one caller-number prefix'),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        (  # the board's own checks, beyond the schema
            {"starts_at": "2020-07-01T09:00:00+08:00", "ends_at": "2020-07-01T10:00:00+08:00"},
            "ends_at: already past",
        ),
        (
            {"starts_at": "2099-07-01T10:00:00+08:00", "ends_at": "2099-07-01T09:00:00+08:00"},
            "ends_at: must be after starts_at",
        ),
    ],
)
async def test_a_bad_notice_is_a_400_that_names_the_field_and_stores_nothing(
    api: Api, redis: Redis, fields: dict[str, Any], in_message: str
) -> None:
    body = {**OUTAGE, **fields}
    status, error, _ = await api.call("POST", f"{PREFIX}/notices", token=TOKENS["admin"], body=body)
    assert (status, error["error"]) == (400, "input-invalid")
    assert in_message in error["message"], error["message"]
    _documented("POST", "/notices", 400, "input-invalid")
    assert await redis.hkeys(KEY) == [b"n0"]


async def test_a_notice_without_an_end_or_a_text_is_refused(api: Api) -> None:
    path, admin = f"{PREFIX}/notices", TOKENS["admin"]
    status, error, _ = await api.call("POST", path, token=admin, body={"text": "停电"})
    assert (status, error["error"]) == (400, "input-invalid")
    assert "ends_at: Field required" in error["message"]
    status, error, _ = await api.call("POST", path, token=admin, body={"ends_at": TOMORROW})
    assert (status, error["error"]) == (400, "input-invalid")
    assert "text: Field required" in error["message"]
    status, error, _ = await api.call("POST", path, token=admin, raw=b"[]")
    assert (status, error["error"]) == (400, "body-invalid")
    _documented("POST", "/notices", 400, "body-invalid")


async def test_agents_may_not_touch_notices_and_nothing_changes(api: Api, redis: Redis) -> None:
    me = TOKENS["agent:1001"]
    for method, path, body in [
        ("GET", "/notices", None),
        ("POST", "/notices", OUTAGE),
        ("DELETE", "/notices/n0", None),
    ]:
        status, error, _ = await api.call(method, PREFIX + path, token=me, body=body)
        assert (status, error["error"]) == (403, "forbidden")
        assert "supervisor" in error["message"]
    assert await redis.hkeys(KEY) == [b"n0"] and api.backend.actions == []


async def test_without_a_notice_board_notices_are_a_503(api: Api) -> None:
    api.backend.board = None
    admin = TOKENS["admin"]
    for method, template, path, body in [
        ("GET", "/notices", "/notices", None),
        ("POST", "/notices", "/notices", OUTAGE),
        ("DELETE", "/notices/{id}", "/notices/n0", None),
    ]:
        status, error, _ = await api.call(method, PREFIX + path, token=admin, body=body)
        assert (status, error["error"]) == (503, "notices-unavailable")
        _documented(method, template, 503, "notices-unavailable")


# --- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "slug", "in_message"),
    [
        (b"{not json", "body-invalid", "not valid JSON"),
        (b"", "body-invalid", "not valid JSON"),
        (b"\xff\xfe", "body-invalid", "not valid JSON"),
        (b'["login"]', "body-invalid", "JSON object"),
        (b'{"action": "dance"}', "input-invalid", "action"),
        (b'{"action": "login", "shoe": 1}', "input-invalid", "shoe"),
        (b'{"action": "not-ready", "reason": "lunch"}', "input-invalid", "reason"),
        (b'{"action": "extend-wrap-up", "seconds": -5}', "input-invalid", "seconds"),
    ],
)
async def test_a_bad_body_is_a_400_that_says_what_is_wrong(
    api: Api, raw: bytes, slug: str, in_message: str
) -> None:
    path = f"{PREFIX}/agents/1001/state"
    status, error, _ = await api.call("POST", path, token=TOKENS["admin"], raw=raw)
    assert (status, error["error"]) == (400, slug)
    assert in_message in error["message"]
    _documented("POST", "/agents/{id}/state", 400, slug)


async def test_a_rejected_pin_is_never_echoed_back(api: Api) -> None:
    secret = "7" * 40
    body = {"action": "login", "pin": secret}
    status, error, _ = await api.call(
        "POST", f"{PREFIX}/agents/1001/state", token=TOKENS["agent:1001"], body=body
    )
    assert (status, error["error"]) == (400, "input-invalid")
    assert secret not in json.dumps(error)


async def test_a_body_past_the_limit_is_a_413(api: Api) -> None:
    raw = b'{"action": "login", "phone": "' + b"1" * MAX_BODY_BYTES + b'"}'
    path = f"{PREFIX}/agents/1001/state"
    status, error, _ = await api.call("POST", path, token=TOKENS["admin"], raw=raw)
    assert (status, error["error"]) == (413, "body-too-large")


async def test_unknown_routes_and_wrong_methods_answer_json(api: Api) -> None:
    for path in (f"{PREFIX}/nope", "/elsewhere"):
        status, error, _ = await api.call("GET", path, token=TOKENS["admin"])
        assert (status, error["error"]) == (404, "not-found") and "openapi.json" in error["message"]
    status, error, headers = await api.call("DELETE", f"{PREFIX}/agents", token=TOKENS["admin"])
    assert (status, error["error"]) == (405, "method-not-allowed")
    assert headers["Allow"] == "GET"


async def test_an_unexpected_failure_is_a_500_with_the_traceback_only_in_the_log(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    api.backend.explode = True
    body = {"action": "ready"}
    status, error, _ = await api.call(
        "POST", f"{PREFIX}/agents/1001/state", token=TOKENS["admin"], body=body
    )
    assert (status, error["error"]) == (500, "internal-error")
    assert "hunter2" not in json.dumps(error) and "Traceback" not in json.dumps(error)
    [record] = [r for r in caplog.records if r.getMessage() == "api.internal_error"]
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])


# --- the OpenAPI document -----------------------------------------------------------------
async def test_the_openapi_document_is_valid_public_and_lists_every_mounted_route(
    api: Api,
) -> None:
    status, doc, _ = await api.call("GET", f"{PREFIX}/openapi.json")  # no token needed
    assert status == 200 and doc == DOC
    validate(doc)
    # Beside the REST routes: the desk and wallboard pages and their event channel (a
    # WebSocket, which OpenAPI does not describe: docs/api.md does), with aiohttp's HEAD
    # twins of GETs.
    others = {"/desk", "/desk/", "/wallboard", "/wallboard/", PREFIX + "/events"}
    mounted = {
        (r.method, r.resource.canonical)
        for r in api.client.app.router.routes()
        if r.resource is not None and r.resource.canonical not in others and r.method != "HEAD"
    }
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == mounted and len(documented) == len(ROUTES)
    schema = doc["components"]["schemas"]["AgentStateRequest"]
    assert schema["properties"]["action"]["enum"] == [
        "login",
        "logout",
        "ready",
        "not-ready",
        "extend-wrap-up",
    ]
    assert schema["additionalProperties"] is False
    notice = doc["components"]["schemas"]["NoticeInput"]  # the board's own input model
    assert set(notice["properties"]) == {"text", "text_en", "scope", "starts_at", "ends_at"}
    assert notice["required"] == ["text", "ends_at"] and notice["additionalProperties"] is False
    add = doc["paths"][f"{PREFIX}/notices"]["post"]
    assert "201" in add["responses"] and "200" not in add["responses"]
    transfer = doc["components"]["schemas"]["TransferRequest"]
    assert set(transfer["properties"]) == {"queue", "agent", "mode"}
    assert transfer["additionalProperties"] is False
    public = [
        p for p, ops in doc["paths"].items() for op in ops.values() if op.get("security") == []
    ]
    assert public == [f"{PREFIX}/openapi.json", f"{PREFIX}/desk/session"]  # and its POST only


# --- audit --------------------------------------------------------------------------------
async def test_every_write_is_audited_with_refusals_and_secrets_redacted(api: Api) -> None:
    state = f"{PREFIX}/agents/1001/state"
    login = {"action": "login", "pin": PINS["1001"]}
    await api.call("POST", state, token=TOKENS["agent:1001"], body=login)
    await api.call("POST", state, body=login)  # no token
    await api.call("POST", f"{PREFIX}/agents/1002/state", token=TOKENS["agent:1001"], body=login)
    await api.call("POST", state, token=TOKENS["admin"], raw=b"pin=482913")
    await api.call("POST", f"{PREFIX}/nope", token=TOKENS["admin"], body={"pin": "1"})
    await api.call("DELETE", f"{PREFIX}/agents", token=TOKENS["admin"])
    await api.call("GET", f"{PREFIX}/agents", token=TOKENS["admin"])  # reads are not audited

    lines = api.audit.tail(100)
    assert [(e["method"], e["status"], e["error"]) for e in lines] == [
        ("POST", 200, None),
        ("POST", 401, "auth-required"),
        ("POST", 403, "forbidden"),
        ("POST", 400, "body-invalid"),
        ("POST", 404, "not-found"),
        ("DELETE", 405, "method-not-allowed"),
    ]
    first = lines[0]
    assert (first["token"], first["role"], first["path"]) == ("agent:1001", "agent", state)
    assert first["body"] == {"action": "login", "pin": "***"} and first["remote"] == "127.0.0.1"
    assert first["time"].endswith("Z")
    assert (lines[1]["token"], lines[1]["role"]) == (None, None)
    assert lines[2]["token"] == "agent:1001" and lines[3]["body"] == {"unparsed_bytes": 10}
    assert api.audit.tail(1) == lines[-1:]
    text = api.audit.path.read_text()
    assert all(pin not in text for pin in PINS.values())
    assert stat.S_IMODE(api.audit.path.stat().st_mode) == 0o600


async def test_notice_and_transfer_writes_are_audited_refusals_included(api: Api) -> None:
    boss, admin, me = TOKENS["supervisor"], TOKENS["admin"], TOKENS["agent:1001"]
    _, notice, _ = await api.call("POST", f"{PREFIX}/notices", token=boss, body=OUTAGE)
    await api.call("POST", f"{PREFIX}/notices", token=me, body=OUTAGE)
    await api.call("POST", f"{PREFIX}/notices", token=boss, body={"text": "停电"})
    await api.call("DELETE", f"{PREFIX}/notices/{notice['id']}", token=admin)
    await api.call("DELETE", f"{PREFIX}/notices/nope", token=admin)
    await api.call("POST", f"{PREFIX}/calls/c2/transfer", token=me, body={"queue": "95598"})
    await api.call(
        "POST", f"{PREFIX}/calls/c2/transfer", token=TOKENS["agent:1002"], body={"queue": "95598"}
    )
    await api.call("GET", f"{PREFIX}/notices", token=boss)  # reads are not audited

    lines = api.audit.tail(100)
    assert [(e["token"], e["method"], e["path"], e["status"], e["error"]) for e in lines] == [
        ("supervisor", "POST", f"{PREFIX}/notices", 201, None),
        ("agent:1001", "POST", f"{PREFIX}/notices", 403, "forbidden"),
        ("supervisor", "POST", f"{PREFIX}/notices", 400, "input-invalid"),
        ("admin", "DELETE", f"{PREFIX}/notices/{notice['id']}", 200, None),
        ("admin", "DELETE", f"{PREFIX}/notices/nope", 404, "notice-unknown"),
        ("agent:1001", "POST", f"{PREFIX}/calls/c2/transfer", 403, "forbidden"),
        ("agent:1002", "POST", f"{PREFIX}/calls/c2/transfer", 200, None),
    ]
    assert lines[0]["body"] == OUTAGE and lines[0]["role"] == "supervisor"
    assert lines[3]["body"] is None
    assert lines[-1]["body"] == {"queue": "95598"} and lines[-1]["role"] == "agent"


def test_an_audit_log_that_cannot_be_written_is_refused_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(CCServerError) as raised:
        AuditLog(blocker / "audit.jsonl")
    assert raised.value.slug == "audit-unavailable"


def test_an_existing_audit_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text("")
    path.chmod(0o644)
    AuditLog(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- rate limits --------------------------------------------------------------------------
async def test_five_failed_tokens_lock_the_remote_out_for_a_while(api: Api) -> None:
    for _ in range(5):
        status, _, _ = await api.call("GET", f"{PREFIX}/whoami", token="guess")
        assert status == 401
    status, error, headers = await api.call("GET", f"{PREFIX}/whoami", token=TOKENS["admin"])
    assert (status, error["error"]) == (429, "rate-limited")
    assert 1 <= int(headers["Retry-After"]) <= 60
    _documented("GET", "/whoami", 429, "rate-limited")
    status, _, _ = await api.call("GET", f"{PREFIX}/openapi.json")
    assert status == 200  # the public document is not behind the lock


async def test_five_wrong_pins_lock_that_token_out_of_pin_logins(api: Api) -> None:
    path, me = f"{PREFIX}/agents/1001/state", TOKENS["agent:1001"]
    for _ in range(5):
        body = {"action": "login", "pin": "000000"}
        status, error, _ = await api.call("POST", path, token=me, body=body)
        assert error["error"] == "pin-invalid"
    body = {"action": "login", "pin": PINS["1001"]}
    status, error, _ = await api.call("POST", path, token=me, body=body)
    assert (status, error["error"]) == (429, "rate-limited")
    status, _, _ = await api.call(
        "POST", path, token=TOKENS["supervisor"], body={"action": "login"}
    )
    assert status == 200  # another token is not locked out
    assert [e["status"] for e in api.audit.tail(2)] == [429, 200]


def test_the_rate_limit_window_slides_and_forgets_quiet_keys() -> None:
    now = [0.0]
    limiter = RateLimiter(limit=2, window_s=10.0, max_keys=3, clock=lambda: now[0])
    limiter.fail("a")
    now[0] = 4.0
    limiter.fail("a")
    assert limiter.retry_after("a") == 6
    now[0] = 10.0  # the first failure has left the window
    assert limiter.retry_after("a") is None
    now[0] = 14.0
    assert limiter.retry_after("a") is None and "a" not in limiter._failures
    for key in "bcde":
        limiter.fail(key)
        limiter.fail(key)
    assert list(limiter._failures) == ["c", "d", "e"]  # the stalest key went first
    with pytest.raises(CCServerError) as raised:
        limiter.check("e", "attempts")
    assert raised.value.status == 429 and raised.value.slug == "rate-limited"


async def test_the_license_in_force_is_read_by_supervisors_and_reloaded_by_admins(
    api: Api,
) -> None:
    status, usage, _ = await api.call("GET", f"{PREFIX}/license", token=TOKENS["supervisor"])
    assert status == 200
    assert (usage["evaluation"], usage["seats"], usage["ivr_channels"]) == (True, 5, 2)
    status, _, _ = await api.call(
        "POST", f"{PREFIX}/license/reload", token=TOKENS["supervisor"], body={}
    )
    assert status == 403
    status, usage, _ = await api.call(
        "POST", f"{PREFIX}/license/reload", token=TOKENS["admin"], body={}
    )
    assert status == 200 and usage["seats_in_use"] == 0
    assert api.backend.actions == [("license", "reload", "admin")]


# --- the desk: sessions and the event channel ------------------------------------------------
async def _desk_session(api: Api, agent: str = "1001") -> dict[str, Any]:
    body = {"agent": agent, "pin": PINS[agent], "device": "browser"}
    status, opened, _ = await api.call("POST", f"{PREFIX}/desk/session", body=body)
    assert status == 201, opened
    return dict(opened)


async def test_a_desk_session_is_an_agent_token_for_its_agent_only(api: Api) -> None:
    opened = await _desk_session(api)
    assert opened["agent"]["state"] == "not-ready" and opened["sip"]["user"] == "web1001"
    token = opened["token"]
    status, me, _ = await api.call("GET", f"{PREFIX}/whoami", token=token)
    assert (status, me) == (200, {"name": "agent:1001", "role": "agent", "agent": "1001"})
    status, body, _ = await api.call("GET", f"{PREFIX}/agents/1002", token=token)
    assert (status, body["error"]) == (403, "forbidden")
    # The session proved the PIN: the page goes on without sending it again.
    status, body, _ = await api.call(
        "POST", f"{PREFIX}/agents/1001/state", token=token, body={"action": "ready"}
    )
    assert (status, body["state"]) == (200, "ready")
    status, _, _ = await api.call("DELETE", f"{PREFIX}/desk/session", token=token)
    assert status == 200
    status, body, _ = await api.call("GET", f"{PREFIX}/whoami", token=token)
    assert (status, body["error"]) == (401, "auth-invalid")


async def test_wrong_desk_pins_are_refused_and_rate_limited(api: Api) -> None:
    wrong = {"agent": "1001", "pin": "000000", "device": "browser"}
    guessed = {"agent": "9999", "pin": "000000", "device": "browser"}  # ids are guessed too
    for body, answer in [(wrong, (403, "pin-invalid")), (guessed, (404, "agent-unknown"))] * 2:
        status, got, _ = await api.call("POST", f"{PREFIX}/desk/session", body=body)
        assert (status, got["error"]) == answer
    status, body, _ = await api.call("POST", f"{PREFIX}/desk/session", body=wrong)
    assert (status, body["error"]) == (403, "pin-invalid")
    status, body, headers = await api.call("POST", f"{PREFIX}/desk/session", body=wrong)
    assert (status, body["error"]) == (429, "rate-limited") and headers["Retry-After"]
    logged = [json.loads(line) for line in api.audit.path.read_text().splitlines()]
    assert all(entry["body"]["pin"] == "***" for entry in logged)


async def test_a_valid_token_naming_an_unknown_agent_is_no_pin_failure(api: Api) -> None:
    """Only the public desk login counts unknown agent ids (a guess without a token)."""
    body, path = {"action": "login", "pin": "123456"}, f"{PREFIX}/agents/9999/state"
    for _ in range(7):
        status, got, _ = await api.call("POST", path, token=TOKENS["admin"], body=body)
        assert (status, got["error"]) == (404, "agent-unknown")


async def test_the_event_channel_sends_a_snapshot_then_what_the_desk_missed(api: Api) -> None:
    token = (await _desk_session(api))["token"]
    async with api.client.ws_connect(f"{PREFIX}/events") as ws:
        await ws.send_json({"token": token, "after": 0})
        got = [await ws.receive_json(timeout=5) for _ in range(3)]
    assert [(e["type"], e["seq"]) for e in got] == [
        ("snapshot", 2),
        ("agent.state", 1),
        ("agent.state", 2),
    ]


@pytest.mark.parametrize(
    ("hello", "slug"),
    [
        ({"token": "nope", "after": None}, "auth-invalid"),
        ({"after": None}, "hello-invalid"),
        ({"token": TOKENS["agent:1001"], "after": -1}, "input-invalid"),
    ],
)
async def test_the_event_channel_refuses_a_bad_first_message(
    api: Api, hello: dict[str, Any], slug: str
) -> None:
    async with api.client.ws_connect(f"{PREFIX}/events") as ws:
        await ws.send_json(hello)
        assert (await ws.receive_json(timeout=5))["error"] == slug
        await ws.receive(timeout=5)
        assert ws.close_code in (4401, 4403)


async def test_the_desk_page_is_served_with_its_content_policy(api: Api) -> None:
    async with api.client.get("/desk/") as resp:
        assert (
            resp.status == 200 and "default-src 'self'" in resp.headers["Content-Security-Policy"]
        )
        assert 'type="module" src="/desk/desk.js"' in await resp.text()
    async with api.client.get("/desk/desk.js") as resp:
        assert resp.status == 200 and "sip.js" in await resp.text()
    async with api.client.get("/wallboard") as resp:  # redirected to the page
        assert resp.status == 200 and resp.url.path == "/wallboard/"
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        assert 'src="/wallboard/wallboard.js"' in await resp.text()


async def test_a_page_s_path_without_its_slash_redirects_to_the_page(api: Api) -> None:
    """The error middleware once turned the redirect into a JSON 302 without `Location`."""
    async with api.client.get("/desk", allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (302, "/desk/")


# --- work orders -----------------------------------------------------------------------------
async def test_an_agent_opens_an_order_from_its_call_and_a_supervisor_dispatches_it(
    api: Api,
) -> None:
    agent, sup = TOKENS["agent:1002"], TOKENS["supervisor"]
    body = {"kind": "fault", "call": "c2", "account": "0012345678", "area": "urban"}
    status, opened, _ = await api.call("POST", f"{PREFIX}/orders", token=agent, body=body)
    assert status == 201, opened
    assert (opened["id"], opened["state"], opened["caller"]) == (2, "new", "13800000002")
    assert (opened["calls"], opened["agent"], opened["due_state"]) == (["c2"], "1002", "on-site")
    path = f"{PREFIX}/orders/2"
    status, moved, _ = await api.call(
        "POST", path + "/state", token=sup, body={"state": "dispatched", "assignee": "li"}
    )
    assert (status, moved["state"], moved["assignee"]) == (200, "dispatched", "li")
    status, detail, _ = await api.call("GET", path, token=agent)
    assert [c["what"] for c in detail["changes"]] == ["opened", "linked", "moved"]
    assert detail["changes"][2]["who"] == "supervisor"
    status, found, _ = await api.call(
        "GET", f"{PREFIX}/orders?state=dispatched&caller=13800000002", token=agent
    )
    assert [o["id"] for o in found] == [2]
    lines = [json.loads(line) for line in api.audit.path.read_text(encoding="utf-8").splitlines()]
    assert [line["path"] for line in lines if line["method"] == "POST"][-1] == (
        "/api/v1/orders/2/state"
    )
    assert lines[-1]["method"] == "GET"  # the caller's orders read: audited too


async def test_order_refusals_carry_their_slugs(api: Api) -> None:
    agent, sup = TOKENS["agent:1001"], TOKENS["supervisor"]
    one, state = "/orders/{id}", "/orders/{id}/state"
    cases = [
        ("POST", "/orders", "", agent, {"kind": "fault", "call": "c2"}, 403, "forbidden"),
        ("POST", "/orders", "", agent, {"kind": "fault", "call": "zz"}, 404, "call-unknown"),
        ("POST", "/orders", "", agent, {"kind": "weather"}, 400, "input-invalid"),
        ("GET", one, "abc", agent, None, 404, "order-unknown"),
        ("GET", one, "99", agent, None, 404, "order-unknown"),
        ("GET", "/orders", "?limit=0", agent, None, 400, "input-invalid"),
        ("GET", "/orders", "?colour=red", agent, None, 400, "input-invalid"),
        ("POST", state, "1", sup, {"state": "closed"}, 409, "invalid-state"),
        ("POST", state, "1", sup, {"state": "dispatched"}, 409, "assignee-required"),
        ("POST", "/orders/{id}/assign", "1", sup, {}, 400, "input-invalid"),
    ]
    for method, template, fill, token, body, want, slug in cases:
        path = template.replace("{id}", fill) if "{id}" in template else template + fill
        status, answer, _ = await api.call(method, PREFIX + path, token=token, body=body)
        assert (status, answer["error"]) == (want, slug), (path, answer)
        _documented(method, template, status, slug)


async def test_orders_export_as_csv(api: Api) -> None:
    status, body, headers = await api.call(
        "GET", f"{PREFIX}/orders.csv?kind=fault", token=TOKENS["supervisor"]
    )
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    header, row = body.decode().splitlines()
    assert header.startswith("id,kind,state,") and header.endswith(",calls")
    assert row.startswith("1,fault,new,") and row.endswith(",c2")


async def test_reads_of_a_callers_data_are_audited_and_other_reads_are_not(api: Api) -> None:
    agent, sup = TOKENS["agent:1002"], TOKENS["supervisor"]
    for path, token in (("/calls/c2", agent), ("/orders/1", sup), ("/queues", sup)):
        status, _, _ = await api.call("GET", PREFIX + path, token=token)
        assert status == 200
    await api.call("GET", f"{PREFIX}/calls/c2/screen", token=TOKENS["agent:1001"])  # refused
    lines = [json.loads(line) for line in api.audit.path.read_text().splitlines()]
    assert [(r["method"], r["path"], r["token"], r["status"]) for r in lines] == [
        ("GET", "/api/v1/calls/c2", "agent:1002", 200),
        ("GET", "/api/v1/orders/1", "supervisor", 200),
        ("GET", "/api/v1/calls/c2/screen", "agent:1001", 403),
    ]


# --- survey campaigns ------------------------------------------------------------------------
async def test_a_supervisor_starts_watches_and_stops_a_campaign(api: Api) -> None:
    sup = TOKENS["supervisor"]
    body = {"name": "autumn", "csv": "number,name\n13800000011,Li\n13800000012,Wang\n", "cps": 2}
    status, started, _ = await api.call("POST", f"{PREFIX}/campaigns", token=sup, body=body)
    assert status == 201, started
    assert (started["state"], started["flow"], started["cps"]) == ("running", "survey", 2)
    assert started["progress"] == {"pending": 2}
    path = f"{PREFIX}/campaigns/{started['id']}"
    status, stopped, _ = await api.call("POST", path + "/stop", token=sup)
    assert (status, stopped["state"], stopped["progress"]) == (200, "stopped", {"stopped": 2})
    status, detail, _ = await api.call("GET", path, token=sup)
    assert [(t["number"], t["result"]) for t in detail["targets"]] == [
        ("13800000011", "stopped"),
        ("13800000012", "stopped"),
    ]
    status, listed, _ = await api.call("GET", f"{PREFIX}/campaigns", token=sup)
    assert [c["name"] for c in listed] == ["autumn", "spring"]  # newest first
    lines = [json.loads(line) for line in api.audit.path.read_text(encoding="utf-8").splitlines()]
    assert [(line["method"], line["path"]) for line in lines][-2:] == [
        ("POST", f"/api/v1/campaigns/{started['id']}/stop"),
        ("GET", f"/api/v1/campaigns/{started['id']}"),  # its numbers are callers' data
    ]


async def test_campaign_refusals_carry_their_slugs(api: Api) -> None:
    sup = TOKENS["supervisor"]
    cases = [
        ("POST", "/campaigns", {"name": "x", "csv": "13800000001", "flow": "quiz"}, 400),
        ("POST", "/campaigns", {"name": "x", "csv": "number\n138\nabc"}, 400),
        ("POST", "/campaigns", {"name": "x", "csv": "number\n"}, 400),
        ("POST", "/campaigns", {"name": "x", "csv": "13800000001", "max_concurrent": 0}, 400),
    ]
    for method, template, body, want in cases:
        status, answer, _ = await api.call(method, PREFIX + template, token=sup, body=body)
        assert (status, answer["error"]) == (want, "input-invalid"), (body, answer)
        _documented(method, template, status, "input-invalid")
    status, answer, _ = await api.call("POST", f"{PREFIX}/campaigns", token=sup, body=cases[1][2])
    assert answer["message"] == "line 3: 'abc' is not a phone number (digits, 3-20)"
    for fill in ("99", "abc"):
        status, answer, _ = await api.call("GET", f"{PREFIX}/campaigns/{fill}", token=sup)
        assert (status, answer["error"]) == (404, "campaign-unknown")
        _documented("GET", "/campaigns/{id}", 404, "campaign-unknown")


# --- the knowledge base ----------------------------------------------------------------------
async def test_agents_search_and_read_articles_and_supervisors_see_the_lookups(api: Api) -> None:
    agent, sup = TOKENS["agent:1001"], TOKENS["supervisor"]
    status, added, _ = await api.call(
        "POST",
        f"{PREFIX}/knowledge/articles",
        token=sup,
        body={**ARTICLE, "valid_until": TOMORROW},
    )
    assert status == 201 and added["valid"] and added["tags"] == ["repair"]
    status, hits, _ = await api.call("GET", f"{PREFIX}/knowledge/search?q=报修", token=agent)
    assert status == 200 and [h["id"] for h in hits] == [added["id"]]
    assert "报修" in hits[0]["snippet"]
    status, read, _ = await api.call(
        "GET", f"{PREFIX}/knowledge/articles/{added['id']}", token=agent
    )
    assert (status, read["views"]) == (200, 1)
    status, looked, _ = await api.call("GET", f"{PREFIX}/knowledge/lookups", token=sup)
    assert [(row["id"], row["reads"], row["readers"]) for row in looked] == [(added["id"], 1, 1)]
    status, answer, _ = await api.call(
        "GET", f"{PREFIX}/knowledge/search?q=报修&expired=true", token=agent
    )
    assert (status, answer["error"]) == (403, "forbidden")
    _documented("GET", "/knowledge/search", 403, "forbidden")
    status, answer, _ = await api.call("GET", f"{PREFIX}/knowledge/search?q=%21", token=agent)
    assert (status, answer["error"]) == (400, "input-invalid")
    status, answer, _ = await api.call("GET", f"{PREFIX}/knowledge/articles/9", token=agent)
    assert (status, answer["error"]) == (404, "article-unknown")


# --- quality inspection ----------------------------------------------------------------------
async def test_an_inspector_scores_and_the_agent_reads_and_disputes_once(api: Api) -> None:
    agent, other, sup = TOKENS["agent:1002"], TOKENS["agent:1001"], TOKENS["supervisor"]
    body = {"call": "c9", "ticked": ["voice.clear", "voice.pace"], "deducted": []}
    status, scored, _ = await api.call("POST", f"{PREFIX}/qa/scores", token=sup, body=body)
    assert (status, scored["total"], scored["agent"], scored["inspector"]) == (
        201,
        4,
        "1002",
        "supervisor",
    )
    status, mine, _ = await api.call("GET", f"{PREFIX}/qa/scores", token=agent)
    assert status == 200 and [s["id"] for s in mine] == [scored["id"], 1]
    status, theirs, _ = await api.call("GET", f"{PREFIX}/qa/scores", token=other)
    assert (status, theirs) == (200, [])
    status, answer, _ = await api.call("GET", f"{PREFIX}/qa/scores?agent=1002", token=other)
    assert (status, answer["error"]) == (403, "forbidden")
    path = f"{PREFIX}/qa/scores/{scored['id']}/dispute"
    status, disputed, _ = await api.call("POST", path, token=agent, body={"reason": "语速正常"})
    assert (status, disputed["dispute"]) == (200, "语速正常")
    status, answer, _ = await api.call("POST", path, token=agent, body={"reason": "again"})
    assert (status, answer["error"]) == (409, "dispute-exists")
    _documented("POST", "/qa/scores/{id}/dispute", 409, "dispute-exists")
    lines = api.audit.path.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[-2])["body"] == {"reason": "语速正常"}  # the dispute is audited
    bad = {"call": "c9", "ticked": ["voice.shouting"]}
    status, answer, _ = await api.call("POST", f"{PREFIX}/qa/scores", token=sup, body=bad)
    assert (status, answer["error"]) == (400, "input-invalid")
    status, answer, _ = await api.call(
        "POST", f"{PREFIX}/qa/scores", token=sup, body={"call": "nope"}
    )
    assert (status, answer["error"]) == (404, "call-unknown")
