"""Supervisors listen to, whisper to and barge into agents' calls.

A monitor session (`model.Monitor`) is the supervisor's phone leg and a snoop channel on the
monitored agent's leg, both in the session's own mixing bridge. The snoop always hears both
directions of the agent's leg, so the supervisor hears the caller and the agent; the mode
says where the supervisor's voice goes (res_snoop's whisper direction):
- listen: nowhere;
- whisper: `out`, into what Asterisk sends the agent's phone: the agent hears it, the caller
  does not;
- barge: `both`, also into what the agent's leg sends its call's bridge: the caller hears it.
A snoop's directions are fixed when it is made, so a switch makes a new snoop; it joins the
bridge before the old one is hung up.

Invariants:
- The monitored call is never touched: a session only adds channels (the snoop, the
  supervisor's leg) and a bridge of its own, and ending it removes only those.
- A session ends when the supervisor hangs up, when it is stopped, or when the agent's leg
  ends (the call ends, is transferred or requeued: Asterisk then ends the snoop), and ending
  hangs up its channels and destroys its bridge.
- Sessions live only in this process: after a restart, recovery hangs up their channels as
  strays and destroys their bridges; the monitored call goes on.
- Every start, switch and stop is written to the audit log: who, whom (agent, call), mode,
  and for a stop why.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from typing import Any

from ccserver.acd import AcdError
from ccserver.calls.center import CallCenter
from ccserver.calls.media import ChannelGone
from ccserver.calls.model import Call, CallState, Monitor, MonitorMode, monitor_ids, snoop_id
from ccserver.calls.phrases import phrase, refusal
from ccserver.config import SUPERVISOR_TOKENS, supervisor_phone
from ccserver.errors import CCServerError
from ccserver.logs import log
from ccserver.telephony.ari import AriError, AriEvent

logger = logging.getLogger("ccserver.monitor")
WHISPER = {MonitorMode.LISTEN: "none", MonitorMode.WHISPER: "out", MonitorMode.BARGE: "both"}
FEATURE_MODES = {"*21": MonitorMode.LISTEN, "*22": MonitorMode.WHISPER, "*23": MonitorMode.BARGE}
"""The feature codes a supervisor's desk phone dials, followed by the agent id."""
BEEP = "sound:beep"
SUPERVISOR_PHONES = frozenset(supervisor_phone(name) for name in SUPERVISOR_TOKENS)
"""The supervisors' browser phones (the wallboard's), which a session may ring too."""


async def start(
    center: CallCenter,
    *,
    call_id: str | None,
    agent: str | None,
    mode: MonitorMode,
    phone: str,
    by: str,
) -> dict[str, Any]:
    """Ring the supervisor's `phone` for a session on the call `call_id` or on the call
    `agent` is talking on (exactly one is given); returns the session. Raises call-unknown
    or agent-unknown (404), phone-unknown (404), not-talking (409: no agent on the call)."""
    if phone not in center.config.phones.ids and phone not in SUPERVISOR_PHONES:
        raise AcdError(f"no phone {phone!r} in phones.ids", slug="phone-unknown", status=404)
    async with center.transaction():
        call = _talk(center, call_id, agent)
        session, leg, bridge = monitor_ids()
        monitor = _open(center, session, leg, bridge, call, mode, phone, by)
        try:
            await center.ari.originate(
                leg,
                endpoint=f"PJSIP/{phone}",
                app=center.config.controller.app,
                app_args=f"monitor,{session}",
                timeout_s=center.config.supervision.ring_timeout_s,
                caller_id=f'"{mode.value} {monitor.agent}" <{monitor.agent}>',
            )
        except AriError as exc:
            await end(center, monitor, "phone-failed")
            raise AcdError(
                f"phone {phone} could not be rung: {exc}", slug="phone-failed", status=502
            ) from None
    return monitor.to_dict()


def sessions(center: CallCenter) -> list[dict[str, Any]]:
    return [m.to_dict() for m in center.monitors.values()]


async def switch(center: CallCenter, session: str, mode: MonitorMode, *, by: str) -> dict[str, Any]:
    """Change a session's mode; raises monitor-unknown (404)."""
    async with center.transaction():
        monitor = _session(center, session)
        if monitor.mode != mode:
            monitor.mode = mode
            _audit(center, "monitor.switch", monitor, by)
            if monitor.answered_at is not None:
                await _snoop(center, monitor)
    return monitor.to_dict()


async def stop(center: CallCenter, session: str, *, by: str) -> None:
    """End a session (the monitored call goes on); raises monitor-unknown (404)."""
    async with center.transaction():
        await end(center, _session(center, session), "stopped", by=by)


async def on_event(center: CallCenter, event: AriEvent) -> None:
    """An event on a session's channel: the supervisor answered or hung up; a snoop is in
    Stasis (it joins the bridge) or ended (the agent's leg is gone)."""
    channel = event.channel_id or ""
    monitor = center.monitors.get(center.monitor_channels.get(channel, ""))
    if monitor is None:
        return
    if event.type == "StasisStart" and channel == monitor.leg:
        await _answered(center, monitor)
    elif event.type == "StasisStart" and channel == monitor.pending_snoop:
        await _snoop_ready(center, monitor, channel)
    elif event.type in ("StasisEnd", "ChannelDestroyed"):
        await end(center, monitor, "supervisor-hung-up" if channel == monitor.leg else "talk-ended")


async def feature_dialled(center: CallCenter, event: AriEvent) -> None:
    """A desk phone dialled *21/*22/*23<agent> (`supervise,<code>`): that call is the
    supervisor's leg. Only phones of `supervision.phones` may; others hear a refusal."""
    channel = event.channel_id or ""
    exten = event.args[1] if len(event.args) > 1 else ""
    phone = str(event.channel.get("name", "")).removeprefix("PJSIP/").rsplit("-", 1)[0]
    mode, agent = FEATURE_MODES.get(exten[:3]), exten[3:]
    try:
        if phone not in center.config.supervision.phones or mode is None:
            raise AcdError(f"phone {phone} may not monitor", slug="forbidden", status=403)
        call = _talk(center, None, agent)
    except CCServerError as exc:
        log(logger, "monitor.refused", logging.WARNING, phone=phone, code=exten, why=exc.slug)
        why = refusal(exc.slug, center.config.acd.language)
        center.spawn(_refuse(center, channel, why), f"monitor-refused-{channel}")
        return
    session, _, bridge = monitor_ids()
    monitor = _open(center, session, channel, bridge, call, mode, phone, f"phone:{phone}")
    await center.ari.answer(channel)
    await _answered(center, monitor)


async def end(center: CallCenter, monitor: Monitor, why: str, *, by: str | None = None) -> None:
    """Hang up the session's channels and destroy its bridge (once)."""
    if center.monitors.pop(monitor.id, None) is None:
        return
    channels = [c for c in (monitor.leg, monitor.snoop, monitor.pending_snoop) if c]
    for channel in channels:
        center.monitor_channels.pop(channel, None)
    for channel in channels:
        await center.ari.hangup(channel)
    await center.ari.destroy_bridge(monitor.bridge)
    _audit(center, "monitor.stop", monitor, by or monitor.supervisor, why=why)


# --- the session's steps -----------------------------------------------------------------------
def _talk(center: CallCenter, call_id: str | None, agent: str | None) -> Call:
    """The call to monitor: given, or the one `agent` is talking on; it must be talking."""
    if call_id is not None:
        call = center.calls.get(call_id)
        if call is None:
            raise AcdError(f"no live call {call_id!r}", slug="call-unknown", status=404)
    else:
        center.acd.agent(agent or "")  # raises agent-unknown
        talking = [c for c in center.calls.values() if c.agent == agent and c.agent_channel]
        call = next((c for c in talking if c.state == CallState.CONNECTED), None)
        if call is None:
            raise AcdError(f"agent {agent} is on no call", slug="not-talking", status=409)
    if call.state != CallState.CONNECTED or not call.agent or not call.agent_channel:
        raise AcdError(f"call {call.id} is {call.state}, not talking", slug="not-talking")
    return call


def _open(
    center: CallCenter,
    session: str,
    leg: str,
    bridge: str,
    call: Call,
    mode: MonitorMode,
    phone: str,
    by: str,
) -> Monitor:
    monitor = Monitor(
        id=session,
        supervisor=by,
        phone=phone,
        agent=call.agent or "",
        call=call.id,
        agent_channel=call.agent_channel or "",
        mode=mode,
        leg=leg,
        bridge=bridge,
        started_at=time.time(),
    )
    center.monitors[session] = monitor
    center.monitor_channels[leg] = session
    _audit(center, "monitor.start", monitor, by)
    log(logger, "monitor.started", session=session, by=by, agent=monitor.agent, mode=mode.value)
    return monitor


async def _answered(center: CallCenter, monitor: Monitor) -> None:
    monitor.answered_at = time.time()
    try:
        await center.ari.create_bridge(monitor.bridge)
        await center.ari.add_to_bridge(monitor.bridge, monitor.leg)
        await _snoop(center, monitor)
    except AriError as exc:
        log(logger, "monitor.failed", logging.WARNING, session=monitor.id, error=str(exc))
        await end(center, monitor, "failed")


async def _snoop(center: CallCenter, monitor: Monitor) -> None:
    """A snoop for the session's mode on the agent's leg; it joins the bridge when it is
    in Stasis (`_snoop_ready`). A snoop made for an earlier switch is dropped."""
    if monitor.pending_snoop:
        center.monitor_channels.pop(monitor.pending_snoop, None)
        await center.ari.hangup(monitor.pending_snoop)
    snoop = monitor.pending_snoop = snoop_id()
    center.monitor_channels[snoop] = monitor.id
    try:
        await center.ari.snoop(
            monitor.agent_channel,
            snoop,
            whisper=WHISPER[monitor.mode],
            app=center.config.controller.app,
            app_args=f"snoop,{monitor.id}",
        )
    except AriError as exc:  # the agent's leg is gone: the talk is over
        log(logger, "monitor.snoop_failed", logging.WARNING, session=monitor.id, error=str(exc))
        await end(center, monitor, "talk-ended")


async def _snoop_ready(center: CallCenter, monitor: Monitor, snoop: str) -> None:
    old, monitor.snoop, monitor.pending_snoop = monitor.snoop, snoop, None
    try:
        await center.ari.add_to_bridge(monitor.bridge, snoop)
    except AriError as exc:
        log(logger, "monitor.failed", logging.WARNING, session=monitor.id, error=str(exc))
        await end(center, monitor, "failed")
        return
    if old:
        center.monitor_channels.pop(old, None)
        await center.ari.hangup(old)
    supervision = center.config.supervision
    if supervision.beep or monitor.agent in supervision.beep_agents:
        with contextlib.suppress(AriError):  # the talk is ending: the snoop's end ends it
            await center.ari.play(monitor.agent_channel, f"pb-{uuid.uuid4().hex[:16]}", [BEEP])
    log(logger, "monitor.mode", session=monitor.id, mode=monitor.mode.value)


async def _refuse(center: CallCenter, channel: str, why: str) -> None:
    try:
        await center.ari.answer(channel)
        await center.say(channel, phrase("refused", center.config.acd.language, why=why))
    except (AriError, CCServerError, ChannelGone):
        pass  # the phone hung up first
    finally:
        await center.ari.hangup(channel)


def _session(center: CallCenter, session: str) -> Monitor:
    monitor = center.monitors.get(session)
    if monitor is None:
        raise AcdError(f"no monitor session {session!r}", slug="monitor-unknown", status=404)
    return monitor


def _audit(center: CallCenter, action: str, monitor: Monitor, who: str, **fields: Any) -> None:
    if center.audit is not None:
        center.audit.action(
            action,
            who=who,
            session=monitor.id,
            agent=monitor.agent,
            call=monitor.call,
            mode=monitor.mode.value,
            phone=monitor.phone,
            **fields,
        )
