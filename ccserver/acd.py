"""The ACD: the acd_core Router configured from `[acd]`, plus what the router does not know —
which phone each agent sits at, what that phone is doing, and the reasons people give.

The router decides; this module keeps the controller's side of agents (`AgentPhone`: the phone an
agent is logged in at, the device state Asterisk reports for it) and turns configuration
into router queues. It never talks to Asterisk or Redis: `snapshot()`/`restore()` give the
controller a JSON-able state to write through to Redis, and every refusal is an `AcdError`
with a slug the REST API and the feature codes both use.

Device gating. An agent is offered calls only when the router has them ready *and* their
phone can take a call. When AMI says the phone is unregistered or busy with a call that is
not ours, a ready agent is put not-ready with the system reason `device-unavailable` or
`device-busy`; when the phone is free again and the reason is still ours, the agent is
ready again by itself. An agent whose wrap-up ends while the phone is busy goes the same way
instead of becoming ready (checked before every dispatch).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from acd_core import Assignment, RelaxStep, Router, RouterAPI, RouterError
from ccserver.config import Config, QueueConfig, browser_phone
from ccserver.errors import CCServerError
from ccserver.licensing import EVALUATION, LicenseError
from ccserver.logs import log
from ccserver.seats import SeatLedger

logger = logging.getLogger("ccserver.acd")

REASONS = ("break", "training", "meeting", "after-call-work")
"""Not-ready reasons an agent may give (feature code *13 + 1..4, or the REST API)."""
DEVICE_REASONS = {"busy": "device-busy", "unavailable": "device-unavailable"}
_BUSY_STATES = {"INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"}
_GONE_STATES = {"UNAVAILABLE", "INVALID"}
PHONE_LOST = "phone-lost"
"""The system reason of an agent whose phone vanished in a call (Asterisk heard no audio from
it for `phones.rtp_timeout_s`): they stay not-ready until they say ready again (*14 or the
API) — the phone is not rung meanwhile, as a dead phone would only cost the next caller a
ring timeout."""
LOCKOUT_S = 60.0
DIRECT_PREFIX = "direct-"


class AcdError(CCServerError):
    """An agent or call request the ACD refuses (slug says why)."""

    slug = "invalid-state"
    status = 409


@dataclass
class AgentPhone:
    """One configured agent and the phone they sit at, as the controller sees them beside
    the router's view."""

    id: str
    name: str
    skills: dict[str, int]
    phone: str | None = None  # where logged in; None when logged out
    device: str = "ok"  # "ok", "busy" or "unavailable", from AMI device state


def device_condition(state: str) -> str:
    """An AMI DeviceStateChange `State` as "ok", "busy" or "unavailable"."""
    upper = state.upper()
    if upper in _GONE_STATES:
        return "unavailable"
    if upper in _BUSY_STATES:
        return "busy"
    return "ok"  # NOT_INUSE, UNKNOWN (static contacts without qualify report this)


def relax_steps(queue: QueueConfig) -> list[RelaxStep]:
    return [RelaxStep(s.after_s, s.lower_by, tuple(s.add)) for s in queue.relaxation]


class PinGuard:
    """Counts wrong PINs per source (a phone, an API token) and locks it out for a while."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._failures: dict[str, list[float]] = {}

    def check(self, source: str, now: float) -> None:
        recent = [t for t in self._failures.get(source, []) if now - t < LOCKOUT_S]
        self._failures[source] = recent
        if len(recent) >= self.limit:
            raise AcdError(
                f"too many wrong PINs from {source}; wait a minute", slug="rate-limited", status=429
            )

    def failed(self, source: str, now: float) -> None:
        self._failures.setdefault(source, []).append(now)

    def passed(self, source: str) -> None:
        self._failures.pop(source, None)


class Acd:
    def __init__(
        self,
        config: Config,
        ledger: SeatLedger | None = None,
        router_cls: type[RouterAPI] = Router,
    ) -> None:
        self.config = config
        self.ledger = ledger or SeatLedger(EVALUATION)  # licensed seats: a login takes one
        self._router_cls = router_cls
        self.router: RouterAPI = router_cls(rona_memory_s=config.acd.rona_memory_s)
        self.agents = {a.id: AgentPhone(a.id, a.name, dict(a.skills)) for a in config.agents}
        self.phone_devices: dict[str, str] = {}  # phone id -> "ok"/"busy"/"unavailable"
        self.direct: set[str] = set()  # agents with a direct queue (see direct_queue)

    def reset(self) -> None:
        """Forget every agent and call (a snapshot that could not be restored): an empty
        router, agents logged out, no seat taken. What AMI said about phones is kept."""
        self.router = self._router_cls(rona_memory_s=self.config.acd.rona_memory_s)
        self.agents = {a.id: AgentPhone(a.id, a.name, dict(a.skills)) for a in self.config.agents}
        self.direct = set()
        self.ledger.sync([])

    # --- set-up and persistence ----------------------------------------------------------
    def define_queues(self) -> None:
        """(Re)define every configured queue; calls already waiting keep their places."""
        for q in self.config.acd.queues:
            self.router.define_queue(
                q.name,
                q.skills,
                strategy=q.strategy,
                relaxation=relax_steps(q),
                wrap_up_s=q.wrap_up_s,
                preferred_s=q.preferred_s,
            )

    def start_fresh(self, now: float) -> None:
        """A first start: queues defined, `auto_login` agents at their phones, ready."""
        self.define_queues()
        self.ledger.sync([])
        for agent in self.config.agents:
            if agent.auto_login and agent.phone is not None:
                self._auto_login(agent.id, agent.phone, now)

    def _auto_login(self, agent_id: str, phone: str, now: float) -> None:
        try:
            self.login(agent_id, phone, now)
        except LicenseError as exc:
            log(logger, "agent.login_refused", logging.WARNING, agent=agent_id, error=str(exc))

    def snapshot(self) -> dict[str, Any]:
        return {
            "router": self.router.snapshot(),
            # Only what `restore` reads back (names and skills come from the config).
            "seats": {k: {"phone": v.phone, "device": v.device} for k, v in self.agents.items()},
            "direct": sorted(self.direct),
        }

    def restore(self, data: Mapping[str, Any], now: float) -> list[str]:
        """Rebuild from a snapshot; then apply the current configuration (queues redefined,
        agents no longer configured logged out). Returns calls those logouts gave back."""
        self.router.restore(data["router"])
        logged_in = [a for a in self.router.agents() if self.router.agent(a).state != "logged-out"]
        self.ledger.sync(logged_in)
        self.direct = {a for a in data.get("direct", []) if a in self.agents}
        for agent_id, saved in data.get("seats", {}).items():
            restored = self.agents.get(agent_id)
            if restored is not None:
                restored.phone = saved.get("phone")
                restored.device = saved.get("device", "ok")
        self.define_queues()
        returned = []
        known = set(self.router.agents())
        for agent in self.config.agents:  # added to the configuration since the snapshot
            if agent.id not in known and agent.auto_login and agent.phone is not None:
                self._auto_login(agent.id, agent.phone, now)
        for agent_id in self.router.agents():
            view = self.router.agent(agent_id)
            if view.state == "logged-out":
                continue
            if agent_id not in self.agents:
                self.ledger.release_seat(agent_id)
                call = self.router.logout(agent_id, now)
                if call is not None:
                    returned.append(call)
            else:
                self.router.set_skills(agent_id, self._skills(agent_id))
        return returned

    # --- agents --------------------------------------------------------------------------
    def agent(self, agent_id: str) -> AgentPhone:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise AcdError(f"no agent {agent_id!r} is configured", slug="agent-unknown", status=404)
        return agent

    def agent_at(self, phone: str) -> str | None:
        return next((s.id for s in self.agents.values() if s.phone == phone), None)

    def state(self, agent_id: str) -> str:
        self.agent(agent_id)
        if agent_id not in self.router.agents():
            return "logged-out"
        return self.router.agent(agent_id).state

    def login(self, agent_id: str, phone: str, now: float, *, ready: bool = True) -> None:
        agent = self.agent(agent_id)
        if phone not in self.config.phones.ids and phone != browser_phone(agent_id):
            raise AcdError(f"no phone {phone!r} is configured", slug="phone-unknown", status=404)
        if self.state(agent_id) != "logged-out":
            raise AcdError(
                f"agent {agent_id} is already logged in at phone {agent.phone}",
                slug="agent-logged-in",
            )
        other = self.agent_at(phone)
        if other is not None:
            raise AcdError(f"agent {other} is logged in at phone {phone}", slug="phone-in-use")
        grant = self.ledger.acquire_seat(agent_id)  # LicenseError 409 when none is free
        try:
            self._router(self.router.login, agent_id, self._skills(agent_id), now, ready=ready)
        except CCServerError:
            self.ledger.release_seat(agent_id)
            raise
        if grant.grace:
            log(
                logger,
                "license.grace_seat",
                logging.WARNING,
                agent=agent_id,
                in_use=self.ledger.seats_in_use,
                seats=self.ledger.license.seats,
            )
        agent.phone = phone
        agent.device = self.phone_devices.get(phone, "ok")
        log(logger, "agent.login", agent=agent_id, phone=phone, ready=ready)

    def logout(self, agent_id: str, now: float) -> None:
        state = self.state(agent_id)
        if state == "logged-out":
            raise AcdError(f"agent {agent_id} is not logged in", slug="agent-logged-out")
        if state in ("reserved", "busy"):
            raise AcdError(
                f"agent {agent_id} is {state}: finish the call first", slug="agent-on-call"
            )
        self.router.logout(agent_id, now)
        self.ledger.release_seat(agent_id)
        self.agents[agent_id].phone = None
        log(logger, "agent.logout", agent=agent_id)

    def set_ready(self, agent_id: str, now: float) -> None:
        agent = self.agent(agent_id)
        self._router(self.router.set_ready, agent_id, now)
        log(logger, "agent.ready", agent=agent_id)
        if agent.device != "ok":  # the phone is busy: wait for it, visibly
            self.router.set_not_ready(agent_id, DEVICE_REASONS[agent.device], now)

    def set_not_ready(self, agent_id: str, reason: str, now: float) -> None:
        if reason not in REASONS:
            raise AcdError(
                f"reason {reason!r} is not one of {', '.join(REASONS)}",
                slug="reason-unknown",
                status=400,
            )
        self.agent(agent_id)
        self._router(self.router.set_not_ready, agent_id, reason, now)
        log(logger, "agent.not_ready", agent=agent_id, reason=reason)

    def phone_lost(self, agent_id: str, now: float) -> None:
        """The agent's phone vanished in a call the router has already closed: not-ready."""
        self._router(self.router.set_not_ready, agent_id, PHONE_LOST, now)
        log(logger, "agent.phone_lost", logging.WARNING, agent=agent_id)

    def extend_wrap_up(self, agent_id: str, seconds: float, now: float) -> float:
        self.agent(agent_id)
        if not 0 < seconds <= 3600:
            raise AcdError("seconds must be in (0, 3600]", slug="input-invalid", status=400)
        until: float = self._router(self.router.extend_wrap_up, agent_id, seconds, now)
        return until

    def device_state(self, phone: str, state: str, now: float) -> str | None:
        """Record what AMI says about a phone; returns the agent whose state this changed."""
        condition = device_condition(state)
        self.phone_devices[phone] = condition
        agent_id = self.agent_at(phone)
        if agent_id is None:
            return None
        agent = self.agents[agent_id]
        agent.device = condition
        view = self.router.agent(agent_id)
        if (
            condition == "ok"
            and view.state == "not-ready"
            and view.reason in DEVICE_REASONS.values()
        ):
            self.router.set_ready(agent_id, now)
            log(logger, "agent.device_ok", agent=agent_id, phone=phone)
            return agent_id
        if condition != "ok" and view.state == "ready":
            self.router.set_not_ready(agent_id, DEVICE_REASONS[condition], now)
            log(logger, "agent.device_blocked", agent=agent_id, phone=phone, device=condition)
            return agent_id
        return None

    # --- calls ---------------------------------------------------------------------------
    def direct_queue(self, agent_id: str) -> str:
        """The queue that reaches exactly this agent (for a transfer to a person): made on
        first use, with a skill only that agent holds."""
        self.agent(agent_id)
        if self.state(agent_id) == "logged-out":
            raise AcdError(f"agent {agent_id} is not logged in", slug="agent-logged-out")
        spec = self.queue_config(DIRECT_PREFIX + agent_id)
        if agent_id not in self.direct:
            self.router.define_queue(spec.name, spec.skills, wrap_up_s=spec.wrap_up_s)
            self.direct.add(agent_id)
            self.router.set_skills(agent_id, self._skills(agent_id))
        return spec.name

    def _skills(self, agent_id: str) -> dict[str, int]:
        skills = dict(self.agents[agent_id].skills)
        if agent_id in self.direct:
            skills[DIRECT_PREFIX + agent_id] = 1
        return skills

    def queue_config(self, name: str) -> QueueConfig:
        if name.startswith(DIRECT_PREFIX) and name[len(DIRECT_PREFIX) :] in self.agents:
            default = self.queue_config(self.config.acd.default_queue)
            return QueueConfig(name=name, skills={name: 1}, wrap_up_s=default.wrap_up_s)
        try:
            return self.config.acd.queue(name)
        except StopIteration:
            raise AcdError(f"no queue {name!r}", slug="queue-unknown", status=404) from None

    def enqueue(
        self,
        call_id: str,
        queue: str,
        now: float,
        *,
        priority: int | None = None,
        arrival: float | None = None,
        preferred_agent: str | None = None,
    ) -> float:
        """Put a call in a queue at its place (arrival kept across overflow and transfer);
        returns the expected wait quoted."""
        spec = self.queue_config(queue)
        ewt: float = self._router(
            self.router.enqueue,
            call_id,
            queue,
            now,
            priority=spec.priority if priority is None else priority,
            arrival=arrival,
            preferred_agent=preferred_agent,
        )
        return ewt

    def dispatch(self, now: float) -> list[Assignment]:
        """Every assignment possible now, never to an agent whose phone can't ring."""
        for agent in self.agents.values():
            if agent.device == "ok" or agent.phone is None:
                continue
            view = self.router.agent(agent.id)
            ends = view.wrap_until is not None and view.wrap_until <= now
            if view.state == "ready" or (view.state == "wrap-up" and ends):
                self.router.set_not_ready(agent.id, DEVICE_REASONS[agent.device], now)
        return self.router.dispatch(now)

    # --- views ---------------------------------------------------------------------------
    def agent_view(self, agent_id: str) -> dict[str, Any]:
        agent = self.agent(agent_id)
        body: dict[str, Any] = {
            "id": agent.id,
            "name": agent.name,
            "phone": agent.phone,
            "device": agent.device,
            "skills": agent.skills,
            "state": "logged-out",
            "reason": None,
            "call": None,
            "calls_taken": 0,
            "wrap_until": None,
        }
        if agent_id in self.router.agents():
            view = self.router.agent(agent_id)
            body.update(
                state=view.state,
                reason=view.reason,
                call=view.call,
                calls_taken=view.calls_taken,
                wrap_until=view.wrap_until,
            )
        return body

    def queue_view(self, name: str, now: float) -> dict[str, Any]:
        spec = self.queue_config(name)
        views = (self.router.call(c) for c in self.router.calls())
        waiting = [c for c in views if c.queue == name and c.state == "waiting"]
        eligible: dict[str, int] = {}
        for agent in self.agents.values():
            if all(agent.skills.get(k, 0) >= v for k, v in spec.skills.items()):
                state = self.state(agent.id)
                eligible[state] = eligible.get(state, 0) + 1
        return {
            "name": name,
            "priority": spec.priority,
            "waiting": len(waiting),
            "oldest_wait_s": round(max((now - c.queued_at for c in waiting), default=0.0), 3),
            "ewt_s": round(self.router.expected_wait(name, spec.priority), 3),
            "agents": eligible,
        }

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for agent_id in self.agents:
            state = self.state(agent_id)
            counts[state] = counts.get(state, 0) + 1
        return counts

    def _router(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the router, turning its refusals into AcdErrors with the same slug."""
        try:
            return method(*args, **kwargs)
        except RouterError as exc:
            raise AcdError(exc.message, slug=exc.slug) from None
