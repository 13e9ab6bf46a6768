"""Run a flow for one call: node after node against a `FlowChannel`, recording the route.

The interpreter knows nothing about ARI: the controller gives it a channel object that
plays media, reads DTMF, queues, transfers, records and hangs up (`FlowChannel`), so flows
are tested with a scripted channel and run live over ARI with the same code.

A caller must never be dropped by the IVR's own faults. A lookup that fails, or a work
order that cannot be opened, takes the node's `on_error` branch; a prompt that cannot be
generated is skipped (logged); a notice board or order store that cannot be read counts as
"nothing to tell"; and a bug or a runaway loop (more than `MAX_STEPS` nodes) sends the
caller to the default queue — a person — with the error in the flow record. Only the
caller hanging up (`CallerGone`) stops a flow early.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections import Counter
from collections.abc import Callable

import aiohttp

from ccserver.errors import CCServerError
from ccserver.ivr import lookup, say
from ccserver.ivr.channel import (
    CallerGone,
    FlowChannel,
    FlowRecord,
    NoticeSource,
    OrderDesk,
    QueueRequest,
    QueueResult,
)
from ccserver.ivr.config import IvrConfig
from ccserver.ivr.model import (
    BranchNode,
    CallbackOfferNode,
    CollectNode,
    Condition,
    Flow,
    HangupNode,
    LookupNode,
    MenuNode,
    Node,
    OrderNode,
    OrderStatusNode,
    PlayNode,
    Prompt,
    QueueNode,
    SayNode,
    SetNode,
    SurveyNode,
    TransferNode,
)
from ccserver.ivr.notices import Notice
from ccserver.logs import log
from ccserver.prompts import Prompts

__all__ = [
    "CallerGone",
    "FlowChannel",
    "FlowRecord",
    "NoticeSource",
    "OrderDesk",
    "QueueRequest",
    "QueueResult",
    "Session",
    "run_flow",
]

logger = logging.getLogger("ccserver.ivr")

MAX_STEPS = 200
"""Node visits in one call before the flow is taken for a runaway loop."""
ORDER_STATES = {
    "zh": {
        "new": "已受理，正在安排处理",
        "dispatched": "已派发，抢修人员正在赶往现场",
        "on-site": "抢修人员已到达现场",
        "resolved": "已处理完毕，我们将回访您",
    },
    "en": {
        "new": "has been received and is being arranged",
        "dispatched": "has been dispatched, and a crew is on the way",
        "on-site": "has a crew on site",
        "resolved": "has been resolved; we will call you back",
    },
}
"""What `order_state` says of an open order, by language and state."""
ORDER_KINDS = {
    "zh": {"fault": "故障报修", "complaint": "投诉", "business": "业务办理", "enquiry": "咨询"},
    "en": {
        "fault": "fault",
        "complaint": "complaint",
        "business": "business",
        "enquiry": "enquiry",
    },
}


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Session:
    """One call's run through a flow. Use `run_flow`; the class holds the call's state
    (variables, language, chosen queue, per-node failure and visit counts)."""

    def __init__(
        self,
        flow: Flow,
        channel: FlowChannel,
        *,
        prompts: Prompts,
        lookup_client: aiohttp.ClientSession,
        notices: NoticeSource | None,
        config: IvrConfig,
        clock: Callable[[], dt.datetime] = _utc_now,
        default_queue: str = "general",
        orders: OrderDesk | None = None,
    ) -> None:
        self.flow, self.channel, self.prompts = flow, channel, prompts
        self.http, self.notices, self.config, self.clock = lookup_client, notices, config, clock
        self.orders = orders
        self.default_queue = default_queue
        self.language: str = flow.language
        self.variables = {
            "caller": channel.caller,
            "dnis": channel.dnis,
            "call_id": channel.call_id,
        }
        self.queue: str | None = None
        self.priority: int | None = None
        self.failures: Counter[str] = Counter()
        self.visits: Counter[str] = Counter()
        self.typed_ahead = ""
        self.record = FlowRecord(
            flow=flow.flow,
            call_id=channel.call_id,
            caller=channel.caller,
            dnis=channel.dnis,
            started_at=clock().isoformat(),
            language=flow.language,
        )

    async def run(self) -> FlowRecord:
        call = self.channel.call_id
        log(logger, "ivr.started", call=call, flow=self.flow.flow, dnis=self.channel.dnis)
        try:
            await self._walk(self.flow.start)
        except CallerGone:
            if self.record.outcome == "running":
                self.record.outcome = "caller-hangup"
        except Exception as exc:  # the caller must reach a person even when the IVR fails
            logger.exception("ivr.failed", extra={"fields": {"call": call, "error": repr(exc)}})
            self.record.error = f"{type(exc).__name__}: {exc}"[:300]
            await self._rescue()
        self.record.ended_at = self.clock().isoformat()
        self.record.language = self.language
        self.record.variables = dict(self.variables)
        log(
            logger,
            "ivr.ended",
            call=call,
            outcome=self.record.outcome,
            queue=self.record.queue or "-",
            steps=len(self.record.route),
        )
        return self.record

    async def _walk(self, node_id: str | None) -> None:
        while node_id is not None:
            if len(self.record.route) >= MAX_STEPS:
                raise RuntimeError(f"more than {MAX_STEPS} steps: the flow loops")
            self.record.route.append(node_id)
            self.visits[node_id] += 1
            node = self.flow.nodes[node_id]
            log(logger, "ivr.node", logging.DEBUG, call=self.channel.call_id, node=node_id)
            next_id = await self._step(node_id, node)
            if node.self_service and self.record.self_service is None:
                self.record.self_service = node_id
                self.channel.self_served(node_id)
            node_id = next_id

    async def _step(self, node_id: str, node: Node) -> str | None:
        """Run one node; the next node's id, or None when the flow is over."""
        match node:
            case PlayNode():
                return await self._play_node(node)
            case MenuNode():
                return await self._menu(node_id, node)
            case CollectNode():
                return await self._collect(node_id, node)
            case LookupNode():
                return await self._lookup(node_id, node)
            case SayNode():
                return await self._say(node)
            case SetNode():
                return self._set(node)
            case BranchNode():
                return await self._branch(node)
            case QueueNode():
                return await self._queue_node(node)
            case CallbackOfferNode():
                return await self._callback_offer(node_id, node)
            case TransferNode():
                await self._play(await self._media(node.prompt))
                self.record.outcome, self.record.transfer_to = "transferred", node.target
                await self.channel.transfer(node.target)
                return None
            case SurveyNode():
                await self._survey(node_id, node)
                return None
            case HangupNode():
                await self._play(await self._media(node.prompt))
                await self._hangup()
                return None
            case OrderNode():
                return await self._order(node_id, node)
            case OrderStatusNode():
                return await self._order_status(node)

    async def _rescue(self) -> None:
        """After an IVR fault: to the default queue if the caller was not queued yet."""
        try:
            if self.record.outcome == "running":
                await self._enqueue(self.default_queue, self.priority or 0)
            else:
                await self.channel.hangup()
        except CallerGone:
            if self.record.outcome == "running":
                self.record.outcome = "caller-hangup"
        except Exception as exc:  # nothing more can be done for this call; say so
            log(
                logger,
                "ivr.rescue-failed",
                logging.ERROR,
                call=self.channel.call_id,
                error=repr(exc),
            )
            if self.record.outcome == "running":
                self.record.outcome = "failed"

    # --- media ---------------------------------------------------------------------------

    async def _sound(self, text: str, language: str) -> list[str]:
        """The media URI speaking `text`, or nothing (logged) if it cannot be generated."""
        if not any(ch.isalnum() for ch in text):
            return []  # punctuation alone between two values: nothing to say
        try:
            return [await asyncio.to_thread(self.prompts.sound, text, language)]
        except (CCServerError, OSError) as exc:
            log(
                logger,
                "ivr.prompt-failed",
                logging.WARNING,
                call=self.channel.call_id,
                error=str(exc),
            )
            return []

    async def _media(self, prompt: Prompt | None) -> list[str]:
        """A prompt in the session's language (Mandarin when it has no English text)."""
        if prompt is None:
            return []
        if prompt.file is not None:
            path = (self.flow.base_dir / prompt.file).resolve()
            if not path.is_file():
                log(
                    logger,
                    "ivr.prompt-missing",
                    logging.WARNING,
                    call=self.channel.call_id,
                    file=str(path),
                )
                return []
            return ["sound:" + str(path.with_suffix(""))]
        if self.language == "en" and prompt.text_en:
            return await self._sound(prompt.text_en, "en")
        return await self._sound(prompt.text or "", "zh")

    async def _play(self, media: list[str], interruptible: bool = False) -> str:
        return await self.channel.play(media, interruptible=interruptible) if media else ""

    def _take_typed_ahead(self) -> str:
        digit, self.typed_ahead = self.typed_ahead, ""
        return digit

    def _input(self, node_id: str, entered: str, result: str) -> None:
        self.record.inputs.append({"node": node_id, "input": entered, "result": result})

    async def _one_key(self, prompt: Prompt, timeout_s: float) -> str:
        """A single key: typed ahead, pressed during the prompt, or after it ("" if none)."""
        digit = self._take_typed_ahead() or await self._play(await self._media(prompt), True)
        if digit:
            return digit
        return await self.channel.read_digits(
            max_digits=1, timeout_s=timeout_s, inter_digit_s=timeout_s, terminator=None
        )

    # --- nodes ---------------------------------------------------------------------------

    async def _play_node(self, node: PlayNode) -> str:
        if node.notice:
            media: list[str] = []
            for notice in await self._active_notices():
                if self.language == "en" and notice.text_en:
                    media += await self._sound(notice.text_en, "en")
                else:
                    media += await self._sound(notice.text, "zh")
                if notice.id not in self.record.notices:
                    self.record.notices.append(notice.id)
        else:
            media = await self._media(node.prompt)
        digit = await self._play(media, node.interruptible)
        self.typed_ahead = digit if node.interruptible else ""
        return node.next

    async def _menu(self, node_id: str, node: MenuNode) -> str:
        while True:
            digit = await self._one_key(node.prompt, node.timeout_s)
            if digit in node.options:
                self._input(node_id, digit, "ok")
                return node.options[digit]
            self._input(node_id, digit, "invalid" if digit else "timeout")
            self.failures[node_id] += 1
            if self.failures[node_id] >= node.tries:
                return node.on_fail
            retry = node.invalid_prompt if digit else node.timeout_prompt or node.invalid_prompt
            self.typed_ahead = await self._play(await self._media(retry), True)

    async def _collect(self, node_id: str, node: CollectNode) -> str:
        while True:
            first = self._take_typed_ahead() or await self._play(
                await self._media(node.prompt), True
            )
            if first == node.terminator:
                entered = ""
            else:
                entered = await self.channel.read_digits(
                    max_digits=node.max_digits,
                    timeout_s=node.timeout_s,
                    inter_digit_s=node.inter_digit_s,
                    terminator=node.terminator,
                    first=first,
                )
            if self._valid(node, entered):
                self._input(node_id, entered, "ok")
                self.variables[node.into] = entered
                return node.next
            self._input(node_id, entered, "invalid" if entered else "timeout")
            self.failures[node_id] += 1
            if self.failures[node_id] >= node.tries:
                return node.on_fail
            self.typed_ahead = await self._play(await self._media(node.invalid_prompt), True)

    @staticmethod
    def _valid(node: CollectNode, entered: str) -> bool:
        if not node.min_digits <= len(entered) <= node.max_digits:
            return False
        if any(c not in "0123456789*#" for c in entered):
            return False
        return node.pattern is None or re.fullmatch(node.pattern, entered) is not None

    async def _lookup(self, node_id: str, node: LookupNode) -> str:
        url = lookup.fill_url(node.url, self.variables, {"billing_url": self.config.billing_url})
        timeout_s = node.timeout_s or self.config.lookup_timeout_s
        found = await lookup.fetch(self.http, url, node.results, timeout_s)
        entry = {"node": node_id, "result": found.result, "detail": found.detail, "ms": found.ms}
        self.record.lookups.append(entry)
        level = logging.WARNING if found.result == "error" else logging.INFO
        log(logger, "ivr.lookup", level, call=self.channel.call_id, **entry)
        if found.result == "hit":
            self.variables.update(found.values)
            return node.next
        return node.on_miss if found.result == "miss" else node.on_error

    async def _say(self, node: SayNode) -> str:
        english = self.language == "en" and node.text_en is not None
        text, language = (node.text_en or "", "en") if english else (node.text, "zh")
        media: list[str] = []
        for seg in say.parse_template(text):
            try:
                words = say.fill([seg], self.variables, language)[0]
            except say.SayError as exc:
                log(
                    logger,
                    "ivr.say-failed",
                    logging.WARNING,
                    call=self.channel.call_id,
                    error=str(exc),
                )
                continue
            media += await self._sound(words, language)
        await self._play(media)
        return node.next

    async def _order(self, node_id: str, node: OrderNode) -> str:
        details = [self.variables[v] for v in node.details if self.variables.get(v)]
        try:
            if self.orders is None:
                raise CCServerError("this controller keeps no work orders", slug="no-orders")
            number = await self.orders.open_order(
                node.order_kind,
                caller=self.channel.caller,
                call_id=self.channel.call_id,
                account=self.variables.get(node.account) if node.account else None,
                area=self.variables.get(node.area) if node.area else None,
                description="; ".join(details),
            )
        except Exception as exc:  # the caller goes on (to on_error): never dropped for it
            log(
                logger,
                "ivr.order-failed",
                logging.WARNING,
                call=self.channel.call_id,
                node=node_id,
                error=repr(exc)[:200],
            )
            return node.on_error
        self.variables[node.into] = str(number)
        log(logger, "ivr.order", call=self.channel.call_id, node=node_id, order=number)
        return node.next

    async def _order_status(self, node: OrderStatusNode) -> str:
        if self.orders is None:
            return node.none
        try:
            found = await self.orders.open_orders(self.channel.caller)
        except Exception as exc:  # a courtesy, like the notices: the menu still runs
            log(
                logger,
                "ivr.orders-unavailable",
                logging.WARNING,
                call=self.channel.call_id,
                error=repr(exc)[:200],
            )
            return node.none
        if not found:
            return node.none
        number, kind, state = found[0]
        words = ORDER_STATES["en" if self.language == "en" else "zh"]
        kinds = ORDER_KINDS["en" if self.language == "en" else "zh"]
        self.variables.update(
            order=str(number), order_kind=kinds.get(kind, kind), order_state=words.get(state, state)
        )
        return node.found

    def _set(self, node: SetNode) -> str:
        for name, template in node.vars.items():
            self.variables[name] = "".join(
                say.fill(say.parse_template(template), self.variables, "")
            )
        if node.queue is not None:
            self.queue = node.queue
        if node.priority is not None:
            self.priority = node.priority
        if node.language is not None:
            self.language = node.language
        return node.next

    async def _branch(self, node: BranchNode) -> str:
        for case in node.cases:
            if await self._holds(case.when):
                return case.goto
        return node.otherwise

    async def _holds(self, cond: Condition) -> bool:
        """All the tests of a condition hold (the model guarantees at least one)."""
        if cond.var is not None:
            value = self.variables.get(cond.var, "")
            if cond.equals is not None and value != cond.equals:
                return False
            if cond.one_of is not None and value not in cond.one_of:
                return False
            if cond.prefix is not None and not any(value.startswith(p) for p in cond.prefix):
                return False
            if cond.regex is not None and re.search(cond.regex, value) is None:
                return False
        now = self.clock()
        if cond.business_hours is not None and self.config.is_open(now) != cond.business_hours:
            return False
        if cond.holiday is not None and self.config.is_holiday(now) != cond.holiday:
            return False
        if cond.visits is not None and self.visits[cond.visits.node] < cond.visits.at_least:
            return False
        return (
            cond.notice_active is None or bool(await self._active_notices()) == cond.notice_active
        )

    async def _active_notices(self) -> list[Notice]:
        if self.notices is None:
            return []
        try:
            return await self.notices.active_for(self.channel.caller, self.clock())
        except Exception as exc:  # a notice is a courtesy: without Redis, the menu still runs
            log(
                logger,
                "ivr.notices-unavailable",
                logging.WARNING,
                call=self.channel.call_id,
                error=repr(exc),
            )
            return []

    async def _enqueue(self, queue: str, priority: int) -> QueueResult:
        self.typed_ahead = ""  # a key pressed before the agent talked is not a survey answer
        self.record.queue, self.record.priority = queue, priority
        self.record.outcome = "queued"
        route = {**self.record.to_dict(), "variables": dict(self.variables)}
        request = QueueRequest(queue, priority, self.language, dict(self.variables), route)
        try:
            result = await self.channel.queue(request)
        except CallerGone:
            self.record.queue_outcome = "caller-hangup"
            raise
        self.record.queue_outcome, self.record.agent = result.outcome, result.agent
        return result

    async def _queue_node(self, node: QueueNode) -> str | None:
        queue = node.queue or self.queue or self.default_queue
        priority = node.priority if node.priority is not None else self.priority or 0
        self.record.queue, self.record.priority = queue, priority
        self.channel.connecting(queue, priority)
        await self._play(await self._media(node.prompt))
        result = await self._enqueue(queue, priority)
        if result.outcome != "agent-hangup":
            return None  # the caller left, or the queue ended the call (callback, overflow)
        if node.after_agent is not None:
            return node.after_agent
        await self._hangup()
        return None

    async def _callback_offer(self, node_id: str, node: CallbackOfferNode) -> str | None:
        digit = await self._one_key(node.prompt, node.timeout_s)
        if digit != node.accept:
            self._input(node_id, digit, "invalid" if digit else "timeout")
            return node.next
        self._input(node_id, digit, "ok")
        self.record.callback = {"queue": node.queue, "number": self.channel.caller}
        self.record.outcome = "callback"
        await self.channel.callback(node.queue, self.channel.caller)
        await self._play(await self._media(node.confirm_prompt))
        await self.channel.hangup()
        return None

    async def _survey(self, node_id: str, node: SurveyNode) -> None:
        if self.config.survey:
            for attempt in range(node.tries):
                digit = await self._one_key(node.prompt, node.timeout_s)
                if digit and digit in "12345":
                    self._input(node_id, digit, "ok")
                    self.record.survey_score = int(digit)
                    break
                self._input(node_id, digit, "invalid" if digit else "timeout")
                if attempt + 1 < node.tries:
                    await self._play(await self._media(node.invalid_prompt))
            if self.record.survey_score is not None and node.comment is not None:
                await self._play(await self._media(node.comment.prompt))
                self.record.survey_comment = await self.channel.record(node.comment.max_s)
            await self._play(await self._media(node.thanks_prompt))
        await self._hangup()

    async def _hangup(self) -> None:
        if self.record.outcome == "running":
            self.record.outcome = "hangup"
        await self.channel.hangup()


async def run_flow(
    flow: Flow,
    channel: FlowChannel,
    *,
    prompts: Prompts,
    lookup_client: aiohttp.ClientSession,
    notices: NoticeSource | None,
    config: IvrConfig,
    clock: Callable[[], dt.datetime] = _utc_now,
    default_queue: str = "general",
    orders: OrderDesk | None = None,
) -> FlowRecord:
    """Run `flow` for the call on `channel` until it is queued, transferred or ended, and
    return what happened. Never raises for a flow, backend or prompt fault (see module)."""
    session = Session(
        flow,
        channel,
        prompts=prompts,
        lookup_client=lookup_client,
        notices=notices,
        config=config,
        clock=clock,
        default_queue=default_queue,
        orders=orders,
    )
    return await session.run()
