"""The controller's structured log, read back by the drills: which events happened, in what
order and when (its own timestamps), so that a drill can measure from the log rather than
from the outside of a busy box."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_PAIR = re.compile(r'([A-Za-z_][\w.]*)=("(?:[^"\\]|\\.)*"|\S*)')


@dataclass(frozen=True)
class LogLine:
    index: int  # position in the file: the order events were written in
    at: float  # epoch seconds, from the line's `ts`
    event: str
    fields: dict[str, Any]


def read_log(path: Path) -> list[LogLine]:
    """Every structured line of a controller log (`kv` or `json` style); anything else (a
    stray traceback) is skipped."""
    lines = []
    for index, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
        fields = _parse(raw)
        if "ts" in fields and "event" in fields:
            stamp = datetime.strptime(str(fields.pop("ts")), "%Y-%m-%dT%H:%M:%S.%fZ")
            at = stamp.replace(tzinfo=UTC).timestamp()
            lines.append(LogLine(index, at, str(fields.pop("event")), fields))
    return lines


def _parse(raw: str) -> dict[str, Any]:
    if raw.startswith("{"):
        try:
            doc = json.loads(raw)
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}
    return {k: json.loads(v) if v.startswith('"') else v for k, v in _PAIR.findall(raw)}
