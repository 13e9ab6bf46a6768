"""Chasing work orders on the CallCenter the controller runs (scripted Asterisk, real Redis,
real history file): an overdue order reaches the desk of the agent who opened it (without
blanking the call on that desk), the wallboard's banner and the overdue counter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from ccserver.calls.board import Wallboard
from ccserver.calls.desk import DeskFeed
from ccserver.calls.work_orders import chase
from ccserver.desk_streams import RedisDeskStreams
from ccserver.history import History
from ccserver.metrics.instruments import REGISTRY
from ccserver.records.orders import OVERDUE, WARNING, Sla, SlaRule, WorkOrderBook
from tests.unit.test_call_features import Scene, login, make_scene

__all__ = ["make_scene"]  # the fixture, used by name

T0 = 1_800_000_000.0


@pytest.fixture
async def chased(
    make_scene: Callable[..., Scene], tmp_path: Path
) -> AsyncIterator[tuple[Scene, DeskFeed, WorkOrderBook]]:
    scene = make_scene()
    feed = DeskFeed(
        RedisDeskStreams(scene.store.redis),
        history=None,
        notices=None,
        history_days=30,
        queues={q.name: q for q in scene.center.config.acd.queues},
    )
    await feed.load(["1001", "1002"])
    scene.center.desk = feed
    scene.center.board = Wallboard(scene.center.config, None)
    writer = asyncio.create_task(feed.run(["1001", "1002"]))
    history = History(tmp_path / "history.sqlite")
    book = WorkOrderBook(history, Sla([SlaRule("fault", "dispatched", 600)]), warn_before_s=60)
    yield scene, feed, book
    writer.cancel()
    history.close()


async def test_an_overdue_order_reaches_its_agents_desk_and_the_wallboard(
    chased: tuple[Scene, DeskFeed, WorkOrderBook],
) -> None:
    scene, feed, book = chased
    await login(scene, "1001")
    call = await scene.arrive()
    await scene.until(lambda: bool(scene.rung()), "the agent's phone to ring")
    await scene.answer(scene.rung()[0], call)
    await asyncio.sleep(0.1)  # the desks' look, within 20 ms of the commit
    await scene.until(lambda: feed.pending() == 0, "the events written")
    assert feed._written["1001"]["view"]["call_state"] == "connected"
    mine = book.open("fault", who="agent:1001", agent="1001", call_id=call.id, now=T0)
    other = book.open("fault", who="ivr", now=T0 + 100)  # nobody's desk
    before = _overdue_total("fault")

    raised = await chase(scene.center, book, T0 + 650)  # mine overdue, the other due soon
    assert [(o.id, o.escalation) for o in raised] == [(mine.id, OVERDUE), (other.id, WARNING)]
    assert _overdue_total("fault") == before + 1
    assert scene.center.board is not None
    assert [(o["id"], o["escalation"]) for o in scene.center.board.orders] == [
        (mine.id, OVERDUE),
        (other.id, WARNING),
    ]
    await scene.until(lambda: feed.pending() == 0, "the events written")
    told = feed._written["1001"]
    assert told["type"] == "order.escalated" and told["order"]["id"] == mine.id
    assert told["call"]["id"] == call.id and told["view"]["call_state"] == "connected"
    assert "order.escalated" not in str(feed._written.get("1002"))

    assert await chase(scene.center, book, T0 + 660) == []  # nothing new to raise
    book.move(mine.id, "cancelled", who="sup")
    await chase(scene.center, book, T0 + 670)
    assert [o["id"] for o in scene.center.board.orders] == [other.id]  # only open ones


def _overdue_total(kind: str) -> float:
    value = REGISTRY.get_sample_value("ccserver_work_order_overdue_total", {"kind": kind})
    return value or 0.0
