"""Backup under load, restore elsewhere: a backup taken while calls talk disturbs none of
them; restored into a fresh run dir and started on other ports, the center routes calls,
its history holds every call that ended before the backup, and `ccserver report` over the
restored history equals the original's."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from pathlib import Path

import pytest

from ccserver import backup
from ccserver.cli import main
from ccserver.history import History
from ccserver.stack.procs import wait_until
from tests.integration.conftest import start_stack

pytestmark = pytest.mark.integration
AGENTS = {"answer": ["1001", "1002"]}


def _report(
    history: Path, start: float, end: float, capsys: pytest.CaptureFixture[str]
) -> list[dict[str, object]]:
    """`ccserver report --by agent` over [start, end), as its JSON rows."""
    iso = [dt.datetime.fromtimestamp(t, dt.UTC).isoformat() for t in (start, end)]
    capsys.readouterr()
    argv = ["report", "--db", str(history), "--from", iso[0], "--to", iso[1], "--by", "agent"]
    assert main([*argv, "--format", "json"]) == 0
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return rows


def _ended(history: Path) -> set[str]:
    store = History(history)
    try:
        return {c["call_id"] for c in store.calls() if c["ended_at"] is not None}
    finally:
        store.close()


def test_a_backup_during_calls_restores_a_center_that_routes_and_reports_the_same(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    original, elsewhere = tmp_path_factory.mktemp("original"), tmp_path_factory.mktemp("elsewhere")
    archive = elsewhere / "center.tar.gz"
    start = time.time()
    with contextlib.contextmanager(start_stack)(original, AGENTS) as live:
        done = live.place_calls(4, talk_ms=1000)
        assert [r["outcome"] for r in done] == ["completed"] * 4
        before_talks = time.time()
        talking = live.agents("answer", talk_ms=6000).start()
        callers = live.caller(live.next_run(), 2, rate=5.0).start()
        try:
            assert wait_until(lambda: live.stack.controller_health()["calls"] == 2, 15)
            assert wait_until(
                lambda: live.agent("1001")["state"] == live.agent("1002")["state"] == "busy", 15
            )
            made = backup.backup(live.config, archive, live.stack.redis_client())
            stats = callers.wait(timeout=60)
        finally:
            talking.stop()
        assert (stats.successful, stats.failed) == (2, 0)  # the backup disturbed no call
        history = live.config.run_dir / "history.sqlite"
        assert wait_until(lambda: len(_ended(history)) == 6, 15)
        report = _report(history, start, before_talks, capsys)
        (total,) = [row for row in report if row["agent"] == "(total)"]
        assert total["answered"] == 4  # the calls that ended before the second batch came
        ended_before = {r["id"] for r in done}
    assert {"history.sqlite", "redis/dump.rdb", "secrets.json"} <= set(made.files)

    run_dir = elsewhere / "run"
    backup.restore(archive, run_dir, live.config)
    with contextlib.contextmanager(start_stack)(elsewhere, AGENTS) as restored:
        assert restored.config.asterisk.sip_port != live.config.asterisk.sip_port
        history = run_dir / "history.sqlite"
        assert ended_before <= _ended(history)
        assert _report(history, start, before_talks, capsys) == report
        again = restored.place_calls(2, talk_ms=1000)  # the restored center routes calls
        assert [r["outcome"] for r in again] == ["completed"] * 2
        assert {r["agent"] for r in again} <= {"1001", "1002"}
    assert json.loads((run_dir / "secrets.json").read_text())  # the original's, kept
