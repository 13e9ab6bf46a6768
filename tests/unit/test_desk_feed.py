"""The desks' event feed (`ccserver.calls.desk`): which events a change of an agent's view
makes, and the feed itself on the CallCenter the controller runs (scripted Asterisk, real
Redis): events numbered per agent with no gap, kept in Redis, replayed after a reconnect and
numbered on by a restarted feed."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ccserver.calls.desk import DeskFeed, DeskView, changes, why_this_agent
from ccserver.desk_streams import RedisDeskStreams
from ccserver.history import History
from ccserver.ivr.notices import NoticeBoard
from ccserver.prompts import Prompts
from ccserver.records.knowledge import ArticleText
from tests.records import records_of
from tests.unit.test_call_features import Scene, login, make_scene

__all__ = ["make_scene"]  # the fixture, used by name

LOOK_S = 0.1
IDLE = DeskView(state="ready", phone="1001")
RINGING = DeskView(state="reserved", phone="1001", call="c1", call_state="ringing", last_call="c1")
TALKING = DeskView(state="busy", phone="1001", call="c1", call_state="connected", last_call="c1")
WRAP = DeskView(state="wrap-up", phone="1001", wrap_until=100.0, last_call="c1")


@pytest.mark.parametrize(
    ("old", "new", "gone", "expected"),
    [
        (IDLE, RINGING, None, ["call.offered", "agent.state"]),
        (RINGING, TALKING, None, ["call.connected", "agent.state"]),
        (TALKING, DeskView(**{**TALKING.to_dict(), "held": True}), None, ["call.held"]),
        (TALKING, WRAP, "ended", ["call.ended", "agent.state", "wrapup.started"]),
        (TALKING, WRAP, "waiting", ["call.transferred", "agent.state", "wrapup.started"]),
        (RINGING, IDLE, "waiting", ["call.withdrawn", "agent.state"]),
        (WRAP, DeskView(**{**WRAP.to_dict(), "wrap_until": 130.0}), None, ["wrapup.extended"]),
        (WRAP, IDLE, None, ["agent.state", "wrapup.ended"]),
        (IDLE, IDLE, None, []),
    ],
)
def test_each_change_of_view_makes_its_events(
    old: DeskView, new: DeskView, gone: str | None, expected: list[str]
) -> None:
    assert changes(old, new, gone) == expected


def test_why_this_agent_names_the_skill_group_the_agent_matched() -> None:
    decision = {"strategy": "longest-idle", "step": 1, "group": 1, "level": 7, "waited_s": 61.2}
    groups = [{"billing": 1}, {"general": 1, "billing": 1}]
    assert why_this_agent(decision, groups) == (
        "longest-idle: billing, general at level 7, widened at step 1; caller waited 61 s"
    )
    assert why_this_agent(None, groups) is None


@pytest.fixture
async def desk_scene(make_scene: Callable[..., Scene]) -> AsyncIterator[tuple[Scene, DeskFeed]]:
    scene = make_scene()
    feed = _feed(scene)
    await feed.load(["1001", "1002"])
    scene.center.desk = feed
    writer = asyncio.create_task(feed.run(["1001", "1002"]))
    yield scene, feed
    writer.cancel()


def _feed(scene: Scene) -> DeskFeed:
    return DeskFeed(
        RedisDeskStreams(scene.store.redis),
        history=None,
        notices=None,
        history_days=30,
        queues={q.name: q for q in scene.center.config.acd.queues},
    )


async def _events(feed: DeskFeed, agent: str, after: int | None) -> list[Any]:
    """What a desk resuming after `after` gets at once: the snapshot, then the backlog."""
    stream = feed.stream(agent, after)
    snapshot = await anext(stream)
    backlog = 0 if after is None or snapshot["reset"] else snapshot["seq"] - after
    got = [snapshot, *[await anext(stream) for _ in range(backlog)]]
    await stream.aclose()
    return got


async def test_a_call_makes_numbered_events_kept_in_redis(
    desk_scene: tuple[Scene, DeskFeed],
) -> None:
    scene, feed = desk_scene
    # Each step waits for the desks' look (within 20 ms of a commit): the changes made
    # between two looks make one change of view.
    await login(scene, "1001")
    await asyncio.sleep(LOOK_S)
    call = await scene.arrive()
    await scene.until(lambda: bool(scene.rung()), "the agent's phone to ring")
    await asyncio.sleep(LOOK_S)
    await scene.answer(scene.rung()[0], call)
    await asyncio.sleep(LOOK_S)
    await scene.ends(call.id)
    await asyncio.sleep(LOOK_S)
    await scene.until(lambda: feed.pending() == 0, "the events written")
    snapshot, *events = await _events(feed, "1001", 0)
    assert snapshot["type"] == "snapshot" and snapshot["seq"] == len(events)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    kinds = [e["type"] for e in events]
    assert kinds == [
        "agent.state",
        "call.offered",
        "agent.state",
        "call.connected",
        "agent.state",
        "call.ended",
        "agent.state",
    ], kinds
    offered = events[kinds.index("call.offered")]
    assert offered["call"]["caller"] == "13800000001" and offered["call"]["queue"] == "billing"
    assert offered["call"]["pop"] == {"contacts": [], "notices": [], "orders": [], "articles": []}
    assert offered["call"]["why"].startswith("longest-idle: billing at level 5")
    assert offered["call"]["dispositions"][0] == "bill-enquiry"
    stored = await scene.store.redis.xlen("ccserver:desk:1001")
    assert stored == len(events)

    # A restarted controller's feed numbers on, and tells a desk that went away only what
    # it missed.
    again = _feed(scene)
    await again.load(["1001"])
    assert again._seq["1001"] == len(events)
    replay = await _events(again, "1001", len(events) - 2)
    assert [e.get("seq") for e in replay] == [len(events), len(events) - 1, len(events)]
    assert replay[0]["type"] == "snapshot"


async def test_a_desk_ahead_of_the_server_is_told_to_reset(
    desk_scene: tuple[Scene, DeskFeed],
) -> None:
    _, feed = desk_scene
    (snapshot,) = await _events(feed, "1002", 99)
    assert snapshot["reset"] is True and snapshot["seq"] == 0


async def test_the_pop_lists_the_notices_that_reach_the_caller(
    make_scene: Callable[..., Scene], prompts: Prompts
) -> None:
    scene = make_scene()
    board = NoticeBoard(scene.store.redis, prompts)
    ends = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    await board.add({"text": "城南片区停电抢修。", "scope": ["138"], "ends_at": ends})
    await board.add({"text": "城北计划检修。", "scope": ["139"], "ends_at": ends})
    feed = DeskFeed(
        RedisDeskStreams(scene.store.redis),
        history=None,
        notices=board,
        history_days=30,
        queues={},
    )
    pop = await feed.pop({"id": "c1", "caller": "13800000001"})
    assert [n["text"] for n in pop["notices"]] == ["城南片区停电抢修。"]
    assert pop["contacts"] == []


async def test_the_pop_lists_the_callers_open_orders_and_suggests_articles(
    make_scene: Callable[..., Scene], tmp_path: Path
) -> None:
    scene = make_scene()
    history = History(tmp_path / "history.sqlite")
    records = records_of(history)
    book = records.orders
    try:
        fault = records.knowledge.add(ArticleText("报修受理", "…", ("repair_order",)), who="s")
        records.knowledge.add(ArticleText("电费", "…", ("billing",)), who="s")
        mine = book.open("fault", who="ivr", caller="13800000001")
        done = book.open("enquiry", who="ivr", caller="13800000001")
        book.move(done.id, "cancelled", who="sup")
        book.open("fault", who="ivr", caller="13900000000")  # someone else's
        feed = DeskFeed(
            RedisDeskStreams(scene.store.redis),
            history=history,
            notices=None,
            history_days=30,
            queues={},
            records=records,
        )
        context = {"id": "c1", "caller": "13800000001", "queue": "repair"}
        pop = await feed.pop({**context, "ivr": {"path": ["main_menu", "repair_order"]}})
        assert [(o["id"], o["state"]) for o in pop["orders"]] == [(mine.id, "new")]
        assert pop["articles"] == [{"id": fault.id, "title": "报修受理", "tags": ["repair_order"]}]
    finally:
        history.close()
