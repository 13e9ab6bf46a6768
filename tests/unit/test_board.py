"""The wallboard's counts: answers and abandons per queue today and in the last 30
minutes, the service level by the reports' definition, a new day starting afresh, and
today's events read back from the history after a restart."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from ccserver.acd import Acd
from ccserver.calls.board import Wallboard
from ccserver.config import Config
from ccserver.history import History

NOON = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()


def config(tmp_path: Path, **reports: Any) -> Config:
    return Config.model_validate(
        {
            "stack": {"run_dir": str(tmp_path / "run")},
            "reports": {"service_level_s": 20, "short_abandon_s": 10, **reports},
            "acd": {
                "queues": [{"name": "repair", "skills": {"repair": 1}}],
                "default_queue": "repair",
                "agents": [
                    {"id": "1001", "skills": {"repair": 1}},
                    {"id": "1002", "skills": {"repair": 1}},
                ],
            },
        }
    )


def feed(board: Wallboard, at: float) -> None:
    board.count("connect", "repair", "1001", {"wait_s": 5.0}, at - 3600)  # an hour ago
    board.count("connect", "repair", "1002", {"wait_s": 40.0}, at - 60)  # late
    board.count("abandon", "repair", None, {"wait_s": 30.0}, at - 50)
    board.count("abandon", "repair", None, {"wait_s": 3.0}, at - 40)  # short
    board.count("enter", "repair", None, {}, at - 30)  # not an answer nor an abandon
    board.count("abandon", "repair", None, {}, at - 20)  # hung up before queueing


def shown(board: Wallboard, cfg: Config, now: float) -> dict[str, Any]:
    acd = Acd(cfg)
    acd.define_queues()
    return board.board({}, acd, now)


@pytest.mark.parametrize(
    ("definition", "today"),
    [("answered", 0.5), ("offered", 0.25), ("offered-minus-short", 1 / 3)],
)
def test_the_service_level_follows_the_reports_definition(
    tmp_path: Path, definition: str, today: float
) -> None:
    cfg = config(tmp_path, service_level_definition=definition)
    board = Wallboard(cfg, None)
    feed(board, NOON)
    shows = shown(board, cfg, NOON)
    (queue,) = shows["queues"]
    figures = queue["today"]
    assert (figures["answered"], figures["abandoned"], figures["short_abandoned"]) == (2, 1, 1)
    assert figures["service_level"] == pytest.approx(today, abs=1e-4)
    recent = queue["last_30m"]  # the answer an hour ago is not in it
    assert (recent["answered"], recent["abandoned"], recent["short_abandoned"]) == (1, 1, 1)
    assert [a["calls_today"] for a in shows["agents"]] == [1, 1]


def test_a_new_day_starts_afresh_and_a_restart_reads_today_back(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    board = Wallboard(cfg, None)
    feed(board, NOON)
    board.count("connect", "repair", "1001", {"wait_s": 1.0}, NOON + 14 * 3600)  # 02:00 next day
    (queue,) = shown(board, cfg, NOON + 14 * 3600)["queues"]
    assert (queue["today"]["answered"], queue["today"]["abandoned"]) == (1, 0)
    history = History(tmp_path / "history.sqlite")
    try:
        for kind, agent, wait, at in (
            ("connect", "1001", 5.0, NOON - 13 * 3600),  # yesterday 23:00
            ("connect", "1001", 5.0, NOON - 60),
            ("abandon", None, 30.0, NOON - 30),
        ):
            history.record_event("c", kind, at=at, queue="repair", agent=agent, wait_s=wait)
        history.agent_state("1002", "logged-out", at=NOON - 10)
        history.close()
        history = History(tmp_path / "history.sqlite")
        again = Wallboard(cfg, history)
        again.load(NOON)
        shows = shown(again, cfg, NOON)
        (queue,) = shows["queues"]
        assert (queue["today"]["answered"], queue["today"]["abandoned"]) == (1, 1)
        assert [a["since"] for a in shows["agents"]] == [None, NOON - 10]
    finally:
        history.close()
