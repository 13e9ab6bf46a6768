"""The history store on a real SQLite file: schema, ordering, flush, reopen, concurrency,
failures that are counted instead of raised, and a clear error for a file it can't use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from pathlib import Path

import pytest

from ccserver import history as history_mod
from ccserver.errors import CCServerError
from ccserver.history import SCHEMA_VERSION, History


def _record(call_id: str, arrived_at: float, **extra: object) -> dict[str, object]:
    """A record shaped like `ccserver.calls.model.Call.to_record()`."""
    return {
        "id": call_id,
        "caller": "13800000000",
        "dnis": "95598",
        "arrived_at": arrived_at,
        "state": "ended",
        "queued_at": arrived_at + 2.0,
        "agent": "1001",
        "agent_channel": f"agent-{call_id}",
        "connected_at": arrived_at + 7.5,
        "ended_at": arrived_at + 67.5,
        "outcome": "completed",
        "hangup_by": "caller",
        "attempts": [{"agent": "1001", "result": "answered"}],
        "wait_s": 5.5,
        **extra,
    }


def test_a_new_file_gets_the_schema_in_wal_mode_and_reopening_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "history.sqlite"
    History(path).close()
    History(path).close()  # a second open migrates nothing and adds no version row
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]  # one row a migration
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert {"calls", "events", "agent_events", "schema_version"} <= tables
    assert "audit" not in tables


async def test_events_come_back_in_recorded_order_with_their_fields(history: History) -> None:
    kinds = ["enter", "announce", "ring", "rona", "ring", "connect", "complete"]
    for n, kind in enumerate(kinds):
        history.record_event("c1", kind, queue="95598", agent="1001", step=n)
    history.record_event("other", "enter", queue="95598")
    await history.flush()
    events = history.events("c1")
    assert [e["kind"] for e in events] == kinds
    assert [e["fields"] for e in events] == [{"step": n} for n in range(len(kinds))]
    assert events[0]["queue"] == "95598" and events[0]["agent"] == "1001"
    assert all(isinstance(e["at"], float) for e in events)
    assert history.events("nobody") == []


async def test_an_abandon_keeps_its_wait_time_and_an_explicit_time(history: History) -> None:
    history.record_event("c1", "abandon", at=1000.25, queue="95598", wait_s=42.5)
    await history.flush()
    [event] = history.events("c1")
    assert event["at"] == 1000.25 and event["fields"] == {"wait_s": 42.5}


async def test_a_call_record_fills_the_columns_and_keeps_the_whole_record(
    history: History,
) -> None:
    record = _record(
        "c1",
        1000.0,
        queue="95598",
        priority=3,
        decision={"strategy": "longest-idle", "agent": "1001"},
        ivr_route=["main", "outage"],
        recording="/var/rec/c1.wav",
        survey_score=5,
    )
    history.save_call(record)
    await history.flush()
    saved = history.call("c1")
    assert saved is not None
    assert saved["call_id"] == "c1" and saved["caller"] == "13800000000"
    assert saved["talk_s"] == 60.0 and saved["wait_s"] == 5.5
    assert saved["handled_by"] == "agent" and saved["priority"] == 3
    assert saved["decision"] == {"strategy": "longest-idle", "agent": "1001"}
    assert saved["ivr_route"] == ["main", "outage"] and saved["survey_score"] == 5
    assert saved["record"] == record
    assert history.call("unknown") is None


async def test_saving_a_call_again_replaces_it_and_unanswered_calls_are_handled_by_none(
    history: History,
) -> None:
    history.save_call({"id": "c1", "arrived_at": 1.0, "outcome": None})
    history.save_call({"call_id": "c1", "arrived_at": 1.0, "outcome": "abandoned"})
    history.save_call({"id": "c2", "arrived_at": 2.0, "handled_by": "ivr"})
    await history.flush()
    first, second = history.call("c1"), history.call("c2")
    assert first is not None and second is not None
    assert first["outcome"] == "abandoned" and first["handled_by"] == "none"
    assert first["talk_s"] is None
    assert second["handled_by"] == "ivr"


async def test_a_record_changed_after_saving_is_saved_as_it_was(history: History) -> None:
    record = _record("c1", 1000.0)
    history.save_call(record)
    record["outcome"] = "changed-later"
    await history.flush()
    saved = history.call("c1")
    assert saved is not None and saved["outcome"] == "completed"


async def test_calls_by_arrival_range_oldest_first_and_limited(history: History) -> None:
    for n in range(10):
        history.save_call(_record(f"c{n}", 1000.0 + 10 * (9 - n)))
    await history.flush()
    assert [c["call_id"] for c in history.calls()] == [f"c{n}" for n in reversed(range(10))]
    window = history.calls(since=1020.0, until=1050.0)
    assert [c["arrived_at"] for c in window] == [1020.0, 1030.0, 1040.0]
    assert [c["call_id"] for c in history.calls(limit=2)] == ["c9", "c8"]


async def test_agent_state_changes_are_kept_per_agent(history: History) -> None:
    history.agent_state("1001", "ready", at=10.0)
    history.agent_state("1002", "not-ready", reason="break", at=11.0)
    history.agent_state("1001", "not-ready", reason="training", at=12.0)
    await history.flush()
    mine = history.agent_events("1001")
    assert [(e["state"], e["reason"]) for e in mine] == [("ready", None), ("not-ready", "training")]
    assert [e["agent"] for e in history.agent_events(since=11.0)] == ["1002", "1001"]


async def test_closing_writes_the_backlog_and_reopening_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    first = History(path)
    first.save_call(_record("c1", 1000.0))
    for n in range(100):
        first.record_event("c1", "announce", n=n)
    first.agent_state("1001", "ready")
    first.close()  # no flush before: close itself writes what is queued
    first.close()  # idempotent
    again = History(path)
    try:
        assert again.call("c1") is not None
        assert [e["fields"]["n"] for e in again.events("c1")] == list(range(100))
        assert len(again.agent_events()) == 1
    finally:
        again.close()


async def test_many_tasks_writing_at_once_lose_nothing_and_keep_each_calls_order(
    history: History,
) -> None:
    async def one_call(n: int) -> None:
        for step in range(30):
            history.record_event(f"call-{n}", "step", step=step)
            if step % 7 == 0:
                await asyncio.sleep(0)
        history.save_call({"id": f"call-{n}", "arrived_at": float(n)})

    await asyncio.gather(*(one_call(n) for n in range(60)))
    await history.flush()
    assert len(history.calls(limit=1000)) == 60
    for n in (0, 31, 59):
        assert [e["fields"]["step"] for e in history.events(f"call-{n}")] == list(range(30))
    assert history.failed_writes == 0


async def test_flush_waits_for_everything_queued_before_it_even_from_many_waiters(
    history: History,
) -> None:
    for n in range(5000):
        history.record_event("busy", "tick", n=n)
    await asyncio.gather(*(history.flush() for _ in range(5)))
    assert len(history.events("busy")) == 5000
    await history.flush()  # nothing queued: returns at once


async def test_a_bad_row_is_counted_and_logged_and_the_rest_of_its_batch_is_written(
    history: History, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ccserver.history")
    history.record_event("c1", "enter")
    history.save_call({"id": "c2", "priority": {"not": "a number"}})  # refused by SQLite
    history.save_call({"id": "c4", "priority": 10**30})  # too big for SQLite's INTEGER
    history.save_call({"id": "c3", "handled_by": "robot"})  # refused before queueing
    history.save_call({"caller": "no id"})
    history.record_event("c1", "bad", blob=object())  # not JSON
    history.record_event("c1", "complete")
    await history.flush()
    assert [e["kind"] for e in history.events("c1")] == ["enter", "complete"]
    assert [history.call(c) for c in ("c2", "c3", "c4")] == [None, None, None]
    assert history.failed_writes == 5
    assert caplog.messages.count("history.write_failed") == 5
    history.record_event("c1", "after")  # the writer outlived the bad rows
    await history.flush()
    assert history.events("c1")[-1]["kind"] == "after"


async def test_writes_after_close_are_counted_not_raised(tmp_path: Path) -> None:
    store = History(tmp_path / "history.sqlite")
    store.close()
    store.record_event("c1", "enter")
    store.save_call({"id": "c1"})
    assert store.failed_writes == 2
    await store.flush()  # returns at once
    with pytest.raises(CCServerError) as raised:
        store.events("c1")
    assert raised.value.slug == "history-unavailable"


def test_a_file_that_is_not_a_database_is_history_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    path.write_bytes(b"this is not an SQLite database, just some text " * 100)
    with pytest.raises(CCServerError) as raised:
        History(path)
    assert raised.value.slug == "history-unavailable" and raised.value.status == 503
    assert "move a damaged one away" in raised.value.message


def test_a_path_that_cannot_be_created_is_history_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(CCServerError) as raised:
        History(blocker / "history.sqlite")
    assert raised.value.slug == "history-unavailable"
    assert str(blocker) in raised.value.message


def test_a_file_from_a_newer_ccserver_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    History(path).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(CCServerError, match="newer ccserver") as raised:
        History(path)
    assert raised.value.slug == "history-unavailable"


def test_a_callers_contacts_are_newest_first_from_a_given_time(history: History) -> None:
    """The desk's screen pop: what a caller did recently, with the agents' codes."""
    for call_id, arrived, code in (("old", 1000.0, None), ("c1", 5000.0, "fault-reported")):
        history.save_call(_record(call_id, arrived, disposition=code, survey_score=4))
    history.save_call(_record("c2", 6000.0, outcome="abandoned"))
    history.save_call(_record("other", 5500.0, caller="13900000009"))
    asyncio.run(history.flush())
    found = history.contacts("13800000000", since=2000.0)
    assert [(c["call_id"], c["outcome"], c["disposition"]) for c in found] == [
        ("c2", "abandoned", None),
        ("c1", "completed", "fault-reported"),
    ]
    assert found[1] == {
        "call_id": "c1", "arrived_at": 5000.0, "queue": None, "agent": "1001",
        "outcome": "completed", "survey_score": 4, "disposition": "fault-reported",
    }  # fmt: skip


def test_a_file_of_an_older_schema_is_kept_beside_itself_before_it_is_migrated(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.sqlite"
    older = SCHEMA_VERSION - 1
    with contextlib.closing(sqlite3.connect(path)) as conn:  # as the previous ccserver left it
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for version in range(1, older + 1):
            conn.executescript(history_mod._MIGRATIONS[version - 1])
            conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
        conn.execute("INSERT INTO calls (call_id, handled_by, record) VALUES ('c1', 'none', '{}')")
        conn.commit()
    History(path).close()
    kept = tmp_path / f"history.sqlite.v{older}.bak"
    with contextlib.closing(sqlite3.connect(kept)) as conn:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (older,)
        assert conn.execute("SELECT call_id FROM calls").fetchall() == [("c1",)]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (
            SCHEMA_VERSION,
        )
    History(path).close()  # current now: nothing more is kept
    assert sorted(p.name for p in tmp_path.glob("*.bak")) == [kept.name]


async def test_retention_deletes_calls_and_events_older_than_the_cutoff_in_batches(
    history: History,
) -> None:
    t0 = 1_800_000_000.0
    for n in range(12):
        history.save_call({"id": f"c{n}", "caller": "138", "arrived_at": t0 + n})
        history.record_event(f"c{n}", "enter", at=t0 + n, queue="general")
        history.agent_state("1001", "ready", at=t0 + n)
    await history.flush()
    deleted = history.delete_before(t0 + 7, batch=3)
    assert deleted == {"calls": 7, "events": 7, "agent_events": 7}
    assert [c["call_id"] for c in history.calls()] == [f"c{n}" for n in range(7, 12)]
    assert history.delete_before(t0 + 7) == {"calls": 0, "events": 0, "agent_events": 0}
