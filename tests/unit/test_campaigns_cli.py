"""`ccserver campaigns` on a real history file: start from a CSV list, list, show (table,
CSV, JSON), stop; bad input exits 2 with a slug, no traceback."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ccserver.cli import main

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def campaigns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    monkeypatch.chdir(tmp_path)  # no ccserver.toml here: the defaults (shipped flows)
    monkeypatch.delenv("CCSERVER_CONFIG", raising=False)
    db = str(tmp_path / "history.sqlite")
    (tmp_path / "numbers.csv").write_text("号码,姓名\n13800000001,李\n13800000002,王\n")

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["campaigns", "--db", db, "--by", "ops:wang", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_a_campaign_is_started_listed_shown_and_stopped(campaigns: Run) -> None:
    code, out, _ = campaigns("start", "autumn", "numbers.csv", "--max-concurrent", "2")
    assert (code, out) == (0, "campaign 1 started: 2 number(s), flow survey\n")
    code, out, _ = campaigns("list")
    lines = out.splitlines()
    assert lines[0].split() == ["id", "name", "state", "flow", "started", "progress"]
    assert lines[1].split()[:4] == ["1", "autumn", "running", "survey"]
    assert lines[1].endswith("pending 2") and lines[-1] == "1 campaign(s)"

    _, out, _ = campaigns("show", "1", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["number"], r["state"], r["tries"]) for r in rows] == [
        ("13800000001", "pending", "0"),
        ("13800000002", "pending", "0"),
    ]
    code, out, _ = campaigns("stop", "1")
    assert (code, out) == (0, "campaign 1 is stopped: stopped 2\n")
    _, out, _ = campaigns("show", "1", "--format", "json")
    shown = json.loads(out)
    assert (shown["created_by"], shown["max_concurrent"]) == ("ops:wang", 2)
    assert [t["result"] for t in shown["targets"]] == ["stopped", "stopped"]
    code, out, _ = campaigns("show", "1")
    assert code == 0 and out.startswith("campaign 1 'autumn': stopped, stopped 2\n")


@pytest.mark.parametrize(
    ("argv", "slug", "words"),
    [
        (["start", "x", "numbers.csv", "--flow", "quiz"], "input-invalid", "not an outbound flow"),
        (["start", "x", "missing.csv"], "input-invalid", "cannot be read"),
        (["start", "x", "bad.csv"], "input-invalid", "line 2: 'abc' is not a phone number"),
        (["start", "x", "numbers.csv", "--cps", "0"], "input-invalid", "must be positive"),
        (["show", "7"], "campaign-unknown", "no campaign 7"),
        (["stop", "7"], "campaign-unknown", "no campaign 7"),
    ],
)
def test_bad_input_exits_2_with_its_slug(
    campaigns: Run, tmp_path: Path, argv: list[str], slug: str, words: str
) -> None:
    (tmp_path / "bad.csv").write_text("13800000001\nabc\n")
    code, out, err = campaigns(*argv)
    assert (code, out) == (2, "")
    assert err.startswith(f"error[{slug}]: ") and words in err and "Traceback" not in err
