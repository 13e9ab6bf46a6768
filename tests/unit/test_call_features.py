"""Queueing, callbacks and transfers, each driven through the CallCenter the controller
runs: ARI events in (as Asterisk sends them), requests out to a scripted Asterisk that
accepts them and finishes every prompt it is asked to play. The call records go to a real
Redis. The center is strict: any call-state move outside the transition table, or outside
a transaction, fails the test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ccserver.calls import agents, monitor, recovery, transfers
from ccserver.calls.center import CallCenter, CallStateError
from ccserver.calls.model import Call, CallState, LegRole, MonitorMode
from ccserver.config import Config
from ccserver.metrics import instruments
from ccserver.prompts import Prompts
from ccserver.store import Store
from ccserver.telephony.ari import AriError, AriEvent
from tests.replay import SilentAsterisk, started_center, stop_center

CALLER = "caller-1"
QUEUES = [
    {"name": "billing", "skills": {"billing": 1}, "wrap_up_s": 0},
    {"name": "repair", "skills": {"repair": 1}, "wrap_up_s": 0},
]


class PlayingAsterisk(SilentAsterisk):
    """Also finishes each prompt it is asked to play, a moment later, as Asterisk does,
    answers `GET /channels` with `channels` (what a restarted controller finds), and refuses
    a bridge id it has made before with 409: Asterisk keeps a destroyed bridge's id taken
    until its last channel has left, which may be after the next agent answers."""

    def __init__(self) -> None:
        super().__init__()
        self.center: CallCenter | None = None
        self.channels: list[dict[str, Any]] = []
        self.endpoints: list[dict[str, Any]] = []
        self.bridges: set[str] = set()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        answer = await super().request(method, path, params=params, body=body)
        if (method, path) == ("GET", "/channels"):
            return self.channels
        if (method, path) == ("GET", "/endpoints/PJSIP"):
            return self.endpoints
        if (method, path) == ("POST", "/bridges"):
            bridge = str((params or {})["bridgeId"])
            if bridge in self.bridges:
                raise AriError(f"POST /bridges: 409 Bridge with id '{bridge}' exists", status=409)
            self.bridges.add(bridge)
        if method == "POST" and "/play/" in path and self.center is not None:
            finished = AriEvent("PlaybackFinished", {"playback": {"id": path.rsplit("/", 1)[1]}})
            asyncio.get_running_loop().call_later(0.01, self.center.media.on_event, finished)
        return answer


class Scene:
    """One center and the Asterisk it talks to; events are fed as Asterisk would send them."""

    def __init__(self, center: CallCenter, ari: PlayingAsterisk, store: Store) -> None:
        self.center, self.ari, self.store = center, ari, store

    async def feed(self, kind: str, channel: str, **data: Any) -> None:
        await self.center.on_event(
            AriEvent(kind, {"type": kind, "channel": {"id": channel}, **data})
        )

    async def arrive(self, call_id: str = CALLER) -> Call:
        caller = {"id": call_id, "caller": {"number": "13800000001"}}
        await self.center.on_event(
            AriEvent("StasisStart", {"channel": caller, "args": ["inbound", "95598"]})
        )
        return self.center.calls[call_id]

    async def answer(self, leg: str, call: Call, kind: str = "agent") -> None:
        await self.feed("StasisStart", leg, args=[kind, call.id])

    async def ends(self, channel: str, cause: int = 16) -> None:
        await self.feed("ChannelDestroyed", channel, cause=cause)

    async def key(self, channel: str, digit: str) -> None:
        await self.feed("ChannelDtmfReceived", channel, digit=digit)

    def rung(self, prefix: str = "agent-") -> list[str]:
        return [leg for leg in self.ari.originated if leg.startswith(prefix)]

    def requests(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.ari.made if m == method and p == path)

    async def until(self, done: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.01)

    async def record(self, call_id: str = CALLER) -> dict[str, Any]:
        record = await self.store.load_call(call_id)
        assert record is not None
        return record


@pytest.fixture
async def make_scene(
    redis_socket: Path, tmp_path: Path, prompts: Prompts
) -> AsyncIterator[Callable[..., Scene]]:
    made: list[Scene] = []

    def make(acd: dict[str, Any] | None = None, agents_ready: bool = True) -> Scene:
        (tmp_path / "no-flows").mkdir(exist_ok=True)
        config = Config.model_validate(
            {
                "stack": {"run_dir": str(tmp_path / "run")},
                "ivr": {"flows_dir": str(tmp_path / "no-flows")},
                "controller": {"greeting": "", "rona_cooldown_s": 0},
                "phones": {"ids": ["1001", "1002"]},
                "acd": {
                    "queues": QUEUES,
                    "default_queue": "billing",
                    "announce_every_s": 0,
                    "language": "en",
                    "agents": [
                        {"id": "1001", "skills": {"billing": 5}, "phone": "1001"},
                        {"id": "1002", "skills": {"repair": 5}, "phone": "1002"},
                    ],
                    **(acd or {}),
                },
            }
        )
        ari = PlayingAsterisk()
        store = Store(unix_socket=str(redis_socket))
        center = started_center(config, ari, store, prompts)
        ari.center = center
        scene = Scene(center, ari, store)
        made.append(scene)
        return scene

    yield make
    for scene in made:
        await stop_center(scene.center)
        await scene.store.redis.flushdb()
        await scene.store.close()


async def login(scene: Scene, *agent_ids: str) -> None:
    for agent_id in agent_ids:
        await agents.agent_action(scene.center, agent_id, "login", phone=agent_id, by="test")


async def talking(scene: Scene) -> Call:
    """A caller in `billing`, connected to agent 1001."""
    await login(scene, "1001")
    call = await scene.arrive()
    await scene.until(lambda: len(scene.rung()) == 1, "agent 1001's phone to ring")
    assert call.state == CallState.RINGING and scene.center.legs[call.agent_channel or ""].role == (
        LegRole.AGENT
    )
    await scene.answer(scene.rung()[0], call)
    assert call.state == CallState.CONNECTED
    return call


async def test_a_stasis_start_without_a_channel_is_ignored(
    make_scene: Callable[..., Scene],
) -> None:
    """Found by the event fuzzer: it once started a session for the call id ""."""
    scene = make_scene()
    await scene.center.on_event(AriEvent("StasisStart", {"args": ["inbound", "95598"]}))
    assert scene.center.calls == {} and scene.ari.made == []


# --- queueing ------------------------------------------------------------------------------
async def test_a_caller_holds_until_a_ready_agent_answers_then_they_talk_in_a_bridge(
    make_scene: Callable[..., Scene],
) -> None:
    scene = make_scene()
    call = await scene.arrive()
    await scene.until(lambda: call.state == CallState.WAITING, "the caller to wait")
    assert scene.requests("POST", "/bridges/ccserver-holding/addChannel") == 1
    assert scene.rung() == []  # nobody is logged in
    await login(scene, "1001")  # the login's transaction dispatches: the phone rings
    assert call.state == CallState.RINGING and call.agent == "1001"
    await scene.answer(scene.rung()[0], call)
    assert call.state == CallState.CONNECTED
    assert scene.requests("POST", f"/bridges/call-{CALLER}/addChannel") == 1
    await scene.ends(CALLER)  # the caller hangs up (their channel is destroyed)
    record = await scene.record()
    assert (record["state"], record["outcome"], record["hangup_by"]) == (
        "ended",
        "completed",
        "caller",
    )
    assert scene.center.acd.agent_view("1001")["calls_taken"] == 1


async def test_a_phone_that_rings_out_puts_its_agent_not_ready_and_the_call_back_in_place(
    make_scene: Callable[..., Scene],
) -> None:
    scene = make_scene()
    await login(scene, "1001")
    call = await scene.arrive()
    await scene.until(lambda: len(scene.rung()) == 1, "the phone to ring")
    arrival = call.arrived_at
    await scene.ends(scene.rung()[0], cause=19)  # no answer
    assert call.state == CallState.WAITING and call.agent is None
    assert call.attempts[-1]["result"] == "no-answer"
    assert scene.center.acd.agent_view("1001")["reason"] == "RONA"
    assert scene.center.acd.router.call(call.id).arrival == arrival


async def test_a_restart_while_a_phone_rings_withdraws_the_offer_without_a_second_entry(
    make_scene: Callable[..., Scene],
) -> None:
    """A controller that restarts while an agent's phone rings hangs the leg up (its
    successor can't know whether it will be answered) and gives the call back in place:
    the agent is ready again, and the call was offered, and counted, once."""
    scene = make_scene()
    await login(scene, "1001")
    call = await scene.arrive()
    await scene.until(lambda: len(scene.rung()) == 1, "the phone to ring")
    leg = scene.rung()[0]
    scene.ari.channels = [{"id": CALLER, "state": "Up"}]  # the caller is there, the leg gone
    await recovery.resync(scene.center)  # its transaction rings agents again as it ends
    assert scene.requests("DELETE", f"/channels/{leg}") == 1
    assert [a["result"] for a in call.attempts] == ["interrupted", "ringing"]
    assert len(scene.rung()) == 2 and call.state == CallState.RINGING and call.agent == "1001"
    events = [fields for _, fields in await scene.store.redis.xrange("ccserver:events")]
    kinds = [e["kind"] for e in events if e["call"] == CALLER]
    assert kinds.count("enter") == 1, kinds
    assert {"kind": "requeue", "reason": "controller-restart"}.items() <= next(
        e for e in events if e["kind"] == "requeue"
    ).items()


async def test_a_call_whose_record_ended_after_the_acd_snapshot_is_only_dropped_from_the_router(
    make_scene: Callable[..., Scene],
) -> None:
    """Found by the backup drill: a Redis snapshot (a backup, a power cut) fell between a
    call's closed record and the ACD snapshot that still held it; the restored controller
    moved the ended call to ended again and its resync failed for good."""
    scene = make_scene()
    call = await talking(scene)
    call.state = CallState.ENDED  # as the record closed after the snapshot is loaded
    scene.ari.channels = []
    await recovery.resync(scene.center)
    assert call.id not in scene.center.calls and call.id not in scene.center.acd.router.calls()
    assert scene.center.acd.agent_view("1001")["state"] == "ready"  # no wrap-up in billing
    assert scene.requests("DELETE", f"/channels/{CALLER}") == 0  # nothing hung up again


async def test_a_phone_seen_busy_and_on_no_channel_now_is_idle_after_a_resync(
    make_scene: Callable[..., Scene],
) -> None:
    """Found by the backup drill: restored elsewhere, the agents' phones were busy in the
    saved state, and the new Asterisk, where they were never busy, told no change."""
    scene = make_scene()
    await login(scene, "1001")
    async with scene.center.transaction():
        scene.center.acd.device_state("1001", "INUSE", time.time())
    assert scene.center.acd.agent_view("1001")["state"] == "not-ready"
    scene.ari.endpoints = [{"resource": "1001", "state": "online", "channel_ids": []}]
    await recovery.resync(scene.center)
    assert scene.center.acd.agent_view("1001")["state"] == "ready"


async def test_an_answer_the_acd_snapshot_missed_is_taken_from_the_record(
    make_scene: Callable[..., Scene], redis_socket: Path, prompts: Prompts
) -> None:
    """Found by the backup drill: the record (written at once) said connected, the ACD
    snapshot (written within 50 ms) still had the offer; ending the call failed."""
    scene = make_scene()
    await login(scene, "1001")
    call = await scene.arrive()
    await scene.until(lambda: len(scene.rung()) == 1, "the phone to ring")
    leg = scene.rung()[0]
    await scene.center.persist()  # the snapshot: offered
    call.state = CallState.CONNECTED  # the record, written at the answer
    await scene.center.journal.save_call(call)
    ari = PlayingAsterisk()
    ari.channels = [{"id": CALLER, "state": "Up"}, {"id": leg, "state": "Up"}]
    store = Store(unix_socket=str(redis_socket))
    restarted = started_center(scene.center.config, ari, store, prompts, fresh=False)
    ari.center = restarted
    try:
        await recovery.resync(restarted)
        assert restarted.acd.router.call(CALLER).state == "connected"
        await restarted.on_event(AriEvent("ChannelDestroyed", {"channel": {"id": CALLER}}))
        assert CALLER not in restarted.calls
        assert restarted.acd.agent_view("1001")["calls_taken"] == 1
    finally:
        await stop_center(restarted)
        await store.close()


async def test_at_the_queue_s_max_wait_the_call_overflows_keeping_its_original_arrival(
    make_scene: Callable[..., Scene],
) -> None:
    queues = [{**QUEUES[0], "max_wait_s": 0.2, "on_max_wait": "overflow", "overflow_to": "repair"}]
    scene = make_scene({"queues": [*queues, QUEUES[1]]})
    call = await scene.arrive()
    await scene.until(lambda: call.queue == "repair", "the overflow", timeout=5)
    assert call.overflowed_from == ["billing"]
    assert scene.center.acd.router.call(call.id).arrival == call.arrived_at
    await login(scene, "1002")  # a repair agent
    assert call.state == CallState.RINGING and call.agent == "1002"


# --- callbacks -----------------------------------------------------------------------------
async def _accept_callback(scene: Scene, call: Call) -> None:
    """The caller waits past the max wait, presses 1 for a callback and 1 for this
    number, hears the confirmation and hangs up."""
    await scene.until(lambda: scene.requests("POST", f"/channels/{CALLER}/answer") == 1, "answer")
    plays = lambda: sum(1 for m, p in scene.ari.made if p.startswith(f"/channels/{CALLER}/play/"))  # noqa: E731
    await scene.until(lambda: plays() >= 1, "the callback offer", timeout=5)
    await scene.key(CALLER, "1")
    await scene.until(lambda: plays() >= 2, "the number question")
    await scene.key(CALLER, "1")
    await scene.until(lambda: call.state == CallState.CALLBACK, "the callback to be kept")
    await scene.until(lambda: scene.requests("DELETE", f"/channels/{CALLER}") == 1, "goodbye")
    await scene.feed("StasisEnd", CALLER)  # the caller's line is gone; the call is not


async def test_a_callback_rings_the_agent_first_then_dials_the_customer_and_they_talk(
    make_scene: Callable[..., Scene],
) -> None:
    scene = make_scene({"queues": [{**QUEUES[0], "max_wait_s": 0.2}, QUEUES[1]]})
    call = await scene.arrive()
    await _accept_callback(scene, call)
    assert call.state == CallState.CALLBACK and CALLER in scene.center.calls
    await login(scene, "1001")
    assert call.state == CallState.CALLBACK_RINGING
    agent_leg = scene.rung()[0]
    assert scene.center.legs[agent_leg].role == LegRole.CALLBACK_AGENT
    assert scene.rung("cb-") == []  # no customer is dialled before an agent is there
    await scene.answer(agent_leg, call)
    assert call.state == CallState.CALLBACK_DIALING
    customer = scene.rung("cb-")[0]
    await scene.answer(customer, call, kind="callback")
    assert call.state == CallState.CONNECTED
    await scene.ends(customer)
    record = await scene.record()
    assert (record["outcome"], record["hangup_by"]) == ("completed", "caller")
    assert [a["result"] for a in record["callback"]["attempts"]] == ["answered"]


async def test_a_customer_not_reached_is_tried_again_in_place_until_the_attempts_run_out(
    make_scene: Callable[..., Scene],
) -> None:
    acd = {"queues": [{**QUEUES[0], "max_wait_s": 0.2}, QUEUES[1]], "callback_attempts": 2}
    scene = make_scene({**acd, "callback_retry_s": 1})
    call = await scene.arrive()
    await _accept_callback(scene, call)
    await login(scene, "1001")
    for attempt, cause in enumerate((19, 17), start=1):
        await scene.until(lambda: call.state == CallState.CALLBACK_RINGING, "the agent's phone")
        await scene.answer(scene.rung()[-1], call)
        assert len(scene.rung("cb-")) == attempt
        await scene.ends(scene.rung("cb-")[-1], cause=cause)
        if attempt == 1:
            assert call.state == CallState.CALLBACK_WAIT
            assert scene.center.acd.state("1001") == "ready"  # not RONA: they did answer
    record = await scene.record()
    assert record["outcome"] == "callback-failed"
    assert [a["result"] for a in record["callback"]["attempts"]] == ["no-answer", "busy"]


# --- transfers -----------------------------------------------------------------------------
async def test_a_blind_transfer_hangs_up_the_agent_and_queues_the_caller_at_its_arrival(
    make_scene: Callable[..., Scene],
) -> None:
    scene = make_scene()
    call = await talking(scene)
    first_leg = call.agent_channel or ""
    await login(scene, "1002")
    record = await transfers.transfer(
        scene.center, call.id, queue="repair", agent=None, by="agent:1001"
    )
    assert record["state"] == "ringing" and record["queue"] == "repair"
    assert scene.requests("DELETE", f"/channels/{first_leg}") == 1
    assert scene.center.acd.router.call(call.id).arrival == call.arrived_at
    await scene.answer(scene.rung()[-1], call)
    assert (call.state, call.agent) == (CallState.CONNECTED, "1002")
    assert scene.requests("POST", f"/bridges/call-{CALLER}~1/addChannel") == 1  # a new id


async def test_an_agent_may_transfer_only_their_own_call(
    make_scene: Callable[..., Scene],
) -> None:
    scene = make_scene()
    call = await talking(scene)
    with pytest.raises(Exception) as refused:
        await transfers.transfer(scene.center, call.id, queue="repair", agent=None, by="agent:1002")
    assert getattr(refused.value, "slug", None) == "forbidden"
    assert call.state == CallState.CONNECTED


async def consult(
    scene: Scene, *, queue: str | None = None, agent: str | None = None
) -> tuple[Call, str]:
    """A talk with agent 1001, who consults `queue` or `agent`: the call and the
    transferring agent's leg."""
    call = await talking(scene)
    source = call.agent_channel or ""
    await login(scene, "1002")
    await transfers.transfer(
        scene.center, call.id, queue=queue, agent=agent, by="supervisor", attended=True
    )
    return call, source


async def test_an_attended_transfer_completes_when_the_transferring_agent_hangs_up(
    make_scene: Callable[..., Scene],
) -> None:
    scene = make_scene()
    call, source = await consult(scene, agent="1002")
    assert scene.center.legs[source].role == LegRole.CONSULT_SOURCE
    target = scene.rung()[-1]
    assert scene.center.legs[target].role == LegRole.CONSULT_TARGET
    await scene.answer(target, call)
    assert call.state == CallState.CONSULTING
    await scene.ends(source)  # the transferring agent hangs up: the caller joins the target
    assert (call.state, call.agent, call.consult) == (CallState.CONNECTED, "1002", None)
    await scene.ends(target)
    record = await scene.record()
    assert (record["outcome"], record["hangup_by"]) == ("completed", "agent")


async def test_a_consulted_agent_who_does_not_answer_sends_the_caller_back_to_its_queue(
    make_scene: Callable[..., Scene],
) -> None:
    scene = make_scene()
    call, source = await consult(scene, queue="repair")
    await scene.ends(scene.rung()[-1], cause=19)
    assert call.queue == "billing" and call.consult is None
    assert source not in scene.center.legs  # told the transfer failed, then hung up
    await scene.until(lambda: scene.requests("DELETE", f"/channels/{source}") == 1, "hang-up")


async def test_a_supervisor_moves_a_waiting_caller_to_another_queue_and_to_its_head(
    make_scene: Callable[..., Scene],
) -> None:
    scene = make_scene()
    first = await scene.arrive("caller-a")
    second = await scene.arrive("caller-b")
    await scene.until(lambda: second.state == CallState.WAITING, "both to wait")
    record = await transfers.move(scene.center, second.id, queue="repair", head=False, by="boss")
    assert (record["queue"], record["arrived_at"]) == ("repair", second.arrived_at)
    await transfers.move(scene.center, first.id, queue="repair", head=False, by="boss")
    router = scene.center.acd.router
    assert router.position(first.id) == 1  # it arrived first
    await transfers.move(scene.center, second.id, queue=None, head=True, by="boss")
    assert router.position(second.id) == 1 and router.position(first.id) == 2
    await login(scene, "1002")  # the repair agent takes the caller moved to the head
    assert (second.state, second.agent, first.state) == (
        CallState.RINGING,
        "1002",
        CallState.WAITING,
    )
    with pytest.raises(Exception) as refused:
        await transfers.move(scene.center, second.id, queue="billing", head=False, by="boss")
    assert getattr(refused.value, "slug", None) == "invalid-state"  # rung for: not moved


# --- monitoring -----------------------------------------------------------------------------
async def test_a_monitor_session_snoops_on_the_agent_survives_a_resync_and_ends_with_the_talk(
    make_scene: Callable[..., Scene],
) -> None:
    scene = make_scene()
    call = await talking(scene)
    agent_leg = call.agent_channel or ""
    session = await monitor.start(
        scene.center,
        call_id=None,
        agent="1001",
        mode=MonitorMode.LISTEN,
        phone="1002",
        by="supervisor",
    )
    sid = session["id"]
    leg, bridge = f"mon-{sid}", f"monitor-{sid}"
    assert leg in scene.ari.originated and session["call"] == call.id
    await scene.feed("StasisStart", leg, args=["monitor", sid])  # the supervisor answered
    assert scene.requests("POST", f"/channels/{agent_leg}/snoop") == 1
    snoop = scene.center.monitors[sid].pending_snoop or ""
    await scene.feed("StasisStart", snoop, args=["snoop", sid])
    assert scene.requests("POST", f"/bridges/{bridge}/addChannel") == 2  # leg, then snoop
    await monitor.switch(scene.center, sid, MonitorMode.BARGE, by="supervisor")
    assert scene.requests("POST", f"/channels/{agent_leg}/snoop") == 2  # a new one
    newer = scene.center.monitors[sid].pending_snoop or ""
    await scene.feed("StasisStart", newer, args=["snoop", sid])
    assert scene.requests("DELETE", f"/channels/{snoop}") == 1  # the old one, after
    # An ARI reconnect keeps the live session; a stray supervisor leg is hung up.
    up = [CALLER, agent_leg, leg, newer, "mon-stale"]
    scene.ari.channels = [{"id": channel, "state": "Up"} for channel in up]
    await recovery.resync(scene.center)
    assert scene.requests("DELETE", "/channels/mon-stale") == 1
    assert scene.requests("DELETE", f"/channels/{leg}") == 0 and sid in scene.center.monitors
    # The agent hangs up: Asterisk ends the snoop with it; the session ends, not the call.
    await scene.ends(agent_leg)
    await scene.ends(newer)
    assert scene.center.monitors == {} and scene.center.monitor_channels == {}
    assert scene.requests("DELETE", f"/channels/{leg}") == 1
    assert scene.requests("DELETE", f"/bridges/{bridge}") == 1
    assert (await scene.record())["outcome"] == "completed"


# --- the transition table --------------------------------------------------------------------
async def test_a_move_the_table_forbids_raises_when_strict_and_is_counted(
    make_scene: Callable[..., Scene],
) -> None:
    scene = make_scene()
    call = Call(id="x", caller="", dnis="", arrived_at=time.time())
    with pytest.raises(CallStateError):  # outside a transaction
        scene.center.move(call, CallState.WAITING)
    async with scene.center.transaction():
        scene.center.move(call, CallState.WAITING)
        with pytest.raises(CallStateError):  # waiting -> connected skips the ringing
            scene.center.move(call, CallState.CONNECTED)
    labels = {"from_state": "waiting", "to_state": "connected"}
    assert instruments.REGISTRY.get_sample_value("ccserver_call_state_errors_total", labels) == 1
