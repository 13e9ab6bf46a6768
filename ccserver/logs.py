"""Structured logs: one line an event, `key=value` (or JSON), always with the event name.

Use `log(logger, "call.queued", call=call_id, position=3)`. Values are quoted only when
they need it, so lines stay greppable (`grep call=ab12`).

The grammar of a `key=value` line (`parse_line` reads it back; docs/observability.md):

    line   = "ts=" ts " level=" level " event=" value *( " " key "=" value )
    key    = 1*( ALPHA / DIGIT / "_" / "." / "-" )      ; unique within the line
    value  = bare / quoted
    bare   = 1*( a printable character that is not whitespace, '"' or "=" )
    quoted = a JSON string (RFC 8259), UTF-8

A value is quoted exactly when it is empty or holds a space, a quote, an "=" or a
character that is not printable (a tab, a newline…), so a line never breaks. A field
named like the first three (`ts`, `level`, `event`) is written with a trailing "_".
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_FORMAT = {"style": "kv"}
RESERVED = ("ts", "level", "event")
_KEY = re.compile(r"[A-Za-z0-9_.-]+=")
_BARE = re.compile(r'[^\s"=]+')
_DECODER = json.JSONDecoder()


def _kv_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in '"=' or c.isspace() or not c.isprintable() for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def parse_line(line: str) -> dict[str, str]:
    """A `key=value` line back into its fields (a quoted value decoded); ValueError naming
    the column where the line leaves the grammar."""
    fields: dict[str, str] = {}
    at = 0
    while True:
        key = _KEY.match(line, at)
        if key is None:
            raise ValueError(f"column {at + 1}: a key= is expected")
        name, at = key.group()[:-1], key.end()
        if line.startswith('"', at):
            value, at = _DECODER.raw_decode(line, at)  # JSONDecodeError is a ValueError
        else:
            bare = _BARE.match(line, at)
            if bare is None or not bare.group().isprintable():
                raise ValueError(f"column {at + 1}: a value is expected after {name}=")
            value, at = bare.group(), bare.end()
        if name in fields:
            raise ValueError(f"column {key.start() + 1}: {name} twice")
        fields[name] = value
        if at == len(line):
            break
        if line[at] != " " or at + 1 == len(line):
            raise ValueError(f"column {at + 1}: one space between pairs, none at the end")
        at += 1
    if list(fields)[:3] != list(RESERVED):
        raise ValueError("a line starts with ts=, level=, event=")
    return fields


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
        event = _kv_value(record.getMessage())  # a library's message may hold spaces
        parts = [f"ts={ts}", f"level={record.levelname.lower()}", f"event={event}"]
        parts += [f"{k}{'_' * (k in RESERVED)}={_kv_value(v)}" for k, v in fields.items()]
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
