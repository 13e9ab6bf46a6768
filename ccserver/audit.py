"""The audit log of supervisor and admin actions, one JSON line each:
- every write request of the REST API (POST, PUT, PATCH, DELETE), refused ones included —
  who (token name and role, when the token was valid), from where, what (method, path, body
  with secrets redacted) and the answer (status, error slug);
- every action the call center takes on someone's behalf that touches another person's
  call (a supervisor's monitor session starting, switching mode, ending) and every read of
  what a call left behind (a recording played): `action`, who, and the action's fields
  (whom, which call, why), whether the request came over HTTP or from a phone.

The file is created 0600 and forced back to 0600 when opened, because even redacted, it
says who worked when. Each line is appended with its own open/append/close, so logrotate
may move the file at any time and a line is never split between two files. Writes are rare
(state changes), so doing them on the loop costs nothing measurable. A line that can't be
written is logged and counted: the request it describes has already happened.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

from ccserver.errors import CCServerError
from ccserver.logs import log

logger = logging.getLogger("ccserver.audit")
SECRET_KEYS = frozenset({"pin", "password", "secret", "token"})
REDACTED = "***"


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.failed_writes = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(_open_append(path))
            os.chmod(path, 0o600)
        except OSError as exc:
            raise CCServerError(
                f"{path}: cannot open the audit log ({exc}); check the run dir is writable",
                slug="audit-unavailable",
                status=503,
            ) from None

    def write(
        self,
        *,
        token: str | None,
        role: str | None,
        method: str,
        path: str,
        remote: str | None,
        body: Any,
        status: int,
        error: str | None,
    ) -> None:
        self._append(
            {
                "token": token,
                "role": role,
                "method": method,
                "path": path,
                "remote": remote,
                "body": redact(body),
                "status": status,
                "error": error,
            }
        )

    def action(self, action: str, *, who: str, **fields: Any) -> None:
        """An action taken for `who` (a token name, or `phone:<id>` for a feature code):
        e.g. `monitor.start` with the agent, call and mode."""
        self._append({"action": action, "token": who, **redact(fields)})

    def _append(self, fields: dict[str, Any]) -> None:
        now = time.time()
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now * 1000) % 1000:03d}Z",
            **fields,
        }
        line = (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        try:
            fd = _open_append(self.path)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            self.failed_writes += 1
            what = fields.get("action") or fields.get("path")
            log(logger, "audit.write_failed", logging.ERROR, entry=what, error=exc)

    def tail(self, n: int) -> list[dict[str, Any]]:
        """The last `n` entries, oldest first."""
        with self.path.open(encoding="utf-8") as lines:
            return [json.loads(line) for line in deque(lines, maxlen=n)]


def redact(value: Any) -> Any:
    """`value` with the values of secret keys (at any depth) replaced."""
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in SECRET_KEYS else redact(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
