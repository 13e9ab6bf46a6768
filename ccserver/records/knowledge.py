"""The knowledge base (知识库): articles agents answer from, so that answers do not vary by
agent.

- An article: a title, a Markdown body, tags (what it is about: a queue's name, an IVR
  node, a disposition code, a word), and a validity period (`valid_from`, `valid_until`;
  none: always). Supervisors write them; agents search and read them.
- **Search** is SQLite FTS5, ranked by BM25 (a title match weighs most, then tags, then
  the body), in Chinese and English. FTS5's own tokenizers do not cut Chinese into words
  (unicode61 takes a whole run of Han characters as one token; trigram finds nothing
  shorter than three characters, and most Chinese words have two), so the text is
  segmented before FTS5 sees it: each run of CJK characters becomes its overlapping
  bigrams (电费查询 → 电费 费查 查询), as Lucene's CJK analyzer does; everything else is
  left to unicode61 with the Porter stemmer (bills → bill). A query is segmented the same
  way and every piece must match, so a two-character word is found inside any longer
  phrase, with no dictionary to keep up to date. A single Chinese character searches as a
  prefix.
- **Suggestions** for a call: the articles valid now that share the most tags with the
  call (its queue, its IVR route, its disposition), most read first.
- **Views**: each read by an agent is counted (`views`) and kept (`kb_views`: who, when),
  so that supervisors see what agents look up.

Storage: the history store, as the work orders (`History.records()`, migration 4).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ccserver.errors import CCServerError, InputError
from ccserver.history import History

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]+")
_TOKEN = re.compile(r"\w+")
_COLUMNS = (
    "id, title, body, valid_from, valid_until, created_at, created_by, updated_at, "
    "updated_by, views"
)
SNIPPET_CHARS = 80
WEIGHTS = (10.0, 1.0, 5.0)  # BM25 weight of a match in the title, the body, the tags


def segment(text: str) -> str:
    """`text` as the index holds it: each run of CJK characters as its overlapping bigrams
    (a lone character as itself), separated by spaces; everything else unchanged."""
    out, pos = [], 0
    for run in _CJK.finditer(text):
        out.append(text[pos : run.start()])
        chars = run.group()
        grams = [chars] if len(chars) == 1 else [chars[i : i + 2] for i in range(len(chars) - 1)]
        out.append(" " + " ".join(grams) + " ")
        pos = run.end()
    out.append(text[pos:])
    return "".join(out)


def match_expression(query: str) -> str | None:
    """The FTS5 query for what an agent typed: every piece (word, CJK bigram) must match;
    a lone CJK character matches as a prefix. None when nothing searchable was typed."""
    terms = []
    for token in _TOKEN.findall(segment(query)):
        quoted = '"' + token.replace('"', '""') + '"'
        terms.append(quoted + "*" if len(token) == 1 and _CJK.fullmatch(token) else quoted)
    return " AND ".join(terms) or None


@dataclass(frozen=True)
class ArticleText:
    """What a supervisor writes: the title, the Markdown body, the tags (kept trimmed and
    lower-case, each once) and the validity period (epoch seconds; None: open)."""

    title: str
    body: str = ""
    tags: tuple[str, ...] = ()
    valid_from: float | None = None
    valid_until: float | None = None

    def kept_tags(self) -> list[str]:
        return sorted({t.strip().lower() for t in self.tags if t.strip()})

    def check(self) -> None:
        if not self.title.strip():
            raise InputError("an article needs a title")
        start, end = self.valid_from, self.valid_until
        if start is not None and end is not None and end <= start:
            raise InputError("valid_until must be after valid_from")


@dataclass(frozen=True)
class Article:
    id: int
    title: str
    body: str
    tags: tuple[str, ...]
    valid_from: float | None
    valid_until: float | None
    created_at: float
    created_by: str
    updated_at: float
    updated_by: str
    views: int

    def valid_at(self, now: float) -> bool:
        return (self.valid_from is None or self.valid_from <= now) and (
            self.valid_until is None or now < self.valid_until
        )

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        at = time.time() if now is None else now
        return {
            "id": self.id,
            "title": self.title,
            "body": self.body,
            "tags": list(self.tags),
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            "valid": self.valid_at(at),
            "created_at": self.created_at,
            "created_by": self.created_by,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
            "views": self.views,
        }


class ArticleUnknown(CCServerError):
    slug = "article-unknown"
    status = 404


class KnowledgeBase:
    """The articles in the history store; see the module docstring. Synchronous (async
    callers use `asyncio.to_thread`)."""

    def __init__(self, history: History) -> None:
        self.history = history

    # --- changes -------------------------------------------------------------------------
    def add(self, text: ArticleText, *, who: str, now: float | None = None) -> Article:
        return self._save(None, text, who, now)

    def update(
        self, article_id: int, text: ArticleText, *, who: str, now: float | None = None
    ) -> Article:
        """Replace an article's text, tags and validity (its views are kept)."""
        return self._save(article_id, text, who, now)

    def _save(
        self, article_id: int | None, text: ArticleText, who: str, now: float | None
    ) -> Article:
        at = time.time() if now is None else now
        text.check()
        values = (text.title, text.body, text.valid_from, text.valid_until, at, who)
        with self.history.records() as db:
            if article_id is None:
                cursor = db.execute(
                    "INSERT INTO kb_articles (title, body, valid_from, valid_until, updated_at, "
                    "updated_by, created_at, created_by, views) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
                    (*values, at, who),
                )
                article_id = int(cursor.lastrowid or 0)
            else:
                _load(db, article_id)
                db.execute(
                    "UPDATE kb_articles SET title = ?, body = ?, valid_from = ?, "
                    "valid_until = ?, updated_at = ?, updated_by = ? WHERE id = ?",
                    (*values, article_id),
                )
            _index(db, article_id, text)
            return _load(db, article_id)

    def delete(self, article_id: int) -> None:
        with self.history.records() as db:
            _load(db, article_id)
            for table, column in (
                ("kb_articles", "id"),
                ("kb_article_tags", "article_id"),
                ("kb_search", "rowid"),
            ):
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (article_id,))

    def read(self, article_id: int, *, who: str, now: float | None = None) -> Article:
        """An article as an agent opens it: the read is counted and kept (who, when)."""
        at = time.time() if now is None else now
        with self.history.records() as db:
            _load(db, article_id)
            db.execute("UPDATE kb_articles SET views = views + 1 WHERE id = ?", (article_id,))
            db.execute(
                "INSERT INTO kb_views (article_id, at, who) VALUES (?, ?, ?)",
                (article_id, at, who),
            )
            return _load(db, article_id)

    # --- reads ---------------------------------------------------------------------------
    def articles(self) -> list[Article]:
        """Every article, expired ones too, most read first."""
        rows = self.history.query(f"SELECT {_COLUMNS} FROM kb_articles ORDER BY views DESC, id")
        tags = self._tags_of([row["id"] for row in rows])
        return [_article(row, tags.get(row["id"], ())) for row in rows]

    def search(
        self, query: str, *, now: float | None = None, limit: int = 20, valid_only: bool = True
    ) -> list[tuple[Article, str]]:
        """The articles matching `query`, best first, each with a snippet of its body
        around the first query word found (or its beginning)."""
        expression = match_expression(query)
        if expression is None:
            raise InputError("the query has nothing to search for: give a word")
        at = time.time() if now is None else now
        try:
            rows = self.history.query(
                f"SELECT {', '.join('a.' + c for c in _COLUMNS.split(', '))} "
                "FROM kb_search JOIN kb_articles a ON a.id = kb_search.rowid "
                f"WHERE kb_search MATCH ? ORDER BY bm25(kb_search, {', '.join(map(str, WEIGHTS))}) "
                "LIMIT ?",
                (expression, limit * 4 if valid_only else limit),
            )
        except sqlite3.OperationalError as exc:  # an expression FTS5 cannot take
            raise InputError(f"the query cannot be searched ({exc})") from None
        tags = self._tags_of([row["id"] for row in rows])
        found = [_article(row, tags.get(row["id"], ())) for row in rows]
        if valid_only:
            found = [a for a in found if a.valid_at(at)]
        return [(a, _snippet(a.body, query)) for a in found[:limit]]

    def suggest(
        self, tags: Iterable[str], *, now: float | None = None, limit: int = 5
    ) -> list[Article]:
        """The articles valid now sharing the most of `tags`, then the most read."""
        wanted = sorted({t.strip().lower() for t in tags if t and t.strip()})
        if not wanted:
            return []
        at = time.time() if now is None else now
        rows = self.history.query(
            f"SELECT {', '.join('a.' + c for c in _COLUMNS.split(', '))}, count(*) AS shared "
            "FROM kb_article_tags t JOIN kb_articles a ON a.id = t.article_id "
            f"WHERE t.tag IN ({', '.join('?' * len(wanted))}) "
            "AND (a.valid_from IS NULL OR a.valid_from <= ?) "
            "AND (a.valid_until IS NULL OR a.valid_until > ?) "
            "GROUP BY a.id ORDER BY shared DESC, a.views DESC, a.id LIMIT ?",
            (*wanted, at, at, limit),
        )
        tags_of = self._tags_of([row["id"] for row in rows])
        return [_article(row, tags_of.get(row["id"], ())) for row in rows]

    def lookups(self, since: float) -> list[dict[str, Any]]:
        """What agents looked up since `since`: per article, reads and readers, most first."""
        rows = self.history.query(
            "SELECT v.article_id AS id, a.title, count(*) AS reads, "
            "count(DISTINCT v.who) AS readers, max(v.at) AS last_at "
            "FROM kb_views v JOIN kb_articles a ON a.id = v.article_id WHERE v.at >= ? "
            "GROUP BY v.article_id, a.title ORDER BY reads DESC, id",
            (since,),
        )
        return [dict(row) for row in rows]

    def _tags_of(self, ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        if not ids:
            return {}
        rows = self.history.query(
            f"SELECT article_id, tag FROM kb_article_tags WHERE article_id IN "
            f"({', '.join('?' * len(ids))}) ORDER BY tag",
            tuple(ids),
        )
        found: dict[int, list[str]] = {}
        for row in rows:
            found.setdefault(row["article_id"], []).append(row["tag"])
        return {article_id: tuple(tags) for article_id, tags in found.items()}


def _index(db: sqlite3.Connection, article_id: int, text: ArticleText) -> None:
    tags = text.kept_tags()
    title, body = text.title, text.body
    db.execute("DELETE FROM kb_article_tags WHERE article_id = ?", (article_id,))
    db.executemany(
        "INSERT INTO kb_article_tags (article_id, tag) VALUES (?, ?)",
        [(article_id, tag) for tag in tags],
    )
    db.execute("DELETE FROM kb_search WHERE rowid = ?", (article_id,))
    db.execute(
        "INSERT INTO kb_search (rowid, title, body, tags) VALUES (?, ?, ?, ?)",
        (article_id, segment(title), segment(body), segment(" ".join(tags))),
    )


def _load(db: sqlite3.Connection, article_id: int) -> Article:
    row = db.execute(f"SELECT {_COLUMNS} FROM kb_articles WHERE id = ?", (article_id,)).fetchone()
    if row is None:
        raise ArticleUnknown(f"no article {article_id}")
    tags = db.execute(
        "SELECT tag FROM kb_article_tags WHERE article_id = ? ORDER BY tag", (article_id,)
    ).fetchall()
    return _article(row, tuple(t["tag"] for t in tags))


def _article(row: sqlite3.Row, tags: tuple[str, ...]) -> Article:
    data = {k: row[k] for k in _COLUMNS.split(", ")}
    return Article(**data, tags=tags)


def _snippet(body: str, query: str) -> str:
    """About `SNIPPET_CHARS` of the body around the first query word it contains."""
    text = " ".join(body.split())
    lowered = text.lower()
    at = -1
    for word in sorted(_TOKEN.findall(query.lower()), key=len, reverse=True):
        at = lowered.find(word)
        if at >= 0:
            break
    start = max(0, at - SNIPPET_CHARS // 4) if at >= 0 else 0
    piece = text[start : start + SNIPPET_CHARS]
    return ("…" if start else "") + piece + ("…" if start + SNIPPET_CHARS < len(text) else "")
