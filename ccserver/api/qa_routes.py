"""Quality inspection's endpoints (`ccserver.records.qa`), part of the API v1 route table:
inspectors (supervisor tokens) take calls from their queue and score them on the form;
agents read their own scores and dispute one once."""

from __future__ import annotations

import asyncio
from typing import Any

from ccserver.api import models
from ccserver.api.auth import Role
from ccserver.api.table import BODY_ERRORS, Ctx, Route, number_param, records_of
from ccserver.errors import CCServerError
from ccserver.records.qa import QaBook

_SCORE_ID = (("id", "the score's number"),)
_UNAVAILABLE = (503, "qa-unavailable")


def _qa(ctx: Ctx) -> QaBook:
    return records_of(ctx, "qa-unavailable").qa


def _score_id(ctx: Ctx) -> int:
    return number_param(ctx, "score", "score-unknown")


def _own(ctx: Ctx, score: dict[str, Any]) -> dict[str, Any]:
    """The score, when the caller may read it: its agent, or a supervisor."""
    reader = ctx.who.reader
    if reader is not None and score["agent"] != reader:
        raise CCServerError(
            f"score {score['id']} is of another agent", slug="forbidden", status=403
        )
    return score


async def _form(ctx: Ctx) -> Any:
    return _qa(ctx).form.model_dump()


async def _queue(ctx: Ctx) -> Any:
    query = ctx.query
    assert isinstance(query, models.QaQueueQuery)
    return await asyncio.to_thread(_qa(ctx).queue, scored=query.scored, limit=query.limit)


async def _score(ctx: Ctx) -> Any:
    body = ctx.body
    assert isinstance(body, models.QaScoreInput)
    return await asyncio.to_thread(
        _qa(ctx).score,
        body.call,
        inspector=ctx.who.name,
        ticked=body.ticked,
        deducted=body.deducted,
        comment=body.comment,
    )


async def _scores(ctx: Ctx) -> Any:
    query = ctx.query
    assert isinstance(query, models.QaScoresQuery)
    reader = ctx.who.reader
    if reader is not None and query.agent not in (None, reader):
        raise CCServerError("an agent reads its own scores only", slug="forbidden", status=403)
    agent = reader or query.agent
    return await asyncio.to_thread(_qa(ctx).scores, agent=agent, limit=query.limit)


async def _get(ctx: Ctx) -> Any:
    return _own(ctx, await asyncio.to_thread(_qa(ctx).get, _score_id(ctx)))


async def _dispute(ctx: Ctx) -> Any:
    """The agent disputes its own score; a supervisor may file it on the agent's behalf."""
    body = ctx.body
    assert isinstance(body, models.QaDispute)
    book, score_id = _qa(ctx), _score_id(ctx)
    score = _own(ctx, await asyncio.to_thread(book.get, score_id))
    return await asyncio.to_thread(book.dispute, score_id, agent=score["agent"], reason=body.reason)


QA_ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/qa/form",
        _form,
        "getQaForm",
        "The scoring form: sections with their cap, items and deductions.",
        Role.AGENT,
        models.QaForm,
        errors=(_UNAVAILABLE,),
    ),
    Route(
        "GET",
        "/qa/queue",
        _queue,
        "listQaQueue",
        "The recorded calls sampling picked for inspection, oldest first, with the rule.",
        Role.SUPERVISOR,
        models.QaQueued,
        many=True,
        query=models.QaQueueQuery,
        errors=((400, "input-invalid"), _UNAVAILABLE),
        details="Rules: `queue` (every call of `qa.queues`), `csat` (rated at most "
        "`qa.csat_at_most`), `long` (talked longer than `qa.longer_than_s`), `random` "
        "(about `qa.random_pct` % of each agent's week), `weekly` (at least one call of "
        "each agent's week).",
    ),
    Route(
        "POST",
        "/qa/scores",
        _score,
        "scoreCall",
        "Score a call on the form; the call leaves the inspectors' queue.",
        Role.SUPERVISOR,
        models.QaScore,
        status=201,
        body=models.QaScoreInput,
        errors=(*BODY_ERRORS, (404, "call-unknown"), _UNAVAILABLE),
        details="A section scores its ticked items, at most its cap, less its ticked "
        "deductions, never below 0. An id not on the form is refused (`input-invalid`).",
    ),
    Route(
        "GET",
        "/qa/scores",
        _scores,
        "listQaScores",
        "Scores, newest first: an agent's own, or (supervisors) anyone's or one agent's.",
        Role.AGENT,
        models.QaScore,
        many=True,
        query=models.QaScoresQuery,
        errors=((400, "input-invalid"), (403, "forbidden"), _UNAVAILABLE),
    ),
    Route(
        "GET",
        "/qa/scores/{id}",
        _get,
        "getQaScore",
        "One score with its sheet (its agent, or a supervisor).",
        Role.AGENT,
        models.QaScore,
        params=_SCORE_ID,
        errors=((403, "forbidden"), (404, "score-unknown"), _UNAVAILABLE),
    ),
    Route(
        "POST",
        "/qa/scores/{id}/dispute",
        _dispute,
        "disputeQaScore",
        "The scored agent disputes a score, once, with a reason (audited).",
        Role.AGENT,
        models.QaScore,
        body=models.QaDispute,
        params=_SCORE_ID,
        errors=(
            *BODY_ERRORS,
            (403, "forbidden"),
            (404, "score-unknown"),
            (409, "dispute-exists"),
            _UNAVAILABLE,
        ),
    ),
)
