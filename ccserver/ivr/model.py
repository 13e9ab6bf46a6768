"""The flow file's schema: a pydantic model per node kind, tight (unknown keys are errors).

The model checks what one node can check alone (required fields, ranges, regexes that
compile, templates that parse). What needs the whole flow or the configuration — dangling
references, unreachable nodes, loops with no exit, unknown queues, unset variables — is
checked by `ccserver.ivr.loader`, which also maps every error to its line in the file.

`ivr_flows/flow.schema.json` is generated from `Flow` (editors use it to complete and check
flow files as they are typed); regenerate it from the repository root with
`python -m ccserver.ivr.model` after changing this module — a unit test fails while it is
stale.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from ccserver.ivr.say import SayError, Slot, parse_template

NODE_ID = r"^[a-z][a-z0-9_]{0,63}$"
VAR_NAME = r"^[a-z][a-z0-9_]{0,31}$"
QUEUE_NAME = r"^[a-z][a-z0-9_-]{0,31}$"
KEY = r"^[0-9*#]$"
NUMBER = r"^[0-9]{1,20}$"
NodeId = Annotated[str, Field(pattern=NODE_ID)]
VarName = Annotated[str, Field(pattern=VAR_NAME)]
QueueName = Annotated[str, Field(pattern=QUEUE_NAME)]
Key = Annotated[str, Field(pattern=KEY)]
Language = Literal["zh", "en"]
BUILTIN_VARIABLES = frozenset({"caller", "dnis", "call_id"})
"""Variables every session starts with: the caller's number, the dialled number, the call."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Prompt(_Strict):
    """What the caller hears: Mandarin `text` (with an optional English `text_en`), spoken
    by the prompt generator, or a recorded sound `file` (relative to the flow file)."""

    text: str | None = None
    text_en: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Prompt:
        if self.file is not None:
            if self.text is not None or self.text_en is not None:
                raise ValueError("a prompt is either text (and text_en) or a file, not both")
            if not self.file.strip():
                raise ValueError("missing prompt: `file` is empty")
        elif not (self.text or "").strip():
            raise ValueError("missing prompt text: give `text` (Mandarin) or `file`")
        if self.text_en is not None and not self.text_en.strip():
            raise ValueError("missing prompt text: `text_en` is empty (leave it out instead)")
        return self


def _prompt_from_str(value: Any) -> Any:
    return {"text": value} if isinstance(value, str) else value


PromptSpec = Annotated[
    Prompt, BeforeValidator(_prompt_from_str, json_schema_input_type=str | Prompt)
]
"""A prompt may be written as a plain string: `prompt: 欢迎致电` is `{text: 欢迎致电}`."""


def _check_template(text: str | None) -> str | None:
    if text is not None:
        try:
            parse_template(text)
        except SayError as exc:
            raise ValueError(str(exc)) from None
    return text


def _check_regex(pattern: str | None) -> str | None:
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"regex {pattern!r} does not compile: {exc}") from None
    return pattern


class _Node(_Strict):
    """Common to every node kind; the loader's graph checks use these methods."""

    exits: ClassVar[bool] = False
    """True for kinds that end the IVR part of the call (queue, transfer, hangup, …)."""

    self_service: bool = False
    """Finishing this node serves the caller (the balance read out, the outage notice
    heard): a caller who leaves after it was served by the IVR; one who leaves before any
    such node gave up in the IVR (an IVR abandon, counted in call loss)."""

    def targets(self) -> dict[str, str]:
        """Where the flow may go next: field label → node id."""
        return {}

    def prompts(self) -> dict[str, Prompt]:
        return {name: value for name, value in self.__dict__.items() if isinstance(value, Prompt)}

    def templates(self) -> dict[str, str]:
        """Field label → template text whose `{variables}` must be set somewhere."""
        return {}

    def sets(self) -> set[str]:
        """Variables this node sets."""
        return set()

    def reads(self) -> dict[str, str]:
        """Field label → a variable the node reads by name, which must be set somewhere."""
        return {}

    def queues(self) -> dict[str, str]:
        return {}


class PlayNode(_Node):
    """Play a prompt, or the outage notices active for this caller (`notice: true`)."""

    kind: Literal["play"]
    prompt: PromptSpec | None = None
    notice: bool = False
    interruptible: bool = False
    """A key pressed during the prompt stops it and is kept for the next menu or collect."""
    next: NodeId

    @model_validator(mode="after")
    def _one_source(self) -> PlayNode:
        if (self.prompt is None) == (not self.notice):
            raise ValueError("missing prompt: a play node has a `prompt` or `notice: true`")
        return self

    def targets(self) -> dict[str, str]:
        return {"next": self.next}


class MenuNode(_Node):
    """One key chooses the next node. After `tries` invalid or timed-out entries (counted
    over the whole call, so repeating the menu does not reset them) it goes to `on_fail`."""

    kind: Literal["menu"]
    prompt: PromptSpec
    options: dict[Key, NodeId] = Field(min_length=1)
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    tries: int = Field(default=3, ge=1, le=10)
    invalid_prompt: PromptSpec | None = None
    timeout_prompt: PromptSpec | None = None
    on_fail: NodeId

    @field_validator("options", mode="before")
    @classmethod
    def _keys_as_text(cls, options: Any) -> Any:
        """YAML reads `1:` as the integer 1; menu keys are keypad characters."""
        if isinstance(options, dict):
            return {str(k) if isinstance(k, int) else k: v for k, v in options.items()}
        return options

    def targets(self) -> dict[str, str]:
        return {**{f"options.{k}": v for k, v in self.options.items()}, "on_fail": self.on_fail}


class CollectNode(_Node):
    """Read a digit string into a variable: `min_digits`…`max_digits` keys, ended by the
    `terminator` key or `max_digits`, optionally matching `pattern` (a full match)."""

    kind: Literal["collect"]
    prompt: PromptSpec
    into: VarName
    min_digits: int = Field(default=1, ge=1, le=32)
    max_digits: int = Field(ge=1, le=32)
    terminator: Literal["#", "*"] | None = "#"
    pattern: str | None = None
    timeout_s: float = Field(default=8.0, gt=0, le=60)
    inter_digit_s: float = Field(default=4.0, gt=0, le=30)
    tries: int = Field(default=3, ge=1, le=10)
    invalid_prompt: PromptSpec | None = None
    next: NodeId
    on_fail: NodeId

    _regex = field_validator("pattern")(_check_regex)

    @model_validator(mode="after")
    def _range(self) -> CollectNode:
        if self.min_digits > self.max_digits:
            raise ValueError(f"min_digits {self.min_digits} > max_digits {self.max_digits}")
        return self

    def targets(self) -> dict[str, str]:
        return {"next": self.next, "on_fail": self.on_fail}

    def sets(self) -> set[str]:
        return {self.into}


class LookupNode(_Node):
    """HTTP GET `url` (a template: `{billing_url}` from the configuration, `{variable}`s
    URL-encoded); copy JSON fields (dotted paths) of a 2xx answer into variables and go to
    `next`; a 404 goes to `on_miss`; a timeout, another status or bad JSON to `on_error`."""

    kind: Literal["lookup"]
    url: str
    timeout_s: float | None = Field(default=None, gt=0, le=30)
    results: dict[VarName, str] = Field(default_factory=dict)
    next: NodeId
    on_miss: NodeId
    on_error: NodeId

    _url = field_validator("url")(_check_template)

    def targets(self) -> dict[str, str]:
        return {"next": self.next, "on_miss": self.on_miss, "on_error": self.on_error}

    def templates(self) -> dict[str, str]:
        return {"url": self.url}

    def sets(self) -> set[str]:
        return set(self.results)


class SayNode(_Node):
    """Speak a sentence with values in it: `{balance:money}`, `{due_date:date}`,
    `{account:digits}`, `{count:number}`, or `{name}` as it is."""

    kind: Literal["say"]
    text: str = Field(min_length=1)
    text_en: str | None = None
    next: NodeId

    _templates = field_validator("text", "text_en")(_check_template)

    def targets(self) -> dict[str, str]:
        return {"next": self.next}

    def templates(self) -> dict[str, str]:
        found = {"text": self.text}
        if self.text_en is not None:
            found["text_en"] = self.text_en
        return found


class SetNode(_Node):
    """Set variables (templates), the queue and priority a later `queue` node uses, or the
    language of the prompts from here on."""

    kind: Literal["set"]
    vars: dict[VarName, str] = Field(default_factory=dict)
    queue: QueueName | None = None
    priority: int | None = Field(default=None, ge=0, le=100)
    language: Language | None = None
    next: NodeId

    @field_validator("vars")
    @classmethod
    def _plain_templates(cls, values: dict[str, str]) -> dict[str, str]:
        for text in values.values():
            _check_template(text)
            if any(isinstance(s, Slot) and s.fmt for s in parse_template(text)):
                raise ValueError(f"{text!r}: formats (`:money`…) are for say nodes only")
        return values

    @model_validator(mode="after")
    def _something(self) -> SetNode:
        if not self.vars and self.queue is None and self.priority is None and not self.language:
            raise ValueError("a set node sets vars, queue, priority or language")
        return self

    def targets(self) -> dict[str, str]:
        return {"next": self.next}

    def templates(self) -> dict[str, str]:
        return {f"vars.{k}": v for k, v in self.vars.items()}

    def sets(self) -> set[str]:
        return set(self.vars)

    def queues(self) -> dict[str, str]:
        return {"queue": self.queue} if self.queue else {}


OrderKind = Literal["fault", "complaint", "business", "enquiry"]
"""The kinds of work order (`ccserver.records.orders.KINDS`; a unit test ties the two)."""
ORDER_VARIABLES = ("order", "order_kind", "order_state")


class OrderNode(_Node):
    """Open a work order for the caller (linked to this call): of `order_kind`, with the
    account in variable `account` and the area in `area` (each when set), described by the
    values of the `details` variables that are set. Its number goes into `into` (read it
    back with `{order:digits}`), then `next`; when the order cannot be opened, `on_error`."""

    kind: Literal["order"]
    order_kind: OrderKind
    account: VarName | None = None
    area: VarName | None = None
    details: list[VarName] = Field(default_factory=list)
    into: VarName = "order"
    next: NodeId
    on_error: NodeId

    def targets(self) -> dict[str, str]:
        return {"next": self.next, "on_error": self.on_error}

    def sets(self) -> set[str]:
        return {self.into}

    def reads(self) -> dict[str, str]:
        found = {f"details.{i}": name for i, name in enumerate(self.details)}
        for label in ("account", "area"):
            if getattr(self, label) is not None:
                found[label] = getattr(self, label)
        return found


class OrderStatusNode(_Node):
    """Look up the caller's open work orders (by the calling number): when there is one,
    set `order` (the newest one's number), `order_kind` and `order_state` (what it is
    doing, in the caller's language: "has a repair crew on site") and go to `found`,
    else to `none`. A store that cannot answer counts as none."""

    kind: Literal["order_status"]
    found: NodeId
    none: NodeId

    def targets(self) -> dict[str, str]:
        return {"found": self.found, "none": self.none}

    def sets(self) -> set[str]:
        return set(ORDER_VARIABLES)


class Visits(_Strict):
    node: NodeId
    at_least: int = Field(ge=1)


class Condition(_Strict):
    """Every test given must hold. A variable test is `var` plus one of `equals`,
    `one_of`, `prefix` (one or a list), `regex` (a search)."""

    var: VarName | None = None
    equals: str | None = None
    one_of: list[str] | None = None
    prefix: list[str] | None = None
    regex: str | None = None
    business_hours: bool | None = None
    holiday: bool | None = None
    notice_active: bool | None = None
    visits: Visits | None = None

    _regex = field_validator("regex")(_check_regex)

    @field_validator("prefix", mode="before", json_schema_input_type=str | list[str] | None)
    @classmethod
    def _one_prefix(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _complete(self) -> Condition:
        tests = (self.equals, self.one_of, self.prefix, self.regex)
        var_tests = [t for t in tests if t is not None]
        if self.var is not None and len(var_tests) != 1:
            raise ValueError(f"var {self.var!r} needs exactly one of equals, one_of, prefix, regex")
        if self.var is None and var_tests:
            raise ValueError("equals, one_of, prefix and regex test a `var`: name it")
        others = (self.business_hours, self.holiday, self.notice_active, self.visits)
        if self.var is None and all(t is None for t in others):
            raise ValueError("an empty condition: test a var, business_hours, holiday, ...")
        return self


class Case(_Strict):
    when: Condition
    goto: NodeId


class BranchNode(_Node):
    """The first case whose condition holds chooses the next node; else `otherwise`."""

    kind: Literal["branch"]
    cases: list[Case] = Field(min_length=1)
    otherwise: NodeId

    def targets(self) -> dict[str, str]:
        found = {f"cases.{i}.goto": case.goto for i, case in enumerate(self.cases)}
        return {**found, "otherwise": self.otherwise}

    def templates(self) -> dict[str, str]:
        return {
            f"cases.{i}.when.var": "{" + case.when.var + "}"
            for i, case in enumerate(self.cases)
            if case.when.var is not None
        }


class QueueNode(_Node):
    """Wait for an agent in `queue` (or the one a `set` node chose) at `priority` (higher
    first). If the agent hangs up first, the caller is still there: `after_agent` (e.g.
    the survey) runs; every other outcome ends the flow."""

    exits = True
    kind: Literal["queue"]
    queue: QueueName | None = None
    priority: int | None = Field(default=None, ge=0, le=100)
    prompt: PromptSpec | None = None
    after_agent: NodeId | None = None

    def targets(self) -> dict[str, str]:
        return {"after_agent": self.after_agent} if self.after_agent else {}

    def queues(self) -> dict[str, str]:
        return {"queue": self.queue} if self.queue else {}


class CallbackOfferNode(_Node):
    """Offer a call back to the caller's number: the `accept` key ends the call with a
    callback request for `queue` in the flow record; anything else goes to `next`."""

    exits = True
    kind: Literal["callback_offer"]
    prompt: PromptSpec
    accept: Key = "1"
    queue: QueueName
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    confirm_prompt: PromptSpec | None = None
    next: NodeId

    @field_validator("accept", mode="before")
    @classmethod
    def _key_as_text(cls, key: Any) -> Any:
        return str(key) if isinstance(key, int) else key

    def targets(self) -> dict[str, str]:
        return {"next": self.next}

    def queues(self) -> dict[str, str]:
        return {"queue": self.queue}


class TransferNode(_Node):
    """Hand the call to `target` (a number or endpoint such as `PJSIP/2000`)."""

    exits = True
    kind: Literal["transfer"]
    target: str = Field(pattern=r"^[A-Za-z0-9_/@.:+*#-]{1,80}$")
    prompt: PromptSpec | None = None


class SurveyComment(_Strict):
    prompt: PromptSpec
    max_s: float = Field(default=30.0, gt=0, le=300)


class SurveyNode(_Node):
    """Ask for a score 1–5 (then an optional recorded comment), thank, hang up."""

    exits = True
    kind: Literal["survey"]
    prompt: PromptSpec
    timeout_s: float = Field(default=6.0, gt=0, le=60)
    tries: int = Field(default=2, ge=1, le=5)
    invalid_prompt: PromptSpec | None = None
    comment: SurveyComment | None = None
    thanks_prompt: PromptSpec | None = None

    def prompts(self) -> dict[str, Prompt]:
        found = super().prompts()
        if self.comment is not None:
            found["comment.prompt"] = self.comment.prompt
        return found


class HangupNode(_Node):
    """Play an optional goodbye and hang up."""

    exits = True
    kind: Literal["hangup"]
    prompt: PromptSpec | None = None


Node = Annotated[
    PlayNode
    | MenuNode
    | CollectNode
    | LookupNode
    | SayNode
    | SetNode
    | BranchNode
    | QueueNode
    | CallbackOfferNode
    | TransferNode
    | SurveyNode
    | HangupNode
    | OrderNode
    | OrderStatusNode,
    Field(discriminator="kind"),
]
KINDS = [
    "play",
    "menu",
    "collect",
    "lookup",
    "say",
    "set",
    "branch",
    "queue",
    "callback_offer",
    "transfer",
    "survey",
    "hangup",
    "order",
    "order_status",
]


def _quoted_number(value: Any) -> Any:
    if isinstance(value, int):
        raise ValueError(
            f"write the number {value} in quotes: YAML reads bare digits as an integer "
            "(and drops leading zeros)"
        )
    return value


Number = Annotated[str, Field(pattern=NUMBER), BeforeValidator(_quoted_number)]


OUTBOUND_FORBIDDEN = ("queue", "callback_offer", "transfer")
"""Node kinds an outbound flow may not use: they hand a caller on to the center, and the
customer of an outbound call did not call the center."""


class Flow(_Strict):
    """One IVR flow: what callers of `numbers` hear and press, from node `start`; or, for
    an outbound flow, what a customer the center called hears (a follow-up, a survey)."""

    flow: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """The flow's name, for logs and the call record (and how campaigns name an outbound
    flow)."""
    direction: Literal["inbound", "outbound"] = "inbound"
    """inbound: callers of `numbers` run it; outbound: the dialer plays it to a customer it
    called (files in `outbound.flows_dir`; no numbers, and no queue, callback_offer or
    transfer nodes)."""
    numbers: list[Number] = Field(default_factory=list)
    """The dialled numbers this inbound flow serves (quoted: "95598")."""
    language: Language = "zh"
    """The language prompts start in: zh speaks `text`, en speaks `text_en`."""
    start: NodeId
    """The first node."""
    nodes: dict[NodeId, Node] = Field(min_length=1)
    """Node id → node."""

    _base_dir: Path = PrivateAttr(default=Path("."))

    @model_validator(mode="after")
    def _direction(self) -> Flow:
        if self.direction == "inbound" and not self.numbers:
            raise ValueError("an inbound flow needs `numbers` (the dialled numbers it serves)")
        if self.direction == "outbound":
            if self.numbers:
                raise ValueError("an outbound flow serves no dialled `numbers`: remove them")
            for node_id, node in self.nodes.items():
                if node.kind in OUTBOUND_FORBIDDEN:
                    raise ValueError(
                        f"node '{node_id}': an outbound flow cannot use a {node.kind} node "
                        "(the customer did not call the center)"
                    )
        return self

    @field_validator("flow", mode="before")
    @classmethod
    def _name_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @property
    def base_dir(self) -> Path:
        """The directory of the flow file: prompt `file`s are relative to it."""
        return self._base_dir

    def with_base_dir(self, base_dir: Path) -> Flow:
        self._base_dir = base_dir
        return self


def schema_json() -> str:
    """The JSON Schema of a flow file, as `ivr_flows/flow.schema.json` holds it."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    schema.update(Flow.model_json_schema())
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "ivr_flows/flow.schema.json")
    target.write_text(schema_json(), encoding="utf-8")
    sys.stdout.write(f"wrote {target}\n")
