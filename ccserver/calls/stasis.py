"""The route table: which module handles each ARI event that changes a call.

`ROUTES` is given to every `CallCenter`; the center looks a handler up by the Stasis entry
(`inbound`, `feature`), by the role of a leg we originated (its answer, its end), or by the
event (a caller gone, a transfer asked for by a phone). This is the only module that knows
every feature; none of them imports it, and the center imports none of them.

An agent's leg ending is the one decision that spans features: the role's own handler runs
first (a callback's agent before the talk, the consulted agent of a transfer), and when the
leg was an agent in a talk, `agent_leg_gone` decides by the call's state.
"""

from __future__ import annotations

from ccserver.calls import (
    agents,
    callbacks,
    inbound,
    monitor,
    outbound,
    queueing,
    routing,
    talk,
    transfers,
)
from ccserver.calls.center import CallCenter, Routes
from ccserver.calls.model import VANISHED_CAUSES, Call, CallState, LegRole, Outcome, cause_result


async def agent_leg_gone(center: CallCenter, call: Call, leg: str, cause: int) -> None:
    """An agent's leg ended: a RONA while it rang (a withdrawn offer when it had answered
    but could not be bridged); in a talk, a vanished phone (the caller waits again), the
    survey (a flow runs the call) or the end of the call."""
    if call.agent_channel != leg:
        return
    if call.state == CallState.RINGING and call.attempts[-1]["result"] == talk.BRIDGE_FAILED:
        await routing.withdraw(center, call, talk.BRIDGE_FAILED)
    elif call.state == CallState.RINGING:
        await routing.rona(center, call, cause_result(cause))
    elif call.state != CallState.CONNECTED:
        return
    elif cause in VANISHED_CAUSES:
        await talk.agent_vanished(center, call, VANISHED_CAUSES[cause])
        if await center.hold(call.id):
            queueing.keep_waiting(center, call)
    elif call.flow is not None and call.callback is None:
        await talk.to_survey(center, call)
    else:
        await talk.finish(center, call, Outcome.COMPLETED, hangup_by="agent")


async def _callback_agent_gone(center: CallCenter, call: Call, leg: str, cause: int) -> None:
    if not await callbacks.agent_leg_gone(center, call, leg, cause):
        await agent_leg_gone(center, call, leg, cause)


async def _consult_target_gone(center: CallCenter, call: Call, leg: str, cause: int) -> None:
    if not await transfers.target_gone(center, call, leg, cause):
        await agent_leg_gone(center, call, leg, cause)


ROUTES = Routes(
    entries={
        "inbound": inbound.arrive,
        "feature": agents.feature_dialled,
        "supervise": monitor.feature_dialled,
    },
    answered={
        LegRole.AGENT: talk.agent_answered,
        LegRole.CONSULT_TARGET: transfers.target_answered,
        LegRole.CALLBACK_AGENT: callbacks.agent_answered,
        LegRole.CUSTOMER: callbacks.customer_answered,
    },
    leg_gone={
        LegRole.AGENT: agent_leg_gone,
        LegRole.CONSULT_TARGET: _consult_target_gone,
        LegRole.CONSULT_SOURCE: transfers.source_gone,
        LegRole.CALLBACK_AGENT: _callback_agent_gone,
        LegRole.CUSTOMER: callbacks.customer_gone,
    },
    caller_gone=talk.caller_gone,
    transfer_requested=transfers.on_refer,
    monitor_event=monitor.on_event,
    outbound_event=outbound.on_event,
    dispatch=routing.dispatch,
)
