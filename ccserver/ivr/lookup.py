"""The HTTP call of a `lookup` node: GET a URL, sort the answer into hit, miss or error.

A backend that is slow, down or answering nonsense must never leave a caller in silence
or drop the call: every failure becomes an `error` result with a reason for the log, and
the flow takes its `on_error` branch. Only a 404 means "no such record" (`miss`).
Numbers in the JSON are read as decimals, so a balance of 123.45 stays exactly "123.45".
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote

import aiohttp

from ccserver.ivr.say import parse_template


@dataclass(frozen=True)
class LookupResult:
    result: Literal["hit", "miss", "error"]
    detail: str
    """Why (HTTP status, timeout, missing field): for logs and the flow record."""
    values: dict[str, str] = field(default_factory=dict)
    """On a hit: variable → value, from the node's `results` mapping."""
    ms: int = 0


def fill_url(template: str, variables: Mapping[str, str], config_values: Mapping[str, str]) -> str:
    """`{billing_url}/accounts/{account}` → the URL. Configuration values go in as they are
    (they are URLs); variables are percent-encoded, so caller input cannot change the path."""
    parts = []
    for seg in parse_template(template):
        if isinstance(seg, str):
            parts.append(seg)
        elif seg.name in config_values:
            parts.append(config_values[seg.name])
        else:
            parts.append(quote(variables.get(seg.name, ""), safe=""))
    return "".join(parts)


def _text(value: Any) -> str | None:
    """A JSON scalar as variable text; objects, lists and null are not values."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | Decimal):
        return str(value)
    return None


def _pick(data: Any, path: str) -> str | None:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return _text(data)


async def fetch(
    session: aiohttp.ClientSession, url: str, results: Mapping[str, str], timeout_s: float
) -> LookupResult:
    """GET `url` within `timeout_s`; on a 2xx JSON object, copy the `results` fields
    (variable → dotted JSON path) into `values`. Never raises for the backend's faults."""
    started = time.monotonic()

    def done(
        result: Literal["hit", "miss", "error"], detail: str, values: dict[str, str] | None = None
    ) -> LookupResult:
        ms = int((time.monotonic() - started) * 1000)
        return LookupResult(result, detail, values or {}, ms)

    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            status = resp.status
            body = await resp.read()
    except TimeoutError:
        return done("error", f"no answer within {timeout_s:g} s")
    except aiohttp.ClientError as exc:
        return done("error", f"{type(exc).__name__}: {exc}"[:200])
    if status == 404:
        return done("miss", "HTTP 404")
    if not 200 <= status < 300:
        return done("error", f"HTTP {status}")
    try:
        data = json.loads(body, parse_float=Decimal)
    except ValueError:
        return done("error", "the answer is not JSON")
    values = {}
    for variable, path in results.items():
        value = _pick(data, path)
        if value is None:
            return done("error", f"the answer has no value at {path!r}")
        values[variable] = value
    return done("hit", f"HTTP {status}", values)
