"""Recordings kept for their retention period, then deleted.

Calls are recorded into the run dir's recordings directory (Asterisk's spool), one file a
call, named after it. A sweep deletes every file older than `retention_days` (by its
modification time: when the recording ended) and reports what it deleted and what is
kept, which the controller turns into metrics and an audit line. Retention 0 keeps
everything. A file that cannot be deleted is counted as kept and logged; a sweep never
raises for one file.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ccserver.logs import log

logger = logging.getLogger("ccserver.recordings")
RECORDING_SUFFIXES = frozenset({".wav", ".gsm", ".ulaw", ".alaw", ".sln", ".wav49", ".g722"})


@dataclass(frozen=True)
class Sweep:
    deleted: int
    deleted_bytes: int
    kept: int
    kept_bytes: int


def sweep(directory: Path, retention_days: int, *, now: float | None = None) -> Sweep:
    """Delete the recordings in `directory` older than `retention_days` (0: none)."""
    cutoff = (time.time() if now is None else now) - retention_days * 86400.0
    deleted = deleted_bytes = kept = kept_bytes = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return Sweep(0, 0, 0, 0)
    for entry in entries:
        if not entry.is_file() or Path(entry.name).suffix not in RECORDING_SUFFIXES:
            continue
        try:
            info = entry.stat()
        except FileNotFoundError:
            continue  # gone meanwhile
        if retention_days > 0 and info.st_mtime < cutoff:
            try:
                os.unlink(entry.path)
            except OSError as exc:
                log(
                    logger,
                    "recordings.delete_failed",
                    logging.WARNING,
                    file=entry.path,
                    error=str(exc),
                )
            else:
                deleted += 1
                deleted_bytes += info.st_size
                continue
        kept += 1
        kept_bytes += info.st_size
    return Sweep(deleted, deleted_bytes, kept, kept_bytes)
