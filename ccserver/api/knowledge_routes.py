"""The knowledge base's endpoints (`ccserver.records.knowledge`), part of the API v1 route
table: agents search and read articles (each read counted), supervisors write them and
see what agents look up."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ccserver.api import models
from ccserver.api.auth import Role
from ccserver.api.table import BODY_ERRORS, Ctx, Route, number_param, records_of
from ccserver.errors import CCServerError
from ccserver.records.knowledge import ArticleText, KnowledgeBase

_ARTICLE_ID = (("id", "the article's number"),)
_UNAVAILABLE = (503, "knowledge-unavailable")
LOOKUPS_DAYS = 7


def _kb(ctx: Ctx) -> KnowledgeBase:
    return records_of(ctx, "knowledge-unavailable").knowledge


def _article_id(ctx: Ctx) -> int:
    return number_param(ctx, "article", "article-unknown")


def _text(body: models.ArticleInput) -> ArticleText:
    return ArticleText(
        title=body.title,
        body=body.body,
        tags=tuple(body.tags),
        valid_from=None if body.valid_from is None else body.valid_from.timestamp(),
        valid_until=None if body.valid_until is None else body.valid_until.timestamp(),
    )


async def _search(ctx: Ctx) -> Any:
    query = ctx.query
    assert isinstance(query, models.KnowledgeQuery)
    if query.expired and ctx.who.role < Role.SUPERVISOR:
        raise CCServerError("expired articles are for supervisors", slug="forbidden", status=403)
    now = time.time()
    found = await asyncio.to_thread(
        _kb(ctx).search, query.q, now=now, limit=query.limit, valid_only=not query.expired
    )
    return [
        {
            "id": article.id,
            "title": article.title,
            "tags": list(article.tags),
            "snippet": snippet,
            "valid": article.valid_at(now),
        }
        for article, snippet in found
    ]


async def _articles(ctx: Ctx) -> Any:
    return [article.to_dict() for article in await asyncio.to_thread(_kb(ctx).articles)]


async def _read(ctx: Ctx) -> Any:
    article = await asyncio.to_thread(_kb(ctx).read, _article_id(ctx), who=ctx.who.name)
    return article.to_dict()


async def _add(ctx: Ctx) -> Any:
    body = ctx.body
    assert isinstance(body, models.ArticleInput)
    article = await asyncio.to_thread(_kb(ctx).add, _text(body), who=ctx.who.name)
    return article.to_dict()


async def _update(ctx: Ctx) -> Any:
    body = ctx.body
    assert isinstance(body, models.ArticleInput)
    article = await asyncio.to_thread(
        _kb(ctx).update, _article_id(ctx), _text(body), who=ctx.who.name
    )
    return article.to_dict()


async def _delete(ctx: Ctx) -> Any:
    article_id = _article_id(ctx)
    await asyncio.to_thread(_kb(ctx).delete, article_id)
    return {"deleted": str(article_id)}


async def _lookups(ctx: Ctx) -> Any:
    since = time.time() - LOOKUPS_DAYS * 86400.0
    return await asyncio.to_thread(_kb(ctx).lookups, since)


KNOWLEDGE_ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/knowledge/search",
        _search,
        "searchKnowledge",
        "Articles matching words (Chinese or English), best first, valid ones only.",
        Role.AGENT,
        models.ArticleHit,
        many=True,
        query=models.KnowledgeQuery,
        errors=((400, "input-invalid"), (403, "forbidden"), _UNAVAILABLE),
        details="Chinese is matched by character pairs, so a word is found inside any longer "
        "phrase; English words are stemmed. A match in the title ranks first, then tags, then "
        "the body. `expired=true` (supervisors) finds expired articles too.",
    ),
    Route(
        "GET",
        "/knowledge/articles",
        _articles,
        "listArticles",
        "Every article, expired ones too, most read first.",
        Role.SUPERVISOR,
        models.Article,
        many=True,
        errors=(_UNAVAILABLE,),
    ),
    Route(
        "POST",
        "/knowledge/articles",
        _add,
        "addArticle",
        "Write an article.",
        Role.SUPERVISOR,
        models.Article,
        status=201,
        body=models.ArticleInput,
        errors=(*BODY_ERRORS, _UNAVAILABLE),
    ),
    Route(
        "GET",
        "/knowledge/articles/{id}",
        _read,
        "readArticle",
        "Open an article; the read is counted (who, when).",
        Role.AGENT,
        models.Article,
        params=_ARTICLE_ID,
        errors=((404, "article-unknown"), _UNAVAILABLE),
    ),
    Route(
        "PUT",
        "/knowledge/articles/{id}",
        _update,
        "updateArticle",
        "Replace an article's title, body, tags and validity (its reads are kept).",
        Role.SUPERVISOR,
        models.Article,
        body=models.ArticleInput,
        params=_ARTICLE_ID,
        errors=(*BODY_ERRORS, (404, "article-unknown"), _UNAVAILABLE),
    ),
    Route(
        "DELETE",
        "/knowledge/articles/{id}",
        _delete,
        "deleteArticle",
        "Delete an article.",
        Role.SUPERVISOR,
        models.Deleted,
        params=_ARTICLE_ID,
        errors=((404, "article-unknown"), _UNAVAILABLE),
    ),
    Route(
        "GET",
        "/knowledge/lookups",
        _lookups,
        "knowledgeLookups",
        "What agents looked up in the last 7 days: per article, reads and readers.",
        Role.SUPERVISOR,
        models.ArticleLookups,
        many=True,
        errors=(_UNAVAILABLE,),
    ),
)
