"""The survey campaigns' endpoints (`ccserver.records.outbound`), part of the API v1
route table. Supervisors start, watch and stop campaigns; the controller's dialer places
the calls (`ccserver.calls.outbound`). The book is synchronous SQLite, so every handler
runs it in a thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ccserver.api import models
from ccserver.api.auth import Role
from ccserver.api.table import BODY_ERRORS, Ctx, Route, number_param, records_of
from ccserver.errors import InputError
from ccserver.records.outbound import OutboundBook, Policy, parse_numbers

_CAMPAIGN_ID = (("id", "the campaign's number"),)
_UNAVAILABLE = (503, "outbound-unavailable")


def _book(ctx: Ctx) -> OutboundBook:
    return records_of(ctx, "outbound-unavailable").outbound


def _campaign_id(ctx: Ctx) -> int:
    return number_param(ctx, "campaign", "campaign-unknown")


async def _start(ctx: Ctx) -> Any:
    body = ctx.body
    assert isinstance(body, models.CampaignInput)
    flows = ctx.services.backend.outbound_flows()
    if body.flow not in flows:
        raise InputError(f"flow {body.flow!r} is not an outbound flow ({', '.join(flows)})")
    numbers = parse_numbers(body.csv)
    policy = Policy(body.flow, body.max_concurrent, body.cps, body.attempts, body.retry_s)
    campaign = await asyncio.to_thread(
        _book(ctx).create_campaign, body.name, numbers, policy, who=ctx.who.name
    )
    return campaign.to_dict()


async def _list(ctx: Ctx) -> Any:
    return [c.to_dict() for c in await asyncio.to_thread(_book(ctx).campaigns)]


async def _get(ctx: Ctx) -> Any:
    book, campaign_id = _book(ctx), _campaign_id(ctx)
    campaign = await asyncio.to_thread(book.campaign, campaign_id)
    targets = await asyncio.to_thread(book.targets, campaign=campaign_id)
    return {**campaign.to_dict(), "targets": [t.to_dict() for t in targets]}


async def _stop(ctx: Ctx) -> Any:
    campaign = await asyncio.to_thread(_book(ctx).stop_campaign, _campaign_id(ctx))
    return campaign.to_dict()


CAMPAIGN_ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/campaigns",
        _start,
        "startCampaign",
        "Start a survey campaign over a list of numbers (CSV).",
        Role.SUPERVISOR,
        models.Campaign,
        status=201,
        body=models.CampaignInput,
        errors=(*BODY_ERRORS, _UNAVAILABLE),
        details="The dialer calls the numbers inside the allowed hours (`outbound.hours`), "
        "at most `max_concurrent` at once and `cps` a second, retrying a busy or unanswered "
        "number with back-off up to `attempts` tries; every call holds a licensed IVR "
        "channel. A bad list is refused with the first bad line.",
    ),
    Route(
        "GET",
        "/campaigns",
        _list,
        "listCampaigns",
        "Every campaign with its progress, newest first.",
        Role.SUPERVISOR,
        models.Campaign,
        many=True,
        errors=(_UNAVAILABLE,),
    ),
    Route(
        "GET",
        "/campaigns/{id}",
        _get,
        "getCampaign",
        "One campaign with its progress and the outcome of every number.",
        Role.SUPERVISOR,
        models.CampaignDetail,
        params=_CAMPAIGN_ID,
        errors=((404, "campaign-unknown"), _UNAVAILABLE),
        audit_read=True,
    ),
    Route(
        "POST",
        "/campaigns/{id}/stop",
        _stop,
        "stopCampaign",
        "Stop a campaign: no more numbers are dialled (calls up finish).",
        Role.SUPERVISOR,
        models.Campaign,
        params=_CAMPAIGN_ID,
        errors=((404, "campaign-unknown"), _UNAVAILABLE),
        details="Numbers not yet done get the result `stopped`.",
    ),
)
