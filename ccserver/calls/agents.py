"""What agents do: log in and out, ready, not-ready with a reason, more wrap-up time —
from the phone's keypad (feature codes) or from the REST API, through one code path.

Feature codes, dialled from the phone the agent sits at:
  *11  log in: the agent number and the PIN, each ended with #, are asked for by voice
       (or dialled at once: `*11<agent>*<pin>`); the agent is logged in at this phone, ready.
  *12  log out the agent at this phone.
  *13  not ready: the reason is asked for (1 break, 2 training, 3 meeting, 4 after-call
       work), or dialled at once (`*131`).
  *14  ready.
  *15  30 more seconds of wrap-up.
Every code ends with a spoken confirmation (or the reason it was refused) and a hang-up.
Wrong PINs are counted per phone: after `acd.pin_attempts` failures in a row the phone is
refused for a minute, so a PIN cannot be guessed from a keypad.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from ccserver.acd import REASONS, AcdError
from ccserver.calls.center import CallCenter
from ccserver.calls.media import ChannelGone
from ccserver.calls.phrases import phrase, refusal
from ccserver.errors import CCServerError
from ccserver.logs import log
from ccserver.telephony.ari import AriEvent

logger = logging.getLogger("ccserver.agents")
EXTEND_S = 30.0
ACTIONS = ("login", "logout", "ready", "not-ready", "extend-wrap-up")


async def agent_action(
    center: CallCenter,
    agent_id: str,
    action: str,
    *,
    reason: str | None = None,
    phone: str | None = None,
    pin: str | None = None,
    seconds: float | None = None,
    by: str,
) -> dict[str, Any]:
    """Do one agent action in a transaction; returns the agent's new view. `pin` is checked
    for logins when given (the API skips it for supervisors)."""
    async with center.transaction(persist="now"):
        now = time.time()
        acd = center.acd
        acd.agent(agent_id)
        if action == "login":
            if pin is not None:
                _check_pin(center, agent_id, pin, source=by, now=now)
            target = phone or acd.agents[agent_id].phone or _default_phone(center, agent_id)
            acd.login(agent_id, target, now)
        elif action == "logout":
            acd.logout(agent_id, now)
        elif action == "ready":
            acd.set_ready(agent_id, now)
        elif action == "not-ready":
            acd.set_not_ready(agent_id, reason or "", now)
        elif action == "extend-wrap-up":
            acd.extend_wrap_up(agent_id, seconds or EXTEND_S, now)
        else:
            raise AcdError(
                f"action must be one of {', '.join(ACTIONS)}", slug="input-invalid", status=400
            )
        view = acd.agent_view(agent_id)
        log(logger, "agent.action", agent=agent_id, action=action, by=by, state=view["state"])
        await center.journal.agent_event(
            agent_id,
            action,
            agent=agent_id,
            by=by,
            state=view["state"],
            reason=view["reason"] or "",
        )
        return view


async def desk_login(
    center: CallCenter, agent_id: str, *, pin: str, phone: str | None, by: str
) -> dict[str, Any]:
    """Log an agent in from its desk page, after checking its PIN, not ready (it says
    ready once its phone is registered). An agent logged in at that phone stays as it is
    (the page was reloaded); one logged in at another phone moves to this one, unless a
    call holds it there. `phone` None: the agent's own desk phone."""
    async with center.transaction(persist="now"):
        now = time.time()
        acd = center.acd
        acd.agent(agent_id)
        _check_pin(center, agent_id, pin, source=by, now=now)
        target = phone or acd.agents[agent_id].phone or _default_phone(center, agent_id)
        state = acd.state(agent_id)
        if state != "logged-out" and acd.agents[agent_id].phone == target:
            return acd.agent_view(agent_id)
        if state in ("reserved", "busy"):
            raise AcdError(
                f"agent {agent_id} is on a call at phone {acd.agents[agent_id].phone}; "
                "log in here when it is over",
                slug="agent-on-call",
            )
        if state != "logged-out":
            acd.logout(agent_id, now)
        acd.login(agent_id, target, now, ready=False)
        view = acd.agent_view(agent_id)
        log(logger, "agent.action", agent=agent_id, action="login", by=by, state=view["state"])
        await center.journal.agent_event(
            agent_id, "login", agent=agent_id, by=by, state=view["state"], reason=""
        )
        return view


def _default_phone(center: CallCenter, agent_id: str) -> str:
    phone = next((a.phone for a in center.config.agents if a.id == agent_id), None)
    if phone is None:
        raise AcdError(
            f"agent {agent_id} has no default phone: give one", slug="phone-required", status=400
        )
    return phone


def _check_pin(center: CallCenter, agent_id: str, pin: str, *, source: str, now: float) -> None:
    center.pin_guard.check(source, now)
    expected = center.pins.get(agent_id, "")
    if not expected or not hmac.compare_digest(expected.encode(), pin.encode()):
        center.pin_guard.failed(source, now)
        log(logger, "agent.pin_wrong", logging.WARNING, agent=agent_id, source=source)
        raise AcdError("wrong agent number or PIN", slug="pin-invalid", status=403)
    center.pin_guard.passed(source)


# --- feature codes ------------------------------------------------------------------------
async def feature_dialled(center: CallCenter, event: AriEvent) -> None:
    """A phone dialled a feature code (`feature,<code>`): a dialogue of its own."""
    channel = event.channel_id or ""
    code = event.args[1] if len(event.args) > 1 else ""
    phone = str(event.channel.get("name", "")).removeprefix("PJSIP/").rsplit("-", 1)[0]
    center.media.listen(channel)
    center.spawn(feature_call(center, channel, code, phone), f"feature-{channel}")


async def feature_call(center: CallCenter, channel: str, exten: str, phone: str) -> None:
    language = center.config.acd.language

    async def ask(key: str, max_digits: int) -> str:
        first = await center.say(channel, phrase(key, language), interruptible=True)
        return await center.media.read_digits(
            channel, max_digits=max_digits, timeout_s=8.0, first=first
        )

    try:
        await center.ari.answer(channel)
        code, rest = exten[:3], exten[3:]
        log(logger, "feature.dialled", phone=phone, code=code)
        try:
            if code == "*11":
                key = await _login(center, channel, phone, rest, ask)
            else:
                key = await _other(center, code, rest, phone, ask)
            await center.say(channel, phrase(key, language))
        except CCServerError as exc:  # the ACD's refusals and the license's
            why = refusal(exc.slug, language)
            await center.say(channel, phrase("refused", language, why=why))
    except ChannelGone:
        return
    finally:
        await center.ari.hangup(channel)


async def _login(center: CallCenter, channel: str, phone: str, rest: str, ask: Any) -> str:
    given_agent, _, given_pin = rest.partition("*")
    language = center.config.acd.language
    for _ in range(center.config.acd.pin_attempts):
        agent_id = given_agent or await ask("agent_id", 8)
        pin = (given_pin or await ask("pin", 8)) if agent_id else ""
        given_agent = given_pin = ""
        if not agent_id or not pin:  # nothing typed: the person has gone, or given up
            break
        try:
            await agent_action(center, agent_id, "login", phone=phone, pin=pin, by=f"phone:{phone}")
            return "logged_in"
        except AcdError as exc:
            if exc.slug not in ("pin-invalid", "agent-unknown"):
                raise
            await center.say(channel, phrase("pin_wrong", language))
    raise AcdError("no agent was logged in", slug="pin-invalid", status=403)


async def _other(center: CallCenter, code: str, rest: str, phone: str, ask: Any) -> str:
    agent_id = center.acd.agent_at(phone)
    if agent_id is None:
        return "not_logged_in"
    by = f"phone:{phone}"
    if code == "*12":
        await agent_action(center, agent_id, "logout", by=by)
        return "logged_out"
    if code == "*13":
        digit = rest[:1] or await ask("reason", 1)
        index = int(digit) - 1 if digit.isdigit() else -1
        reason = REASONS[index] if 0 <= index < len(REASONS) else f"code-{digit}"
        await agent_action(center, agent_id, "not-ready", reason=reason, by=by)
        return "not_ready"
    if code == "*14":
        await agent_action(center, agent_id, "ready", by=by)
        return "ready"
    if code == "*15":
        await agent_action(center, agent_id, "extend-wrap-up", seconds=EXTEND_S, by=by)
        return "wrap_extended"
    return "unknown_code"
