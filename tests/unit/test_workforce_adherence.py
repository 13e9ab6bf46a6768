"""Schedule adherence on a hand-built day whose numbers are worked out below by hand, from
the library and from `ccserver report --adherence` over a real history file."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ccserver import cli
from ccserver.history import History
from ccserver.workforce import adherence

ZONE = ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 11, 30)


def at(clock: str) -> float:
    return dt.datetime.combine(DAY, dt.time.fromisoformat(clock), ZONE).timestamp()


# Agent 1001 (team A), 08:00–17:00 with lunch 12:00–13:00, i.e. 480 minutes scheduled:
#   ready at 08:03 (3 min late: more than the 60 s grace, so not on time); a break
#   10:00–10:15 (15 not ready); busy and wrap-up count as working; back from lunch at 13:05
#   (5 not ready); after-call work 15:00–15:10 counts as working; gone at 16:50 (10 early).
#   Working: 08:03–10:00 (117) + 10:15–12:00 (105) + 13:05–16:50 (225) = 447 min.
# Agent 1002 (team A), 09:00–13:00, ready since 08:50 and all along: 240 of 240, on time.
# Agent 1003 (team B), 08:00–12:00, never logged in: absent, 240 min late.
EVENTS = [
    ("07:00", "1001", "logged-out", None),
    ("08:03", "1001", "ready", None),
    ("10:00", "1001", "not-ready", "break"),
    ("10:15", "1001", "ready", None),
    ("11:00", "1001", "busy", None),
    ("11:10", "1001", "wrap-up", None),
    ("11:12", "1001", "ready", None),
    ("12:00", "1001", "not-ready", "break"),
    ("13:05", "1001", "ready", None),
    ("15:00", "1001", "not-ready", "after-call-work"),
    ("15:10", "1001", "ready", None),
    ("16:50", "1001", "logged-out", None),
    ("08:50", "1002", "ready", None),
]
ROSTER = [
    ("1001", "A", "08:00", "17:00", "12:00", "13:00"),
    ("1002", "A", "09:00", "13:00", "", ""),
    ("1003", "B", "08:00", "12:00", "", ""),
]


def _events() -> list[dict[str, object]]:
    return [{"at": at(t), "agent": a, "state": s, "reason": r} for t, a, s, r in EVENTS]


def _shifts() -> list[adherence.PlannedShift]:
    return [
        adherence.PlannedShift(a, team, at(b), at(e), (at(ls), at(le)) if ls else None)
        for a, team, b, e, ls, le in ROSTER
    ]


def test_a_hand_built_day_gives_the_numbers_worked_out_by_hand() -> None:
    agents, teams = adherence.adherence(_shifts(), _events())
    first = agents["1001"].as_dict()
    assert first == {
        "key": "1001",
        "shifts": 1,
        "on_time": 0,
        "absent": 0,
        "scheduled_min": 480.0,
        "working_min": 447.0,
        "late_min": 3.0,
        "early_leave_min": 10.0,
        "not_ready_min": 20.0,
        "adherence": round(447 / 480, 4),
    }
    assert (agents["1002"].on_time, agents["1002"].working_min, agents["1002"].adherence) == (
        1,
        240.0,
        1.0,
    )
    assert (agents["1003"].absent, agents["1003"].late_min, agents["1003"].adherence) == (
        1,
        240.0,
        0.0,
    )
    team_a = teams["A"]
    assert (team_a.shifts, team_a.on_time, team_a.scheduled_min, team_a.working_min) == (
        2,
        1,
        720.0,
        687.0,
    )
    assert team_a.adherence == pytest.approx(687 / 720)


def test_report_adherence_reads_the_roster_and_the_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "history.sqlite"
    History(db).close()
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO agent_events (at, agent, state, reason) VALUES (?, ?, ?, ?)",
            [(at(t), a, s, r) for t, a, s, r in EVENTS],
        )
    roster = tmp_path / "roster.csv"
    lines = ["agent,team,date,skills,shift,start,end,lunch_start,lunch_end,paid_hours"]
    for a, team, b, e, ls, le in ROSTER:
        lunch = f"{DAY}T{ls},{DAY}T{le}" if ls else ","
        lines.append(f"{a},{team},{DAY},general,day,{DAY}T{b},{DAY}T{e},{lunch},8")
    roster.write_text("\n".join(lines) + "\n")
    argv = ["report", "--from", f"{DAY}", "--to", f"{DAY + dt.timedelta(days=1)}", "--db", str(db)]
    assert cli.main([*argv, "--adherence", str(roster), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_agent = {row["key"]: row for row in data["agent"]}
    assert by_agent["1001"]["working_min"] == 447.0 and by_agent["1001"]["late_min"] == 3.0
    assert {row["key"]: row["shifts"] for row in data["team"]} == {"A": 2, "B": 1}
    assert cli.main([*argv, "--adherence", str(roster)]) == 0
    assert "agent  1001" in capsys.readouterr().out
    assert cli.main([*argv, "--adherence", str(tmp_path / "none.csv")]) != 0
