"""Structured logs: one line an event, `key=value` (or JSON), always with the event name.

Use `log(logger, "call.queued", call=call_id, position=3)`. Values are quoted only when
they need it, so lines stay greppable (`grep call=ab12`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_FORMAT = {"style": "kv"}


def _kv_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n'):
        return json.dumps(text, ensure_ascii=False)
    return text


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        ts += f".{int(record.msecs):03d}Z"
        if _FORMAT["style"] == "json":
            doc = {"ts": ts, "level": record.levelname.lower(), "event": record.getMessage()}
            doc.update({k: v for k, v in fields.items()})
            if record.exc_info:
                doc["exc"] = self.formatException(record.exc_info)
            return json.dumps(doc, ensure_ascii=False, default=str)
        parts = [f"ts={ts}", f"level={record.levelname.lower()}", f"event={record.getMessage()}"]
        parts += [f"{k}={_kv_value(v)}" for k, v in fields.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
        return line


def setup(style: str = "kv", level: int = logging.INFO) -> None:
    _FORMAT["style"] = style
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # panoramisk logs every reconnect attempt at ERROR with no context; ours say more.
    logging.getLogger("panoramisk").setLevel(logging.CRITICAL)


def log(logger: logging.Logger, event: str, level: int = logging.INFO, /, **fields: Any) -> None:
    logger.log(level, event, extra={"fields": fields})
