"""Reading SIPp's statistics file (recorded from a real run) and the loopback guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccserver.errors import InputError
from ccserver.loadtest.sipp import Sipp, SippStats

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_the_last_row_of_a_recorded_stat_file_gives_the_totals() -> None:
    stats = SippStats.read(FIXTURES / "sipp" / "callers.stat.csv")
    assert stats == SippStats(successful=2, failed=0, created=2)


def test_missing_or_empty_stat_files_count_nothing(tmp_path: Path) -> None:
    assert SippStats.read(tmp_path / "absent.csv") == SippStats(0, 0, 0)
    (tmp_path / "empty.csv").write_text("StartTime;SuccessfulCall(C)\n")
    assert SippStats.read(tmp_path / "empty.csv") == SippStats(0, 0, 0)


def test_sipp_traffic_goes_to_loopback_only(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="loopback addresses only"):
        Sipp(
            "caller.xml",
            work_dir=tmp_path,
            name="x",
            local_port=1,
            media_port=2,
            remote="192.168.1.10:5060",
        )
    Sipp(
        "caller.xml",
        work_dir=tmp_path,
        name="x",
        local_port=1,
        media_port=2,
        remote="127.0.0.2:5060",
    )
