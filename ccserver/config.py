"""Configuration: one TOML file read into pydantic models, overridable by the environment.

Layers, later wins: built-in defaults < the TOML file < `CCSERVER_<SECTION>__<KEY>`
environment variables (double underscore between levels, e.g.
`CCSERVER_ASTERISK__SIP_PORT=5160`; values are parsed as TOML values when they can be, so
`CCSERVER_AGENTS__IDS='["1001","1002"]'` is a list). `CCSERVER_CONFIG` names the file.

Every error is reported with its key path and the layer it came from, so that
`ccserver check-config` can say exactly what to fix; nothing here raises a traceback at a
user.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ccserver.errors import ConfigError
from ccserver.ivr.config import BusinessHours, IvrConfig, minutes, resolved_dir
from ccserver.records.orders import KINDS, STATES, SlaRule
from ccserver.records.qa import SamplingRules

ENV_PREFIX = "CCSERVER_"
DEFAULT_FILE = "ccserver.toml"
Port = int


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _port(default: int) -> Any:
    return Field(default=default, ge=1, le=65535)


class StackConfig(_Section):
    """Where the stack lives and what it binds to."""

    run_dir: Path = Path("var")
    bind: str = "127.0.0.1"

    @field_validator("bind")
    @classmethod
    def _is_ip(cls, value: str) -> str:
        ipaddress.ip_address(value)  # ValueError carries a readable message
        return value


class AsteriskConfig(_Section):
    prefix: Path = Path("~/.cache/ccserver/asterisk")
    sip_port: Port = _port(5060)
    http_port: Port = _port(8088)
    ami_port: Port = _port(5038)
    rtp_port_start: Port = _port(10000)
    rtp_port_end: Port = _port(10999)
    maxcalls: int = Field(default=400, ge=1, le=100_000)
    sounds_dir: Path = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
    moh_dir: Path = Path("/usr/share/asterisk/moh")
    app_queue_numbers: list[str] = Field(default_factory=list)
    """Numbers routed straight to Asterisk's own Queue() (all phones as static members):
    the baseline `ccserver loadtest` measures ccserver against. Empty in production."""

    @field_validator("app_queue_numbers")
    @classmethod
    def _baseline_digits(cls, numbers: list[str]) -> list[str]:
        for number in numbers:
            if not number.isdigit():
                raise ValueError(f"app_queue number {number!r} must be digits only")
        return numbers

    @model_validator(mode="after")
    def _rtp_range(self) -> AsteriskConfig:
        if self.rtp_port_end - self.rtp_port_start < 10:
            raise ValueError("rtp_port_end must be at least 10 above rtp_port_start")
        return self

    def resolved_prefix(self) -> Path:
        return self.prefix.expanduser()


class RedisConfig(_Section):
    port: Port = _port(6390)


class PrometheusConfig(_Section):
    """The stack's own Prometheus: scrapes the controller and Asterisk, evaluates the rules
    in deploy/prometheus/rules (alerts included)."""

    enabled: bool = True
    port: Port = _port(9095)
    retention: str = Field(default="15d", pattern=r"^[0-9]+[smhdwy]$")


class AlertmanagerConfig(_Section):
    """The stack's own Alertmanager (Debian's `prometheus-alertmanager`): takes the alerts
    the stack's Prometheus fires, groups them per alert and queue and posts them to the
    controller's webhook. Only started with Prometheus, which is all that feeds it; a single
    instance, so no cluster gossip is listened for."""

    enabled: bool = True
    port: Port = _port(9097)
    group_wait_s: int = Field(default=30, ge=0, le=3600)
    """A new group of alerts is held this long, for its companions to join it."""
    group_interval_s: int = Field(default=300, ge=1, le=86400)
    """A group that changed (an alert joined or resolved) is sent again after this long."""
    repeat_interval_s: int = Field(default=4 * 3600, ge=1, le=7 * 86400)
    """An unchanged group still firing is sent again this often."""

    @model_validator(mode="after")
    def _repeat_after_group(self) -> AlertmanagerConfig:
        if self.repeat_interval_s < self.group_interval_s:
            raise ValueError("repeat_interval_s must be at least group_interval_s")
        return self


class ControllerConfig(_Section):
    app: str = Field(default="ccserver", pattern=r"^[A-Za-z0-9_-]+$")
    http_port: Port = _port(8090)
    ring_timeout_s: int = Field(default=15, ge=1, le=120)
    rona_cooldown_s: float = Field(default=30.0, ge=0)
    greeting: str = "hello-world"
    moh_class: str = "default"
    log_format: str = Field(default="kv", pattern=r"^(kv|json)$")
    ari_trace: Path | None = None
    history_db: Path = Path("history.sqlite")
    """The history store (SQLite) that reports read; relative paths are in the run dir."""
    strict_states: bool = False
    """Raise on a call-state move the transition table forbids (the test suite sets it);
    off, such a bug is logged and counted while the call goes on."""


class HotlineConfig(_Section):
    numbers: list[str] = Field(default_factory=lambda: ["95598"], min_length=1)

    @field_validator("numbers")
    @classmethod
    def _digits(cls, numbers: list[str]) -> list[str]:
        for number in numbers:
            if not number.isdigit():
                raise ValueError(f"hotline number {number!r} must be digits only")
        return numbers


class PhonesConfig(_Section):
    """Phones are PJSIP endpoints (`PJSIP/<id>`), the desks agents log in at; a static
    contact lets a SIPp UAS (or any fixed phone) answer for them, and they may also register
    as softphones with a generated password."""

    ids: list[str] = Field(default_factory=lambda: [str(n) for n in range(1001, 1006)])
    contact_template: str = "sip:{id}@127.0.0.1:5070"
    contacts: dict[str, str] = Field(default_factory=dict)
    rtp_timeout_s: int = Field(default=30, ge=0, le=3600)
    """A phone that sends no audio for this long in a call is taken for gone (crashed
    softphone, pulled cable): Asterisk hangs its leg up and the caller goes back to the
    queue in place. 0: never (a vanished phone then holds its caller until they hang up)."""

    @field_validator("ids")
    @classmethod
    def _ids(cls, ids: list[str]) -> list[str]:
        for phone_id in ids:
            if not phone_id.isdigit() or not 3 <= len(phone_id) <= 8:
                raise ValueError(f"phone id {phone_id!r} must be 3 to 8 digits")
        if len(set(ids)) != len(ids):
            raise ValueError("phone ids must be unique")
        return ids

    @model_validator(mode="after")
    def _contacts_known(self) -> PhonesConfig:
        unknown = sorted(set(self.contacts) - set(self.ids))
        if unknown:
            raise ValueError(f"contacts given for unknown phone ids: {', '.join(unknown)}")
        return self

    def contact(self, phone_id: str) -> str:
        return self.contacts.get(phone_id) or self.contact_template.format(id=phone_id)


BROWSER_PHONE_PREFIX = "web"


def browser_phone(agent_id: str) -> str:
    """The WebRTC endpoint of an agent's browser desk (`PJSIP/web<agent id>`): every agent
    has one, registered by the desk page with the password its login returns."""
    return BROWSER_PHONE_PREFIX + agent_id


SUPERVISOR_TOKENS = ("admin", "supervisor")
"""The API token names with the supervisor role or above: each has a browser phone."""


def supervisor_phone(token_name: str) -> str:
    """The WebRTC endpoint of a supervisor token's browser phone (`PJSIP/web-<name>`),
    registered by the wallboard page to listen in."""
    return f"{BROWSER_PHONE_PREFIX}-{token_name}"


Skills = dict[str, int]
_SKILL_NAME = r"^[a-z][a-z0-9_-]{0,31}$"


def _check_skills(skills: Skills, what: str) -> Skills:
    for name, level in skills.items():
        if not re.match(_SKILL_NAME, name):
            raise ValueError(f"{what}: skill name {name!r} must be lower-case letters, digits, _-")
        if not 1 <= level <= 10:
            raise ValueError(f"{what}: level of {name!r} must be 1 to 10, not {level}")
    return skills


class RelaxStepConfig(_Section):
    """After `after_s` in the queue, lower its minimum levels by `lower_by` and accept
    agents of the `add` skill groups too (steps accumulate)."""

    after_s: float = Field(gt=0)
    lower_by: int = Field(default=0, ge=0, le=9)
    add: list[Skills] = Field(default_factory=list)


DEFAULT_DISPOSITIONS = ("bill-enquiry", "fault-reported", "new-connection", "complaint", "other")


class QueueConfig(_Section):
    name: str = Field(pattern=_SKILL_NAME)
    skills: Skills = Field(min_length=1)
    strategy: str = Field(
        default="longest-idle", pattern=r"^(longest-idle|most-skilled|least-calls)$"
    )
    priority: int = Field(default=0, ge=0, le=100)
    """Priority of the calls entering this queue (higher is served first)."""
    relaxation: list[RelaxStepConfig] = Field(default_factory=list)
    wrap_up_s: float = Field(default=10.0, ge=0, le=3600)
    preferred_s: float = Field(default=0.0, ge=0, le=3600)
    max_wait_s: float = Field(default=0.0, ge=0, le=86400)
    """0: no limit. Else, after this wait: overflow to `overflow_to`, or offer a callback."""
    on_max_wait: str = Field(default="callback", pattern=r"^(overflow|callback)$")
    overflow_to: str | None = None
    record: bool = False
    dispositions: list[str] = Field(
        default_factory=lambda: list(DEFAULT_DISPOSITIONS), min_length=1
    )
    """The codes an agent picks from in wrap-up (the desk shows them translated)."""

    @field_validator("dispositions")
    @classmethod
    def _dispositions(cls, codes: list[str]) -> list[str]:
        for code in codes:
            if not re.match(_SKILL_NAME, code):
                raise ValueError(f"disposition {code!r} must be lower-case letters, digits, _-")
        if len(set(codes)) != len(codes):
            raise ValueError("dispositions must be unique")
        return codes

    @field_validator("skills")
    @classmethod
    def _skills(cls, skills: Skills) -> Skills:
        return _check_skills(skills, "queue skills")

    @model_validator(mode="after")
    def _overflow(self) -> QueueConfig:
        for step in self.relaxation:
            for group in step.add:
                _check_skills(group, f"queue {self.name!r} relaxation")
        if self.on_max_wait == "overflow" and self.max_wait_s > 0 and not self.overflow_to:
            raise ValueError(f"queue {self.name!r}: on_max_wait = 'overflow' needs overflow_to")
        if self.overflow_to == self.name:
            raise ValueError(f"queue {self.name!r}: cannot overflow to itself")
        return self


class AgentConfig(_Section):
    id: str = Field(pattern=r"^[0-9]{3,8}$")
    """Typed on the keypad after *11; also the API's agent id."""
    name: str = ""
    skills: Skills = Field(min_length=1)
    phone: str | None = None
    """Default phone: where the agent is logged in at start when `auto_login` is set."""
    auto_login: bool = False

    @field_validator("skills")
    @classmethod
    def _skills(cls, skills: Skills) -> Skills:
        return _check_skills(skills, "agent skills")


def _queues_95598() -> list[QueueConfig]:
    """The 95598 set-up: one skill per queue; repair calls go first; billing and business
    calls reach general agents after a minute. Every queue is recorded, as the 95598
    quality inspection needs (docs/qa.md)."""
    general = {"general": 1}
    return [
        QueueConfig(name="general", skills=general, record=True),
        QueueConfig(
            name="billing",
            skills={"billing": 1},
            relaxation=[RelaxStepConfig(after_s=60, add=[general])],
            record=True,
        ),
        QueueConfig(
            name="repair",
            skills={"repair": 1},
            priority=10,
            relaxation=[RelaxStepConfig(after_s=30, add=[general])],
            record=True,
        ),
        QueueConfig(
            name="business",
            skills={"business": 1},
            relaxation=[RelaxStepConfig(after_s=60, add=[general])],
            record=True,
        ),
        QueueConfig(
            name="complaints", skills={"complaints": 3}, strategy="most-skilled", record=True
        ),
    ]


class AcdConfig(_Section):
    """Queues and agents: what the router routes and to whom."""

    queues: list[QueueConfig] = Field(default_factory=_queues_95598, min_length=1)
    agents: list[AgentConfig] | None = None
    """None: one agent per phone, same id, every queue's skills at level 5, logged in at
    start — the simplest center. List agents to give them their own skills and phones."""
    default_queue: str = "general"
    entry: dict[str, str] = Field(default_factory=dict)
    """Dialled number → queue, for numbers that skip the IVR (others go to default_queue)."""
    rona_memory_s: float = Field(default=300.0, ge=0)
    announce_every_s: float = Field(default=30.0, ge=0)
    """Position and expected wait are announced on entry and then this often (0: never)."""
    language: str = Field(default="zh", pattern=r"^(zh|en)$")
    pin_attempts: int = Field(default=3, ge=1, le=10)
    callback_endpoint: str = "PJSIP/callers/sip:{number}@127.0.0.1:5080"
    """How a customer is dialled back (`{number}` filled in): a trunk in production."""
    callback_attempts: int = Field(default=3, ge=1, le=10)
    callback_retry_s: float = Field(default=60.0, ge=1)

    @model_validator(mode="after")
    def _references(self) -> AcdConfig:
        names = [q.name for q in self.queues]
        if len(set(names)) != len(names):
            raise ValueError("queue names must be unique")
        known = set(names)
        for queue in self.queues:
            if queue.overflow_to and queue.overflow_to not in known:
                raise ValueError(
                    f"queue {queue.name!r}: overflow_to {queue.overflow_to!r} is not a queue"
                )
        if self.default_queue not in known:
            raise ValueError(f"default_queue {self.default_queue!r} is not a queue")
        for number, queue_name in self.entry.items():
            if not number.isdigit():
                raise ValueError(f"entry number {number!r} must be digits only")
            if queue_name not in known:
                raise ValueError(f"entry {number!r}: {queue_name!r} is not a queue")
        if self.agents is not None:
            ids = [a.id for a in self.agents]
            if len(set(ids)) != len(ids):
                raise ValueError("agent ids must be unique")
        return self

    def queue(self, name: str) -> QueueConfig:
        return next(q for q in self.queues if q.name == name)


class LicenseConfig(_Section):
    """Where the seat license lives and whom it must be for (see docs/licensing.md)."""

    path: Path | None = None
    """The license in force; None: `license.json` in the run dir (relative paths too)."""
    trusted_keys: list[Path] = Field(default_factory=list)
    """Public keys trusted besides the shipped vendor keys: throw-away keys for tests and
    development, never needed in production."""
    customer_id: str | None = None
    """When set, a license issued to another customer is refused (a copied file)."""
    expiry_warning_days: int = Field(default=14, ge=0, le=365)

    def resolved_path(self, run_dir: Path) -> Path:
        return run_dir / (self.path.expanduser() if self.path else Path("license.json"))


def _bands_95598() -> dict[str, list[str]]:
    """The time bands of the 95598 quality-control project (seed 000), where it found
    callers lost: peak, flat and valley."""
    return {
        "peak": ["09:00-12:00", "15:00-19:00"],
        "flat": ["08:00-09:00", "12:00-15:00", "19:00-22:00"],
        "valley": ["22:00-08:00"],
    }


class ReportsConfig(_Section):
    """KPI reports (`ccserver report`, docs/reports.md). Clock times are in `ivr.timezone`:
    the center keeps one local clock, for its business hours and for its reports alike."""

    service_level_s: float = Field(default=20.0, gt=0, le=3600)
    """A call answered after at most this wait counts toward the service level."""
    service_level_target: float = Field(default=0.8, gt=0, le=1)
    service_level_definition: Literal["answered", "offered", "offered-minus-short"] = (
        "offered-minus-short"
    )
    """Answered within the time, divided by: the answered calls, the calls offered to the
    queues, or those minus the short abandons."""
    short_abandon_s: float = Field(default=10.0, ge=0, le=3600)
    """Abandons after a shorter wait are counted apart (misdials, callers who hang up at
    the first note of music); the Prometheus metrics use the same threshold."""
    fcr_window_h: float = Field(default=24.0, gt=0, le=720)
    """An answered call is resolved at first contact when its number does not call again
    within this many hours."""
    bands: dict[str, list[str]] = Field(default_factory=_bands_95598)
    """Band name → local ranges "HH:MM-HH:MM" (one may cross midnight) covering the day
    exactly once. Files are merged over the defaults, so a band you drop must be given as
    `[]`."""

    @field_validator("bands")
    @classmethod
    def _cover_the_day(cls, bands: dict[str, list[str]]) -> dict[str, list[str]]:
        kept = {name: ranges for name, ranges in bands.items() if ranges}
        cls.band_of_minute(kept)  # raises ValueError naming the gap or the overlap
        return kept

    def minute_bands(self) -> tuple[str, ...]:
        """The band of each minute of the day (1440 names)."""
        return self.band_of_minute(self.bands)

    @staticmethod
    def band_of_minute(bands: Mapping[str, list[str]]) -> tuple[str, ...]:
        owner: list[str | None] = [None] * 1440
        for name, ranges in bands.items():
            if not re.match(_SKILL_NAME, name):
                raise ValueError(f"band name {name!r} must be lower-case letters, digits, _-")
            for text in ranges:
                found = re.match(
                    r"^((?:[01]\d|2[0-3]):[0-5]\d)-((?:[01]\d|2[0-3]):[0-5]\d|24:00)$", text
                )
                if found is None:
                    raise ValueError(f"band {name!r}: {text!r} is not a range HH:MM-HH:MM")
                start, end = minutes(found[1]), minutes(found[2])
                if start == end:
                    raise ValueError(
                        f"band {name!r}: {text!r} is empty or ambiguous; a whole day is 00:00-24:00"
                    )
                span = range(start, end) if start < end else [*range(start, 1440), *range(end)]
                for minute in span:
                    if owner[minute] is not None:
                        raise ValueError(
                            f"{_clock(minute)} is in both band {owner[minute]!r} and {name!r}"
                        )
                    owner[minute] = name
        if None in owner:
            gap = owner.index(None)
            end = next((m for m in range(gap, 1440) if owner[m] is not None), 1440)
            raise ValueError(f"no band covers {_clock(gap)}-{_clock(end)}")
        return tuple(name for name in owner if name is not None)


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


class TlsConfig(_Section):
    """Optional TLS (docs/security.md), off by default: everything binds loopback, where
    nobody can listen in. On, Asterisk adds a SIP TLS transport on `sip_port` and the
    controller serves HTTPS (REST API, /metrics, /healthz); `srtp` also makes agent phones
    encrypt their media (SDES keys, exchanged inside the TLS signalling)."""

    enabled: bool = False
    sip_port: Port = _port(5061)
    srtp: bool = False
    """Agent endpoints require SRTP (`media_encryption = sdes`): their phones must register
    over TLS and offer `a=crypto`; a plain RTP offer is refused with 488."""
    cert_file: Path | None = None
    """The server certificate (PEM, chain after it); None: a private CA and a certificate
    are generated into `<run dir>/tls/` at `stack up`. Relative paths are in the run dir."""
    key_file: Path | None = None
    ca_file: Path | None = None
    """The CA that signed `cert_file`, for our own clients (health checks, Prometheus);
    None with your own certificate: the system's trusted CAs."""
    names: list[str] = Field(default_factory=list)
    """Extra host names or IP addresses the generated certificate is valid for (the bind
    address, 127.0.0.1, ::1 and localhost always are)."""

    @model_validator(mode="after")
    def _consistent(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give both tls.cert_file and tls.key_file, or neither")
        if self.ca_file is not None and self.cert_file is None:
            raise ValueError("tls.ca_file goes with your own tls.cert_file")
        if self.srtp and not self.enabled:
            raise ValueError("tls.srtp needs tls.enabled: SDES keys travel in the signalling")
        return self


class DeskConfig(_Section):
    """The agent desk in the browser (`/desk/`) and its sessions."""

    session_ttl_s: int = Field(default=12 * 3600, ge=60, le=7 * 86400)
    """A desk session (agent id + PIN at the page) lasts this long, then the page asks
    for the PIN again."""
    history_days: int = Field(default=30, ge=1, le=366)
    """The screen pop lists the caller's contacts of this many days."""


class WallboardConfig(_Section):
    """The wallboard's colours: a figure at or past `*_amber` shows amber, past `*_red`
    red (for the service level: at or below)."""

    oldest_wait_amber_s: float = Field(default=30.0, ge=0)
    oldest_wait_red_s: float = Field(default=60.0, ge=0)
    waiting_amber: int = Field(default=5, ge=0)
    waiting_red: int = Field(default=10, ge=0)
    service_level_amber: float = Field(default=0.8, ge=0, le=1)
    service_level_red: float = Field(default=0.7, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> WallboardConfig:
        if (
            self.oldest_wait_red_s < self.oldest_wait_amber_s
            or self.waiting_red < self.waiting_amber
        ):
            raise ValueError("a red threshold must be past its amber one")
        if self.service_level_red > self.service_level_amber:
            raise ValueError("service_level_red must be at or below service_level_amber")
        return self


class SupervisionConfig(_Section):
    """Supervisors listening in on agents' calls (listen, whisper, barge)."""

    phones: list[str] = Field(default_factory=list)
    """Phones (of `phones.ids`) from which the feature codes *21<agent> (listen), *22<agent>
    (whisper) and *23<agent> (barge) start a monitor session; any other phone is refused.
    Through the API a supervisor's token may ring any phone of `phones.ids`."""
    beep: bool = False
    """The monitored agent hears a short beep when a session starts or changes mode."""
    beep_agents: list[str] = Field(default_factory=list)
    """Agents who hear the beep whatever `beep` says (e.g. trainees told they are coached)."""
    ring_timeout_s: int = Field(default=30, ge=5, le=120)
    """How long the supervisor's phone rings before the session is given up."""


class SlaRuleConfig(_Section):
    """An order of `kind` reaches `state` within `within_s` seconds of opening (in `area`;
    no area: any area without a rule of its own)."""

    kind: str = Field(pattern="^(" + "|".join(KINDS) + ")$")
    state: str = Field(
        pattern="^(" + "|".join(s for s in STATES if s not in ("new", "cancelled")) + ")$"
    )
    within_s: float = Field(gt=0, le=366 * 86400)
    area: str | None = Field(default=None, min_length=1, max_length=40)

    def rule(self) -> SlaRule:
        return SlaRule(self.kind, self.state, self.within_s, self.area)


def _sla_95598() -> list[SlaRuleConfig]:
    """State Grid's service commitments: repair crews on site within 45 minutes in town,
    90 in the country, 2 hours in remote areas (unknown area: as in town); dispatch
    within 10 minutes; a complaint or enquiry answered within a day, a business request
    within three."""
    rules: list[dict[str, Any]] = [
        {"kind": "fault", "state": "dispatched", "within_s": 600},
        {"kind": "fault", "state": "on-site", "within_s": 45 * 60},
        {"kind": "fault", "state": "on-site", "within_s": 45 * 60, "area": "urban"},
        {"kind": "fault", "state": "on-site", "within_s": 90 * 60, "area": "rural"},
        {"kind": "fault", "state": "on-site", "within_s": 120 * 60, "area": "remote"},
        {"kind": "complaint", "state": "resolved", "within_s": 86400},
        {"kind": "enquiry", "state": "resolved", "within_s": 86400},
        {"kind": "business", "state": "resolved", "within_s": 3 * 86400},
    ]
    return [SlaRuleConfig(**rule) for rule in rules]


class WorkOrdersConfig(_Section):
    """Work orders: their deadlines (the SLA table) and how they are chased."""

    sla: list[SlaRuleConfig] = Field(default_factory=_sla_95598)
    # an order is chased (escalation 1) this long before its deadline, overdue (2) after
    warn_before_s: float = Field(default=600.0, ge=0, le=7 * 86400)
    check_every_s: float = Field(default=30.0, gt=0, le=3600)

    @field_validator("sla")
    @classmethod
    def _one_rule_each(cls, rules: list[SlaRuleConfig]) -> list[SlaRuleConfig]:
        seen = set()
        for rule in rules:
            key = (rule.kind, rule.state, rule.area)
            if key in seen:
                raise ValueError(
                    f"two rules for {rule.kind} reaching {rule.state} in {rule.area or 'any area'}"
                )
            seen.add(key)
        return rules


class RecordingsConfig(_Section):
    """How long call recordings are kept (docs/qa.md), and the calls and events of the
    history (docs/operations.md)."""

    retention_days: int = Field(default=180, ge=0, le=36500)  # 0: kept until removed by hand
    sweep_every_s: float = Field(default=3600.0, gt=0, le=86400)
    history_days: int = Field(default=0, ge=0, le=36500)  # calls and events; 0: kept


class QaConfig(_Section):
    """Quality inspection: the scoring form and which recorded calls inspectors get."""

    form: Path | None = None  # a scoring form (YAML); none: the shipped 95598 form
    queues: list[str] = Field(default_factory=lambda: ["complaints"])  # every call of these
    csat_at_most: int | None = Field(default=2, ge=1, le=5)  # every call rated this or lower
    longer_than_s: float | None = Field(default=600.0, gt=0)  # every call talked longer
    random_pct: float = Field(default=5.0, ge=0, le=100)  # of each agent's calls of a week
    sample_every_s: float = Field(default=300.0, gt=0, le=86400)
    sample_days: int = Field(default=8, ge=1, le=366)  # how far back sampling looks

    def rules(self) -> SamplingRules:
        return SamplingRules(
            tuple(self.queues), self.csat_at_most, self.longer_than_s, self.random_pct
        )


def _every_day_8_to_20() -> list[BusinessHours]:
    return [BusinessHours(days=[1, 2, 3, 4, 5, 6, 7], start="08:00", end="20:00")]


class OutboundConfig(_Section):
    """Outbound calls: the follow-up (回访) of closed work orders and survey campaigns
    (docs/outbound.md). The caps here bound every campaign together; a campaign may set
    lower ones of its own."""

    flows_dir: Path = Path("ivr_flows/outbound")  # the outbound flows (`direction: outbound`)
    endpoint: str = "PJSIP/callers/sip:{number}@127.0.0.1:5080"  # what dials a customer
    hours: list[BusinessHours] = Field(default_factory=_every_day_8_to_20)  # in ivr.timezone
    max_concurrent: int = Field(default=10, ge=1, le=1000)  # outbound calls up at once
    cps: float = Field(default=2.0, gt=0, le=100)  # new outbound calls a second
    inbound_reserve: int = Field(default=2, ge=0, le=10_000)  # IVR channels left to callers
    ring_s: float = Field(default=30.0, gt=0, le=120)  # a customer's phone rings this long
    follow_up: bool = True  # a closed work order is followed up by a call to its caller
    follow_up_flow: str = "followup"  # an outbound flow (ivr_flows/outbound/)
    follow_up_delay_s: float = Field(default=0.0, ge=0, le=30 * 86400)  # after closing
    attempts: int = Field(default=3, ge=1, le=10)  # tries of a follow-up (busy, no answer)
    retry_s: float = Field(default=600.0, gt=0, le=86400)  # back-off: this, 2×, 4× …

    def resolved_flows_dir(self) -> Path:
        return resolved_dir(self.flows_dir)

    @field_validator("endpoint")
    @classmethod
    def _has_number(cls, endpoint: str) -> str:
        if "{number}" not in endpoint:
            raise ValueError(f"{endpoint!r} needs {{number}} where the number to dial goes")
        return endpoint


class Config(_Section):
    stack: StackConfig = StackConfig()
    asterisk: AsteriskConfig = AsteriskConfig()
    redis: RedisConfig = RedisConfig()
    prometheus: PrometheusConfig = PrometheusConfig()
    alertmanager: AlertmanagerConfig = AlertmanagerConfig()
    controller: ControllerConfig = ControllerConfig()
    hotline: HotlineConfig = HotlineConfig()
    phones: PhonesConfig = PhonesConfig()
    acd: AcdConfig = AcdConfig()
    ivr: IvrConfig = IvrConfig()
    license: LicenseConfig = LicenseConfig()
    reports: ReportsConfig = ReportsConfig()
    tls: TlsConfig = TlsConfig()
    desk: DeskConfig = DeskConfig()
    supervision: SupervisionConfig = SupervisionConfig()
    wallboard: WallboardConfig = WallboardConfig()
    work_orders: WorkOrdersConfig = WorkOrdersConfig()
    qa: QaConfig = QaConfig()
    recordings: RecordingsConfig = RecordingsConfig()
    outbound: OutboundConfig = OutboundConfig()

    @model_validator(mode="after")
    def _ports_distinct(self) -> Config:
        ports = {
            "asterisk.sip_port": self.asterisk.sip_port,
            "asterisk.http_port": self.asterisk.http_port,
            "asterisk.ami_port": self.asterisk.ami_port,
            "redis.port": self.redis.port,
            "controller.http_port": self.controller.http_port,
        }
        if self.tls.enabled:
            ports["tls.sip_port"] = self.tls.sip_port
        if self.prometheus.enabled:
            ports["prometheus.port"] = self.prometheus.port
        if self.alertmanager_runs:
            ports["alertmanager.port"] = self.alertmanager.port
        seen: dict[int, str] = {}
        for key, port in ports.items():
            if port in seen:
                raise ValueError(f"{key} and {seen[port]} are both {port}; ports must differ")
            if self.asterisk.rtp_port_start <= port <= self.asterisk.rtp_port_end:
                raise ValueError(f"{key}={port} lies inside the RTP port range")
            seen[port] = key
        phones = set(self.phones.ids)
        for agent in self.agents:
            if agent.phone is not None and agent.phone not in phones:
                raise ValueError(f"agent {agent.id}: phone {agent.phone!r} is not in phones.ids")
            if agent.auto_login and agent.phone is None:
                raise ValueError(f"agent {agent.id}: auto_login needs a phone")
        return self

    @property
    def agents(self) -> list[AgentConfig]:
        """The configured agents, or one per phone (see `AcdConfig.agents`)."""
        if self.acd.agents is not None:
            return self.acd.agents
        skills = {name: 5 for q in self.acd.queues for name in q.skills}
        return [
            AgentConfig(id=phone, skills=skills, phone=phone, auto_login=True)
            for phone in self.phones.ids
        ]

    @property
    def alertmanager_runs(self) -> bool:
        """Whether the stack runs Alertmanager: asked for, and Prometheus there to feed it."""
        return self.prometheus.enabled and self.alertmanager.enabled

    @property
    def run_dir(self) -> Path:
        return self.stack.run_dir.expanduser().resolve()

    def anchored(self, cwd: Path | None = None) -> Config:
        """This configuration with every path absolute, so that no process reading it
        depends on its working directory. Paths the operator gives relative to where they
        run `ccserver` (`stack.run_dir`, Asterisk's directories, `license.trusted_keys`,
        `ivr.flows_dir`, `outbound.flows_dir`, `qa.form`) are resolved against `cwd` (default:
        the current directory); the
        ones documented as "in the run dir" (`controller.history_db`, `ari_trace`,
        `license.path`, the TLS files) against the run dir. Anchoring twice changes
        nothing."""
        here = (cwd or Path.cwd()).resolve()

        def at(base: Path, path: Path) -> Path:
            return (base / path.expanduser()).resolve()

        run_dir = at(here, self.stack.run_dir)

        def in_run(path: Path | None) -> Path | None:
            return None if path is None else at(run_dir, path)

        asterisk, controller, lic, tls = self.asterisk, self.controller, self.license, self.tls
        return self.model_copy(
            update={
                "stack": self.stack.model_copy(update={"run_dir": run_dir}),
                "asterisk": asterisk.model_copy(
                    update={
                        "prefix": at(here, asterisk.prefix),
                        "sounds_dir": at(here, asterisk.sounds_dir),
                        "moh_dir": at(here, asterisk.moh_dir),
                    }
                ),
                "controller": controller.model_copy(
                    update={
                        "ari_trace": in_run(controller.ari_trace),
                        "history_db": at(run_dir, controller.history_db),
                    }
                ),
                "license": lic.model_copy(
                    update={
                        "path": lic.resolved_path(run_dir).resolve(),
                        "trusted_keys": [at(here, key) for key in lic.trusted_keys],
                    }
                ),
                "tls": tls.model_copy(
                    update={
                        "cert_file": in_run(tls.cert_file),
                        "key_file": in_run(tls.key_file),
                        "ca_file": in_run(tls.ca_file),
                    }
                ),
                "ivr": self.ivr.model_copy(
                    update={"flows_dir": self.ivr.resolved_flows_dir().resolve()}
                ),
                "qa": self.qa.model_copy(
                    update={"form": None if self.qa.form is None else at(here, self.qa.form)}
                ),
                "outbound": self.outbound.model_copy(
                    update={"flows_dir": self.outbound.resolved_flows_dir().resolve()}
                ),
            }
        )

    def relative_paths(self) -> list[str]:
        """The keys of this configuration whose path is not absolute (empty once
        `anchored`)."""
        found: list[str] = []

        def walk(node: Any, key: str) -> None:
            if isinstance(node, BaseModel):
                for name in type(node).model_fields:
                    walk(getattr(node, name), f"{key}.{name}" if key else name)
            elif isinstance(node, list):
                for i, item in enumerate(node):
                    walk(item, f"{key}[{i}]")
            elif isinstance(node, Path) and not node.is_absolute():
                found.append(key)

        walk(self, "")
        return found

    def is_loopback_only(self) -> bool:
        return ipaddress.ip_address(self.stack.bind).is_loopback


def _defaults() -> dict[str, Any]:
    return Config().model_dump(mode="python")


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """`CCSERVER_A__B=v` → {"a": {"b": v}}; `CCSERVER_CONFIG` is the file, not a key."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        if len(path) < 2 or not all(path):
            raise ConfigError(
                f"environment variable {name}: use CCSERVER_<SECTION>__<KEY>, "
                "e.g. CCSERVER_ASTERISK__SIP_PORT=5160"
            )
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _parse_env_value(raw)
    return tree


def _format_errors(exc: ValidationError, origin: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling and section)"
        given = err.get("input")
        shown = "" if isinstance(given, dict | list) or given is None else f" (got {given!r})"
        lines.append(f"{origin}: {loc}: {msg}{shown}")
    return "\n".join(lines)


def load(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the layered configuration; raise ConfigError with every problem listed."""
    environ = os.environ if environ is None else environ
    explicit = path is not None or "CCSERVER_CONFIG" in environ
    file = Path(path if path is not None else environ.get("CCSERVER_CONFIG", DEFAULT_FILE))
    data = _defaults()
    if file.exists():
        try:
            from_file = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: cannot be read: {exc}") from None
        try:
            Config.model_validate(_merge(_defaults(), from_file))
        except ValidationError as exc:
            raise ConfigError(_format_errors(exc, str(file))) from None
        data = _merge(data, from_file)
    elif explicit:
        raise ConfigError(f"{file}: no such configuration file")
    overrides = env_overrides(environ)
    try:
        return Config.model_validate(_merge(data, overrides))
    except ValidationError as exc:
        origin = "environment (CCSERVER_*)" if overrides else str(file)
        raise ConfigError(_format_errors(exc, origin)) from None


def load_effective(path: Path | str) -> Config:
    """Read the frozen configuration `stack up` wrote into the run dir (config.json). Its
    paths are all absolute (`Config.anchored`); a file with a relative one was not written
    by this version's `stack up` and is refused rather than read against the wrong cwd."""
    file = Path(path)
    try:
        config = Config.model_validate_json(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, str(file))) from None
    relative = config.relative_paths()
    if relative:
        raise ConfigError(
            f"{file}: relative paths in a frozen configuration ({', '.join(relative)}); "
            "run `ccserver stack up` again to rewrite it"
        )
    return config
