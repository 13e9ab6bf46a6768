"""`ccserver orders` on a real history file: open, move, assign, list (table, CSV, JSON)
and show, each change recorded as `--by`; bad input exits 2 with a slug, no traceback."""

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
def orders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    monkeypatch.chdir(tmp_path)  # no ccserver.toml here: the defaults
    monkeypatch.delenv("CCSERVER_CONFIG", raising=False)
    db = str(tmp_path / "history.sqlite")

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["orders", "--db", db, "--by", "ops:wang", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_an_order_is_opened_moved_and_listed_from_the_command_line(orders: Run) -> None:
    code, out, _ = orders("open", "fault", "--caller", "13800000001", "--area", "rural")
    assert code == 0 and out.startswith("work order 1 opened: fault, dispatched by ")
    assert orders("move", "1", "dispatched", "--team", "crew-3")[0] == 0
    assert orders("assign", "1", "--assignee", "li")[0] == 0
    orders("open", "complaint", "--caller", "13900000000", "--description", "送电慢, 态度差")

    code, out, _ = orders("list", "--open")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["id", "kind", "state"] and lines[-1] == "2 order(s)"
    assert lines[2].split()[:3] == ["1", "fault", "dispatched"] and "on-site by" in lines[2]

    _, out, _ = orders("list", "--kind", "complaint", "--format", "csv")
    [row] = list(csv.DictReader(io.StringIO(out)))
    assert row["description"] == "送电慢, 态度差" and row["created_by"] == "ops:wang"

    _, out, _ = orders("list", "--format", "json", "--state", "dispatched")
    [order] = json.loads(out)
    assert (order["id"], order["team"], order["assignee"]) == (1, "crew-3", "li")

    code, out, _ = orders("show", "1")
    assert code == 0 and "history:" in out
    assert [line.split()[4] for line in out.split("history:\n")[1].splitlines()] == [
        "opened",
        "moved",
        "assigned",
    ]


def test_refusals_are_one_line_with_a_slug(orders: Run) -> None:
    def refused(*argv: str) -> str:
        code, _, err = orders(*argv)
        errors = [line for line in err.splitlines() if line.startswith("error[")]
        assert code == 2 and len(errors) == 1, err
        return errors[0]

    assert refused("show", "7") == "error[order-unknown]: no work order 7"
    orders("open", "enquiry")
    assert refused("move", "1", "closed").startswith("error[invalid-state]: work order 1 is new")
    assert refused("move", "1", "dispatched").startswith("error[assignee-required]")
