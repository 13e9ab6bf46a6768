"""The `erlang`, `forecast` and `staff` commands: output in table and JSON, and user
errors as `InputError` (which `ccserver.cli.main` prints as one line, no traceback)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import pytest

from ccserver import config as config_mod
from ccserver.errors import CCServerError, InputError
from ccserver.history import History
from ccserver.workforce.cli import register


def run(argv: list[str]) -> int:
    """Parse and dispatch the way ccserver.cli.main does."""
    parser = argparse.ArgumentParser(prog="ccserver")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert run([*argv, "--format", "json"]) == 0
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    return data


def test_erlang_c_prints_the_textbook_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["erlang", "c", "--traffic", "10", "--agents", "14", "--aht", "180", "--target", "20"]
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert "P(wait)        0.1741" in out
    assert "88.84 % answered within 20 s" in out
    assert "ASA            7.84 s" in out
    data = run_json(argv, capsys)
    assert data["p_wait"] == pytest.approx(0.17413, abs=1e-5)


def test_erlang_b_gives_blocking_or_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["erlang", "b", "--traffic", "10", "--lines", "18"]) == 0
    assert "blocking  0.007142" in capsys.readouterr().out
    data = run_json(["erlang", "b", "--traffic", "10", "--blocking", "0.01"], capsys)
    assert data["lines"] == 18


def test_erlang_a_and_infinite_patience_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["erlang", "a", "--traffic", "10", "--agents", "14", "--aht", "180"]
    data = run_json([*base, "--patience", "120"], capsys)
    assert 0 < float(data["p_abandon"]) < float(data["p_wait"]) < 0.1741  # type: ignore[arg-type]
    data = run_json([*base, "--patience", "inf"], capsys)
    assert data["patience_s"] == "inf"  # JSON has no infinity
    assert data["service_level"] == pytest.approx(0.88835, abs=1e-5)


def test_erlang_staff_applies_occupancy_and_shrinkage(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["erlang", "staff", "--traffic", "95", "--aht", "180", "--sl", "0.8"]
    data = run_json([*argv, "--max-occupancy", "0.85", "--shrinkage", "0.3"], capsys)
    assert data["agents"] == 112
    assert data["scheduled"] == 160


def test_staff_example_95598_prints_180_seats(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["staff", "--example", "95598"]) == 0
    out = capsys.readouterr().out
    assert "today: 71 seats licensed" in out
    assert "peak 160 agents" in out and "+ 20 IVR channels = 180 seats; 109 more" in out


LABEL = "95598 worked example — illustrative volumes, not measured"


def test_the_95598_example_says_its_volumes_are_illustrative(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["staff", "--example", "95598"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith(LABEL)
    data = run_json(["staff", "--example", "95598"], capsys)
    assert data["illustrative"] is True
    assert data["license_seats"] == 180

    sim = ["simulate", "--example", "95598", "--agents", "112"]
    assert run(sim) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith(LABEL)
    assert run_json(sim, capsys)["illustrative"] is True


def test_runs_on_real_volumes_are_not_labelled_illustrative(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "history.csv"
    rows = [f"2024-07-{d:02d}T09:{m:02d},{30 + m}" for d in range(1, 15) for m in (0, 30)]
    path.write_text("start,calls\n" + "\n".join(rows) + "\n")
    assert run(["staff", "--csv", str(path)]) == 0
    out = capsys.readouterr().out
    assert "illustrative" not in out and out.startswith("targets: ")
    assert run_json(["staff", "--csv", str(path)], capsys)["illustrative"] is False

    sim = ["simulate", "--calls-per-hour", "60", "--hours", "1", "--agents", "4"]
    assert run(sim) == 0
    out = capsys.readouterr().out
    assert "illustrative" not in out and out.startswith("agents  offered")
    assert run_json(sim, capsys)["illustrative"] is False


def test_forecast_and_staff_from_a_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["start,calls"]
    for day in range(1, 15):  # two weeks, every day, 09:00–12:00 in 30-minute rows
        for half in range(6):
            calls = 40 + 20 * (half in (2, 3)) + 5 * (day % 7 == 1)
            lines.append(f"2024-07-{day:02d}T{9 + half // 2:02d}:{30 * (half % 2):02d},{calls}")
    path = tmp_path / "v.csv"
    path.write_text("\n".join(lines) + "\n")
    png = tmp_path / "h.png"
    data = run_json(["forecast", "--csv", str(path), "--holdout-png", str(png)], capsys)
    assert len(data["forecast"]) == 6  # type: ignore[arg-type]
    assert data["forecast"][0]["start"] == "2024-07-15T09:00:00"  # type: ignore[index]
    assert png.exists()
    data = run_json(
        ["staff", "--csv", str(path), "--shrinkage", "0.3", "--ivr-channels", "20"], capsys
    )
    assert data["license_seats"] == data["peak_agents"] + 20  # type: ignore[operator]
    assert run(["staff", "--csv", str(path), "--seats-today", "5"]) == 0
    assert "today: 5 seats; add" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["erlang", "c", "--traffic", "10", "--agents", "10", "--aht", "180"],
        ["erlang", "c", "--traffic", "-1", "--agents", "10", "--aht", "180"],
        ["erlang", "a", "--traffic", "10", "--agents", "14", "--aht", "0", "--patience", "60"],
        ["erlang", "b", "--traffic", "10"],
        ["erlang", "staff", "--traffic", "10", "--aht", "180", "--sl", "1.2"],
        ["forecast", "--csv", "/nonexistent/volumes.csv"],
        ["staff", "--dataset", "fpp2-calls", "--shrinkage", "1"],
    ],
)
def test_user_errors_are_input_errors_with_a_slug(argv: list[str]) -> None:
    with pytest.raises(InputError) as info:
        run(argv)
    assert isinstance(info.value, CCServerError)
    assert str(info.value).startswith("input-invalid: ")


# --- forecast from the center's history, with adjustments ---------------------------------
def _history_of_three_weeks(path: Path) -> None:
    """Calls at 09:00–16:59 local time on each of the last 21 days: 4 an hour in queue
    `general`, 2 an hour in `repair`; Mondays twice as busy."""
    zone = config_mod.Config().ivr.zone()
    today = dt.datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    store = History(path)
    n = 0
    for back in range(1, 22):
        day = today - dt.timedelta(days=back)
        busy = 2 if day.weekday() == 0 else 1
        for hour in range(9, 17):
            for queue, per_hour in (("general", 4), ("repair", 2)):
                for k in range(per_hour * busy):
                    at = day.replace(hour=hour, minute=5 + k * 5).timestamp()
                    n += 1
                    store.save_call({"id": f"c{n}", "arrived_at": at, "queue": queue})
    store.close()


def test_forecast_from_history_by_queue_with_intervals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "history.sqlite"
    _history_of_three_weeks(db)
    argv = ["forecast", "--from-history", "--db", str(db), "--interval", "60", "--weeks", "3"]
    data = run_json([*argv, "--horizon", "week"], capsys)
    rows = data["forecast"]
    assert isinstance(rows, list) and len(rows) == 7 * 8  # every day, 09:00–16:00
    assert {r["calls"] for r in rows} == {6.0, 12.0}  # 4 + 2 an hour, Mondays doubled
    assert all(r["lower"] <= r["calls"] <= r["upper"] for r in rows)
    repair = run_json([*argv, "--horizon", "day", "--queue", "repair"], capsys)["forecast"]
    assert isinstance(repair, list) and {r["calls"] for r in repair} <= {2.0, 4.0}


def test_forecast_adjustments_move_the_named_intervals_and_say_by_how_much(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "history.sqlite"
    _history_of_three_weeks(db)
    zone = config_mod.Config().ivr.zone()
    # The history ends with yesterday: the next day forecast is today.
    today = dt.datetime.now(zone).date()
    calendar = tmp_path / "events.yaml"
    calendar.write_text(
        "events:\n"
        f"  - {{name: outage, kind: outage, start: {today}T10:00, end: {today}T12:00,"
        " queues: [repair], multiply: 3}\n"
        f"  - {{name: campaign, kind: campaign, start: {today}T15:00,"
        f" end: {today}T16:00, queues: [general], add: 5}}\n"
    )
    argv = ["forecast", "--from-history", "--db", str(db), "--interval", "60", "--weeks", "3"]
    data = run_json([*argv, "--queue", "repair", "--adjust", str(calendar)], capsys)
    moved = [r for r in data["forecast"] if r["calls"] != r["unadjusted"]]  # type: ignore[union-attr]
    assert [r["start"][11:16] for r in moved] == ["10:00", "11:00"]
    assert all(r["calls"] == 3 * r["unadjusted"] for r in moved)
    assert data["adjustments"] == [
        {
            "event": "outage",
            "kind": "outage",
            "intervals": 2,
            "calls_before": moved[0]["unadjusted"] * 2,
            "calls_after": moved[0]["unadjusted"] * 6,
        }
    ]  # the campaign names another queue
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "events:\n  - {name: x, start: 2027-01-01T10:00, end: 2027-01-01T09:00, add: 1}\n"
    )
    with pytest.raises(InputError, match="end must be after start"):
        run([*argv, "--adjust", str(bad)])


def test_staff_writes_the_roster_s_requirement_per_skill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "history.sqlite"
    _history_of_three_weeks(db)
    out = tmp_path / "required.csv"
    base = ["staff", "--from-history", "--db", str(db), "--weeks", "3", "--interval", "60"]
    base += ["--horizon", "week", "--aht", "180", "--requirement-out", str(out)]
    for queue in ("repair", "general"):
        assert run([*base, "--queue", queue]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "start,skill,required" and lines.count(lines[0]) == 1
    skills = {line.split(",")[1] for line in lines[1:]}
    assert skills == {"repair", "general"} and len(lines) == 1 + 2 * 7 * 8
    assert "requirement: 56 intervals of general" in capsys.readouterr().out


def test_staff_applies_the_events_calendar_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "history.sqlite"
    _history_of_three_weeks(db)
    today = dt.datetime.now(config_mod.Config().ivr.zone()).date()
    calendar = tmp_path / "events.yaml"
    calendar.write_text(
        f"events:\n  - {{name: storm, start: {today}T09:00, end: {today}T17:00, multiply: 10}}\n"
    )
    base = ["staff", "--from-history", "--db", str(db), "--weeks", "3", "--interval", "60"]
    base += ["--queue", "repair", "--aht", "180"]
    plain = run_json(base, capsys)
    stormy = run_json([*base, "--adjust", str(calendar)], capsys)
    assert stormy["peak_agents"] > plain["peak_agents"]  # type: ignore[operator]
