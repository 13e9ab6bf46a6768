"""Recordings' retention on a real directory: files older than the retention are deleted,
the rest (and files that are not recordings) kept and counted; 0 keeps everything."""

from __future__ import annotations

import os
from pathlib import Path

from ccserver.records.recordings import Sweep, sweep

NOW = 1_800_000_000.0
DAY = 86400.0


def _file(directory: Path, name: str, age_days: float, size: int) -> Path:
    path = directory / name
    path.write_bytes(b"\0" * size)
    os.utime(path, (NOW - age_days * DAY, NOW - age_days * DAY))
    return path


def test_recordings_past_their_retention_are_deleted_and_the_rest_counted(tmp_path: Path) -> None:
    old = _file(tmp_path, "call-a.wav", 200, 1000)
    recent = _file(tmp_path, "call-b.wav", 10, 300)
    other = _file(tmp_path, "notes.txt", 400, 50)  # not a recording: never touched
    assert sweep(tmp_path, 180, now=NOW) == Sweep(
        deleted=1, deleted_bytes=1000, kept=1, kept_bytes=300
    )
    assert not old.exists() and recent.exists() and other.exists()
    assert sweep(tmp_path, 0, now=NOW + 1000 * DAY) == Sweep(0, 0, 1, 300)  # 0: keep all


def test_a_missing_directory_is_nothing_to_sweep(tmp_path: Path) -> None:
    assert sweep(tmp_path / "none", 30, now=NOW) == Sweep(0, 0, 0, 0)
