"""The shipped 95598 flow, driven through every branch by a scripted caller, with real
prompts (espeak-ng + sox), a real billing backend over HTTP, real notices in Redis and
real work orders in a history file.

`ScriptedChannel` stands in for the controller's ARI channel: `keys` is what the caller
enters at each prompt in turn ("" is silence, "!3" presses 3 during the prompt); when the
script runs out the caller hangs up.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio import Redis

from ccserver.history import History
from ccserver.ivr import billing_demo
from ccserver.ivr.config import BusinessHours, IvrConfig
from ccserver.ivr.interpreter import (
    MAX_STEPS,
    CallerGone,
    FlowRecord,
    QueueRequest,
    QueueResult,
    run_flow,
)
from ccserver.ivr.loader import validate_dir, validate_file, warm_prompts
from ccserver.ivr.model import Flow, MenuNode
from ccserver.ivr.notices import NoticeBoard
from ccserver.prompts import Prompts
from ccserver.records.orders import FlowOrders, Sla, WorkOrderBook

ROOT = Path(__file__).resolve().parents[2]
QUEUES = {"general", "billing", "repair", "business", "complaints"}
CST = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2025, 7, 1, 10, 0, tzinfo=CST)  # a Tuesday, 10:00 in Beijing
CALLER = "13912345678"
COMMENT = "/var/spool/comment-1.wav"


@dataclass
class ScriptedChannel:
    keys: list[str]
    queue_outcome: str = "agent-hangup"
    call_id: str = "call-1"
    caller: str = CALLER
    dnis: str = "95598"
    played: list[str] = field(default_factory=list)
    queued: list[QueueRequest] = field(default_factory=list)
    transferred: list[str] = field(default_factory=list)
    hung_up: bool = False
    connecting_to: list[tuple[str, int]] = field(default_factory=list)
    served_at: list[str] = field(default_factory=list)
    callbacks: list[tuple[str | None, str]] = field(default_factory=list)
    fail_play: Exception | None = None
    gone_at_play: int | None = None
    """The caller hangs up while the n-th prompt (1-based) plays."""

    async def play(self, media: list[str], *, interruptible: bool) -> str:
        if self.fail_play is not None:
            raise self.fail_play
        if self.gone_at_play is not None:
            self.gone_at_play -= 1
            if self.gone_at_play == 0:
                raise CallerGone()
        self.played += media
        if interruptible and self.keys and self.keys[0].startswith("!"):
            return self.keys.pop(0)[1:]
        return ""

    async def read_digits(
        self,
        *,
        max_digits: int,
        timeout_s: float,
        inter_digit_s: float,
        terminator: str | None,
        first: str = "",
    ) -> str:
        if not self.keys:
            raise CallerGone()
        return first + self.keys.pop(0)

    def connecting(self, queue: str, priority: int) -> None:
        self.connecting_to.append((queue, priority))

    def self_served(self, node: str) -> None:
        self.served_at.append(node)

    async def queue(self, request: QueueRequest) -> QueueResult:
        self.queued.append(request)
        return QueueResult(self.queue_outcome, agent="1001")

    async def callback(self, queue: str | None, number: str) -> None:
        self.callbacks.append((queue, number))

    async def transfer(self, target: str) -> None:
        self.transferred.append(target)

    async def record(self, max_s: float) -> str | None:
        return COMMENT

    async def hangup(self) -> None:
        self.hung_up = True


@pytest.fixture(scope="session")
def flow(prompts: Prompts) -> Flow:
    flows, issues = validate_dir(ROOT / "ivr_flows", QUEUES)
    assert not issues
    warm_prompts(flows["95598"], prompts)  # once: later runs only hit the cache
    return flows["95598"]


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on a free port of 127.0.0.1; its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def billing_url() -> AsyncIterator[str]:
    async with serving(billing_demo.make_app()) as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def book(tmp_path: Path) -> Iterator[WorkOrderBook]:
    history = History(tmp_path / "history.sqlite")
    yield WorkOrderBook(history, Sla([]), warn_before_s=0)
    history.close()


class Call(Protocol):
    async def __call__(
        self,
        channel: ScriptedChannel,
        *,
        flow_: Flow | None = None,
        notices: NoticeBoard | None = None,
        **config: object,
    ) -> FlowRecord: ...


@pytest.fixture
def call(
    flow: Flow,
    prompts: Prompts,
    http: aiohttp.ClientSession,
    billing_url: str,
    redis: Redis,
    book: WorkOrderBook,
) -> Call:
    """`await call(channel, flow_=…, notices=…, **ivr_config)` runs a flow for one call
    (the 95598 flow, this test's Redis notices and work orders, the demo billing backend
    by default)."""

    async def run(
        channel: ScriptedChannel,
        *,
        flow_: Flow | None = None,
        notices: NoticeBoard | None = None,
        **config: object,
    ) -> FlowRecord:
        settings = IvrConfig.model_validate({"billing_url": billing_url, **config})
        record = await run_flow(
            flow_ or flow,
            channel,
            prompts=prompts,
            lookup_client=http,
            notices=notices or NoticeBoard(redis, prompts),
            config=settings,
            clock=lambda: NOW,
            orders=FlowOrders(book),
        )
        json.dumps(record.to_dict())  # the call record stores it as JSON
        return record

    return run


def heard(channel: ScriptedChannel, prompts: Prompts, text: str, language: str = "zh") -> int:
    """How many times the caller heard `text`."""
    return channel.played.count(prompts.sound(text, language))


def inputs(record: FlowRecord) -> list[tuple[str, str, str]]:
    return [(i["node"], i["input"], i["result"]) for i in record.inputs]


# --- main menu -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "queue", "priority"),
    [
        (["2", "0012345678", "1"], "repair", 10),
        (["3"], "business", 0),
        (["4"], "complaints", 0),
        (["0"], "general", 0),
    ],
)
async def test_main_menu_keys_reach_their_queues(
    call: Call, keys: list[str], queue: str, priority: int
) -> None:
    channel = ScriptedChannel(keys, queue_outcome="caller-hangup")
    record: FlowRecord = await call(channel)
    assert record.route[:3] == ["welcome", "order_check", "outage_check"]
    assert record.route[3] == "main_menu" and record.route[-1] == f"{queue}_queue"
    assert (record.queue, record.priority, record.outcome) == (queue, priority, "queued")
    assert record.queue_outcome == "caller-hangup" and not channel.hung_up
    (request,) = channel.queued
    assert (request.queue, request.priority, request.language) == (queue, priority, "zh")
    assert request.variables["caller"] == CALLER


async def test_nine_repeats_the_main_menu(call: Call, flow: Flow, prompts: Prompts) -> None:
    channel = ScriptedChannel(["9", "9", "4"], queue_outcome="caller-hangup")
    record: FlowRecord = await call(channel)
    assert record.route.count("main_menu") == 3
    menu = flow.nodes["main_menu"]
    assert isinstance(menu, MenuNode) and menu.prompt.text is not None
    assert heard(channel, prompts, menu.prompt.text) == 3
    assert record.queue == "complaints"


async def test_three_invalid_or_silent_entries_go_to_general(call: Call, prompts: Prompts) -> None:
    channel = ScriptedChannel(["7", "", "#"], queue_outcome="caller-hangup")
    record: FlowRecord = await call(channel)
    assert inputs(record) == [
        ("main_menu", "7", "invalid"),
        ("main_menu", "", "timeout"),
        ("main_menu", "#", "invalid"),
    ]
    assert record.queue == "general"
    assert heard(channel, prompts, "您的输入有误，请重新选择。") == 1  # not after the third
    assert heard(channel, prompts, "我们没有收到您的选择。") == 1


async def test_a_key_pressed_during_the_menu_prompt_chooses_at_once(
    call: Call,
) -> None:
    channel = ScriptedChannel(["!3"], queue_outcome="caller-hangup")
    record: FlowRecord = await call(channel)
    assert record.queue == "business" and inputs(record) == [("main_menu", "3", "ok")]


async def test_a_caller_hanging_up_in_the_menu_ends_the_flow(
    call: Call,
) -> None:
    channel = ScriptedChannel([])
    record: FlowRecord = await call(channel)
    assert record.outcome == "caller-hangup" and record.queue is None and not channel.queued
    assert record.self_service is None and channel.served_at == []  # an IVR abandon


async def test_a_caller_hanging_up_during_the_balance_was_not_served(call: Call) -> None:
    """The mark counts once its node has finished: a hang-up while the balance is read out
    is still an IVR abandon."""
    channel = ScriptedChannel(["1", "1000000001"], gone_at_play=4)  # welcome, menu, entry
    record: FlowRecord = await call(channel)
    assert record.route[-1] == "account_balance" and record.outcome == "caller-hangup"
    assert record.self_service is None and channel.served_at == []


async def test_a_caller_hanging_up_while_being_connected_had_asked_for_the_queue(
    call: Call,
) -> None:
    """Not self-service: the choice is recorded though the caller never reached the queue."""
    channel = ScriptedChannel(["!4"], gone_at_play=3)  # welcome, menu, "connecting you"
    record: FlowRecord = await call(channel)
    assert (record.outcome, record.queue, record.priority) == ("caller-hangup", "complaints", 0)
    assert record.queue_outcome is None and not channel.queued
    assert channel.connecting_to == [("complaints", 0)]


# --- 1: self-service -----------------------------------------------------------------------


async def test_self_service_says_the_balance_and_due_date_then_0_reaches_billing(
    call: Call, prompts: Prompts
) -> None:
    channel = ScriptedChannel(["1", "1000000001", "1", "0"], queue_outcome="caller-hangup")
    record: FlowRecord = await call(channel)
    assert record.route[3:] == [
        "main_menu",
        "account_entry",
        "account_lookup",
        "account_balance",
        "account_menu",
        "account_balance",
        "account_menu",
        "billing_queue",
    ]
    assert [lk["result"] for lk in record.lookups] == ["hit"]
    assert record.variables["balance"] == "123.45"
    assert record.variables["due_date"] == "2025-08-15"
    assert heard(channel, prompts, "一百二十三元四角五分") == 2
    assert heard(channel, prompts, "二零二五年八月十五日") == 2
    assert heard(channel, prompts, "您本期应缴电费") == 2
    assert channel.queued[0].variables["account"] == "1000000001"
    assert record.queue == "billing"
    # Served once, at the first read-out; asking for an agent later is the controller's
    # to weigh (FlowChannel.connecting), not the interpreter's.
    assert record.self_service == "account_balance" and channel.served_at == ["account_balance"]


async def test_an_unknown_account_gets_one_retry(call: Call) -> None:
    channel = ScriptedChannel(["1", "1234567890", "1000000003", "0"])
    record: FlowRecord = await call(channel)
    assert [lk["result"] for lk in record.lookups] == ["miss", "hit"]
    assert "account_unknown" in record.route and "account_retry" in record.route
    assert record.variables["balance"] == "1005.08"


async def test_a_second_unknown_account_goes_to_an_agent(call: Call) -> None:
    channel = ScriptedChannel(["1", "1234567890", "1234567891"], queue_outcome="caller-hangup")
    record: FlowRecord = await call(channel)
    assert [lk["result"] for lk in record.lookups] == ["miss", "miss"]
    assert record.route[-2:] == ["account_retry", "billing_queue"]
    assert record.queue == "billing"


async def test_account_numbers_of_the_wrong_length_are_asked_again(
    call: Call, prompts: Prompts
) -> None:
    channel = ScriptedChannel(["1", "12345", "", "99"], queue_outcome="caller-hangup")
    record: FlowRecord = await call(channel)
    assert inputs(record)[1:] == [
        ("account_entry", "12345", "invalid"),
        ("account_entry", "", "timeout"),
        ("account_entry", "99", "invalid"),
    ]
    assert heard(channel, prompts, "户号应为10位数字，请重新输入。") == 2
    assert record.queue == "billing" and record.lookups == []


async def test_a_lookup_timeout_falls_back_to_an_agent(call: Call, prompts: Prompts) -> None:
    async with serving(billing_demo.make_app(delay_s=1.0)) as slow_url:
        channel = ScriptedChannel(["1", "1000000001"], queue_outcome="caller-hangup")
        record: FlowRecord = await call(channel, billing_url=slow_url, lookup_timeout_s=0.2)
    (lookup,) = record.lookups
    assert (lookup["result"], lookup["detail"]) == ("error", "no answer within 0.2 s")
    assert lookup["ms"] < 1500
    assert heard(channel, prompts, "系统繁忙，暂时无法查询，正在为您转接人工服务。") == 1
    assert record.route[-2:] == ["lookup_failed", "billing_queue"]


async def test_a_billing_backend_that_is_down_falls_back_to_an_agent(
    call: Call,
) -> None:
    async with serving(billing_demo.make_app()) as gone_url:
        pass  # the port is closed again: connections are refused
    channel = ScriptedChannel(["1", "1000000001"], queue_outcome="caller-hangup")
    record: FlowRecord = await call(channel, billing_url=gone_url)
    assert record.lookups[0]["result"] == "error"
    assert record.queue == "billing"


# --- outage notices ------------------------------------------------------------------------


async def post_notice(redis: Redis, prompts: Prompts, scope: object = "all") -> NoticeBoard:
    board = NoticeBoard(redis, prompts)
    body = {"text": "城南片区线路故障，正在抢修。", "scope": scope}
    await board.add({**body, "ends_at": (NOW + dt.timedelta(hours=2)).isoformat()}, now=NOW)
    return board


@pytest.mark.parametrize(
    ("keys", "queue", "notice_heard"),
    [
        (["1", "2", "", "9"], "repair", 2),  # 1 repeats the notice, 2 reports a fault
        (["0"], "general", 1),
        (["", "4"], "complaints", 1),  # silence goes on to the main menu
    ],
)
async def test_an_active_notice_is_played_with_its_own_menu(
    call: Call,
    redis: Redis,
    prompts: Prompts,
    keys: list[str],
    queue: str,
    notice_heard: int,
) -> None:
    board = await post_notice(redis, prompts)
    channel = ScriptedChannel(keys, queue_outcome="caller-hangup")
    record: FlowRecord = await call(channel, notices=board)
    assert record.route[:5] == [
        "welcome",
        "order_check",
        "outage_check",
        "outage_notice",
        "outage_menu",
    ]
    assert heard(channel, prompts, "城南片区线路故障，正在抢修。") == notice_heard
    assert len(record.notices) == 1
    assert record.queue == queue
    assert record.priority == (10 if queue == "repair" else 0)


async def test_a_notice_for_other_numbers_is_not_played(
    call: Call, redis: Redis, prompts: Prompts
) -> None:
    board = await post_notice(redis, prompts, scope=["0755"])
    channel = ScriptedChannel(["4"], queue_outcome="caller-hangup")
    record: FlowRecord = await call(channel, notices=board)
    assert record.route == [
        "welcome",
        "order_check",
        "outage_check",
        "main_menu",
        "complaints_queue",
    ]
    assert record.notices == []


# --- survey --------------------------------------------------------------------------------


async def test_the_survey_follows_when_the_agent_hangs_up_first(
    call: Call, prompts: Prompts
) -> None:
    channel = ScriptedChannel(["0", "8", "4"])
    record: FlowRecord = await call(channel)
    assert record.route[-2:] == ["general_queue", "survey"]
    assert (record.queue_outcome, record.agent) == ("agent-hangup", "1001")
    assert inputs(record)[1:] == [("survey", "8", "invalid"), ("survey", "4", "ok")]
    assert (record.survey_score, record.survey_comment) == (4, COMMENT)
    assert heard(channel, prompts, "感谢您的评价，再见。") == 1
    assert channel.hung_up and record.outcome == "queued"


async def test_a_survey_without_an_answer_records_no_comment(
    call: Call,
) -> None:
    channel = ScriptedChannel(["0", "", ""])
    record: FlowRecord = await call(channel)
    assert (record.survey_score, record.survey_comment) == (None, None)
    assert channel.hung_up


async def test_the_survey_can_be_switched_off(call: Call) -> None:
    channel = ScriptedChannel(["0"])
    record: FlowRecord = await call(channel, survey=False)
    assert record.survey_score is None and channel.hung_up
    assert inputs(record) == [("main_menu", "0", "ok")]


# --- the language's other nodes, and faults --------------------------------------------------

OTHER = """\
flow: other
numbers: ["200"]
start: lang
nodes:
  lang:
    kind: set
    language: en
    queue: business
    priority: 5
    vars: {tier: "gold-{dnis}"}
    next: hours
  hours:
    kind: branch
    cases:
      - when: {holiday: true}
        goto: closed
      - when: {business_hours: true, var: tier, prefix: gold}
        goto: count
    otherwise: closed
  count:
    kind: say
    text: 您排在第{dnis:number}位
    text_en: "You are number {dnis:number}, account {dnis:digits}."
    next: offer
  offer:
    kind: callback_offer
    prompt: {text: 回电请按1, text_en: For a call back press 1}
    queue: general
    confirm_prompt: {text: 我们会回电, text_en: We will call you back}
    next: agent
  agent:
    kind: queue
    prompt: {file: hold.wav}
  closed:
    kind: transfer
    target: PJSIP/2000
"""


@pytest.fixture
def other(tmp_path: Path) -> Flow:
    (tmp_path / "other.yaml").write_text(OTHER, encoding="utf-8")
    (tmp_path / "hold.wav").write_bytes(b"RIFF")
    found, issues = validate_file(tmp_path / "other.yaml", QUEUES)
    assert not issues and found is not None
    return found


async def test_set_language_queue_and_priority_carry_to_the_queue_in_english(
    call: Call, other: Flow, prompts: Prompts
) -> None:
    channel = ScriptedChannel(["2"], dnis="12", queue_outcome="caller-hangup")
    record: FlowRecord = await call(channel, flow_=other)
    assert record.route == ["lang", "hours", "count", "offer", "agent"]
    assert heard(channel, prompts, "twelve", "en") == 1
    assert heard(channel, prompts, "one two", "en") == 1
    assert heard(channel, prompts, "For a call back press 1", "en") == 1
    assert f"sound:{other.base_dir / 'hold'}" in channel.played  # a file prompt
    (request,) = channel.queued
    assert (request.queue, request.priority, request.language) == ("business", 5, "en")
    assert request.variables["tier"] == "gold-12"


async def test_a_callback_request_ends_the_call(call: Call, other: Flow) -> None:
    channel = ScriptedChannel(["1"])
    record: FlowRecord = await call(channel, flow_=other)
    assert record.outcome == "callback" and channel.hung_up and not channel.queued
    assert record.callback == {"queue": "general", "number": CALLER}
    assert channel.callbacks == [("general", CALLER)]


async def test_a_caller_hanging_up_in_the_callback_confirmation_is_still_called_back(
    call: Call, other: Flow
) -> None:
    channel = ScriptedChannel(["1"], gone_at_play=3)  # the count, the offer, the confirmation
    record: FlowRecord = await call(channel, flow_=other)
    assert channel.callbacks == [("general", CALLER)] and not channel.hung_up
    assert record.outcome == "callback" and record.route[-1] == "offer"


@pytest.mark.parametrize(
    "config",
    [
        {"holidays": ["2025-07-01"]},
        {"business_hours": [BusinessHours(days=[1, 2, 3, 4, 5], start="11:00", end="18:00")]},
    ],
)
async def test_holidays_and_closed_hours_branch_to_a_transfer(
    call: Call, other: Flow, config: dict[str, Any]
) -> None:
    channel = ScriptedChannel([])
    record: FlowRecord = await call(channel, flow_=other, **config)
    assert record.route == ["lang", "hours", "closed"]
    assert (record.outcome, record.transfer_to) == ("transferred", "PJSIP/2000")
    assert channel.transferred == ["PJSIP/2000"]


async def test_a_fault_in_the_ivr_sends_the_caller_to_a_person(
    call: Call,
) -> None:
    channel = ScriptedChannel(["2"], fail_play=ValueError("media gone"))
    record: FlowRecord = await call(channel)
    assert record.error == "ValueError: media gone"
    assert (record.queue, record.outcome) == ("general", "queued")


async def test_a_runaway_loop_is_cut_and_the_caller_queued(call: Call) -> None:
    channel = ScriptedChannel(["9"] * (MAX_STEPS + 10), queue_outcome="caller-hangup")
    record: FlowRecord = await call(channel)
    assert len(record.route) == MAX_STEPS
    assert record.error is not None and "loops" in record.error
    assert record.queue == "general"


# --- work orders ---------------------------------------------------------------------------


async def test_a_fault_report_opens_an_order_and_reads_its_number_back(
    call: Call, book: WorkOrderBook, prompts: Prompts
) -> None:
    channel = ScriptedChannel(["2", "0012345678", "3"], queue_outcome="caller-hangup")
    record: FlowRecord = await call(channel)
    assert record.route[4:] == [
        "repair_account",
        "repair_kind",
        "fault_danger",
        "repair_order",
        "repair_order_said",
        "repair_queue",
    ]
    [order] = book.find()
    assert (order.kind, order.account, order.caller) == ("fault", "0012345678", CALLER)
    assert order.calls == ("call-1",) and order.description == "安全隐患"
    assert (order.created_by, record.variables["order"]) == ("ivr", str(order.id))
    assert heard(channel, prompts, "您的报修已受理，工单号") == 1
    assert heard(channel, prompts, "幺") == 1  # the number, digit by digit: order 1
    (request,) = channel.queued
    assert request.variables["order"] == "1"  # the agent's screen pop shows it


async def test_without_an_account_or_a_kind_the_order_is_opened_all_the_same(
    call: Call, book: WorkOrderBook
) -> None:
    channel = ScriptedChannel(["2", "", ""], queue_outcome="caller-hangup")
    record: FlowRecord = await call(channel)
    assert "fault_other" in record.route and record.queue == "repair"
    [order] = book.find()
    assert (order.account, order.description) == (None, "其他故障")


async def test_a_caller_with_an_open_order_hears_how_it_stands_before_the_menu(
    call: Call, book: WorkOrderBook, prompts: Prompts
) -> None:
    order = book.open("fault", who="ivr", caller=CALLER)
    book.move(order.id, "dispatched", who="sup", team="crew-1")
    book.move(order.id, "on-site", who="crew-1")
    channel = ScriptedChannel(["4"], queue_outcome="caller-hangup")
    record: FlowRecord = await call(channel)
    assert record.route[:3] == ["welcome", "order_check", "order_said"]
    assert heard(channel, prompts, "抢修人员已到达现场") == 1
    assert record.queue == "complaints"
    assert record.variables["order_kind"] == "故障报修"
    book.move(order.id, "resolved", who="crew-1")
    book.move(order.id, "closed", who="sup")
    closed: FlowRecord = await call(ScriptedChannel(["4"], queue_outcome="caller-hangup"))
    assert "order_said" not in closed.route  # only open orders are told


async def test_an_order_store_that_fails_sends_the_caller_on_to_an_agent(
    call: Call, book: WorkOrderBook
) -> None:
    book.history.close()  # every read and write of the store now raises
    channel = ScriptedChannel(["2", "0012345678", "1"], queue_outcome="caller-hangup")
    record: FlowRecord = await call(channel)
    assert "order_said" not in record.route  # the status check counts as "no order"
    assert record.route[-2:] == ["repair_order", "repair_queue"]  # on_error: an agent
    assert record.queue == "repair" and "order" not in record.variables
