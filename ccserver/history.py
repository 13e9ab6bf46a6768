"""The history store: every queue event, every agent state change and every final call
record, in SQLite (one file, WAL mode), for KPI reports and for looking a call up later.

Redis holds the *live* state and forgets; history keeps everything and answers questions
over time ranges. Writes come from the call path, so they must never block the asyncio
loop nor raise into it:

- `record_event`, `save_call` and `agent_state` turn their arguments into rows at once
  (so a record the caller mutates afterwards is saved as it was) and put them on a queue;
- one writer thread takes whatever has piled up, writes it in a single transaction (so a
  burst costs one commit, not one per row) and, when that transaction fails, retries the
  rows one by one so that one bad row loses only itself;
- a failed write is logged and counted in `failed_writes`, never raised;
- `await flush()` returns once everything queued before it is committed (readable).

Reads are synchronous (SQLite answers them from the WAL without waiting for the writer);
async callers run them with `asyncio.to_thread`. The service records (`ccserver.records`)
live in the same file and migrations; their writes must be read back at once, so they run
synchronously too, in `records()` transactions on a connection of their own. Opening checks
the file and the schema at once and raises `CCServerError` slug `history-unavailable` with
what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccserver.errors import CCServerError
from ccserver.logs import log

logger = logging.getLogger("ccserver.history")

# Migration N brings a store from version N-1 to N, in one transaction with its version
# row. Statements are split on ";", so none may contain one in a literal.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS calls (
        call_id      TEXT PRIMARY KEY,
        caller       TEXT,
        dnis         TEXT,
        queue        TEXT,
        arrived_at   REAL,
        queued_at    REAL,
        connected_at REAL,
        ended_at     REAL,
        outcome      TEXT,
        hangup_by    TEXT,
        agent        TEXT,
        wait_s       REAL,
        talk_s       REAL,
        handled_by   TEXT NOT NULL CHECK (handled_by IN ('ivr', 'agent', 'none')),
        priority     INTEGER,
        decision     TEXT,
        recording    TEXT,
        ivr_route    TEXT,
        survey_score REAL,
        record       TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS calls_arrived_at ON calls (arrived_at);
    CREATE TABLE IF NOT EXISTS events (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL,
        at      REAL NOT NULL,
        kind    TEXT NOT NULL,
        queue   TEXT,
        agent   TEXT,
        fields  TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS events_call_id ON events (call_id, id);
    CREATE INDEX IF NOT EXISTS events_at ON events (at);
    CREATE TABLE IF NOT EXISTS agent_events (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        at     REAL NOT NULL,
        agent  TEXT NOT NULL,
        state  TEXT NOT NULL,
        reason TEXT
    );
    CREATE INDEX IF NOT EXISTS agent_events_at ON agent_events (at);
    CREATE INDEX IF NOT EXISTS agent_events_agent ON agent_events (agent, at);
    """,
    # 2: the desk's screen pop lists a caller's recent contacts
    """
    CREATE INDEX IF NOT EXISTS calls_caller ON calls (caller, arrived_at);
    """,
    # 3: work orders (`ccserver.records.orders`), each change of one kept beside it
    """
    CREATE TABLE IF NOT EXISTS work_orders (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        kind        TEXT NOT NULL,
        state       TEXT NOT NULL,
        priority    INTEGER NOT NULL,
        account     TEXT,
        caller      TEXT,
        address     TEXT,
        area        TEXT,
        description TEXT NOT NULL,
        team        TEXT,
        assignee    TEXT,
        agent       TEXT,
        created_at  REAL NOT NULL,
        created_by  TEXT NOT NULL,
        updated_at  REAL NOT NULL,
        due_at      REAL,
        due_state   TEXT,
        escalation  INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS work_orders_state ON work_orders (state, due_at);
    CREATE INDEX IF NOT EXISTS work_orders_caller ON work_orders (caller);
    CREATE INDEX IF NOT EXISTS work_orders_account ON work_orders (account);
    CREATE TABLE IF NOT EXISTS work_order_calls (
        order_id  INTEGER NOT NULL,
        call_id   TEXT NOT NULL,
        linked_at REAL NOT NULL,
        PRIMARY KEY (order_id, call_id)
    );
    CREATE INDEX IF NOT EXISTS work_order_calls_call ON work_order_calls (call_id);
    CREATE TABLE IF NOT EXISTS work_order_changes (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        order_id INTEGER NOT NULL,
        at       REAL NOT NULL,
        who      TEXT NOT NULL,
        what     TEXT NOT NULL,
        fields   TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS work_order_changes_order ON work_order_changes (order_id, id);
    """,
    # 4: the knowledge base (`ccserver.records.knowledge`); kb_search holds the articles'
    # text as segmented for search (CJK as bigrams), rowid = the article's id
    """
    CREATE TABLE IF NOT EXISTS kb_articles (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        title       TEXT NOT NULL,
        body        TEXT NOT NULL,
        valid_from  REAL,
        valid_until REAL,
        created_at  REAL NOT NULL,
        created_by  TEXT NOT NULL,
        updated_at  REAL NOT NULL,
        updated_by  TEXT NOT NULL,
        views       INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS kb_article_tags (
        article_id INTEGER NOT NULL,
        tag        TEXT NOT NULL,
        PRIMARY KEY (article_id, tag)
    );
    CREATE INDEX IF NOT EXISTS kb_article_tags_tag ON kb_article_tags (tag);
    CREATE TABLE IF NOT EXISTS kb_views (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        article_id INTEGER NOT NULL,
        at         REAL NOT NULL,
        who        TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS kb_views_article ON kb_views (article_id, at);
    CREATE VIRTUAL TABLE IF NOT EXISTS kb_search USING fts5(
        title, body, tags, tokenize = 'porter unicode61'
    );
    """,
    # 5: quality inspection (`ccserver.records.qa`): the inspectors' queue and the scores
    """
    CREATE TABLE IF NOT EXISTS qa_queue (
        call_id   TEXT PRIMARY KEY,
        agent     TEXT NOT NULL,
        queue     TEXT,
        rule      TEXT NOT NULL,
        queued_at REAL NOT NULL,
        scored    INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS qa_queue_open ON qa_queue (scored, queued_at);
    CREATE TABLE IF NOT EXISTS qa_scores (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id     TEXT NOT NULL,
        agent       TEXT NOT NULL,
        inspector   TEXT NOT NULL,
        form        TEXT NOT NULL,
        sheet       TEXT NOT NULL,
        total       REAL NOT NULL,
        max_points  REAL NOT NULL,
        comment     TEXT,
        scored_at   REAL NOT NULL,
        dispute     TEXT,
        disputed_at REAL
    );
    CREATE INDEX IF NOT EXISTS qa_scores_agent ON qa_scores (agent, scored_at);
    CREATE INDEX IF NOT EXISTS qa_scores_call ON qa_scores (call_id);
    """,
    # 6: outbound calls (`ccserver.records.outbound`): survey campaigns, the numbers they
    # and the work orders' follow-ups dial; an order's follow-up state and rating. Orders
    # closed before this version are not followed up (followup 'none').
    """
    ALTER TABLE work_orders ADD COLUMN followup TEXT;
    ALTER TABLE work_orders ADD COLUMN rating INTEGER;
    UPDATE work_orders SET followup = 'none' WHERE state IN ('closed', 'cancelled');
    CREATE TABLE IF NOT EXISTS campaigns (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        name           TEXT NOT NULL,
        flow           TEXT NOT NULL,
        max_concurrent INTEGER NOT NULL,
        cps            REAL NOT NULL,
        attempts       INTEGER NOT NULL,
        retry_s        REAL NOT NULL,
        state          TEXT NOT NULL,
        created_at     REAL NOT NULL,
        created_by     TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS outbound_calls (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        campaign   INTEGER,
        work_order INTEGER,
        number     TEXT NOT NULL,
        state      TEXT NOT NULL,
        result     TEXT,
        rating     INTEGER,
        answers    TEXT NOT NULL,
        tries      TEXT NOT NULL,
        next_at    REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS outbound_calls_due ON outbound_calls (state, next_at);
    CREATE INDEX IF NOT EXISTS outbound_calls_campaign ON outbound_calls (campaign, id);
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)

_CALL_COLUMNS = (
    "call_id, caller, dnis, queue, arrived_at, queued_at, connected_at, ended_at, outcome, "
    "hangup_by, agent, wait_s, talk_s, handled_by, priority, decision, recording, ivr_route, "
    "survey_score, record"
)
_SQL_CALL = (
    f"INSERT INTO calls ({_CALL_COLUMNS}) VALUES ({', '.join('?' * 20)}) "
    "ON CONFLICT (call_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _CALL_COLUMNS.split(", ")[1:])
)
_SQL_EVENT = (
    "INSERT INTO events (call_id, at, kind, queue, agent, fields) VALUES (?, ?, ?, ?, ?, ?)"
)
_SQL_AGENT = "INSERT INTO agent_events (at, agent, state, reason) VALUES (?, ?, ?, ?)"
_JSON_CALL_COLUMNS = ("decision", "ivr_route", "record")
HANDLED_BY = ("ivr", "agent", "none")


class HistoryUnavailable(CCServerError):
    """The history file can't be opened, created or understood."""

    slug = "history-unavailable"
    status = 503
    exit_code = 1


@dataclass(frozen=True)
class _Write:
    sql: str
    params: tuple[Any, ...]
    what: str  # for the log line when it fails
    call_id: str | None


@dataclass(frozen=True)
class _Flush:
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[None]


_STOP = object()


class History:
    """The history store in one SQLite file; see the module docstring for the contract."""

    def __init__(self, path: Path, *, batch_max: int = 1000) -> None:
        self.path = path
        self.failed_writes = 0
        self._batch_max = batch_max
        self._failed_lock = threading.Lock()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._closed = False
        writer = _connect(path)
        try:
            _migrate(writer, path)
            self._reader = _connect(path)
        except BaseException:
            writer.close()
            raise
        self._read_lock = threading.Lock()
        self._records_lock = threading.Lock()
        self._records: sqlite3.Connection | None = None
        self._thread = threading.Thread(
            target=self._write_loop, args=(writer,), name="ccserver-history", daemon=True
        )
        self._thread.start()
        log(logger, "history.opened", path=str(path), schema=SCHEMA_VERSION)

    # --- writes (enqueue and return) -------------------------------------------------------
    def record_event(
        self,
        call_id: str,
        kind: str,
        *,
        at: float | None = None,
        queue: str | None = None,
        agent: str | None = None,
        **fields: Any,
    ) -> None:
        """A queue event of one call (`enter`, `announce`, `connect`, `rona`, `abandon`, …);
        `fields` are kept as JSON (e.g. `wait_s=12.5`)."""
        when = time.time() if at is None else at
        try:
            params = (call_id, when, kind, queue, agent, _dumps(fields))
        except (TypeError, ValueError) as exc:
            self._failed("event", exc, call_id)
            return
        self._put(_Write(_SQL_EVENT, params, "event", call_id))

    def save_call(self, record: Mapping[str, Any]) -> None:
        """The call's record (final, or an update of an earlier save: the last one wins).
        The id is `call_id` or `id`; known keys fill the columns, the whole record is kept
        as JSON."""
        call_id = record.get("call_id") or record.get("id")
        try:
            if not isinstance(call_id, str) or not call_id:
                raise ValueError("the record has no call id (`call_id` or `id`)")
            params = _call_row(call_id, record)
        except (TypeError, ValueError) as exc:
            self._failed("call", exc, call_id if isinstance(call_id, str) else None)
            return
        self._put(_Write(_SQL_CALL, params, "call", call_id))

    def agent_state(
        self, agent: str, state: str, *, reason: str | None = None, at: float | None = None
    ) -> None:
        """An agent's state change (`ready`, `not-ready` with its reason, `wrap-up`, …)."""
        params = (time.time() if at is None else at, agent, state, reason)
        self._put(_Write(_SQL_AGENT, params, "agent", None))

    async def flush(self) -> None:
        """Wait until everything queued before this call is committed."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Flush(loop, done))
        await done

    def close(self) -> None:
        """Write what is still queued, stop the writer and close the file. Blocks while the
        backlog is written: `await flush()` first to wait without blocking the loop."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        with self._read_lock:
            self._reader.close()
        with self._records_lock:
            if self._records is not None:
                self._records.close()
        log(logger, "history.closed", path=str(self.path), failed_writes=self.failed_writes)

    # --- reads ------------------------------------------------------------------------------
    def call(self, call_id: str) -> dict[str, Any] | None:
        rows = self.query(f"SELECT {_CALL_COLUMNS} FROM calls WHERE call_id = ?", (call_id,))
        return _call_dict(rows[0]) if rows else None

    def events(self, call_id: str) -> list[dict[str, Any]]:
        """The call's events in the order they were recorded."""
        rows = self.query(
            "SELECT id, call_id, at, kind, queue, agent, fields FROM events "
            "WHERE call_id = ? ORDER BY id",
            (call_id,),
        )
        return [{**dict(row), "fields": json.loads(row["fields"])} for row in rows]

    def calls(
        self, since: float | None = None, until: float | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Calls that arrived in [since, until), oldest first, at most `limit`."""
        rows = self.query(
            f"SELECT {_CALL_COLUMNS} FROM calls WHERE arrived_at >= ? AND arrived_at < ? "
            "ORDER BY arrived_at, call_id LIMIT ?",
            (_low(since), _high(until), limit),
        )
        return [_call_dict(row) for row in rows]

    def contacts(self, caller: str, since: float, *, limit: int = 20) -> list[dict[str, Any]]:
        """The calls from `caller` that arrived since `since`, newest first, each: call_id,
        arrived_at, queue, agent, outcome, disposition, survey_score."""
        rows = self.query(
            "SELECT call_id, arrived_at, queue, agent, outcome, survey_score, "
            "json_extract(record, '$.disposition') AS disposition FROM calls "
            "WHERE caller = ? AND arrived_at >= ? ORDER BY arrived_at DESC LIMIT ?",
            (caller, since, limit),
        )
        return [dict(row) for row in rows]

    def agent_events(
        self, agent: str | None = None, since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        """Agent state changes in [since, until), of one agent or all, in recorded order."""
        sql = "SELECT id, at, agent, state, reason FROM agent_events WHERE at >= ? AND at < ?"
        params: tuple[Any, ...] = (_low(since), _high(until))
        if agent is not None:
            sql, params = sql + " AND agent = ?", (*params, agent)
        return [dict(row) for row in self.query(sql + " ORDER BY id", params)]

    def queue_events_since(self, since: float) -> list[dict[str, Any]]:
        """The answers and abandons (`connect`, `abandon` events) recorded since `since`,
        oldest first: at, kind, queue, agent, fields."""
        rows = self.query(
            "SELECT at, kind, queue, agent, fields FROM events "
            "WHERE at >= ? AND kind IN ('connect', 'abandon') ORDER BY at, id",
            (since,),
        )
        return [{**dict(row), "fields": json.loads(row["fields"])} for row in rows]

    def last_agent_states(self) -> list[dict[str, Any]]:
        """Each agent's last recorded state change: agent, state, reason, at."""
        rows = self.query(
            "SELECT agent, state, reason, max(at) AS at FROM agent_events GROUP BY agent", ()
        )
        return [dict(row) for row in rows]

    def delete_before(self, cutoff: float, *, batch: int = 5000) -> dict[str, int]:
        """Retention: delete the calls that arrived before `cutoff`, and the queue and
        agent events of that time; rows per table. In transactions of `batch` rows, so
        the call path's writer never waits long behind it. Work orders, QA scores and
        articles are records of their own and are kept."""
        deleted = {}
        for table, column in (("calls", "arrived_at"), ("events", "at"), ("agent_events", "at")):
            key = "call_id" if table == "calls" else "id"
            total = 0
            while True:
                with self.records() as db:
                    gone = db.execute(
                        f"DELETE FROM {table} WHERE {key} IN "
                        f"(SELECT {key} FROM {table} WHERE {column} < ? LIMIT ?)",
                        (cutoff, batch),
                    ).rowcount
                total += gone
                if gone < batch:
                    break
            deleted[table] = total
        return deleted

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Rows of one read statement (for the readers in this module and the records)."""
        with self._read_lock:
            if self._closed:
                raise HistoryUnavailable(f"{self.path}: the history store is closed")
            return self._reader.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def records(self) -> Iterator[sqlite3.Connection]:
        """One write transaction of the service records, committed when the block ends
        (rolled back when it raises); one at a time, on a connection of their own, so that
        they never wait behind the call path's batches for more than one commit."""
        with self._records_lock:
            if self._closed:
                raise HistoryUnavailable(f"{self.path}: the history store is closed")
            if self._records is None:
                self._records = _connect(self.path)
            with _transaction(self._records, "IMMEDIATE"):
                yield self._records

    # --- the writer thread ------------------------------------------------------------------
    def _put(self, item: _Write) -> None:
        if self._closed:
            self._failed(item.what, RuntimeError("history store closed"), item.call_id)
            return
        self._queue.put(item)

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        try:
            stopping = False
            while not stopping:
                batch = [self._queue.get()]
                while len(batch) < self._batch_max:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                writes = [item for item in batch if isinstance(item, _Write)]
                if writes:
                    self._write_batch(conn, writes)
                for item in batch:
                    if isinstance(item, _Flush):
                        _resolve(item)
                    stopping = stopping or item is _STOP
        finally:
            conn.close()

    def _write_batch(self, conn: sqlite3.Connection, writes: list[_Write]) -> None:
        # Exception, not only sqlite3.Error: a value SQLite can't hold raises OverflowError,
        # and the writer thread must outlive any row.
        try:
            with _transaction(conn):
                for w in writes:
                    conn.execute(w.sql, w.params)
            return
        except Exception:
            pass  # find the bad rows: one transaction each
        for w in writes:
            try:
                with _transaction(conn):
                    conn.execute(w.sql, w.params)
            except Exception as exc:
                self._failed(w.what, exc, w.call_id)

    def _failed(self, what: str, exc: Exception, call_id: str | None) -> None:
        with self._failed_lock:
            self.failed_writes += 1
        log(
            logger,
            "history.write_failed",
            logging.WARNING,
            op=what,
            call=call_id,
            error=repr(exc)[:200],
        )


def _connect(path: Path) -> sqlite3.Connection:
    """A connection that checks the file at once: sqlite opens lazily, so a file that is not
    a database, or a directory we can't write, would otherwise fail at the first write."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=5.0, check_same_thread=False, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise _unavailable(path, exc) from None
    try:
        conn.row_factory = sqlite3.Row
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.OperationalError(f"journal mode {mode}, WAL refused")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across app crashes
    except sqlite3.Error as exc:
        conn.close()
        raise _unavailable(path, exc) from None
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create or upgrade the schema; safe to run on every open, by several processes. A
    file an older ccserver wrote is first kept beside itself (`_keep_before_upgrade`)."""
    try:
        _keep_before_upgrade(conn, path)
        with _transaction(conn, "IMMEDIATE"):  # one process migrates, the others wait
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
            if current > SCHEMA_VERSION:
                raise HistoryUnavailable(
                    f"{path}: schema version {current} was written by a newer ccserver "
                    f"(this one knows {SCHEMA_VERSION}); upgrade ccserver or use another file"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version - 1].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
    except sqlite3.Error as exc:
        raise _unavailable(path, exc) from None


def _keep_before_upgrade(conn: sqlite3.Connection, path: Path) -> None:
    """Before migrating a file of an older schema, copy it (SQLite's online backup) to
    `<file>.v<version>.bak`: an upgrade is undone by putting the copy back and running the
    older ccserver. Kept once per version; nothing to keep for a new file."""
    known = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    current = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] if known else 0
    if not 0 < (current or 0) < SCHEMA_VERSION:
        return
    kept = path.with_name(f"{path.name}.v{current}.bak")
    if kept.exists():
        return
    copy = sqlite3.connect(kept)
    try:
        conn.backup(copy)
    finally:
        copy.close()
    log(logger, "history.kept_before_upgrade", file=str(kept), version=current, to=SCHEMA_VERSION)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, kind: str = "DEFERRED") -> Iterator[None]:
    """One explicit transaction (connections run in autocommit mode, so that nothing opens
    or commits one behind our back)."""
    conn.execute(f"BEGIN {kind}")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # some errors (a full disk) have rolled back already
            conn.execute("ROLLBACK")
        raise


def _unavailable(path: Path, exc: BaseException) -> HistoryUnavailable:
    return HistoryUnavailable(
        f"{path}: cannot open the history store ({exc}); check that the directory is "
        "writable and that the file is a ccserver history database (move a damaged one away "
        "to start a new one)"
    )


def _call_row(call_id: str, record: Mapping[str, Any]) -> tuple[Any, ...]:
    connected, ended = record.get("connected_at"), record.get("ended_at")
    talk_s = record.get("talk_s")
    if talk_s is None and connected is not None and ended is not None:
        talk_s = round(float(ended) - float(connected), 3)
    handled_by = record.get("handled_by") or ("agent" if connected is not None else "none")
    if handled_by not in HANDLED_BY:
        raise ValueError(f"handled_by {handled_by!r} is not one of {HANDLED_BY}")
    return (
        call_id,
        record.get("caller"),
        record.get("dnis"),
        record.get("queue"),
        record.get("arrived_at"),
        record.get("queued_at"),
        connected,
        ended,
        record.get("outcome"),
        record.get("hangup_by"),
        record.get("agent"),
        record.get("wait_s"),
        talk_s,
        handled_by,
        record.get("priority"),
        _dumps_optional(record.get("decision")),
        record.get("recording"),
        _dumps_optional(record.get("ivr_route")),
        record.get("survey_score"),
        _dumps(record),
    )


def _call_dict(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    for column in _JSON_CALL_COLUMNS:
        if data[column] is not None:
            data[column] = json.loads(data[column])
    return data


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _dumps_optional(value: Any) -> str | None:
    return None if value is None else _dumps(value)


def _low(since: float | None) -> float:
    return float("-inf") if since is None else since


def _high(until: float | None) -> float:
    return float("inf") if until is None else until


def _resolve(item: _Flush) -> None:
    def settle() -> None:
        if not item.done.done():
            item.done.set_result(None)

    with contextlib.suppress(RuntimeError):  # the loop that asked has closed: nobody waits
        item.loop.call_soon_threadsafe(settle)
